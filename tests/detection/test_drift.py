"""Drift end to end: a baseline saved with the CLI from stored histograms, then drift hits and the
drift-rate gauge from the stage."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock, to_epoch
from agent.detection.drift import parse_series_id
from agent.flow.samples import Samples, SeriesInfo, series_id
from tests.detection.conftest import T0, cycle_at, detect, info, minutes, samples

LES = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "+Inf"]
NORMAL = [0, 1, 2, 4, 6, 4, 2, 1, 0, 0, 0]   # observations per bucket per scrape, centred on 5
SHIFTED = [0, 0, 0, 0, 1, 2, 4, 6, 4, 2, 1]  # centred on 8
DRIFT = """
detectors:
  rules: []
  drift:
    - name: fraud
      features: [model_input_amount]
      predictions: [model_prediction_score]
      window: 30m
"""


def bucket_series(metric: str, model: str = "fraud") -> list[SeriesInfo]:
    return [SeriesInfo(series_id=series_id(f"{metric}_bucket", {"model": model, "le": le}),
                       metric=f"{metric}_bucket", labels={"model": model, "le": le}, kind="bucket") for le in LES]


def record(store, metric: str, per_bucket: list[int], start: datetime, scrapes: int) -> None:
    """``scrapes`` one-minute scrapes from ``start``; each row holds the cumulative increases."""
    series = bucket_series(metric)
    cumulative = np.cumsum(per_bucket).astype(float)
    rows = [(s.series_id, to_epoch(start + minutes(k)), cumulative[j])
            for k in range(scrapes) for j, s in enumerate(series)]
    store.record_samples(series, rows, now=to_epoch(start + minutes(scrapes)))


def live_buckets(metric: str, per_bucket: list[int], at: datetime) -> tuple[str, pd.DataFrame]:
    hid = series_id(metric, {"model": "fraud"})
    frame = pd.DataFrame([np.cumsum(per_bucket).astype(float)], columns=[float(le) for le in LES],
                         index=pd.DatetimeIndex([at], name="ts"))
    return hid, frame


@pytest.fixture
def history(make_ctx):
    ctx = make_ctx(DRIFT)
    record(ctx.store, "model_input_amount", NORMAL, T0 - timedelta(hours=3), 120)
    record(ctx.store, "model_prediction_score", NORMAL, T0 - timedelta(hours=3), 120)
    record(ctx.store, "model_input_amount", SHIFTED, T0 - minutes(29), 29)  # the live half hour
    record(ctx.store, "model_prediction_score", NORMAL, T0 - minutes(29), 29)
    return ctx


def save(ctx, *args: str):
    return CliRunner().invoke(cli, ["baseline", "save", "--config", str(ctx.state_dir.parent / "agent.yaml"),
                                    "--state-dir", str(ctx.state_dir), *args], obj=Settings(clock=ManualClock(T0)))


def test_a_baseline_saved_with_the_cli_makes_drift_hits_and_the_drift_rate_gauge(history, make_ctx):
    result = save(history, "--model", "fraud", "--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T11:00:00Z")
    assert result.exit_code == 0, result.output
    assert result.output == ("baseline #1 for model fraud: 2 features, 4800 observations, "
                             "2026-03-02T09:00:00+00:00 to 2026-03-02T11:00:00+00:00\n")
    entry = list(history.store.audit_entries())[-1]
    assert (entry.action, entry.subject, entry.actor.startswith("cli:")) == ("baseline.save", "model:fraud", True)

    ctx = make_ctx(DRIFT)  # the daemon, started after the baseline was saved
    values = samples([(info("up", job="model"), [1.0])])
    buckets = dict([live_buckets("model_input_amount", SHIFTED, T0), live_buckets("model_prediction_score", NORMAL, T0)])
    hits = detect(ctx, cycle_at(T0, Samples(values=values.values, series=values.series, buckets=buckets)))

    assert [(h.series_id, h.metric, dict(h.labels), h.detector, h.entity, h.value, h.ts) for h in hits] == [
        ('model_drift{model="fraud"}', "model_drift", {"model": "fraud"}, "drift", "fraud", 0.5, T0)]
    assert hits[0].explanation.startswith("1 of 2 features drifted (50%, alert at 50%): model_input_amount PSI ")
    registry = ctx.metrics.registry
    assert registry.get_sample_value("aiops_model_drift_rate_ratio", {"model": "fraud"}) == 0.5
    assert registry.get_sample_value("aiops_hits_total", {"detector": "drift"}) == 1


def test_no_drift_while_the_live_window_looks_like_the_baseline(history, make_ctx):
    assert save(history, "--model", "fraud", "--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T10:00:00Z"
                ).exit_code == 0
    ctx = make_ctx(DRIFT.replace("window: 30m", "window: 2h"))  # mostly the normal hours
    later = T0 - minutes(60)
    assert detect(ctx, cycle_at(later, samples([(info("up", job="model"), [1.0])], end=later))) == []
    assert ctx.metrics.registry.get_sample_value("aiops_model_drift_rate_ratio", {"model": "fraud"}) == 0.0


def test_baseline_save_refuses_an_unknown_model_and_an_empty_range(history):
    unknown = save(history, "--model", "churn", "--from", "now-1d")
    assert unknown.exit_code == 2
    assert "Invalid value for --model: expected a model under detectors.drift (fraud), found 'churn'" in unknown.output

    empty = save(history, "--model", "fraud", "--from", "2026-02-01T00:00:00Z", "--to", "2026-02-02T00:00:00Z")
    assert empty.exit_code == 1
    assert empty.output == (
        "baseline for model fraud: no histogram samples with model='fraud' between 2026-02-01T00:00:00+00:00 and "
        "2026-02-02T00:00:00+00:00 for model_input_amount, model_prediction_score\n")


def test_series_ids_parse_back_into_metric_and_labels():
    for value in ['plain', 'with "quotes"', "back\\slash", "new\nline"]:
        sid = series_id("m", {"model": value, "le": "0.5"})
        assert parse_series_id(sid) == ("m", {"model": value, "le": "0.5"})


def test_a_drift_hit_begins_at_the_scrape_where_the_live_data_changed(history, make_ctx):
    # Normal data until T0 - 29 min, shifted after: a one-hour window holds both, and the hit
    # says the drift began at the first shifted scrape, not at the window's start or at T0.
    assert save(history, "--model", "fraud", "--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T10:00:00Z"
                ).exit_code == 0
    ctx = make_ctx(DRIFT.replace("window: 30m", "window: 1h"))
    [hit] = detect(ctx, cycle_at(T0, samples([(info("up", job="model"), [1.0])], end=T0)))
    assert (hit.ts, hit.began_at) == (T0, T0 - minutes(29))


def test_the_drift_window_restarts_at_the_models_latest_change(history, make_ctx):
    # Shifted data until a rollback five minutes before T0 (recorded as a change of the model),
    # then the baseline's distribution again: judged from the rollback on, the model is stable,
    # although the hour-long window still holds twenty shifted minutes.
    assert save(history, "--model", "fraud", "--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T10:00:00Z"
                ).exit_code == 0
    record(history.store, "model_input_amount", NORMAL, T0 - minutes(15), 15)
    ctx = make_ctx(DRIFT.replace("window: 30m", "window: 1h"))
    frame = samples([(info("up", job="model"), [1.0])], end=T0)
    [hit] = detect(ctx, cycle_at(T0, frame))  # without the change: drifted
    assert hit.detector == "drift"

    history.store.add_change(ts=T0 - minutes(16), kind="remediation", labels={"model": "fraud"},
                             description="rollback_model.yml applied by rule rollback-model (run 1)", actor="agent",
                             now=T0 - minutes(16))
    later = T0 + minutes(1)
    assert detect(ctx, cycle_at(later, samples([(info("up", job="model"), [1.0])], end=later))) == []
    assert ctx.metrics.registry.get_sample_value("aiops_model_drift_rate_ratio", {"model": "fraud"}) == 0.0
