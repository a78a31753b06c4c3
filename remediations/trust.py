"""Trust earned, not configured: a rule with ``trust: earned`` starts in ``approve`` and its own
record moves it.

- **Promotion** to ``auto`` once its last ``promote_after.verified`` runs, all started within
  ``promote_after.within``, were verified, with no failure and no rollback between them.
- **Demotion** back to ``approve`` on the first run since the promotion whose outcome
  ``demote_on`` names (``not_fixed``, ``rolled_back``, ``failed``).

Shadow runs ran nothing: one counts only where a person checked what happened (``aiops
remediation review``); that its check pass passed and the incident then recovered on its own
says nothing of the playbook. Each move is audited with the runs that justified it and written to
the timeline of the incident whose run decided it (kind ``remediation.trust``), so it goes out on
the notification channels that take remediation events. A person may pin a rule (``aiops
remediation trust RULE auto|approve``) or hand it back to its record (``earned``); the
``review`` leaves a pinned rule alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from agent.clock import duration
from agent.config.remediation import RemediationConfig, Rule
from agent.errors import RemediationError
from agent.flow.runs import RunMode, RunStatus
from agent.flow.trust import Evidence, RuleTrust, RunEvidence, TrustSetting
from agent.log import kv

if TYPE_CHECKING:
    from agent.metrics import Metrics
    from agent.store import Store
    from agent.store.trust import TrustRepository

log = logging.getLogger(__name__)

ACTOR = "agent"
AUTO, APPROVE = "auto", "approve"
EVENT = "remediation.trust"


@dataclass(frozen=True, slots=True, kw_only=True)
class Move:
    """A rule's move, the runs behind it and why."""

    rule: str
    to: str
    runs: tuple[int, ...]
    reason: str
    incident_id: int | None


def setting_of(rule: Rule, trust: RuleTrust | None) -> str:
    """``earned``, ``auto`` or ``approve`` (pinned by hand), or ``configured``."""
    if trust is not None:
        return trust.setting.value
    return TrustSetting.EARNED.value if rule.trust == "earned" else "configured"


def mode_of(rule: Rule, trust: RuleTrust | None) -> str:
    """How the rule runs now: its pinned or earned mode, else the configured one."""
    if trust is not None:
        return trust.mode
    return APPROVE if rule.trust == "earned" else rule.mode


def describe(rule: Rule, trust: RuleTrust | None) -> str:
    """``auto``, ``approve (earned)``, ``auto (by hand)``: the mode and what set it."""
    setting, mode = setting_of(rule, trust), mode_of(rule, trust)
    return mode if setting == "configured" else f"{mode} ({'earned' if setting == 'earned' else 'by hand'})"


def modes(config: RemediationConfig, store: "Store") -> dict[str, str]:
    """Each configured rule's mode now and what set it (``describe``)."""
    trusts = store.trust.all()
    return {rule.name: describe(rule, trusts.get(rule.name)) for rule in config.rules}


def review(store: "Store", config: RemediationConfig, *, now: datetime, metrics: "Metrics | None" = None) -> list[Move]:
    """Move every rule that earns its moves whose record says so; returns the moves made."""
    trusts = store.trust.all()
    moves = []
    for rule in config.rules:
        trust = trusts.get(rule.name)
        if setting_of(rule, trust) != TrustSetting.EARNED.value:
            continue
        move = judge(rule, trust, store.trust, now=now)
        if move is not None:
            apply_move(store, move, actor=ACTOR, setting=TrustSetting.EARNED, now=now)
            if metrics is not None:
                metrics.trust_moves.labels(rule=rule.name, to=move.to).inc()
            moves.append(move)
    return moves


def judge(rule: Rule, trust: RuleTrust | None, trusts: "TrustRepository", *, now: datetime) -> Move | None:
    """The move the rule's record asks for now, if any."""
    window = rule.promote_after.within
    if mode_of(rule, trust) == AUTO:
        since = trust.since if trust is not None else now - timedelta(seconds=window)
        record = trusts.evidence(rule.name, since=since, limit=50)
        bad = [r for r in reversed(record) if r.outcomes & set(rule.demote_on)]
        if not bad:
            return None
        first = bad[0]
        what = ", ".join(sorted(o.value.replace("_", " ") for o in first.outcomes & set(rule.demote_on)))
        return Move(rule=rule.name, to=APPROVE, runs=(first.run,), incident_id=first.incident_id,
                    reason=f"{'checked shadow run' if first.shadow else 'run'} {first.run} was {what} "
                           f"(demote_on: {', '.join(rule.demote_on)}): it waits for approval again")
    wanted = rule.promote_after.verified
    record = trusts.evidence(rule.name, since=now - timedelta(seconds=window), limit=wanted)
    streak = streak_of(record)
    if len(streak) < wanted:
        return None
    return Move(rule=rule.name, to=AUTO, runs=tuple(r.run for r in reversed(streak)), incident_id=streak[0].incident_id,
                reason=f"{wanted} verified runs in a row within {duration(window)}, none rolled back "
                       f"(runs {', '.join(str(r.run) for r in reversed(streak))}): it runs alone now")


def streak_of(record: Sequence[RunEvidence]) -> list[RunEvidence]:
    """The newest runs of ``record`` (newest first) that were verified, up to the first that was not."""
    out = []
    for item in record:
        if item.outcomes != {Evidence.VERIFIED}:
            break
        out.append(item)
    return out


def apply_move(store: "Store", move: Move, *, actor: str, setting: TrustSetting, now: datetime) -> RuleTrust:
    """Record the move (audited with its runs) and tell the incident whose run decided it."""
    with store.transaction():
        trust = store.trust.move(move.rule, setting=setting, mode=move.to, actor=actor, reason=move.reason,
                                     runs=move.runs, now=now)
        if move.incident_id is not None and store.get_incident(move.incident_id, with_signals=False) is not None:
            store.add_incident_event(move.incident_id, kind=EVENT, actor=actor, now=now,
                                     message=f"rule {move.rule} moved to {move.to}: {move.reason}",
                                     details={"rule": move.rule, "to": move.to, "runs": list(move.runs)})
    log.info(kv("remediation.trust", rule=move.rule, to=move.to, runs=",".join(map(str, move.runs)), actor=actor))
    return trust


def set_by_hand(store: "Store", config: RemediationConfig, rule_name: str, setting: str, *, actor: str,
                reason: str, now: datetime) -> str:
    """A person's move: pin the rule (``auto``, ``approve``), hand it to its record (``earned``:
    judged again now), or back to its configuration (``configured``). Returns its mode now."""
    rule = config.rule(rule_name)
    if rule is None:
        known = ", ".join(r.name for r in config.rules) or "none"
        raise RemediationError(rule_name, f"expected a configured rule (known: {known}), found none")
    if rule.mode == "suggest" and rule.trust != "earned":
        raise RemediationError(rule_name, "expected a rule in mode auto or approve; a suggest rule never runs for real")
    why = reason or f"set to {setting} by {actor}"
    if setting == "configured":
        store.trust.clear(rule_name, actor=actor, reason=why, now=now)
        return mode_of(rule, None)
    if setting in (AUTO, APPROVE):
        store.trust.move(rule_name, setting=TrustSetting(setting), mode=setting, actor=actor, reason=why, now=now)
        return setting
    earned = store.trust.move(rule_name, setting=TrustSetting.EARNED, mode=APPROVE, actor=actor, reason=why,
                                  now=now)
    move = judge(rule, earned, store.trust, now=now)
    if move is not None:
        apply_move(store, move, actor=actor, setting=TrustSetting.EARNED, now=now)
        return move.to
    return APPROVE


VERDICTS = ("fixed", "not_fixed")


def check_shadow_run(store: "Store", run_id: int, verdict: str, *, actor: str, reason: str, now: datetime) -> None:
    """A person says what a shadow run's playbook would have come to (``fixed``: it, run by hand,
    was what fixed the incident; ``not_fixed``: it would not have): only such checked shadow runs
    count as evidence for ``trust: earned``."""
    run = store.get_run(run_id)
    if run is None:
        raise RemediationError("-", f"expected a remediation run id, found no run {run_id}")
    if run.mode is not RunMode.SHADOW:
        raise RemediationError(run.rule, f"expected a shadow run to check, found run {run_id} in mode {run.mode}: "
                                         "a real run is judged by its verification")
    if verdict not in VERDICTS:
        raise RemediationError(run.rule, f"expected a verdict among {', '.join(VERDICTS)}, found {verdict!r}")
    store.update_run(run_id, RunStatus.SHADOW, actor=actor, now=now, expect=[RunStatus.SHADOW],
                     reason=f"checked by {actor}: {verdict.replace('_', ' ')}" + (f" ({reason})" if reason else ""),
                     verification={**run.verification, "verdict": verdict, "checked_by": actor,
                                   "checked_at": now.timestamp(), "note": reason})


def overview(config: RemediationConfig, store: "Store") -> list[dict[str, object]]:
    """Per configured rule: how it is configured, what set it now, its mode and the last move."""
    trusts = store.trust.all()
    rows: list[dict[str, object]] = []
    for rule in config.rules:
        held = trusts.get(rule.name)
        rows.append({"rule": rule.name, "configured": "earned" if rule.trust == "earned" else rule.mode,
                     "setting": setting_of(rule, held), "mode": mode_of(rule, held),
                     "since": held.since.strftime("%Y-%m-%d %H:%M:%S") if held else None,
                     "changed_by": held.changed_by if held else None, "reason": held.reason if held else None,
                     "runs": list(held.runs) if held else []})
    return rows
