"""Deciding and running: from a matching rule to a recorded run.

A rule's mode decides what happens to a new match: ``auto`` runs, ``approve`` waits for a
person (until the approval expires), ``suggest`` runs in check mode only, and the global
``shadow`` records what would have run. Right before a real run the incident is read again and
its signals re-checked; then the gates (pause, circuit breaker, rate limits, cooldown,
concurrency) are asked. A check-mode pass comes first when the playbook's header says it is
check-safe, and a failed one stops the real run. Several hosts: the first is a canary, the rest
follow in batches once it is verified (see ``verify``).

Playbooks run beside the cycle (``agent.workers``): the stage decides and hands each run's
chain to a worker (``begin``), which works on a ``fork`` of the stage's ``Remediator``; later
cycles find its results in the store. With ``workers: 0`` the chain runs at once, in the stage.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from agent.clock import boot_id
from agent.config.remediation import Rule
from agent.errors import LeaseLostError, RemediationError
from agent.flow.detection import Detection
from agent.flow.incidents import REMEDIATION_CHANGE, IncidentStatus, remediation_change
from agent.flow.leases import holder_id
from agent.flow.runs import Run, RunMode, RunnerStatus, RunStatus
from agent.log import kv
from agent.rollouts.story import holding_rollout
from agent.store.base import first_line, is_transient
from remediations import processes, rules, runner, safety, trust
from remediations.playbooks import Header, read_header
from remediations.signals import SignalState, observe, relevant_signals

log = logging.getLogger(__name__)

ACTOR = "agent"
RECORD_RETRY_S, RECORD_RETRY_MAX_S = 0.5, 5.0  # a run's outcome written again after these waits
T = TypeVar("T")
_OPEN = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.REMEDIATING)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """What a run of ``rule`` on an incident would use, checked."""

    rule: Rule
    playbook: Path
    relative: str
    sha256: str
    header: Header
    batches: tuple[tuple[str, ...], ...]
    trusted_vars: dict[str, Any]
    label_vars: dict[str, str]

    @property
    def recorded_vars(self) -> dict[str, Any]:
        return rules.redact({**self.trusted_vars, **self.label_vars})


class Remediator:
    """One cycle's remediation work over the shared store, judged by what the cycle's detection
    saw (``seen``). ``decided`` is the stage's memory of the last deferral or decision audited
    per run or key, so a run waiting on a limit is audited once, not every cycle."""

    def __init__(self, ctx: Any, seen: Detection, decided: dict[int | str, str], t0: float | None = None) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.config = ctx.config.remediation
        self.workers = ctx.workers
        self.seen = seen
        self.decided = decided
        self.started_at: datetime = seen.at
        self._t0 = time.monotonic() if t0 is None else t0
        self.touched: dict[int, Run] = {}
        self.job = ""  # the worker job this one works for (its key), or "" in the stage itself

    def fork(self, job: str) -> Remediator:
        """The same cycle's view, with runs of its own: what the worker's job ``job`` works on."""
        mine = Remediator(self.ctx, self.seen, self.decided, t0=self._t0)
        mine.job = job
        return mine

    def now(self) -> datetime:
        """The cycle's time plus what has elapsed since (runs take real seconds)."""
        return self.started_at + timedelta(seconds=time.monotonic() - self._t0)

    def keep(self, run: Run) -> Run:
        """Remember ``run`` (its latest state) among the runs this cycle returns."""
        self.touched[run.id] = run
        return run

    def kept(self, write: Callable[[], T], what: str) -> T:
        """``write()``, asked again while the store is away for a moment (a PostgreSQL restart, a
        session ended, a locked file): what a playbook did must be recorded as it happened, not as
        a failure of ours. Gives up only when the agent stops (the next agent then finds the run
        running with its owner gone: interrupted, never re-run)."""
        delay = RECORD_RETRY_S
        while True:
            try:
                return write()
            except Exception as exc:
                if not is_transient(exc) or self.ctx.stopping.is_set():
                    if is_transient(exc):
                        log.error(kv("remediation.outcome_unrecorded", what=what, error=first_line(exc)))
                    raise
                log.warning(kv("remediation.record_retry", what=what, error=first_line(exc), retry_in_s=delay))
                self.ctx.metrics.remediation_record_retries.inc()
                self.store.close()  # a session the server ended: the next try opens another
                self.ctx.stopping.wait(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX_S)

    # -- workers -------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        return worker_limit(self.config)

    @property
    def inline(self) -> bool:
        """``workers: 0``: playbooks run inside the stage, one after the other."""
        return self.limit == 0

    def can_begin(self) -> bool:
        """A job handed over now would start: sequential mode, or a worker is free and the agent
        is not stopping."""
        return self.inline or (not self.ctx.stopping.is_set() and self.workers.room(self.limit))

    def begin(self, key: str, job: Callable[[Remediator], object], *, ordered: bool = False) -> bool:
        """Hand ``job`` to a worker (with ``workers: 0``: do it now); False when ``key`` is
        under way, no worker is free, or the agent is stopping (the run waits in the store).
        ``ordered``: the job takes the start turn (see ``agent.workers``)."""
        if not self.inline and self.ctx.stopping.is_set():
            return False
        return self.workers.start(key, lambda: self._work(key, job), limit=self.limit, ordered=ordered)

    def _work(self, key: str, job: Callable[[Remediator], object]) -> list[Run]:
        mine = self.fork(key)
        try:
            job(mine)
        except Exception as exc:  # the job marked its run failed; the stage is counted failed as before
            if self.inline:
                raise
            log.exception(kv("remediation.job_failed", job=key, error=type(exc).__name__))
            self.ctx.metrics.stage_failures.labels(stage="remediate").inc()
        finally:
            if not self.inline:
                self.store.close()  # this worker thread's connection
        return list(mine.touched.values())

    def _hold_start(self) -> bool:
        """Wait for this chain's start turn (after the chains handed over before it have
        started their real runs or ended); False when the agent is stopping."""
        return self.workers.hold_start(self.job, self.ctx.stopping.is_set)

    def _release_start(self) -> None:
        self.workers.release_start(self.job)

    # -- planning ------------------------------------------------------------------------

    def plan_all(self) -> None:
        storms = self.store.open_storms()  # no rule matches a storm: its signals are not read
        for incident in reversed(self.store.list_incidents(status=_OPEN, without_signals_of=storms)):  # oldest first
            if incident.id not in storms:
                self.plan(incident)

    def plan(self, incident: Any) -> Run | None:
        """The first rule that matches decides; an incident gets one run chain per rule and
        episode: a reopened (flapping) incident is planned again, within the same rate limits,
        cooldown and circuit breaker. An incident a model rollout holds gets none."""
        if self._held(incident, f"incident:{incident.id}"):
            return None
        for rule in self.config.rules:
            if not rules.matches(rule, incident):
                continue
            latest = self.store.list_runs(incident_id=incident.id, rule=rule.name, limit=1)
            if latest and not self._reopened_since(incident, latest[0].requested_at):
                return None
            try:
                prepared = self.prepare(rule, incident)
            except RemediationError as exc:
                self._refuse(incident, rule, exc.problem)
                return None
            return self._start_chain(prepared, incident)
        return None

    def prepare(self, rule: Rule, incident: Any, targets: Sequence[str] | None = None) -> Prepared:
        playbook = rules.resolve_playbook(self.config.playbook_dir, rule.playbook, rule=rule.name)
        header = read_header(playbook)
        hosts = rules.targets(rule, incident, rules.inventory_hosts(self.config))
        if targets is not None:
            unknown = [t for t in targets if t not in rules.inventory_hosts(self.config)]
            if unknown:
                raise RemediationError(rule.name, f"expected targets from the inventory, found unknown host {unknown[0]!r}")
        label_vars = rules.label_vars(rule, incident, self.config.label_pattern)
        trusted = {**rule.vars, "aiops_incident_id": incident.id, "aiops_rule": rule.name}
        return Prepared(rule=rule, playbook=playbook, relative=str(playbook.relative_to(self.config.playbook_dir.resolve())),
                        sha256=rules.sha256(playbook), header=header, batches=batches(rule, hosts),
                        trusted_vars=trusted, label_vars=label_vars)

    def _start_chain(self, p: Prepared, incident: Any) -> Run:
        rule, now = p.rule, self.started_at  # decisions are dated by the cycle that made them
        held = self.store.trust.get(rule.name)
        mode = trust.mode_of(rule, held)  # earned or pinned by hand, else as configured
        common = dict(incident_id=incident.id, rule=rule.name, rule_mode=mode, playbook=p.relative,
                      playbook_sha256=p.sha256, targets=p.batches[0], extravars=p.recorded_vars, now=now)
        if self.config.shadow:
            gate = self._gates(rule, p.batches[0], now)
            reason = (f"shadow mode: would have run {p.relative} ({mode}) on {', '.join(p.batches[0])}"
                      if gate.allowed else f"shadow mode: would not run: {gate.reason}")
            self.ctx.metrics.remediation_decisions.labels(decision="shadow").inc()
            return self.keep(self.store.create_run(mode=RunMode.SHADOW, status=RunStatus.SHADOW, reason=reason,
                                                    **common))
        if mode == "suggest":
            return self._suggest(p, incident, common)
        if mode == "approve":
            expires = now + timedelta(seconds=self.config.approval_expiry)
            run = self.store.create_run(mode=RunMode.APPLY, status=RunStatus.WAITING_APPROVAL, expires_at=expires,
                                        reason=f"rule {rule.name} needs approval until {expires.isoformat()}", **common)
            self.ctx.metrics.remediation_decisions.labels(decision="waiting_approval").inc()
            self.store.add_incident_event(
                incident.id, kind="remediation", actor=ACTOR, now=now,
                message=f"run {run.id} ({p.relative} on {', '.join(p.batches[0])}) waits for approval: "
                        f"aiops remediation approve {run.id}", details={"run": run.id, "expires_at": expires})
            return self.keep(run)
        run = self.store.create_run(mode=RunMode.APPLY, status=RunStatus.PENDING,
                                    reason=f"rule {rule.name} matched ({trust.describe(rule, held)})", **common)
        return self.keep(run)

    def _suggest(self, p: Prepared, incident: Any, common: dict[str, Any]) -> Run | None:
        if not p.header.check_mode_safe:
            return self.keep(self.store.create_run(
                mode=RunMode.CHECK, status=RunStatus.SUGGESTED, **common,
                reason=f"suggest: {p.relative} is not check-mode safe, so it was not tried"))
        if safety.is_paused(self.store):
            self._decide_once(f"paused:{incident.id}:{p.rule.name}", "paused", f"incident:{incident.id}",
                              {"rule": p.rule.name, "reason": "remediation is paused"})
            return None
        if not self.can_begin():
            return None  # no free worker: the incident is planned again next cycle
        run = self.store.create_run(mode=RunMode.CHECK, status=RunStatus.PENDING,
                                    reason="suggest: check mode only", **common)
        self.begin(f"run:{run.id}", lambda r: r._suggest_check(run, p, incident))
        return self.keep(run)

    def _suggest_check(self, run: Run, p: Prepared, incident: Any) -> Run:
        run, execution = self._execute(run, p, check=True)
        status = RunStatus.SUGGESTED if execution.status is RunnerStatus.SUCCESSFUL else _status_of(execution.status)
        run = self.store.update_run(run.id, status, now=self.now(),
                                    reason=f"suggest: check run {execution.status} (rc {execution.rc})")
        changed = sum(h.changed for h in run.host_summary.values())
        self.store.add_incident_event(
            incident.id, kind="remediation", actor=ACTOR, now=self.now(),
            message=f"suggested: {p.relative} on {', '.join(run.targets)} (check run {run.id} {execution.status}, "
                    f"{changed} change{'' if changed == 1 else 's'} it would make)",
            details={"run": run.id, "rc": run.rc, "hosts": _hosts(run), "output": run.output[-4000:]})
        return self.keep(run)

    # -- approvals -------------------------------------------------------------------------

    def expire_approvals(self) -> None:
        now = self.now()
        for run in self.store.list_runs(statuses=[RunStatus.WAITING_APPROVAL]):
            if run.expires_at is not None and now >= run.expires_at:
                self.ctx.metrics.remediation_decisions.labels(decision="expired").inc()
                self.keep(self.store.update_run(run.id, RunStatus.EXPIRED, now=now, ended_at=now,
                                                 expect=[RunStatus.WAITING_APPROVAL],
                                                 reason=f"nobody approved it before {run.expires_at.isoformat()}"))

    # -- executing ---------------------------------------------------------------------------

    def execute_due(self) -> None:
        """Start the real runs that are due, oldest first, while workers are free; one under way
        (its key taken) is not started again."""
        for run in reversed(self.store.list_runs(statuses=[RunStatus.PENDING, RunStatus.APPROVED], mode=RunMode.APPLY)):
            self.start_run(run)

    def start_run(self, run: Run) -> bool:
        return self.begin(f"run:{run.id}", lambda r: r.execute(run), ordered=True)

    def execute(self, run: Run) -> Run:
        """Re-check, pass the gates, check run if safe, real run; leaves the run verifying or failed."""
        if not self._hold_start():
            return run  # stopping: it stays due for the next agent
        try:
            return self._gate_and_run(run)
        except LeaseLostError as exc:  # another agent leads now: the run stays due for it
            log.warning(kv("remediation.not_started", run=run.id, reason=str(exc)))
            return run
        except Exception as exc:  # a run must never stay "running" behind a crash of ours
            if is_transient(exc):  # the store is away (the agent is stopping): recovery marks it interrupted
                raise
            current = self.store.get_run(run.id)
            if current is not None and not current.status.is_final and current.status is not RunStatus.VERIFYING:
                self.store.update_run(run.id, RunStatus.FAILED, now=self.now(), ended_at=self.now(),
                                      reason=f"the agent failed to run it: {type(exc).__name__}: {exc}")
            raise
        finally:
            self._release_start()

    def _gate_and_run(self, run: Run) -> Run:
        current = self.store.get_run(run.id)
        if current is None or current.status not in (RunStatus.PENDING, RunStatus.APPROVED):
            return run  # a worker took it, or it ended, since the cycle listed it: never twice
        run = current
        rule = self.config.rule(run.rule)
        if rule is None:
            return self.keep(self.store.update_run(run.id, RunStatus.CANCELED, now=self.now(),
                                                    reason=f"rule {run.rule} is no longer configured"))
        incident = self._incident_of(run)  # read once: the gates below judge the same incident
        why_not = _nothing_to_fix(run, incident)
        if why_not:
            return self.keep(self.store.update_run(run.id, RunStatus.SKIPPED, now=self.now(), reason=why_not))
        quiet = self._quiet_now(incident, rule, run.targets)
        if quiet is not None:
            self._defer(run, quiet)
            return run
        if self._held(incident, f"run:{run.id}"):
            return run  # it waits while the rollout's rollback is the remediation
        now = self.now()
        gate = self._gates(rule, run.targets, now)
        if gate.decision is safety.Decision.CIRCUIT_OPEN:
            run = self.store.update_run(run.id, RunStatus.SKIPPED, now=now, reason=gate.reason)
            self.ctx.metrics.remediation_decisions.labels(decision="circuit_open").inc()
            self.escalate(run, f"{gate.reason}; paging instead of running {run.playbook}")
            return self.keep(run)
        if not gate.allowed:
            self._defer(run, gate)
            return run
        try:
            p = self.prepare(rule, incident, targets=run.targets)
        except RemediationError as exc:
            return self.keep(self.store.update_run(run.id, RunStatus.CANCELED, now=self.now(), reason=exc.problem))
        self.decided.pop(run.id, None)
        self.ctx.metrics.remediation_decisions.labels(decision="run").inc()
        self._mark_remediating(incident, now)
        if p.header.check_mode_safe:
            stopped = self._check_pass(run, rule, p)
            if stopped is not None:
                return stopped
        run, execution = self._execute(run, p, check=False)
        return self.keep(self._after_apply(run, rule, p, execution))

    def _check_pass(self, run: Run, rule: Rule, p: Prepared) -> Run | None:
        """A check run before the real one: the real run as it ended when the chain stops here (the
        check failed, or there is nothing left to fix), None when it goes on."""
        check = self.store.create_run(
            incident_id=run.incident_id, rule=rule.name, rule_mode=run.rule_mode, playbook=p.relative,
            playbook_sha256=p.sha256, mode=RunMode.CHECK, status=RunStatus.PENDING, targets=run.targets,
            extravars=p.recorded_vars, batch=run.batch, parent_id=run.id, now=self.now(),
            reason=f"check pass before run {run.id}")
        check, execution = self._execute(check, p, check=True)
        if execution.status is not RunnerStatus.SUCCESSFUL:
            check = self.store.update_run(check.id, _status_of(execution.status), now=self.now(),
                                          reason=f"check run {execution.status} (rc {execution.rc})")
            run = self.store.update_run(run.id, RunStatus.FAILED, now=self.now(), ended_at=self.now(),
                                        rc=execution.rc, output=check.output,
                                        reason=f"check run {check.id} {execution.status} (rc {execution.rc}); "
                                               "the real run was not started")
            self.keep(check)
            self.escalate(run, f"run {run.id} stopped: its check pass (run {check.id}) {execution.status}")
            return self.keep(run)
        self.keep(self.store.update_run(check.id, RunStatus.SUCCEEDED, now=self.now(),
                                         reason="check pass succeeded"))
        # A cycle gone quiet during the check pass does not stop it (the decision was made while
        # the incident fired); resolved by a person meanwhile does.
        why_not = _nothing_to_fix(run, self._incident_of(run))
        if why_not:
            return self.keep(self.store.update_run(run.id, RunStatus.SKIPPED, now=self.now(), reason=why_not))
        return None

    def _record_change(self, run: Run) -> None:
        """An applied playbook is a change to what it acted on, labelled like its incident: the
        next incident lists it as a suspect, and a model's drift window restarts after it (the
        data before a rollback describe the version rolled back)."""
        incident = self.store.get_incident(run.incident_id, with_signals=False)
        if incident is None:
            return
        self.store.add_change(ts=self.now(), kind=REMEDIATION_CHANGE, labels=dict(incident.labels),
                              description=remediation_change(playbook=run.playbook, rule=run.rule, run_id=run.id),
                              actor=ACTOR, now=self.now())

    def _after_apply(self, run: Run, rule: Rule, p: Prepared, execution: runner.Execution) -> Run:
        now = self.now()
        if execution.status is RunnerStatus.SUCCESSFUL:
            deadline = self.config.verify.deadline
            until = now + timedelta(seconds=deadline)
            # The deadline and the quiet period are counted on the monotonic clock where it can be
            # read again (this host, this boot): a step of the wall clock neither cuts them short
            # nor stretches them.
            verification = {"quiet_since": None, "boot": boot_id(), "applied_mono": self.ctx.monotonic(),
                            "deadline_s": deadline}
            run = self.kept(lambda: self.store.update_run(
                run.id, RunStatus.VERIFYING, now=now, verify_until=until, verification=verification,
                reason=f"applied; verifying until {until.isoformat()}"), f"run {run.id} applied")
            self.ctx.metrics.remediation_runs.labels(outcome="applied").inc()
            self.kept(lambda: self._record_change(run), f"run {run.id}'s change")
            self.kept(lambda: self.store.add_incident_event(
                run.incident_id, kind="remediation", actor=ACTOR, now=now,
                message=f"run {run.id} applied {run.playbook} on {', '.join(run.targets)}; verifying",
                details={"run": run.id, "rc": run.rc, "hosts": _hosts(run), "output": run.output[-4000:]}),
                f"run {run.id}'s event")
            return run
        if execution.status is RunnerStatus.CANCELED:
            run = self.store.update_run(run.id, RunStatus.INTERRUPTED, now=now,
                                        reason="the agent was stopping; the run was killed")
            self.escalate(run, f"run {run.id} was interrupted because the agent stopped")
            return run
        status = _status_of(execution.status)
        run = self.kept(lambda: self.store.update_run(run.id, status, now=now,
                                                      reason=f"real run {execution.status} (rc {execution.rc})"),
                        f"run {run.id} {execution.status}")
        self.ctx.metrics.remediation_runs.labels(outcome=str(status)).inc()
        rollback = self.rollback(run, p)
        self.escalate(run, f"run {run.id} ({run.playbook}) {execution.status} with rc {execution.rc}", rollback)
        return run

    def _execute(self, run: Run, p: Prepared, *, check: bool,
                 targets: Sequence[str] | None = None) -> tuple[Run, runner.Execution]:
        """Mark the run running, execute it, record rc, host summary, output, artifact dir."""
        private = self.artifacts_root / f"run-{run.id:06d}-{run.mode}"
        now = self.now()
        try:
            run = self.store.update_run(run.id, RunStatus.RUNNING, now=now, started_at=now, owner=owner_id(),
                                        artifact_dir=str(private), reason=f"{run.mode} run started",
                                        lease=self.ctx.leases.fence())
        except LeaseLostError:
            if run.mode is not RunMode.APPLY:
                # A check pass or rollback exists only for this call; no agent would ever start it.
                # (A real run stays due: the new leader goes through its gates again.)
                self.store.update_run(run.id, RunStatus.CANCELED, now=self.now(),
                                      reason="not started: this agent lost the leader lease first")
            raise
        if run.mode is RunMode.APPLY:
            self._release_start()  # the gates of the next chain now count this run
        try:
            execution = runner.execute(
                playbook=p.playbook, project_dir=self.config.playbook_dir.resolve(), private_dir=private,
                targets=list(targets or run.targets), check=check, trusted_vars={**p.trusted_vars, "aiops_run_id": run.id,
                                                                                  "aiops_artifact_dir": str(private)},
                label_vars=p.label_vars, timeout_s=self._timeout(p.rule, check), run_key=run_key(self.store, run.id),
                inventory=self.config.inventory, env=p.rule.env, pass_env=p.rule.pass_env,
                tracking=self.config.process_tracking, cancel=self.ctx.stopping.is_set,
                # beats say the cycle is alive: only a run inside the stage may give them
                tick=self.ctx.heartbeat.beat if self.inline else None)
        except Exception as exc:  # a run must not stay "running" behind a crash of ours
            self.store.update_run(run.id, RunStatus.FAILED, now=self.now(), ended_at=self.now(),
                                  reason=f"the agent failed to run it: {type(exc).__name__}: {exc}")
            raise
        finally:
            runner.rotate(self.artifacts_root, self.config.keep_artifacts)
        log.info(kv("remediation.executed", run=run.id, mode=str(run.mode), status=execution.status, rc=execution.rc,
                    duration_s=round(execution.duration_s, 2)))
        output = rules.scrub(execution.output, {**p.trusted_vars, **p.label_vars})
        ended = self.now()
        run = self.kept(lambda: self.store.update_run(
            run.id, RunStatus.RUNNING, now=ended, ended_at=ended, rc=execution.rc, host_summary=execution.host_summary,
            output=output, reason=f"{run.mode} run ended: {execution.status}"), f"run {run.id} ended")
        return run, execution

    def rollback(self, run: Run, p: Prepared | None = None) -> Run | None:
        rule = self.config.rule(run.rule)
        if rule is None or rule.rollback_playbook is None:
            return None
        incident = self.store.get_incident(run.incident_id)
        if safety.is_paused(self.store):
            self._decide_once(f"paused-rollback:{run.id}", "paused", f"run:{run.id}",
                              {"rule": rule.name, "reason": "remediation is paused: rollback not run"})
            return None
        try:
            base = p or self.prepare(rule, incident, targets=run.targets)
            playbook = rules.resolve_playbook(self.config.playbook_dir, rule.rollback_playbook, rule=rule.name)
        except RemediationError as exc:
            log.error(kv("remediation.rollback_refused", run=run.id, problem=exc.problem))
            return None
        back = Prepared(rule=rule, playbook=playbook, relative=rule.rollback_playbook, sha256=rules.sha256(playbook),
                        header=base.header, batches=base.batches, trusted_vars=base.trusted_vars,
                        label_vars=base.label_vars)
        row = self.store.create_run(
            incident_id=run.incident_id, rule=rule.name, rule_mode=run.rule_mode, playbook=back.relative,
            playbook_sha256=back.sha256, mode=RunMode.ROLLBACK, status=RunStatus.PENDING, targets=run.targets,
            extravars=back.recorded_vars, batch=run.batch, parent_id=run.id, now=self.now(),
            reason=f"rollback of run {run.id}")
        try:
            row, execution = self._execute(row, back, check=False)
        except LeaseLostError as exc:  # the escalation still goes out, saying the rollback did not run
            log.warning(kv("remediation.rollback_not_started", run=run.id, rollback=row.id, reason=str(exc)))
            return self.keep(self.store.get_run(row.id) or row)
        status = RunStatus.SUCCEEDED if execution.status is RunnerStatus.SUCCESSFUL else _status_of(execution.status)
        return self.keep(self.store.update_run(row.id, status, now=self.now(),
                                                reason=f"rollback {execution.status} (rc {execution.rc})"))

    def roll_back_and_escalate(self, run: Run, message: str) -> None:
        self.escalate(run, message, self.rollback(run))

    # -- incidents ----------------------------------------------------------------------------

    def escalate(self, run: Run, message: str, rollback: Run | None = None) -> None:
        """Hand the incident back to people: an ``escalated`` event with the run's output attached."""
        now = self.now()
        details = {"run": run.id, "rule": run.rule, "status": str(run.status), "rc": run.rc,
                   "hosts": _hosts(run), "output": run.output[-8000:]}
        if rollback is not None:
            details["rollback"] = {"run": rollback.id, "status": str(rollback.status), "rc": rollback.rc}
            message += f"; rollback run {rollback.id} {rollback.status}"
        if run.incident_id is None:
            return
        self.kept(lambda: self._hand_back(run.incident_id, message, details, now), f"run {run.id}'s escalation")
        self.ctx.metrics.remediation_decisions.labels(decision="escalated").inc()

    def _hand_back(self, incident_id: int, message: str, details: dict[str, Any], now: datetime) -> None:
        """The ``escalated`` event and the move back to open, together."""
        with self.store.transaction():
            self.store.add_incident_event(incident_id, kind="escalated", actor=ACTOR, message=message,
                                          details=details, now=now)
            incident = self.store.get_incident(incident_id, with_signals=False)
            if incident is not None and incident.status is IncidentStatus.REMEDIATING:
                self.store.transition_incident(incident.id, IncidentStatus.OPEN, actor=ACTOR, reason=message, now=now)

    def _mark_remediating(self, incident: Any, now: datetime) -> None:
        if incident.status is not IncidentStatus.REMEDIATING:
            # the move to remediating records the start time itself (the first time only)
            incident = self.store.transition_incident(incident.id, IncidentStatus.REMEDIATING, actor=ACTOR, now=now,
                                                      reason="remediation run starting")
        if incident.remediation_started_at is None:
            self.store.set_remediation_times(incident.id, started_at=now, actor=ACTOR, now=now)

    def _incident_of(self, run: Run) -> Any:
        return self.store.get_incident(run.incident_id) if run.incident_id is not None else None

    def _quiet_now(self, incident: Any, rule: Rule, targets: Sequence[str]) -> safety.Gate | None:
        """A gate when the incident's signals have data and no hits this cycle. One quiet cycle is
        not a recovery (the first points after a gap or a restart often look normal): the run waits,
        starts if they fire again, and is skipped once the incident resolves as quiet."""
        signals = relevant_signals(incident, rule.targets.label, targets)
        if observe(signals, self.seen) is not SignalState.QUIET:
            return None
        return safety.Gate(decision=safety.Decision.QUIET,
                           reason=f"incident #{incident.id} looks recovered: its signals have data and no hits this "
                                  "cycle; the run waits for them to fire again or for the incident to resolve")

    # -- gates and decisions ----------------------------------------------------------------------

    def _gates(self, rule: Rule, targets: Sequence[str], now: datetime) -> safety.Gate:
        if safety.is_paused(self.store):
            return safety.Gate(decision=safety.Decision.PAUSED,
                               reason="remediation is paused (aiops remediation resume to continue)")
        gate = safety.circuit(self.store, rule, self.config, now)
        if not gate.allowed:
            return gate
        return safety.limits(self.store, rule, self.config, targets, now)

    def _defer(self, run: Run, gate: safety.Gate) -> None:
        if self.decided.get(run.id) == gate.reason:
            return
        self.decided[run.id] = gate.reason
        self.ctx.metrics.remediation_decisions.labels(decision=str(gate.decision)).inc()
        self.store.audit(ACTOR, f"remediation.{gate.decision}", f"run:{run.id}",
                         {"rule": run.rule, "incident": run.incident_id, "reason": gate.reason}, now=self.now())
        log.info(kv("remediation.deferred", run=run.id, decision=str(gate.decision), reason=gate.reason))

    def _held(self, incident: Any, subject: str) -> bool:
        """A model rollout holds the incident (``agent.rollouts.story``): audited once."""
        if not self.ctx.config.models:
            return False
        rollout = holding_rollout(self.store, incident)
        if rollout is None:
            return False
        self._decide_once(f"held:{subject}", "held", subject, {
            "incident": incident.id, "rollout": rollout.id,
            "reason": f"rollout {rollout.id} of {rollout.model} {rollout.version} is {rollout.status}: its rollback "
                      "is the remediation, no rule runs for incidents of its model's signals"})
        return True

    def _reopened_since(self, incident: Any, when: Any) -> bool:
        if not incident.reopened:
            return False
        return any(e.kind == "reopened" and e.ts > when for e in self.store.incident_events(incident.id))

    def _decide_once(self, key: str, decision: str, subject: str, details: dict[str, Any]) -> bool:
        """Audit ``decision`` unless the same one was audited last for ``key``; True when it was new."""
        if self.decided.get(key) == details.get("reason"):
            return False
        self.decided[key] = str(details.get("reason"))
        self.ctx.metrics.remediation_decisions.labels(decision=decision).inc()
        self.store.audit(ACTOR, f"remediation.{decision}", subject, details, now=self.now())
        return True

    def _refuse(self, incident: Any, rule: Rule, reason: str) -> None:
        """A matching rule that cannot run on this incident: audited, and said on its timeline
        (so in its summary and notifications) once per reason."""
        if self._decide_once(f"refused:{incident.id}:{rule.name}", "refused", f"incident:{incident.id}",
                             {"rule": rule.name, "reason": reason}):
            self.store.add_incident_event(incident.id, kind="remediation", actor=ACTOR, now=self.now(),
                                          message=f"rule {rule.name} matched but was not run: {reason}",
                                          details={"rule": rule.name, "refused": reason})

    def _timeout(self, rule: Rule, check: bool) -> float:
        if check:
            return self.config.check_timeout
        return rule.timeout or self.config.timeout

    @property
    def artifacts_root(self) -> Path:
        return self.ctx.artifacts_dir / "remediation"


def worker_limit(config: Any) -> int:
    """Jobs under way at once: ``workers``, but one when the process tracking cannot tell runs
    apart (subreaper), and 0 (inside the stage) when ``workers`` is 0."""
    if config.workers == 0 or processes.separates_runs(config.process_tracking):
        return config.workers
    return 1


def batches(rule: Rule, hosts: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """The canary alone first (when asked and there is more than one host), then ``batch_size`` at a time."""
    hosts = list(hosts)
    out: list[tuple[str, ...]] = []
    if rule.targets.canary and len(hosts) > 1:
        out.append((hosts.pop(0),))
    size = rule.targets.batch_size
    out += [tuple(hosts[i:i + size]) for i in range(0, len(hosts), size)]
    return tuple(out)


def run_key(store: Any, run_id: int) -> str:
    """Names a run's process tracking (its cgroup) the same way in every agent process."""
    digest = hashlib.sha256(str(Path(store.path).resolve()).encode()).hexdigest()[:12]
    return f"{digest}-{run_id}"


def owner_id(pid: int | None = None) -> str:
    """``host/pid:start`` of a process (as its leases name it): the start time, in clock ticks,
    tells a reused pid apart."""
    return holder_id(pid)


def owner_alive(owner: str, *, live_holders: Callable[[], Iterable[str]] = tuple) -> bool:
    """Whether the agent process ``owner`` still runs: by its pid on this host (an owner written
    as ``pid:start`` before leases is of this host), by a live lease of its on another."""
    host, _, process = owner.rpartition("/")
    if host and host != socket.gethostname():
        return owner in set(live_holders())
    pid, _, start = process.partition(":")
    try:
        return _start_ticks(int(pid)) == start
    except (ValueError, OSError):
        return False


def _start_ticks(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[19]


def _status_of(runner_status: RunnerStatus) -> RunStatus:
    """The run's status after an execution that did not succeed."""
    return RunStatus.TIMEOUT if runner_status is RunnerStatus.TIMEOUT else RunStatus.FAILED


def _hosts(run: Run) -> dict[str, dict[str, int]]:
    return {h: {"ok": s.ok, "changed": s.changed, "failed": s.failed, "unreachable": s.unreachable}
            for h, s in run.host_summary.items()}


def _nothing_to_fix(run: Run, incident: Any) -> str:
    """Why a real run must never start: its incident is gone or resolved."""
    if incident is None:
        return f"incident #{run.incident_id} does not exist"
    if incident.status is IncidentStatus.RESOLVED:
        return f"incident #{incident.id} is already resolved ({incident.resolution}); nothing to fix"
    return ""
