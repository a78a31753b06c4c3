"""Shard agents share what they saw of the open incidents' signals; the leader's verification
reads another shard's signal as that agent last judged it, and a stale word as a gap."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from agent.config import parse_config
from agent.context import Context
from agent.flow.detection import Detection
from agent.flow.incidents import Severity, Signal
from agent.flow.samples import Samples, shard_of
from agent.incidents.observations import from_other_shards, share
from detectors.base import Hit
from remediations.signals import SignalState, observe

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def series_of_shard(shard: int, count: int = 1) -> list[str]:
    found = [f"queue_depth{{host=h{i}}}" for i in range(200) if shard_of(f"queue_depth{{host=h{i}}}", 2) == shard]
    return found[:count]


def agent(store, tmp_path, shard: str) -> Context:
    config = parse_config(f"agent:\n  interval: 10s\n  shard: {shard}\n")
    return Context(config=config, store=store, state_dir=tmp_path)


def frame(at: datetime, values: dict[str, float]) -> Samples:
    index = pd.DatetimeIndex([at], tz="UTC", name="ts")
    return Samples(values=pd.DataFrame({sid: [v] for sid, v in values.items()}, index=index), series={})


@pytest.fixture
def store(any_store):
    return any_store


def test_the_leader_sees_another_shards_signals_as_its_agent_last_judged_them(store, tmp_path):
    (mine,), (theirs,) = series_of_shard(0), series_of_shard(1)
    signals = [Signal(series_id=sid, detector="threshold", metric="queue_depth", labels={}, first_at=T0, last_at=T0)
               for sid in (mine, theirs)]
    store.open_incident(severity=Severity.WARNING, title="queues", labels={}, started_at=T0, now=T0, signals=signals)
    leader, other = agent(store, tmp_path, "0/2"), agent(store, tmp_path, "1/2")

    # The other shard's agent sees its series fire, then quiet, then misses it (a gap).
    at = T0 + timedelta(seconds=10)
    fired = Hit(series_id=theirs, detector="threshold", ts=at, value=90.0, score=1.0)
    assert share(other, Detection(at=at, samples=frame(at, {theirs: 90.0}), hits=[fired])) == 1
    seen = from_other_shards(leader, Detection(at=at, samples=frame(at, {mine: 1.0})))
    assert dict(seen.elsewhere) == {(theirs, "threshold"): "firing"}
    assert observe(signals, seen) is SignalState.FIRING

    at += timedelta(seconds=10)
    share(other, Detection(at=at, samples=frame(at, {theirs: 1.0})))
    seen = from_other_shards(leader, Detection(at=at + timedelta(seconds=5), samples=frame(at, {mine: 1.0})))
    assert observe(signals, seen) is SignalState.QUIET  # quiet on both shards: recovered
    assert observe(signals[:1], Detection(at=at, samples=frame(at, {mine: 90.0}),
                                          hits=[Hit(series_id=mine, detector="threshold", ts=at, value=90.0,
                                                    score=1.0)], elsewhere=seen.elsewhere)) is SignalState.FIRING

    share(other, Detection(at=at + timedelta(seconds=10), samples=frame(at, {})))  # a gap: nothing recorded
    later = at + timedelta(seconds=16)  # more than 1.5 intervals since it last judged the series
    seen = from_other_shards(leader, Detection(at=later, samples=frame(later, {mine: 1.0})))
    assert dict(seen.elsewhere) == {(theirs, "threshold"): "unknown"}
    assert observe(signals, seen) is SignalState.UNKNOWN  # a gap is never a recovery


def test_a_lone_agent_shares_nothing_and_reads_nothing(store, tmp_path):
    (sid,) = series_of_shard(0)
    store.open_incident(severity=Severity.WARNING, title="q", labels={}, started_at=T0, now=T0, signals=[
        Signal(series_id=sid, detector="threshold", metric="queue_depth", labels={}, first_at=T0, last_at=T0)])
    lone = agent(store, tmp_path, "0/1")
    seen = Detection(at=T0, samples=frame(T0, {sid: 1.0}))
    assert share(lone, seen) == 0 and from_other_shards(lone, seen) is seen
    assert store.observations.seen([(sid, "threshold")]) == {}
