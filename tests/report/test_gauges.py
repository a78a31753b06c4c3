"""aiops_mttr_seconds and aiops_mttd_seconds at /metrics: the last 7 days' means, read from the
store at each scrape with the Context's clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.clock import ManualClock
from agent.context import Context
from tests.report.builders import add_incident

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=timezone.utc)


def figures(ctx: Context) -> tuple[float | None, float | None]:
    registry = ctx.metrics.registry
    return registry.get_sample_value("aiops_mttr_seconds"), registry.get_sample_value("aiops_mttd_seconds")


def test_mttr_and_mttd_are_the_means_over_incidents_started_in_the_last_week(make_config, tmp_path):
    ctx = Context.create(make_config(), tmp_path / "state", clock=ManualClock(NOW))
    try:
        assert figures(ctx) == (None, None)  # no incident: no sample, not 0
        hour = timedelta(hours=1)
        add_incident(ctx.store, started=NOW - 10 * hour, detected=NOW - 10 * hour + timedelta(minutes=2),
                     resolved=NOW - 9 * hour)
        add_incident(ctx.store, started=NOW - 5 * hour, detected=NOW - 5 * hour + timedelta(minutes=4),
                     resolved=NOW - 2 * hour)
        add_incident(ctx.store, started=NOW - 3 * hour, detected=NOW - 3 * hour + timedelta(minutes=6))  # open
        add_incident(ctx.store, started=NOW - timedelta(days=8), detected=NOW - timedelta(days=8),
                     resolved=NOW - timedelta(days=7, hours=1))  # before the window
        assert figures(ctx) == ((3600 + 3 * 3600) / 2, (120 + 240 + 360) / 3)

        ctx.clock.set(NOW + timedelta(days=7))  # the week moves on with the clock
        assert figures(ctx) == (None, None)
    finally:
        ctx.store.close()
