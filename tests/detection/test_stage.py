"""The detect stage end to end: real SQLite stores, real detectors, synthetic frames."""

from __future__ import annotations

import numpy as np
import pytest

from agent.detection.codec import decode_state
from agent.detection.specs import stable_bucket
from tests.detection.conftest import T0, cycle_at, detect, engine_of, index, info, minutes, samples, seasonal_values

SEASONAL = """
detectors:
  rules:
    - kind: seasonal
      params: {periods: [86400]}
"""

WEB = info("app_latency_seconds", instance="web-1", job="app")
NODE = info("node_load1", instance="web-1", job="node")
DAY = 1440


def value(ctx, name, **labels):
    return ctx.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_spike_gives_one_hit_with_the_series_metric_and_labels(make_ctx):
    ctx = make_ctx(SEASONAL)
    web, node = seasonal_values(2 * DAY, seed=1), seasonal_values(2 * DAY, seed=2)
    web[-1] += 40

    hits = detect(ctx, cycle_at(T0, samples([(WEB, web), (NODE, node)])))

    assert [(h.series_id, h.metric, dict(h.labels), h.detector, h.ts, h.direction.value) for h in hits] == [
        (WEB.series_id, "app_latency_seconds", {"instance": "web-1", "job": "app"}, "seasonal", T0, "up")]
    assert hits[0].value == pytest.approx(web[-1])
    assert abs(hits[0].expected - (web[-1] - 40)) < 3
    assert value(ctx, "aiops_series_scored_total") == 2
    assert value(ctx, "aiops_hits_total", detector="seasonal") == 1
    stored = ctx.store.load_fitted_states()
    assert value(ctx, "aiops_detector_refits_total", detector="seasonal") == len(stored) >= 1
    assert sorted(c for s in stored for c in s.params["columns"]) == sorted([WEB.series_id, NODE.series_id])


def test_only_new_points_are_scored_and_gaps_never(make_ctx):
    ctx = make_ctx(SEASONAL)
    web, node = seasonal_values(2 * DAY + 2, seed=1), seasonal_values(2 * DAY + 2, seed=2)
    web[-3] += 40  # a spike in the first cycle's newest point
    first = samples([(WEB, web[:-2]), (NODE, node[:-2])], end=T0)
    assert len(detect(ctx, cycle_at(T0, first))) == 1

    # The next frame repeats the old points (spike included) and adds two new ones; the node
    # series' source failed this time, and its new point spikes: a gap is not judged.
    node[-1] += 40
    second = samples([(WEB, web), (NODE, node)], end=T0 + minutes(2), gaps=frozenset({NODE.series_id}))
    hits = detect(ctx, cycle_at(T0 + minutes(2), second))

    assert hits == []
    assert value(ctx, "aiops_series_scored_total") == 3  # two series, then one


def test_a_restarted_agent_scores_its_first_cycle_with_stored_state_without_refitting(make_ctx):
    web, node = seasonal_values(2 * DAY + 1, seed=1), seasonal_values(2 * DAY + 1, seed=2)
    first = make_ctx(SEASONAL)
    detect(first, cycle_at(T0, samples([(WEB, web[:-1]), (NODE, node[:-1])], end=T0)))
    fitted_before = {s.key: s.fitted_at for s in first.store.load_fitted_states()}
    first.store.close()

    restarted = make_ctx(SEASONAL)  # a new Context on the same store: nothing in memory
    web[-1] += 40
    hits = detect(restarted, cycle_at(T0 + minutes(1), samples([(WEB, web), (NODE, node)], end=T0 + minutes(1))))

    assert [(h.series_id, h.ts) for h in hits] == [(WEB.series_id, T0 + minutes(1))]
    assert value(restarted, "aiops_detector_refits_total", detector="seasonal") == 0
    assert {s.key: s.fitted_at for s in restarted.store.load_fitted_states()} == fitted_before


def test_changed_detector_params_make_stored_state_stale(make_ctx):
    web = seasonal_values(2 * DAY, seed=1)
    detect(make_ctx(SEASONAL), cycle_at(T0, samples([(WEB, web)])))
    changed = make_ctx(SEASONAL.replace("periods: [86400]", "periods: [86400], threshold: 6"))
    detect(changed, cycle_at(T0 + minutes(1), samples([(WEB, web)], end=T0 + minutes(1))))
    assert value(changed, "aiops_detector_refits_total", detector="seasonal") == 1


def test_refits_are_staggered_so_no_cycle_refits_every_series(make_ctx):
    # A refit interval of 4 cycles: 4 slices, each refitted on its own cycle.
    ctx = make_ctx(SEASONAL.replace("detectors:\n", "detectors:\n  refit: {interval: 4m}\n"))
    series = [info("node_load1", instance=f"host-{i}") for i in range(12)]
    n = 2 * DAY + 10
    data = [seasonal_values(n, seed=i) for i in range(12)]
    subjects_of = {}
    refits_per_cycle = []
    for k in range(0, 10):
        end = T0 + minutes(k)
        frame = samples([(s, v[: n - 10 + k]) for s, v in zip(series, data)], end=end)
        before = value(ctx, "aiops_detector_refits_total", detector="seasonal")
        detect(ctx, cycle_at(end, frame))
        refits_per_cycle.append(value(ctx, "aiops_detector_refits_total", detector="seasonal") - before)
        fitted = {s.subject: s.fitted_at for s in ctx.store.load_fitted_states()}
        subjects_of[k] = {subject for subject, at in fitted.items() if at == end}

    everyone = set(subjects_of[0])
    assert len(everyone) == refits_per_cycle[0] >= 3  # first sight: all fitted at once
    assert refits_per_cycle[1] == 0  # too young for their turn
    for k in range(2, 10):
        slot = int(T0.timestamp() // 60 + k) % 4
        assert subjects_of[k] == {s for s in everyone if int(s.split("-")[1]) == slot}
        assert refits_per_cycle[k] < len(everyone)
    assert set().union(*(subjects_of[k] for k in range(2, 6))) == everyone


def test_first_fits_wait_for_history_and_respect_the_budget(make_ctx):
    ctx = make_ctx(SEASONAL.replace("detectors:\n", "detectors:\n  refit: {max_per_cycle: 2, min_history: 2h}\n"))
    series = [info("node_load1", instance=f"host-{i}") for i in range(8)]
    short = samples([(s, seasonal_values(60, seed=i)) for i, s in enumerate(series)])
    assert detect(ctx, cycle_at(T0, short)) == []
    assert ctx.store.load_fitted_states() == []  # an hour of history is not enough: skipped quietly

    longer = samples([(s, seasonal_values(3 * 60, seed=i)) for i, s in enumerate(series)], end=T0 + minutes(1))
    engine_of(ctx).schedule.not_before.clear()  # as if the missing hour had passed
    detect(ctx, cycle_at(T0 + minutes(1), longer))
    fitted = ctx.store.load_fitted_states()
    assert 1 <= sum(len(s.params["columns"]) for s in fitted) <= 2


def test_one_failing_subject_is_counted_and_the_others_still_score(make_ctx):
    ctx = make_ctx(SEASONAL)
    good, bad = info("node_load1", instance="good"), info("node_load1", instance="bad")
    assert stable_bucket(good.series_id, 360) != stable_bucket(bad.series_id, 360)
    g, b = seasonal_values(2 * DAY, seed=1), seasonal_values(2 * DAY, seed=2)
    detect(ctx, cycle_at(T0, samples([(good, g), (bad, b)])))
    engine = engine_of(ctx)
    broken = next(u for u in engine.units.values() if bad.series_id in u.columns)
    broken.detector.profiles_ = None  # corrupt its state: scoring it raises

    g2, b2 = np.append(g, 90.0), np.append(b, 50.0)
    hits = detect(ctx, cycle_at(T0 + minutes(1), samples([(good, g2), (bad, b2)], end=T0 + minutes(1))))

    assert [h.series_id for h in hits] == [good.series_id]
    assert value(ctx, "aiops_detector_failures_total", detector="seasonal", phase="score") == 1


def test_refits_read_the_scrape_history_in_the_store_when_the_frame_is_short(make_ctx):
    ctx = make_ctx(SEASONAL)
    web = seasonal_values(2 * DAY, seed=1)
    times = index(2 * DAY)
    ctx.store.record_samples([WEB], [(WEB.series_id, ts.timestamp(), v) for ts, v in zip(times[:-15], web[:-15])],
                             now=times[-16].timestamp())
    web[-1] += 40
    frame = samples([(WEB, web[-15:])])  # what a scrape-source cycle carries: its last 15 minutes

    hits = detect(ctx, cycle_at(T0, frame))

    assert [(h.series_id, h.ts) for h in hits] == [(WEB.series_id, T0)]
    (fitted,) = ctx.store.load_fitted_states()
    assert fitted.points == 2 * DAY - 1  # everything before the new point: store history and frame


def test_a_config_reload_keeps_state_whose_detector_did_not_change(make_ctx):
    ctx = make_ctx(SEASONAL)
    web = seasonal_values(2 * DAY, seed=1)
    detect(ctx, cycle_at(T0, samples([(WEB, web)])))
    reloaded = make_ctx(SEASONAL + """  slos:
    - name: latency_slo
      match: [{metric: app_latency_seconds}]
      objective: 1000
""")
    ctx.config = reloaded.config  # what SIGHUP does
    detect(ctx, cycle_at(T0 + minutes(1), samples([(WEB, np.append(web, 50.0))], end=T0 + minutes(1))))
    assert value(ctx, "aiops_detector_refits_total", detector="seasonal") == 1  # only the first fit
    assert value(ctx, "aiops_detector_refits_total", detector="latency_slo") == 1


def test_a_series_that_stops_reporting_is_judged_but_a_failed_source_is_not(make_ctx):
    ctx = make_ctx(SEASONAL)
    web, node = seasonal_values(2 * DAY, seed=1), seasonal_values(2 * DAY, seed=2)
    detect(ctx, cycle_at(T0, samples([(WEB, web), (NODE, node)])))
    silent = np.append(web, [np.nan] * 30)  # its exporter answers, but without this series' values
    failed = np.append(node, [np.nan] * 30)  # its exporter did not answer: a gap
    later = T0 + minutes(30)
    hits = detect(ctx, cycle_at(later, samples([(WEB, silent), (NODE, failed)], end=later,
                                               gaps=frozenset({NODE.series_id}))))
    assert [(h.series_id, h.ts, h.direction.value, h.explanation) for h in hits] == [
        (WEB.series_id, later, "down", "no data for 30 points in a row (history had data 100.0% of the time)")]


FORECAST = """
detectors:
  refit: {interval: 10m, slices: 1}
  rules:
    - kind: forecast
      params: {quiet_rows: 10}
"""


def test_the_default_detector_follows_each_point_and_checkpoints_instead_of_refitting(make_ctx):
    ctx = make_ctx(FORECAST)
    web = seasonal_values(3 * DAY + 30, seed=3)  # a history that shows how rare such a point is
    web[-25] += 40
    detect(ctx, cycle_at(T0 - minutes(30), samples([(WEB, web[:-30])], end=T0 - minutes(30))))
    assert value(ctx, "aiops_detector_refits_total", detector="forecast") == 1
    found = []
    for k in range(1, 31):  # one point a cycle for half an hour: three refit intervals
        now = T0 - minutes(30 - k)
        found += detect(ctx, cycle_at(now, samples([(WEB, web[:-30 + k or None])], end=now)))
    assert [h.ts for h in found] == [T0 - minutes(24)]
    # never refitted: the state was saved on its turns, with every point taken in
    assert value(ctx, "aiops_detector_refits_total", detector="forecast") == 1
    (stored,) = ctx.store.load_fitted_states()
    assert stored.fitted_at > T0 - minutes(20)
    unit = next(iter(engine_of(ctx).units.values()))
    assert unit.detector.seen_[WEB.series_id] == 3 * DAY + 30

    # a restart resumes from the checkpoint, without a refit: the points since it come from
    # history first, so the new point is judged against the one just before it
    checkpointed = unit.detector.clone().set_state(decode_state(stored.state)).seen_[WEB.series_id]
    assert checkpointed < 3 * DAY + 30
    restarted = make_ctx(FORECAST)
    web_next = np.append(web, web[-1] + 60)
    hits = detect(restarted, cycle_at(T0 + minutes(1), samples([(WEB, web_next)], end=T0 + minutes(1))))
    assert [h.ts for h in hits] == [T0 + minutes(1)]
    assert value(restarted, "aiops_detector_refits_total", detector="forecast") == 0
    resumed = next(iter(engine_of(restarted).units.values())).detector
    assert resumed.seen_[WEB.series_id] == 3 * DAY + 31


def test_a_new_series_warms_up_without_a_score_and_says_so(make_ctx):
    """Its first hour is history for the first fit; its first 100 points give no score (fewer
    errors than a point is judged by) and the next 100 no chance (too few scores to tell how
    rare one is): no gauge, absent rather than 0, and the series counted as warming up."""
    ctx = make_ctx(FORECAST)
    web = seasonal_values(3 * DAY, seed=6)
    start = 61  # an hour of one-minute points: refit.min_history
    detect(ctx, cycle_at(T0 - minutes(3 * DAY - start), samples([(WEB, web[:start])],
                                                                  end=T0 - minutes(3 * DAY - start))))
    warming, scored = [], []
    for k in range(start + 1, 260):
        now = T0 - minutes(3 * DAY - k)
        detect(ctx, cycle_at(now, samples([(WEB, web[:k])], end=now)))
        warming.append(value(ctx, "aiops_series_warming"))
        scored.append(ctx.metrics.registry.get_sample_value(
            "aiops_anomaly_score", {"metric": WEB.metric, "detector": "forecast", **WEB.labels}) is not None)
    first = scored.index(True)
    assert warming[:first] == [1.0] * first and not any(scored[:first])  # no gauge while warming up
    assert first + start + 1 > 200  # a hundred errors to judge by, then a hundred scores
    assert all(scored[first:]) and warming[-1] == 0.0
