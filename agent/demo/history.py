"""A week of history for the demo service, as OpenMetrics text for promtool to backfill.

It follows the same daily traffic curve and distributions as the live service
(``agent.demo.service``), one point a minute, so the detectors fitted on it see live traffic as
normal until a fault is injected.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from scipy.stats import lognorm

from agent.demo.service import FEATURE_BUCKETS, FEATURES, LATENCY_BUCKETS, MODEL, SCORE_BUCKETS, rps_at

STEP_S = 60


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _series(name: str, labels: Mapping[str, str], ts: np.ndarray, values: np.ndarray) -> Iterator[str]:
    head = name + _labels(labels)
    yield "".join(f"{head} {v:.6g} {int(t)}\n" for t, v in zip(ts, values))


def _histogram(name: str, labels: Mapping[str, str], ts: np.ndarray, per_step: np.ndarray,
               buckets: Sequence[float], cdf: np.ndarray, mean: np.ndarray, rng: np.random.Generator) -> Iterator[str]:
    """Cumulative bucket counters from expected per-step counts and each bucket's CDF."""
    counts = rng.poisson(per_step)
    cumulative_count = np.cumsum(counts)
    for j, le in enumerate(buckets):
        observed = rng.binomial(counts, np.clip(cdf[:, j], 0, 1))
        yield from [f"# TYPE {name}_bucket unknown\n"] if j == 0 else []
        yield from _series(f"{name}_bucket", {**labels, "le": f"{le:g}"}, ts, np.cumsum(observed))
    yield from _series(f"{name}_bucket", {**labels, "le": "+Inf"}, ts, cumulative_count)
    yield f"# TYPE {name}_count unknown\n"
    yield from _series(f"{name}_count", labels, ts, cumulative_count)
    yield f"# TYPE {name}_sum unknown\n"
    yield from _series(f"{name}_sum", labels, ts, np.cumsum(counts * mean))


def demo_history(*, end_s: float, days: float, job: str, instance: str, base_rps: float = 20.0,
                 seed: int = 11) -> Iterator[str]:
    rng = np.random.default_rng(seed)
    end = int(end_s // STEP_S * STEP_S)
    ts = np.arange(end - int(days * 86400), end, STEP_S, dtype=np.int64)
    rps = np.array([rps_at(float(t), base_rps) for t in ts])
    requests = rps * STEP_S
    labels = {"job": job, "instance": instance, "model": MODEL}

    yield "# TYPE up unknown\n"
    yield from _series("up", {"job": job, "instance": instance}, ts, np.ones(len(ts)))
    yield "# TYPE demo_model_info unknown\n"
    yield from _series("demo_model_info", {**labels, "version": "v2"}, ts, np.ones(len(ts)))
    yield "# TYPE process_resident_memory_bytes unknown\n"
    yield from _series("process_resident_memory_bytes", {"job": job, "instance": instance}, ts,
                       60e6 + rng.normal(0, 1e6, len(ts)))

    counts = rng.poisson(requests)
    yield "# TYPE demo_inference_requests_total unknown\n"
    yield from _series("demo_inference_requests_total", labels, ts, np.cumsum(counts))
    yield "# TYPE demo_inference_errors_total unknown\n"
    yield from _series("demo_inference_errors_total", labels, ts, np.cumsum(rng.binomial(counts, 0.005)))

    sigma, median = 0.25, 0.06
    latency_cdf = np.tile(lognorm.cdf(LATENCY_BUCKETS, s=sigma, scale=median), (len(ts), 1))
    latency_mean = np.full(len(ts), median * math.exp(sigma**2 / 2))
    yield from _histogram("demo_inference_latency_seconds", labels, ts, requests, LATENCY_BUCKETS,
                          latency_cdf, latency_mean, rng)

    feature_params = {"amount": (math.log(60), 0.6), "account_age_days": (math.log(400), 0.8),
                      "tx_per_hour": (math.log(3), 0.5)}
    for feature in FEATURES:
        mu, s = feature_params[feature]
        cdf = np.tile(lognorm.cdf(FEATURE_BUCKETS[feature], s=s, scale=math.exp(mu)), (len(ts), 1))
        mean = np.full(len(ts), math.exp(mu + s**2 / 2))
        yield from _histogram(f"demo_input_{feature}", labels, ts, requests, FEATURE_BUCKETS[feature], cdf, mean, rng)

    # Prediction scores: sampled once from the live model's formula, as fixed bucket shares.
    samples = _score_samples(rng, 20000)
    shares = np.array([(samples <= le).mean() for le in SCORE_BUCKETS])
    yield from _histogram("demo_prediction_score", labels, ts, requests * 0.995, SCORE_BUCKETS,
                          np.tile(shares, (len(ts), 1)), np.full(len(ts), samples.mean()), rng)
    yield "# EOF\n"


def _score_samples(rng: np.random.Generator, n: int) -> np.ndarray:
    amount = rng.lognormal(math.log(60), 0.6, n)
    age = rng.lognormal(math.log(400), 0.8, n)
    tx = rng.lognormal(math.log(3), 0.5, n)
    z = 0.01 * amount - 0.002 * age + 0.2 * tx - 2
    return 1 / (1 + np.exp(-z))
