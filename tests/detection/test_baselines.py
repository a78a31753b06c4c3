"""Incident-aware baselines: a refit leaves out incident windows and past hits of a series."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from agent.detection.baselines import mask_exclusions, mask_for_fit
from agent.flow.incidents import IncidentStatus, Severity, Signal
from agent.store.detectors import Exclusions
from detectors.base import Direction, Hit
from tests.detection.conftest import T0, cycle_at, detect, index, info, minutes, samples, seasonal_values

SEASONAL = """
detectors:
  rules:
    - kind: seasonal
      params: {periods: [86400]}
"""
WEB = info("app_latency_seconds", instance="web-1", job="app")
N = 2 * 1440
OUTAGE = 6 * 60  # the last six hours before the cycle, minus the ten quiet minutes after it
QUIET = 10


def outage_history() -> np.ndarray:
    values = seasonal_values(N, seed=3)
    values[N - OUTAGE: N - QUIET] += 30.0
    return values


def record_resolved_incident(store, series_id: str) -> None:
    started = T0 - minutes(OUTAGE - 1)
    ended = T0 - minutes(QUIET)
    signal = Signal(series_id=series_id, detector="seasonal", first_at=started, last_at=ended, hits=5)
    incident = store.open_incident(severity=Severity.WARNING, title="latency up", labels={"job": "app"},
                                   started_at=started, now=started + minutes(2), signals=[signal])
    store.transition_incident(incident.id, IncidentStatus.RESOLVED, actor="agent", reason="quiet", now=ended)


def test_an_outage_recorded_as_an_incident_does_not_become_the_new_normal(make_ctx):
    history = outage_history()
    outage_level_point = np.append(history, history[N - QUIET - 1])  # the outage comes back

    remembers = make_ctx(SEASONAL, state="with-incident")
    record_resolved_incident(remembers.store, WEB.series_id)
    forgets = make_ctx(SEASONAL, state="no-incident")
    hits = {name: detect(ctx, cycle_at(T0 + minutes(1), samples([(WEB, outage_level_point)], end=T0 + minutes(1))))
            for name, ctx in (("remembers", remembers), ("forgets", forgets))}

    assert [(h.series_id, h.direction) for h in hits["remembers"]] == [(WEB.series_id, Direction.UP)]
    assert abs(hits["remembers"][0].expected - (history[N - QUIET - 1] - 30)) < 3
    # Without the incident the outage was learnt as normal: the same point barely registers.
    forgot_score = max((h.score for h in hits["forgets"]), default=0.0)
    assert hits["remembers"][0].score > 5 * forgot_score, (hits["remembers"][0].score, forgot_score)
    (fitted,) = remembers.store.load_fitted_states()
    (naive,) = forgets.store.load_fitted_states()
    assert naive.points == N
    assert fitted.points == N - (OUTAGE - QUIET)  # the window, both ends included


def test_points_that_were_hits_are_left_out_of_a_refit(make_ctx):
    ctx = make_ctx(SEASONAL)
    history = seasonal_values(N, seed=4)
    at = index(N)
    spikes = [at[100], at[900], at[2000]]
    ctx.store.record_hits([Hit(series_id=WEB.series_id, detector="seasonal", ts=ts.to_pydatetime(), value=99.0,
                               score=9.0) for ts in spikes], incident_id=None, now=T0)
    detect(ctx, cycle_at(T0 + minutes(1), samples([(WEB, np.append(history, 50.0))], end=T0 + minutes(1))))
    (fitted,) = ctx.store.load_fitted_states()
    assert fitted.points == N - 3


def test_an_open_incident_excludes_up_to_now(store):
    signal = Signal(series_id="s", detector="seasonal", first_at=T0 - minutes(30), last_at=T0)
    store.open_incident(severity=Severity.WARNING, title="t", labels={}, started_at=T0 - minutes(30), now=T0,
                        signals=[signal])
    found = store.refit_exclusions(["s", "other"], T0 - timedelta(days=1), T0 + minutes(5), now=T0 + minutes(5))
    assert found == {"s": Exclusions(windows=[(T0 - minutes(30), T0 + minutes(5))], hits=[])}


def test_mask_blanks_windows_per_series_and_whole_rows_for_an_entity():
    frame = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0)}, index=index(10))
    exclusions = {
        "a": Exclusions(windows=[(frame.index[2].to_pydatetime(), frame.index[3].to_pydatetime())]),
        "host": Exclusions(hits=[frame.index[8].to_pydatetime() + timedelta(milliseconds=300)]),
    }
    masked = mask_exclusions(frame, exclusions, row_subjects=["host"])
    assert masked.dropped == 4
    assert masked.frame["a"].isna().tolist() == [False, False, True, True, False, False, False, False, True, False]
    assert masked.frame["b"].isna().tolist() == [False] * 8 + [True, False]


IFOREST = """
detectors:
  refit: {interval: 10m}
  rules:
    - kind: iforest
      params: {n_estimators: 20}
"""


def test_an_entity_whose_level_moved_for_good_is_refitted_on_its_new_normal(make_ctx):
    """After a lasting shift nearly every row of the host was a hit. Leaving them all out would
    leave nothing to learn from, and the host would lose its detector for good: past half of
    the rows, the hits are kept (the new normal) and the refit succeeds."""
    ctx = make_ctx(IFOREST)
    cpu, load = info("cpu", instance="db-1"), info("load", instance="db-1")
    n = 600
    at = index(n)
    ctx.store.record_hits([Hit(series_id='iforest{instance="db-1"}', detector="iforest", ts=ts.to_pydatetime(),
                               value=1.0, score=1.0) for ts in at[5:]], incident_id=None, now=T0)
    rng = np.random.default_rng(8)
    frame = samples([(cpu, 80 + rng.normal(0, 1, n)), (load, 8 + rng.normal(0, 0.1, n))])
    detect(ctx, cycle_at(T0, frame))
    (fitted,) = ctx.store.load_fitted_states()
    # nothing left out: every row but the one the cycle judges
    assert (fitted.detector, fitted.subject, fitted.points) == ("iforest", "db-1", 2 * (n - 1))
    assert ctx.metrics.registry.get_sample_value("aiops_detector_failures_total",
                                                 {"detector": "iforest", "phase": "fit"}) is None


def test_a_mask_that_would_leave_less_than_half_is_relaxed_hits_first():
    frame = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0)}, index=index(10))
    times = [t.to_pydatetime() for t in frame.index]
    exclusions = {
        "a": Exclusions(windows=[(times[0], times[1])], hits=times[2:9]),  # 9 of 10: hits kept, window out
        "b": Exclusions(windows=[(times[0], times[7])]),  # 8 of 10 in a window: nothing left out
    }
    masked = mask_for_fit(frame, exclusions)
    assert masked.frame["a"].isna().tolist() == [True, True] + [False] * 8
    assert masked.frame["b"].notna().all()
    assert (masked.dropped, masked.relaxed) == (2, ("a", "b"))
    kept = mask_for_fit(frame, {"a": Exclusions(hits=times[:3])})  # 3 of 10: as asked
    assert kept.frame["a"].isna().sum() == 3 and kept.relaxed == ()
