"""``/healthz``'s verdict (agent.context.Health) on an injected monotonic clock: the wall clock
plays no part, so stepping it (NTP, a resumed VM) neither hides a stall nor fakes one."""

from __future__ import annotations

from agent.clock import ManualMonotonic
from agent.config import parse_config
from agent.context import Health


def test_a_first_cycle_that_never_finishes_is_unhealthy_after_the_limit():
    config = parse_config("agent:\n  interval: 10s\n")  # limit: 3 intervals, at least 60 s
    clock = ManualMonotonic(5000.0)
    health = Health()
    health.start(clock())
    clock.advance(60)
    assert health.check(config, at=clock()) == (True, "")
    clock.advance(1)
    assert health.check(config, at=clock()) == (False, "the first cycle has not finished for 61s (limit 60s)")
    health.record([], at=clock())
    assert health.check(config, at=clock()) == (True, "")


def test_cycles_that_stop_finishing_are_unhealthy_after_stale_after():
    config = parse_config("agent:\n  interval: 60s\n  stale_after: 5m\n")
    clock = ManualMonotonic()
    health = Health()
    health.start(clock())
    clock.advance(30)
    health.record([], at=clock())
    clock.advance(300)
    assert health.check(config, at=clock()) == (True, "")
    clock.advance(2)
    assert health.check(config, at=clock()) == (False, "no cycle has finished for 302s (limit 300s)")


def test_failed_cycles_in_a_row_are_unhealthy():
    config = parse_config("agent:\n  unhealthy_after: 2\n")
    clock = ManualMonotonic()
    health = Health()
    health.start(clock())
    health.record(["collect"], at=clock())
    assert health.check(config, at=clock()) == (True, "")
    health.record(["detect", "notify"], at=clock())
    assert health.check(config, at=clock()) == (False, "2 cycles failed in a row; last: stage failed: detect, notify")


def test_cycles_that_read_nothing_count_as_failed():
    config = parse_config("agent:\n  unhealthy_after: 2\n")
    clock = ManualMonotonic()
    health = Health()
    health.start(clock())
    blind = "every source failed: node at http://127.0.0.1:9100/metrics: connection refused (connection)"
    health.record([], at=clock(), blind=blind)
    health.record([], at=clock(), blind=blind)
    assert health.check(config, at=clock()) == (False, f"2 cycles failed in a row; last: {blind}")
    health.record([], at=clock())
    assert health.check(config, at=clock()) == (True, "")
