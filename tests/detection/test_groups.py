"""A fault that moves many series of one service a little, on every host that runs it, through
the detect and correlate stages with the default config, on an injected clock.

Each series is the only one of its host, so no host's subspace test exists and each series is
allowed a fortieth-odd of the fleet's budget: the fault is rare on none of them alone. The
service's group test judges them together and opens one incident naming the service and the
series that carried it; the same week without the fault opens none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.backtest.runner import replay_config
from agent.clock import ManualClock
from agent.config import AgentConfig
from agent.context import Context
from agent.flow.incidents import Incident
from agent.pipeline import Pipeline

STEP_MIN = 5
DAYS = 4
SERVICE_SERIES = 24  # checkout, one series on each of 24 hosts
OTHER_SERIES = 16  # four other services of four hosts each
START = pd.Timestamp("2026-03-02", tz="UTC")
FAULT_AT = (DAYS - 1) * 1440 // STEP_MIN + 150  # the last day, 12:30
FAULT_POINTS = 24  # two hours


def week(*, fault: bool) -> pd.DataFrame:
    """Request rates with a daily cycle and 3 % noise; with ``fault``, checkout's series are 15 %
    higher for two hours (five noise spreads: a few of them reach their own tail, none is a
    record big enough to page alone)."""
    rng = np.random.default_rng(3)
    count = SERVICE_SERIES + OTHER_SERIES
    n = DAYS * 1440 // STEP_MIN
    minutes = np.arange(n)[:, None] * STEP_MIN
    level = rng.uniform(50, 500, count)
    values = level * (1 + rng.uniform(0.1, 0.3, count) * np.sin(2 * np.pi * minutes / 1440 + rng.uniform(0, 6, count))
                      + 0.03 * rng.standard_normal((n, count)))
    if fault:
        values[FAULT_AT:FAULT_AT + FAULT_POINTS, :SERVICE_SERIES] *= 1.15
    names = [f'request_rate{{instance="host{i:02d}",service="{"checkout" if i < SERVICE_SERIES else f"svc{i % 4}"}"}}'
             for i in range(count)]
    return pd.DataFrame(values, columns=names, index=START + pd.to_timedelta(minutes[:, 0], unit="min"))


def incidents_of(frame: pd.DataFrame, tmp_path: Path) -> list[Incident]:
    """``frame`` through the daemon's refit job and cycles (default config, hourly cycles, the
    clock moving with the data); the incidents the store holds at the end."""
    csv = tmp_path / "week.csv"
    written = frame.copy()
    written.insert(0, "timestamp", frame.index.as_unit("s").asi8)
    written.to_csv(csv, index=False)
    config = replay_config(AgentConfig(), csv, tmp_path / "state", 3600.0)
    clock = ManualClock(frame.index[0].to_pydatetime())
    ctx = Context.create(config, clock=clock)
    pipeline = Pipeline(ctx)
    try:
        now = frame.index[0]
        while now < frame.index[-1]:
            now = min(now + pd.Timedelta(hours=1), frame.index[-1])
            clock.set(now.to_pydatetime())
            pipeline.refit(now=now.to_pydatetime())
            pipeline.run_cycle(now=now.to_pydatetime())
        return ctx.store.list_incidents(limit=1000)
    finally:
        pipeline.close()
        ctx.store.close()


@pytest.mark.slow
def test_a_fault_on_many_series_of_one_service_opens_one_incident_naming_it(tmp_path: Path) -> None:
    frame = week(fault=True)
    incidents = incidents_of(frame, tmp_path)
    assert len(incidents) == 1, [(i.started_at, dict(i.labels), i.title) for i in incidents]
    incident = incidents[0]
    assert dict(incident.labels) == {"service": "checkout"}
    fault_start = frame.index[FAULT_AT]
    # it began after the point before the fault, which was judged normal: midway between the two
    assert pd.Timestamp(incident.started_at) == fault_start - pd.Timedelta(minutes=STEP_MIN) / 2
    group = [s for s in incident.signals if s.detector == "group"]
    assert [s.series_id for s in group] == ['group{service="checkout"}']
    # the hit says how many of the service's series were unusual and names those that carried it
    assert 'request_rate{instance="host' in group[0].explanation
    assert "of its 24 series were beyond their usual 2% at once" in group[0].explanation


@pytest.mark.slow
def test_the_same_week_without_the_fault_opens_no_incident(tmp_path: Path) -> None:
    assert incidents_of(week(fault=False), tmp_path) == []
