"""DriftDetector: PSI/KS for numeric features, histograms, chi-square for labels, drift rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors import DetectorError, DriftDetector, DriftReport, Verdict
from tests.detectors.synthetic import index

TS = pd.Timestamp("2026-03-10", tz="UTC")
LES = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, "+Inf"]


def histogram(samples: np.ndarray, rows: int = 3) -> pd.DataFrame:
    """Prometheus-style cumulative buckets growing over ``rows`` scrapes."""
    bounds = np.array([float(str(le).replace("+Inf", "inf")) for le in LES])
    parts = np.array_split(samples, rows)
    cumulative, total = [], np.zeros(len(bounds))
    for part in parts:
        total = total + np.array([(part <= b).sum() for b in bounds])
        cumulative.append(total.copy())
    return pd.DataFrame(cumulative, columns=LES, index=index(rows))


@pytest.fixture(scope="module")
def baseline() -> dict[str, object]:
    rng = np.random.default_rng(0)
    return {
        "age": rng.normal(40, 10, 5000),
        "income": rng.lognormal(3, 0.5, 5000),
        "country": rng.choice(["de", "fr", "it"], 5000, p=[0.5, 0.3, 0.2]),
        "latency": histogram(rng.exponential(0.4, 5000)),
    }


@pytest.fixture(scope="module")
def fitted(baseline) -> DriftDetector:
    return DriftDetector(categorical=("country",)).fit(baseline, model="fraud-v3")


def live(seed: int, n: int = 1000, age: float = 40, country=(0.5, 0.3, 0.2), latency: float = 0.4) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(age, 10, n),
        "income": rng.lognormal(3, 0.5, n),
        "country": rng.choice(["de", "fr", "it"], n, p=list(country)),
        "latency": histogram(rng.exponential(latency, n)),
    }


def test_same_distributions_are_stable_without_hit(fitted) -> None:
    result = fitted.score(live(1))
    assert result.hits == []
    assert result.scores["verdict"].tolist() == ["stable"] * 4
    assert result.scores.attrs["drift_rate"] == 0.0
    assert result.scores.index.tolist() == ["age", "income", "country", "latency"]
    assert result.scores["test"].tolist() == ["ks", "ks", "chi2", "ks"]


def test_drifted_features_raise_the_rate_and_fire_a_hit(fitted) -> None:
    result = fitted.score(live(2, age=55, country=(0.2, 0.3, 0.5), latency=1.5))
    assert result.scores["verdict"].tolist() == ["drifted", "stable", "drifted", "drifted"]
    report = fitted.last_report
    assert isinstance(report, DriftReport)
    assert (report.model, report.rate, report.drifted) == ("fraud-v3", 0.75, ["age", "country", "latency"])
    assert report.ts == index(3)[-1].to_pydatetime()  # the histogram's last scrape
    [hit] = result.hits
    assert (hit.series_id, hit.entity, hit.detector, hit.value, hit.upper) == ("fraud-v3", "fraud-v3", "drift", 0.75, 0.5)
    assert hit.explanation.startswith("3 of 4 features drifted (75%, alert at 50%): ")


def test_rate_below_the_share_gives_no_hit(fitted) -> None:
    result = fitted.score(live(3, age=55))
    assert result.scores.attrs["drift_rate"] == 0.25
    assert result.hits == []


def test_a_moderate_psi_needs_the_second_test(fitted) -> None:
    result = fitted.score(live(4, age=45))
    row = result.scores.loc["age"]
    assert 0.1 <= row["psi"] < 0.25 and row["psi_level"] == "moderate"
    assert row["p_value"] < 0.01 and row["verdict"] == "drifted"


def test_verdicts_do_not_flip_with_sample_size_alone(fitted) -> None:
    for n in (300, 3000, 100_000):
        small_shift = fitted.score({"age": np.random.default_rng(n).normal(41, 10, n)}, ts=TS).scores.loc["age"]
        big_shift = fitted.score({"age": np.random.default_rng(n).normal(55, 10, n)}, ts=TS).scores.loc["age"]
        assert (small_shift["verdict"], big_shift["verdict"]) == ("stable", "drifted"), n


def test_no_verdict_below_min_samples_and_missing_features(fitted) -> None:
    result = fitted.score({"age": np.random.default_rng(5).normal(70, 10, 150)}, ts=TS)
    assert result.scores["verdict"].tolist() == ["insufficient_data", "missing", "missing", "missing"]
    assert result.scores.attrs["drift_rate"] is None
    assert result.hits == []
    assert fitted.last_report.features[0].verdict is Verdict.INSUFFICIENT


def test_histogram_as_mapping_and_counter_reset() -> None:
    base = {"le_map": {"0.1": 100, "0.5": 600, "+Inf": 1000}}
    detector = DriftDetector().fit(base)
    same = detector.score({"le_map": {"+Inf": 2000, "0.1": 200, "0.5": 1200}}, ts=TS)
    shifted = detector.score({"le_map": {"0.1": 50, "0.5": 200, "+Inf": 1000}}, ts=TS)
    assert same.scores.loc["le_map", "psi"] == pytest.approx(0.0)
    assert shifted.scores.loc["le_map", "verdict"] == "drifted"
    rows = pd.DataFrame([[500, 900, 1000], [10, 60, 100]], columns=["0.1", "0.5", "+Inf"], index=index(2))
    reset = DriftDetector(min_samples=50).fit({"h": rows.iloc[[0]]}).score({"h": rows})
    assert reset.scores.loc["h", "n_live"] == 100  # after a reset only the last row is known


def test_dataframe_of_raw_samples_is_features_by_column() -> None:
    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"a": rng.normal(0, 1, 400), "b": rng.normal(0, 1, 400)}, index=index(400))
    detector = DriftDetector().fit(frame)
    assert detector.model_ == "model"
    result = detector.score(frame * 3)
    assert result.scores["verdict"].tolist() == ["drifted", "drifted"]
    assert result.hits[0].ts == index(400)[-1].to_pydatetime()


@pytest.mark.parametrize(
    ("baseline", "window", "message"),
    [
        ({"x": np.arange(50.0)}, None, "drift: baseline: every feature has fewer than 200 samples: {'x': 50}"),
        ({"x": {"1": 300, "0.5": 400, "+Inf": 500}}, None,
         "drift: feature 'x': histogram counts must be cumulative (non-decreasing with le)"),
        ({"x": ["a", "b"] * 200}, None,
         "drift: feature 'x': expected numeric samples; list the feature in categorical= if it is a label"),
        ([1, 2], None, "drift: baseline: expected a mapping feature -> data or a DataFrame, found list"),
        ({"x": {"1": 300, "+Inf": 500}}, {"x": {"2": 300, "+Inf": 500}},
         "drift: feature 'x': bucket bounds differ from the baseline's: [2.0, inf] vs [1.0, inf]"),
        ({"x": np.arange(500.0)}, {"x": np.arange(500.0)},
         "drift: window: no timestamps in the data; pass ts= (the end of the window)"),  # no ts given
        ({"x": np.arange(500.0)}, {"x": {"1": 3, "+Inf": 5}},
         "drift: feature 'x': baseline has raw samples but the live window is a histogram"),
    ],
)
def test_bad_input_gets_a_clear_error(baseline, window, message) -> None:
    with pytest.raises(DetectorError) as err:
        detector = DriftDetector().fit(baseline)
        detector.score(window, ts=None if "no timestamps" in message else TS)
    assert str(err.value) == message


def test_inf_and_nan_samples_are_dropped() -> None:
    values = np.r_[np.random.default_rng(7).normal(0, 1, 300), [np.nan, np.inf, -np.inf]]
    detector = DriftDetector().fit({"x": values})
    assert detector.baselines_["x"]["n"] == 300.0
    assert detector.score({"x": values}, ts=TS).scores.loc["x", "psi"] == pytest.approx(0.0)


def test_small_dips_between_buckets_from_extrapolated_increases_are_repaired():
    from detectors._distributions import histogram_counts

    les, counts = histogram_counts({"0.5": 400.4, "1": 400.0, "+Inf": 1000.0})  # increase() noise
    assert counts.tolist() == [400.4, 0.0, 599.6]
    assert les.tolist()[:2] == [0.5, 1.0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_onset_finds_the_scrape_where_sampled_data_changed(seed):
    rng = np.random.default_rng(seed)
    les = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, float("inf")]
    before = np.array([0.05, 0.1, 0.2, 0.3, 0.2, 0.1, 0.04, 0.01, 0.0])
    after = np.array([0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.2, 0.1, 0.03])
    baseline = dict(zip(les, np.cumsum(rng.multinomial(20_000, before)).astype(float)))
    idx = pd.date_range("2026-01-01", periods=60, freq="15s", tz="UTC")
    rows = pd.DataFrame([np.cumsum(rng.multinomial(25, before if k < 37 else after)) for k in range(60)],
                        index=idx, columns=les, dtype=float)
    det = DriftDetector().fit({"amount": baseline}, model="fraud")
    assert det.score({"amount": dict(zip(les, rows.sum().to_numpy()))}, ts=idx[-1]).hits
    assert abs((det.onset({"amount": rows}) - idx[37].to_pydatetime()).total_seconds()) <= 15


def _share_drifted(detector: DriftDetector, rng: np.random.Generator, shift_sd: float, n: int, windows: int) -> float:
    """Share of ``windows`` live windows of ``n`` samples, the mean of 5 of 8 standard normal
    features shifted by ``shift_sd``, in which the detector fires."""
    fired = 0
    for _ in range(windows):
        window = {f"f{i}": rng.normal(shift_sd if i < 5 else 0.0, 1.0, n) for i in range(8)}
        fired += bool(detector.score(window, ts=TS).hits)
    return fired / windows


@pytest.fixture(scope="module")
def eight_features() -> tuple[np.random.Generator, dict[str, np.ndarray]]:
    rng = np.random.default_rng(19)
    return rng, {f"f{i}": rng.normal(0.0, 1.0, 20_000) for i in range(8)}


def test_the_share_judged_drifted_does_not_depend_on_the_window_size(eight_features) -> None:
    rng, baseline = eight_features
    detector = DriftDetector().fit(baseline, model="m")
    windows = {200: 320, 1_000: 60, 5_000: 10, 20_000: 5}  # fewer where a window's PSI varies less
    table = {shift: {n: _share_drifted(detector, rng, shift, n, w) for n, w in windows.items()}
             for shift in (0.0, 0.1, 0.3, 0.5)}
    spread = {shift: round(100 * (max(row.values()) - min(row.values()))) for shift, row in table.items()}
    assert max(spread.values()) <= 10, table
    assert set(table[0.0].values()) == {0.0}, table
    # At 200 samples a 0.5 sd shift goes unseen in about 1 window of 1,000 (PSI's own noise).
    assert table[0.5][200] >= 0.99 and [table[0.5][n] for n in (1_000, 5_000, 20_000)] == [1.0] * 3, table
    # Judged on PSI as measured, the medium shift drifted in small windows only.
    raw = DriftDetector(psi_correction=False).fit(baseline, model="m")
    assert _share_drifted(raw, rng, 0.3, 200, 40) - _share_drifted(raw, rng, 0.3, 20_000, 8) > 0.3


def test_no_false_alarm_on_unshifted_data_at_any_window_size(eight_features) -> None:
    rng, baseline = eight_features
    detector = DriftDetector().fit(baseline, model="m")
    assert [_share_drifted(detector, rng, 0.0, n, 20) for n in (30, 100, 200, 500)] == [0.0] * 4


@pytest.mark.parametrize("kind", ["numeric", "histogram", "categorical"])
def test_psi_is_corrected_by_its_mean_on_samples_of_one_distribution(kind) -> None:
    rng = np.random.default_rng(8)
    draw = {
        "numeric": lambda n: rng.normal(0.0, 1.0, n),
        "histogram": lambda n: histogram(rng.exponential(0.4, n)),
        "categorical": lambda n: rng.choice(list("abcde"), n, p=[0.3, 0.25, 0.2, 0.15, 0.1]),
    }[kind]
    detector = DriftDetector(categorical=("x",) if kind == "categorical" else ()).fit({"x": draw(20_000)})
    rows = pd.concat([detector.score({"x": draw(200)}, ts=TS).scores for _ in range(200)])
    bins = {"numeric": 10, "histogram": 6, "categorical": 5}[kind]
    assert len(detector.baselines_["x"].get("props", detector.baselines_["x"].get("counts"))) == bins
    # A histogram window is the increase from its first scrape: two thirds of the samples.
    null = (bins - 1) * (1 / rows["n_live"] + 1 / detector.baselines_["x"]["n"])
    assert rows["psi_raw"].mean() == pytest.approx(null.mean(), rel=0.15)
    assert rows["psi"].tolist() == pytest.approx(np.maximum(0.0, rows["psi_raw"] - null).tolist())
    assert rows["psi"].mean() < rows["psi_raw"].mean() / 3
