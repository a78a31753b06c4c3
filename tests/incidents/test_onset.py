"""Where an outage began, as correlation estimates it: never at the moment it was detected."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from agent.flow.samples import Samples, SeriesInfo
from agent.incidents.onset import with_onsets
from tests.incidents.conftest import at, hit

STEP_S = 10


def frame(series_id: str, values: list[float], *, end_minutes: float) -> Samples:
    end = pd.Timestamp(at(end_minutes))
    index = pd.date_range(end=end, periods=len(values), freq=f"{STEP_S}s", name="ts")
    info = SeriesInfo(series_id=series_id, metric="latency_p95", labels={})
    return Samples(values=pd.DataFrame({series_id: values}, index=index, dtype="float64"), series={series_id: info})


def test_a_point_anomaly_began_midway_after_the_last_point_before_it():
    spike = hit("latency_p95", 0, service="api")
    samples = frame(spike.series_id, [0.1, 0.1, np.nan, 0.9], end_minutes=0)  # the point before is a gap
    [placed] = with_onsets([spike], samples, interval_s=60)
    assert placed.first_at == at(0) - timedelta(seconds=10)  # midway between 11:59:40 and 12:00:00
    assert placed.onset == ("midway between 11:59:40, the last point before it, and 12:00:00, "
                            "its first anomalous point")


def test_a_point_with_nothing_before_it_began_half_a_cycle_earlier():
    spike = hit("latency_p95", 0, service="api")
    [placed] = with_onsets([spike], frame(spike.series_id, [0.9], end_minutes=0), interval_s=60)
    assert placed.first_at == at(0) - timedelta(seconds=30)
    assert placed.onset.startswith("half a cycle before 12:00:00, its first anomalous point")


def test_a_window_or_drift_keeps_its_detectors_start_and_says_which():
    from dataclasses import replace

    window = replace(hit("latency_p95", 0, detector="latency_slo", service="api"), began_at=at(-1))
    drift = replace(hit("model_drift", 0, detector="drift", model="fraud"), began_at=at(-5))
    placed = with_onsets([window, drift], Samples.empty(), interval_s=60)
    assert [h.first_at for h in placed] == [at(-1), at(-5)]
    assert placed[0].onset == "the first breaching point of the window that fired at 12:00:00"
    assert placed[1].onset.startswith("the change point of the drifted features' data (11:55:00)")


def test_the_signal_keeps_the_words_of_its_earliest_start(correlator_for, store):
    correlator = correlator_for("")
    first = with_onsets([hit("latency_p95", 0, service="api")], Samples.empty(), interval_s=60)
    [incident_id] = correlator.ingest(first, now=at(0)).opened
    later = with_onsets([hit("latency_p95", 1, score=9.0, value=30.0, service="api")], Samples.empty(),
                        interval_s=60)
    correlator.ingest(later, now=at(1))
    incident = store.get_incident(incident_id)
    [signal] = incident.signals
    assert signal.first_at == at(-0.5) and signal.onset.startswith("half a cycle before 12:00:00")
    assert incident.episode.started_at == at(-0.5) and incident.episode.mttd_s == 30
    # The second hit scored higher: its figures are the peak's.
    assert (signal.peak_at, signal.peak_value, signal.peak_expected, signal.peak_score) == (at(1), 30.0, 1.0, 9.0)
