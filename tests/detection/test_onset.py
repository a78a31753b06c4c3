"""MTTD that is not zero by construction: an episode starts at the first anomalous point in the
data, found by the daemon's own detect and correlate stages, within one scrape of the fault."""

from __future__ import annotations

from datetime import datetime, timedelta

from agent.incidents import correlate
from tests.detection.conftest import T0, cycle_at, detection, info, minutes, samples, seasonal_values
from tests.detection.test_drift import DRIFT, history, save  # noqa: F401  (history is a fixture)

SCRAPE_S = 60
LATENCY = info("http_request_duration_p95_seconds", service="checkout")
WEB = info("app_latency_seconds", instance="web-1", job="app")
DAY = 1440


def run_cycle(ctx, now: datetime, frame) -> None:
    correlate(ctx, detection(ctx, cycle_at(now, frame)))


def only_episode(ctx):
    [incident] = ctx.store.list_incidents()
    [episode] = incident.episodes
    return episode


def test_a_drift_episode_starts_at_the_first_drifted_scrape_not_at_detection(history, make_ctx):  # noqa: F811
    fault = T0 - minutes(29)  # the first shifted scrape of model_input_amount
    assert save(history, "--model", "fraud", "--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T10:00:00Z"
                ).exit_code == 0
    ctx = make_ctx(DRIFT.replace("window: 30m", "window: 1h"))
    run_cycle(ctx, T0, samples([(info("up", job="model"), [1.0])], end=T0))
    episode = only_episode(ctx)
    truth = (episode.detected_at - fault).total_seconds()
    assert episode.detected_at == T0 and abs(episode.mttd_s - truth) <= SCRAPE_S


def test_an_slo_episode_starts_at_the_first_breach_of_the_window_that_fired(make_ctx):
    ctx = make_ctx("""
detectors:
  rules: []
  slos:
    - name: checkout-p95
      match: [{metric: http_request_duration_p95_seconds}]
      objective: 0.5
      points: 3
      window: 5
""")
    values = [0.2] * 10 + [0.9, 0.3, 0.8, 0.95, 0.9, 0.9]
    fault_at = 10  # the first point above the objective
    start = T0 - minutes(len(values))
    for k in range(1, len(values) + 1):
        now = start + minutes(k)
        run_cycle(ctx, now, samples([(LATENCY, values[k - 1:k])], end=now))
    episode = only_episode(ctx)
    fault = start + minutes(fault_at + 1)
    assert episode.detected_at == fault + minutes(3)  # 3 of the last 5: the third breach (0.9, 0.3, 0.8, 0.95)
    assert abs(episode.mttd_s - (episode.detected_at - fault).total_seconds()) <= SCRAPE_S
    assert episode.started_at == fault


def test_a_spike_episode_starts_before_the_spike_is_judged(make_ctx):
    ctx = make_ctx("""
detectors:
  refit: {interval: 10m, slices: 1}
  rules:
    - kind: forecast
      params: {quiet_rows: 10}
""")
    web = seasonal_values(3 * DAY + 10, seed=3)  # a history that shows how rare such a point is
    web[-4:] += 60  # the fault: four minutes of much higher latency, ending at T0
    fault = T0 - minutes(3)
    run_cycle(ctx, T0 - minutes(10), samples([(WEB, web[:-10])], end=T0 - minutes(10)))
    for k in range(1, 11):
        now = T0 - minutes(10 - k)
        run_cycle(ctx, now, samples([(WEB, web[-10 + k - 1:len(web) - 10 + k])], end=now))
    episode = only_episode(ctx)
    assert episode.detected_at == fault  # judged the cycle it arrived
    assert abs(episode.mttd_s - (episode.detected_at - fault).total_seconds()) <= SCRAPE_S
    # The spike's point shows a change since the point before (a cycle earlier, not in this
    # cycle's frame): the start is half a cycle before it, never the moment it was judged.
    assert episode.started_at == fault - timedelta(seconds=30) and episode.mttd_s == 30
