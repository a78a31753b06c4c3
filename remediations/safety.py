"""The gates a real run passes before it starts: pause switch, circuit breaker, rate limits,
cooldown, concurrency. Each answers with a ``Gate`` that says why; state lives in the store
(runs and flags), so every agent process sharing the store sees the same answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from agent.clock import from_epoch
from agent.config.remediation import RemediationConfig, Rule
from agent.flow.runs import FAILURES, RunStatus
from agent.store import Store

PAUSE_FLAG = "remediation.paused"
BREAKER_RESET_FLAG = "remediation.breaker_reset."  # + rule name: epoch seconds of a manual reset
HOUR = timedelta(hours=1)


class Decision(StrEnum):
    RUN = "run"
    PAUSED = "paused"
    CIRCUIT_OPEN = "circuit_open"
    RATE_LIMITED = "rate_limited"
    COOLDOWN = "cooldown"
    CONCURRENCY = "concurrency"
    QUIET = "quiet"  # the incident's signals are quiet this cycle: it waits to fire again or resolve


@dataclass(frozen=True, slots=True, kw_only=True)
class Gate:
    decision: Decision
    reason: str

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.RUN


def is_paused(store: Store) -> bool:
    return store.get_flag(PAUSE_FLAG) == "1"


def set_paused(store: Store, paused: bool, *, actor: str, reason: str = "", now: datetime | None = None) -> None:
    store.set_flag(PAUSE_FLAG, "1" if paused else None, actor=actor, reason=reason, now=now)


def reset_breaker(store: Store, rule: str, *, actor: str, now: datetime) -> None:
    store.set_flag(BREAKER_RESET_FLAG + rule, repr(now.timestamp()), actor=actor, reason="circuit closed by hand",
                   now=now)


def circuit(store: Store, rule: Rule, config: RemediationConfig, now: datetime) -> Gate:
    """Open after ``breaker_failures`` failed runs in a row; after ``breaker_reset`` one trial run
    is let through (half-open); a verified run, or a reset by hand, closes it."""
    limits = config.limits
    flag = store.get_flag(BREAKER_RESET_FLAG + rule.name)
    since = from_epoch(float(flag)) if flag else None
    recent = store.recent_outcomes(rule.name, limit=limits.breaker_failures, since=since)
    if len(recent) < limits.breaker_failures or not all(r.status in FAILURES for r in recent):
        return Gate(decision=Decision.RUN, reason="circuit closed")
    last = recent[0].ended_at or recent[0].requested_at
    reopen = last + timedelta(seconds=limits.breaker_reset)
    if now < reopen:
        return Gate(decision=Decision.CIRCUIT_OPEN,
                    reason=f"circuit open: the last {len(recent)} runs of rule {rule.name} failed "
                           f"(runs {', '.join(str(r.id) for r in recent)}); automation stops until "
                           f"{reopen.isoformat()}")
    if store.list_runs(rule=rule.name, statuses=[RunStatus.RUNNING, RunStatus.VERIFYING], limit=1):
        return Gate(decision=Decision.CIRCUIT_OPEN,
                    reason=f"circuit half-open: a trial run of rule {rule.name} is still under way")
    return Gate(decision=Decision.RUN, reason=f"circuit half-open: one trial run after {limits.breaker_reset:g}s")


def limits(store: Store, rule: Rule, config: RemediationConfig, targets: Sequence[str], now: datetime) -> Gate:
    """Global and per-target rate limits over the last hour, then the cooldown, then concurrency."""
    lim = config.limits
    since = now - HOUR
    total = store.count_applied_since(since)
    if total >= lim.max_runs_per_hour:
        return Gate(decision=Decision.RATE_LIMITED,
                    reason=f"rate limit: {total} runs in the last hour, at most {lim.max_runs_per_hour} allowed")
    per_target = rule.max_runs_per_target_per_hour or lim.max_runs_per_target_per_hour
    cooldown = rule.cooldown if rule.cooldown is not None else lim.cooldown
    for target in targets:
        n = store.count_applied_since(since, rule=rule.name, target=target)
        if n >= per_target:
            return Gate(decision=Decision.RATE_LIMITED,
                        reason=f"rate limit: {n} runs of rule {rule.name} on {target} in the last hour, "
                               f"at most {per_target} allowed")
        last = store.last_applied_end(rule=rule.name, target=target)
        if last is not None and now < last + timedelta(seconds=cooldown):
            return Gate(decision=Decision.COOLDOWN,
                        reason=f"cooldown: rule {rule.name} last ran on {target} at {last.isoformat()}, "
                               f"next run allowed after {(last + timedelta(seconds=cooldown)).isoformat()}")
    running = store.count_running()
    if running >= lim.concurrency:
        return Gate(decision=Decision.CONCURRENCY,
                    reason=f"concurrency: {running} runs under way, at most {lim.concurrency} at once")
    return Gate(decision=Decision.RUN, reason="within limits")
