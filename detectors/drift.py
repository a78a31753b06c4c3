"""Model drift: live feature distributions against a stored training baseline (PSI, KS, chi-square).

``fit(baseline, model="fraud-v3")`` takes, per feature, raw samples (a Series, array or list),
Prometheus histogram buckets (a DataFrame rows = time, columns = upper bound ``le`` with
cumulative counts, the window being the increase from the first to the last row; or a mapping
le -> cumulative count) or, for features named in ``categorical``, labels. Give a mapping
feature -> data, or a DataFrame whose columns are raw-sample features.

``score(window)`` compares the live window, given the same way, with the baseline:

- numeric: PSI over 10 baseline-quantile bins (histograms: neighbouring buckets merged to about
  10% of the baseline each) and Kolmogorov-Smirnov as a second test;
- categorical: PSI over the categories and a chi-square test of baseline vs live counts.

PSI as measured is biased upward in small samples: two samples of one distribution give on
average (B - 1) * (1/n_live + 1/n_baseline) over B cells (10 bins, baseline 20,000: 0.045 for
200 live samples, 0.0009 for 20,000). Judged as measured, a 0.3 sd shift drifted in about 60% of
windows of 200 samples and in none of 5,000. The detector subtracts that null mean (``psi``,
floored at 0; the measured value is ``psi_raw``; ``psi_correction=False`` judges the measured
value as before). The hit's explanation quotes the corrected PSI.

A feature is drifted when the corrected PSI >= ``psi_significant``, or when it is >=
``psi_moderate`` and the second test rejects (p < ``ks_alpha``/``chi2_alpha``). PSI is an effect
size and gates every verdict, so a verdict does not follow a p-value alone (any tiny difference
becomes "significant" with enough samples), and corrected it does not drift with sample size:
for 5 of 8 normal features shifted by 0, 0.1, 0.3 or 0.5 sd (PSI about 0, 0.01, 0.085, 0.24),
the share of windows that fire moves by less than 10 points from 200 to 20,000 live samples
(``tests/bench/bench_drift.py``: 0 and 0.1 sd fire in no window; 0.3 sd in about 7% of windows
of 200 and none from 5,000 on; 0.5 sd in every window but about 1 in 1,000 of 200 samples). What
remains is noise, not bias: a shift whose PSI lies near a threshold, as 0.3 sd does, is judged
either way in small windows.

Below ``min_samples`` (live or baseline; default 200; under about 100 the correction no longer
holds) a feature gets no verdict and is left out of the rate. The model drift rate is the share
of features with a verdict that drifted; a hit fires when it is >= ``drift_share``.

``score`` returns ``Scores`` whose ``scores`` is a DataFrame indexed by feature (columns ``psi``,
``psi_raw``, ``psi_level``, ``test``, ``statistic``, ``p_value``, ``n_live``, ``verdict``,
``drifted``) with the rate in ``scores.attrs["drift_rate"]``; the same is kept in
``last_report`` (a ``DriftReport``; not fitted state) for the stage to publish
``aiops_model_drift_rate_ratio``.
The hit's ``series_id`` and ``entity`` are the model; ``value``/``score`` the rate, ``upper`` the
share. The window's time is the last timestamp of its data, or ``ts=`` when it has none.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> det = DriftDetector().fit({"age": rng.normal(40, 10, 5000), "income": rng.normal(50, 5, 5000)}, model="m")
>>> live = {"age": rng.normal(55, 10, 1000), "income": rng.normal(50, 5, 1000)}
>>> out = det.score(live, ts=pd.Timestamp("2026-01-01", tz="UTC"))
>>> out.scores["verdict"].tolist(), out.scores.attrs["drift_rate"], len(out.hits)
(['drifted', 'stable'], 0.5, 1)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors import _distributions as dist
from detectors._frame import to_datetime
from detectors._state import PlainState
from detectors.base import Detector, Direction, Hit, Scores
from detectors.errors import DetectorError


class Verdict(StrEnum):
    STABLE = "stable"
    MODERATE = "moderate"  # PSI in the moderate band, not confirmed by the second test
    DRIFTED = "drifted"
    INSUFFICIENT = "insufficient_data"
    MISSING = "missing"


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDrift:
    feature: str
    kind: str  # numeric, histogram, categorical
    n_baseline: float
    n_live: float
    psi: float | None  # corrected for sample size (see psi_correction); None without data
    psi_raw: float | None  # as measured
    test: str  # ks or chi2
    statistic: float | None
    p_value: float | None
    verdict: Verdict

    @property
    def drifted(self) -> bool:
        return self.verdict is Verdict.DRIFTED


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftReport:
    model: str
    ts: datetime
    features: tuple[FeatureDrift, ...]
    rate: float | None  # None when no feature had enough samples for a verdict

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]


class DriftDetector(PlainState, Detector):
    """Share of a model's features whose live distribution drifted from the baseline."""

    name: ClassVar[str] = "drift"

    def __init__(
        self,
        psi_moderate: float = 0.1,
        psi_significant: float = 0.25,
        ks_alpha: float = 0.01,
        chi2_alpha: float = 0.01,
        min_samples: int = 200,
        drift_share: float = 0.5,
        categorical: Sequence[str] = (),
        psi_correction: bool = True,
    ) -> None:
        self.psi_moderate = psi_moderate
        self.psi_significant = psi_significant
        self.ks_alpha = ks_alpha
        self.chi2_alpha = chi2_alpha
        self.min_samples = min_samples
        self.drift_share = drift_share
        self.categorical = categorical
        self.psi_correction = psi_correction

    def fit(self, history: Any, model: str | None = None) -> "DriftDetector":
        if not 0 < self.psi_moderate <= self.psi_significant:
            raise DetectorError(
                self.name,
                f"expected 0 < psi_moderate <= psi_significant, found {self.psi_moderate} and {self.psi_significant}",
            )
        features = _features(history, self.name, "baseline")
        baselines = {}
        for feature, data in features.items():
            try:
                baselines[feature] = self._baseline(feature, data)
            except dist.Problem as problem:
                raise dist.fail(self.name, feature, problem) from None
        if all(b["n"] < self.min_samples for b in baselines.values()):
            sizes = {f: int(b["n"]) for f, b in baselines.items()}
            raise DetectorError(self.name, f"baseline: every feature has fewer than {self.min_samples} samples: {sizes}")
        self.baselines_ = baselines
        self.model_ = model if model is not None else "model"
        return self

    def _baseline(self, feature: str, data: Any) -> dict[str, Any]:
        if feature in self.categorical:
            return dist.categorical_baseline(dist.category_counts(data))
        if dist.is_histogram(data):
            return dist.histogram_baseline(*dist.histogram_counts(data))
        return dist.numeric_baseline(dist.numeric_samples(data))

    def score(self, window: Any, model: str | None = None, ts: Any = None) -> Scores:
        self._check_fitted()
        features = _features(window, self.name, "window")
        when = _window_time(features, ts, self.name)
        verdicts = tuple(self._judge(f, b, features.get(f)) for f, b in self.baselines_.items())
        judged = [v for v in verdicts if v.verdict not in (Verdict.INSUFFICIENT, Verdict.MISSING)]
        rate = sum(v.drifted for v in judged) / len(judged) if judged else None
        report = DriftReport(model=model if model is not None else self.model_, ts=when, features=verdicts, rate=rate)
        self.last_report = report
        hits = [self._hit(report)] if rate is not None and rate >= self.drift_share else []
        return Scores(scores=_table(report, self.psi_moderate, self.psi_significant), hits=hits)

    def onset(self, rows: Mapping[str, pd.DataFrame]) -> datetime | None:
        """Where the drift began in the live data: the maximum-likelihood change point over the
        given features (feature -> one row per scrape, index UTC timestamps, columns le,
        cumulative bucket increases), from baseline to a new distribution. Among equally likely
        rows (scrapes with no observations) the latest, the first that carried drifted data.
        None when no feature is a histogram with rows."""
        self._check_fitted()
        total: pd.Series | None = None
        for feature, frame in rows.items():
            baseline = self.baselines_.get(feature)
            statistic = dist.onset_statistic(baseline, frame) if baseline is not None else None
            if statistic is None:
                continue
            part = pd.Series(statistic, index=frame.index)
            total = part if total is None else total.add(part, fill_value=0.0)
        if total is None or total.empty:
            return None
        total = total.sort_index()
        values = total.to_numpy()
        best = len(values) - 1 - int(np.argmax(values[::-1]))
        return to_datetime(pd.Timestamp(total.index[best]).timestamp())

    def _judge(self, feature: str, baseline: dict[str, Any], data: Any) -> FeatureDrift:
        kind = baseline["kind"]
        test = "chi2" if kind == "categorical" else "ks"
        if data is None:
            return FeatureDrift(feature=feature, kind=kind, n_baseline=baseline["n"], n_live=0.0, psi=None,
                                psi_raw=None, test=test, statistic=None, p_value=None, verdict=Verdict.MISSING)
        try:
            n_live, raw, null, statistic, test, p_value = dist.compare(baseline, data)
        except dist.Problem as problem:
            raise dist.fail(self.name, feature, problem) from None
        # Measured PSI is biased upward by about its null mean, ~9/n_live for 10 bins: 0.045 at 200
        # samples, 0.0005 at 20,000. Judged raw, the same shift would drift in small windows only.
        value = max(0.0, raw - null) if self.psi_correction else raw
        alpha = self.chi2_alpha if test == "chi2" else self.ks_alpha
        if min(n_live, baseline["n"]) < self.min_samples:
            verdict = Verdict.INSUFFICIENT
        elif value >= self.psi_significant or (value >= self.psi_moderate and p_value < alpha):
            verdict = Verdict.DRIFTED
        elif value >= self.psi_moderate:
            verdict = Verdict.MODERATE
        else:
            verdict = Verdict.STABLE
        return FeatureDrift(feature=feature, kind=kind, n_baseline=baseline["n"], n_live=n_live, psi=value,
                            psi_raw=raw, test=test, statistic=statistic, p_value=p_value, verdict=verdict)

    def _hit(self, report: DriftReport) -> Hit:
        judged = [f for f in report.features if f.verdict not in (Verdict.INSUFFICIENT, Verdict.MISSING)]
        worst = sorted((f for f in judged if f.drifted), key=lambda f: -(f.psi or 0.0))
        parts = [f"{f.feature} PSI {f.psi:.2f} ({f.test} p={f.p_value:.2g})" for f in worst[:5]]
        text = (f"{len(worst)} of {len(judged)} features drifted ({report.rate:.0%}, alert at "
                f"{self.drift_share:.0%}): " + ", ".join(parts) + f"; PSI threshold {self.psi_significant:g}")
        return Hit(
            series_id=report.model,
            entity=report.model,
            detector=self.name,
            ts=report.ts,
            value=float(report.rate),
            score=float(report.rate),
            direction=Direction.UP,
            expected=0.0,
            upper=float(self.drift_share),
            explanation=text,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftFacts:
    """What a drift hit's explanation says, read back for summaries and plots."""

    drifted: int
    judged: int
    share: float | None          # the alert share, 0..1
    psi: dict[str, float]        # the worst drifted features (up to five), worst first
    threshold: float | None      # PSI from which a feature counts as drifted on PSI alone


_FACTS = re.compile(r"^(\d+) of (\d+) features drifted \(\d+%, alert at (\d+)%\)")
_PSI = re.compile(r"(.+?) PSI ([0-9.]+) \([^)]*\)(?:, |$)")
_THRESHOLD = re.compile(r"; PSI threshold ([0-9.eE+-]+)$")


def drift_facts(explanation: str) -> DriftFacts | None:
    """The figures in a drift hit's explanation (``DriftDetector`` writes it); None when the
    text is not one."""
    head = _FACTS.match(explanation)
    if head is None:
        return None
    threshold = _THRESHOLD.search(explanation)
    features = explanation[head.end():threshold.start() if threshold else None].removeprefix(": ")
    return DriftFacts(drifted=int(head.group(1)), judged=int(head.group(2)), share=int(head.group(3)) / 100,
                      psi={f: float(v) for f, v in _PSI.findall(features)},
                      threshold=float(threshold.group(1)) if threshold else None)


def _features(data: Any, detector: str, what: str) -> dict[str, Any]:
    if isinstance(data, pd.DataFrame):
        return {str(c): data[c] for c in data.columns}
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    raise DetectorError(detector, f"{what}: expected a mapping feature -> data or a DataFrame, found {type(data).__name__}")


def _window_time(features: dict[str, Any], ts: Any, detector: str) -> datetime:
    if ts is not None:
        stamp = pd.Timestamp(ts)
        return (stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")).to_pydatetime()
    ends = [
        data.index.max() for data in features.values()
        if isinstance(getattr(data, "index", None), pd.DatetimeIndex) and len(data.index)
    ]
    if not ends:
        raise DetectorError(detector, "window: no timestamps in the data; pass ts= (the end of the window)")
    stamp = max(pd.Timestamp(e).tz_localize("UTC") if pd.Timestamp(e).tz is None else pd.Timestamp(e) for e in ends)
    return to_datetime(stamp.timestamp())


def _table(report: DriftReport, moderate: float, significant: float) -> pd.DataFrame:
    rows = [
        {"psi": f.psi, "psi_raw": f.psi_raw, "psi_level": _level(f.psi, moderate, significant), "test": f.test,
         "statistic": f.statistic, "p_value": f.p_value, "n_live": f.n_live, "verdict": f.verdict.value, "drifted": f.drifted}
        for f in report.features
    ]
    table = pd.DataFrame(rows, index=pd.Index([f.feature for f in report.features], name="feature"))
    table.attrs["drift_rate"] = report.rate
    return table


def _level(psi: float | None, moderate: float, significant: float) -> str:
    if psi is None:
        return "none"
    return "significant" if psi >= significant else "moderate" if psi >= moderate else "low"
