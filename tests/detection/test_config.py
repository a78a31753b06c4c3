"""The detectors config section: defaults, compiled specs, and errors that name the key."""

from __future__ import annotations

import pytest

from agent.config import parse_config
from agent.detection.specs import Grouping, compile_specs
from agent.errors import ConfigError
from agent.flow.samples import SeriesInfo
from tests.detection.conftest import info


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, name="agent.yaml")
    return [str(p) for p in caught.value.problems]


def test_defaults_watch_every_series_with_the_forecast_detector_every_instance_with_the_subspace_one_and_every_service_with_the_group_one():
    config = parse_config("").detectors
    spec, hosts, services = compile_specs(config, cycle_interval_s=60)
    assert (spec.name, spec.kind, spec.grouping, spec.slices, spec.min_history_s, spec.context_points) == (
        "forecast", "forecast", Grouping.SLICE, 64, 3600.0, 0)
    assert (spec.streaming, spec.checkpoints) == (True, True)
    assert (hosts.name, hosts.grouping, hosts.entity_label, hosts.min_features) == (
        "subspace", Grouping.ENTITY, "instance", 3)
    assert (hosts.streaming, hosts.checkpoints) == (True, False)  # refitted on its turn: the subspace moves
    assert (services.name, services.grouping, services.entity_label, services.min_features) == (
        "group", Grouping.GROUP, "service", 2)
    # learns from the points it judges: never refitted from history, its state saved on its turn
    assert (services.needs_history, services.streaming, services.checkpoints) == (False, True, True)
    assert config.page_budget == 0.5
    for each in (spec, hosts, services):
        assert each.selects(info("anything", job="x"))
        bucket = SeriesInfo(series_id='h_bucket{le="1"}', metric="h_bucket", labels={"le": "1"}, kind="bucket")
        assert not each.selects(bucket)


def test_rules_slos_and_matchers_compile_into_specs():
    config = parse_config("""
detectors:
  refit: {interval: 10m}
  rules:
    - kind: iforest
      name: hosts
      match: [{metric: "node_.*", labels: {job: node}}]
      exclude: [{metric: node_boot_time_seconds}]
  slos:
    - name: p95
      match: [{metric: lat, labels: {quantile: "0.95"}, kinds: [quantile]}]
      objective: 0.5
      direction: below
""").detectors
    hosts, p95 = compile_specs(config, cycle_interval_s=60)
    assert (hosts.grouping, hosts.entity_label, hosts.slices) == (Grouping.ENTITY, "instance", 10)
    assert hosts.selects(info("node_load1", job="node", instance="a"))
    assert not hosts.selects(info("node_load1", job="app", instance="a"))
    assert not hosts.selects(info("node_boot_time_seconds", job="node", instance="a"))
    assert (p95.kind, dict(p95.params), p95.context_points) == (
        "threshold", {"lower": 0.5, "for_points": 3, "of_points": 5}, 4)
    quantile = info("lat", quantile="0.95")
    assert not p95.selects(quantile)  # a gauge: the matcher asks for quantile series
    assert p95.selects(type(quantile)(series_id=quantile.series_id, metric="lat", labels=quantile.labels,
                                      kind="quantile"))


def test_disabled_detection_compiles_to_nothing():
    assert compile_specs(parse_config("detectors: {enabled: false}").detectors, cycle_interval_s=60) == []


@pytest.mark.parametrize("text, expected", [
    ("detectors:\n  rules:\n    - kind: seasonal\n      params: {bogus: 1}\n",
     "agent.yaml: detectors.rules[0].params: expected parameters of SeasonalDetector (periods, direction, "
     "threshold, min_abs_dev, min_rel_dev, aggregate, robust_window, cusum_threshold, flatline_points, seed), "
     "found bogus"),
    ("detectors:\n  rules:\n    - kind: seasonal\n      match: [{metric: '('}]\n",
     "agent.yaml: detectors.rules[0].match[0].metric: expected a regular expression, found '(' "
     "(missing ), unterminated subpattern at position 0)"),
    ("detectors:\n  rules:\n    - kind: threshold\n      params: {lower: 3, upper: 1}\n",
     "agent.yaml: detectors.rules[0]: expected lower <= upper, found lower=3 upper=1"),
    ("detectors:\n  rules:\n    - kind: seasonal\n    - kind: seasonal\n",
     "agent.yaml: detectors: expected unique detector names (rules and slos), found 'seasonal' twice"),
    ("detectors:\n  slos:\n    - {name: a, match: [{metric: x}], objective: 1, points: 6}\n",
     "agent.yaml: detectors.slos[0]: expected points <= window, found points 6 > window 5"),
    ("detectors:\n  drift:\n    - {name: m, features: [a], share: 0}\n",
     "agent.yaml: detectors.drift[0].share: expected a number > 0, found 0"),
    ("detectors:\n  refit: {interval: soon}\n",
     "agent.yaml: detectors.refit.interval: expected a duration such as 30s, 5m, 2h or 7d, found 'soon'"),
])
def test_bad_settings_name_the_key_what_was_expected_and_what_was_found(text, expected):
    assert problems(text) == [expected]
