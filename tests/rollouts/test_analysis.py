"""Judging measurements and deciding what a rollout does next: pure functions, exact reasons."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from agent.config import parse_config
from agent.config.models import AnalysisMetric
from agent.errors import ConfigError
from agent.flow.rollouts import Measurement, Verdict
from agent.rollouts.analysis import Decision, decide, distribution_shift, judge, window
from tests.rollouts.conftest import T0

ANALYSIS = """
remediation: {{enabled: false}}
models:
  - name: fraud
    rollout_playbook: a.yml
    promote_playbook: b.yml
    rollback_playbook: c.yml
    analysis:
      interval: 30s
      duration: 2m
      failure_limit: 2
      metrics:
        - {{name: latency, query: "vector(1)", success: "{success}", failure: ">= 0.3"}}
"""


def analysis(success: str = "< 0.2"):
    return parse_config(ANALYSIS.format(success=success)).models[0].analysis


def m(metric: str, seconds: int, verdict: Verdict) -> Measurement:
    return Measurement(rollout_id=1, metric=metric, at=T0 + timedelta(seconds=seconds), value=None, verdict=verdict,
                       reason="r")


def test_a_condition_is_an_operator_and_a_number():
    metric = analysis().metrics[0]
    assert judge(metric, 0.1) == (Verdict.SUCCESSFUL, "0.1 < 0.2")
    assert judge(metric, 0.35) == (Verdict.FAILED, "0.35 >= 0.3")
    assert judge(metric, 0.25) == (Verdict.INCONCLUSIVE, "0.25: neither < 0.2 nor >= 0.3")
    assert judge(metric, None) == (Verdict.INCONCLUSIVE, "no data")
    assert analysis().worst_case_rollback_s == 60.0
    with pytest.raises(ConfigError) as bad:
        analysis(success="below 0.2")
    assert str(bad.value) == ("<config>: models[0].analysis.metrics[0].success: expected a condition "
                              "such as '< 0.25' or '>= 0.5', found 'below 0.2'")


def test_decisions():
    a = analysis()
    ok, bad, unsure = Verdict.SUCCESSFUL, Verdict.FAILED, Verdict.INCONCLUSIVE
    assert decide(a, [m("latency", 30, ok)], started_at=T0, now=T0 + timedelta(seconds=30)).decision \
        is Decision.CONTINUE
    assert decide(a, [m("latency", 30, bad), m("latency", 60, bad)], started_at=T0,
                  now=T0 + timedelta(seconds=60)).reason == "latency failed 2 times (limit 2)"
    assert decide(a, [m("latency", 30, unsure)], started_at=T0, now=T0).decision is Decision.PAUSE
    # an unsure metric beside a failed one: the next round decides
    assert decide(a, [m("latency", 30, bad), m("other", 30, unsure)], started_at=T0, now=T0).decision \
        is Decision.CONTINUE
    passed = decide(a, [m("latency", s, ok) for s in (30, 60, 90, 120)], started_at=T0,
                    now=T0 + timedelta(seconds=120))
    assert (passed.decision, passed.reason) == (Decision.PASS, "4 measurements over 120s, none failing the analysis")


def test_distribution_shift_is_near_zero_for_one_distribution_and_large_for_another():
    rng = np.random.default_rng(3)
    les = [str(round(0.1 * i, 1)) for i in range(1, 11)]

    def cumulative(values):
        counts = np.histogram(values, bins=np.linspace(0, 1, 11))[0]
        return dict(zip(les, np.cumsum(counts).astype(float)))

    before = cumulative(rng.beta(2, 5, 5000))
    same = cumulative(rng.beta(2, 5, 400))
    shifted = cumulative(rng.beta(5, 2, 400))
    assert distribution_shift(before, same) < 0.05
    assert distribution_shift(before, shifted) > 1.0
    assert distribution_shift({}, same) is None
    assert distribution_shift(before, {"0.5": 3.0}) is None


def test_window_fills_in_the_time_since_the_rollout_began():
    metric = AnalysisMetric(name="x", query="rate(a[{window}])", success="< 1", failure="> 2")
    assert window(metric.query, 12.7) == "rate(a[12s])" and window(metric.query, 0.2) == "rate(a[1s])"
