"""Days of history for the demo service, as OpenMetrics text for promtool to backfill.

It follows the same daily traffic curve and distributions as the live service
(``demo.service``), one point every ``step_s``, so detectors fitted on it see live traffic as
normal until a fault is injected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from scipy.stats import lognorm

from demo.service import (
    FEATURE_BUCKETS,
    FEATURES,
    LATENCY_BUCKETS,
    MODEL,
    SCORE_BUCKETS,
    rps_at,
)

STEP_S = 15.0  # default resolution: fine enough that 40 s rate() windows hold samples in the past too
# (log-median, sigma) of each input feature, as the live service draws them
FEATURE_PARAMS = {"amount": (math.log(60), 0.6), "account_age_days": (math.log(400), 0.8),
                  "tx_per_hour": (math.log(3), 0.5)}

Child = tuple[Mapping[str, str], Sequence[float], float]  # labels, share at or below each bound, mean


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _series(name: str, labels: Mapping[str, str], ts: np.ndarray, values: np.ndarray) -> Iterator[str]:
    head = name + _labels(labels)
    yield "".join(f"{head} {v:.6g} {int(t)}\n" for t, v in zip(ts, values))


def _histogram(name: str, children: Sequence[Child], ts: np.ndarray, per_step: np.ndarray,
               buckets: Sequence[float], rng: np.random.Generator) -> Iterator[str]:
    """Cumulative bucket counters per child from the expected observations per step. All samples
    of one metric name are written together, as promtool needs."""
    drawn = []
    for labels, cdf, mean in children:
        counts = rng.poisson(per_step)
        shares = np.diff(np.concatenate([[0.0], np.clip(cdf, 0, 1), [1.0]]))
        per_bucket = rng.multinomial(counts, shares)[:, :-1]  # the last cell is above every bound
        drawn.append((labels, counts, np.cumsum(per_bucket, axis=1), mean))
    yield f"# TYPE {name}_bucket unknown\n"
    for labels, counts, at_or_below, _ in drawn:
        for j, le in enumerate(buckets):
            yield from _series(f"{name}_bucket", {**labels, "le": f"{le:g}"}, ts, np.cumsum(at_or_below[:, j]))
        yield from _series(f"{name}_bucket", {**labels, "le": "+Inf"}, ts, np.cumsum(counts))
    yield f"# TYPE {name}_count unknown\n"
    for labels, counts, _, _ in drawn:
        yield from _series(f"{name}_count", labels, ts, np.cumsum(counts))
    yield f"# TYPE {name}_sum unknown\n"
    for labels, counts, _, mean in drawn:
        yield from _series(f"{name}_sum", labels, ts, np.cumsum(counts * mean))


def demo_history(*, end_s: float, days: float, job: str, instance: str, step_s: float = STEP_S,
                 base_rps: float = 20.0, seed: int = 11) -> Iterator[str]:
    rng = np.random.default_rng(seed)
    end = int(end_s // step_s * step_s)
    ts = np.arange(end - int(days * 86400), end, step_s, dtype=np.int64)
    requests = np.array([rps_at(float(t), base_rps) for t in ts]) * step_s
    target = {"job": job, "instance": instance}
    labels = {**target, "model": MODEL}

    yield "# TYPE up unknown\n"
    yield from _series("up", target, ts, np.ones(len(ts)))
    yield "# TYPE demo_model_info unknown\n"
    yield from _series("demo_model_info", {**labels, "version": "v2"}, ts, np.ones(len(ts)))

    counts = rng.poisson(requests)
    yield "# TYPE demo_inference_requests_total unknown\n"
    yield from _series("demo_inference_requests_total", labels, ts, np.cumsum(counts))
    yield "# TYPE demo_inference_errors_total unknown\n"
    yield from _series("demo_inference_errors_total", labels, ts, np.cumsum(rng.binomial(counts, 0.005)))

    sigma, median = 0.25, 0.06
    latency: Child = (labels, lognorm.cdf(LATENCY_BUCKETS, s=sigma, scale=median), median * math.exp(sigma**2 / 2))
    yield from _histogram("demo_inference_latency_seconds", [latency], ts, requests, LATENCY_BUCKETS, rng)

    features: list[Child] = [
        ({**labels, "feature": f}, lognorm.cdf(FEATURE_BUCKETS, s=s, scale=math.exp(mu)), math.exp(mu + s**2 / 2))
        for f in FEATURES for mu, s in [FEATURE_PARAMS[f]]]
    yield from _histogram("demo_input_feature", features, ts, requests, FEATURE_BUCKETS, rng)

    # Prediction scores: the live model's formula sampled once, as fixed shares per bucket.
    scores = _score_samples(rng, 20000)
    predictions: Child = (labels, [(scores <= le).mean() for le in SCORE_BUCKETS], float(scores.mean()))
    yield from _histogram("demo_prediction_score", [predictions], ts, requests * 0.995, SCORE_BUCKETS, rng)
    yield "# EOF\n"


def _score_samples(rng: np.random.Generator, n: int) -> np.ndarray:
    amount = rng.lognormal(*FEATURE_PARAMS["amount"], n)
    age = rng.lognormal(*FEATURE_PARAMS["account_age_days"], n)
    tx = rng.lognormal(*FEATURE_PARAMS["tx_per_hour"], n)
    z = 0.01 * amount - 0.002 * age + 0.2 * tx - 2
    return 1 / (1 + np.exp(-z))
