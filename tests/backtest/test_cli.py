"""``aiops backtest`` end to end on small files in NAB's layout, and on real NAB files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from agent.backtest import score_corpus
from agent.backtest.corpus import find_inputs, read_series
from agent.backtest.runner import backtest, strictly_increasing
from agent.cli import cli
from agent.config import AgentConfig

HITS_IN_SPIKE = 4  # the spike, and 3 points by chance in 7 days of noise: within a budget of 0.5 a day
NAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"  # shared/ beside the checkout


def write_csv(path: Path, timestamps: list[str], values: list[float]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": timestamps, "value": values}).to_csv(path, index=False)
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    """A noisy 2,000-row file with a spike at row 1,800 (window rows 1,780..1,820), and a
    600-row one whose timestamps repeat and step backwards, without windows."""
    rng = np.random.default_rng(3)
    ts = pd.date_range("2024-03-01", periods=2000, freq="5min").strftime("%Y-%m-%d %H:%M:%S").tolist()
    values = (10 + rng.normal(0, 1, 2000)).round(3)
    values[1800] = 40.0
    data = tmp_path / "data"
    write_csv(data / "kind_a" / "spike.csv", ts, values.tolist())
    odd = ts[:300] + ts[290:300] + ts[300:590]  # ten timestamps occur twice, the 11th row jumps back
    write_csv(data / "kind_b" / "odd.csv", odd, (5 + rng.normal(0, 1, 600)).round(3).tolist())
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({
        "kind_a/spike.csv": [[f"{ts[1780]}.000000", f"{ts[1820]}.000000"]],
        "kind_b/odd.csv": [],
    }))
    return data, labels


def test_reading_keeps_file_order_with_repeated_and_backward_timestamps(corpus):
    data, _ = corpus
    series = read_series(data / "kind_b" / "odd.csv")
    assert len(series) == 600 and str(series.index.tz) == "UTC"
    assert series.index[300] == series.index[290] and series.index[300] < series.index[299]
    assert [i.key for i in find_inputs([data])] == ["kind_a/spike.csv", "kind_b/odd.csv"]


def test_backtest_writes_one_scored_row_per_input_row_and_prints_profiles(corpus, tmp_path):
    data, labels = corpus
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["backtest", str(data), "--labels", str(labels), "--out", str(out)])
    assert result.exit_code == 0, result.output
    spike = pd.read_csv(out / "kind_a" / "spike.csv")
    source = pd.read_csv(data / "kind_a" / "spike.csv")
    assert list(spike.columns) == ["timestamp", "value", "anomaly_score", "label", "hit"]
    assert spike["timestamp"].tolist() == source["timestamp"].tolist()
    assert spike["value"].tolist() == source["value"].tolist()
    assert spike["anomaly_score"].between(0, 1).all()
    assert spike["label"].tolist() == [0] * 1780 + [1] * 41 + [0] * 179
    assert spike["anomaly_score"].idxmax() == 1800
    # the hit column is the detect stage's own decision: points rare enough for the page budget
    # (0.5 false incidents a day: at one point every 5 minutes, a chance of 0.0017 or less)
    assert spike.loc[1800, "hit"] == 1 and spike["hit"].sum() == HITS_IN_SPIKE
    odd = pd.read_csv(out / "kind_b" / "odd.csv")
    assert odd["timestamp"].tolist() == pd.read_csv(data / "kind_b" / "odd.csv")["timestamp"].tolist()
    assert odd["label"].sum() == 0

    scored = backtest([data], AgentConfig(), labels=labels)
    lines = result.stdout.splitlines()
    assert lines[0] == f"detectors forecast, subspace, group: 2 files replayed, results in {out}"
    standard = scored.swept["standard"]
    assert standard.detected == 1 and standard.score > 90
    assert lines[1] == (
        f"swept standard: NAB score {standard.score:.1f} (threshold {standard.threshold:.6g}, raw {standard.raw:.2f}); "
        f"windows detected 1/1, recall 1.00, precision {standard.precision:.2f} "
        f"({standard.false_positives} false-positive rows)")
    configured = scored.configured["standard"]
    assert configured.detected == 1
    assert [" ".join(line.split(":")[0].split()[:2]) for line in lines[1:]] == [
        "swept standard", "swept reward_low_FP_rate", "swept reward_low_FN_rate",
        "configured standard", "configured reward_low_FP_rate", "configured reward_low_FN_rate",
        "leave-one-folder-out standard", "leave-one-folder-out reward_low_FP_rate", "leave-one-folder-out reward_low_FN_rate"]


def test_a_single_file_is_matched_to_its_label_key_and_written_by_name(corpus, tmp_path):
    data, labels = corpus
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["backtest", str(data / "kind_a" / "spike.csv"), "--labels", str(labels),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "spike.csv").exists()
    assert "windows detected 1/1" in result.output
    assert "leave-one-folder-out" not in result.output  # one folder: nothing to leave out


def test_the_config_chooses_the_detectors_and_a_bad_one_is_a_usage_error(corpus, tmp_path, write_config):
    data, _ = corpus
    seasonal = write_config("detectors:\n  rules:\n    - kind: seasonal\n", name="seasonal.yaml")
    result = CliRunner().invoke(cli, ["backtest", str(data / "kind_a"), "--config", str(seasonal),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"detectors seasonal: 1 files replayed, results in {tmp_path / 'o'}"
    assert pd.read_csv(tmp_path / "o" / "spike.csv")["anomaly_score"].idxmax() == 1800
    bad = write_config("detectors:\n  rules:\n    - kind: forecast\n      params: {windows: 3}\n", name="bad.yaml")
    result = CliRunner().invoke(cli, ["backtest", str(data), "--config", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert f"{bad}: detectors.rules[0].params: expected parameters of ForecastDetector" in result.output
    result = CliRunner().invoke(cli, ["backtest", str(data), "--cycle", "soon", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Invalid value for '--cycle': expected a duration such as 30s" in result.output


def test_a_folder_without_csv_files_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["backtest", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.strip() == f"{tmp_path / 'empty'}: expected CSV files, found none"


@pytest.mark.slow
@pytest.mark.skipif(not NAB.exists(), reason="NAB development data not present")
def test_real_nab_files_are_scored_in_file_order(tmp_path):
    data = tmp_path / "nab"
    for key in ("realKnownCause/ec2_request_latency_system_failure.csv", "artificialWithAnomaly/art_daily_jumpsup.csv"):
        (data / key).parent.mkdir(parents=True, exist_ok=True)
        (data / key).write_bytes((NAB / "data" / key).read_bytes())
    scores = score_corpus(data, NAB / "labels" / "combined_windows.json")
    assert set(scores) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert scores["standard"] > 50  # 4 windows: catching most of them early is needed for this
    result = backtest([data], AgentConfig(), labels=NAB / "labels" / "combined_windows.json")
    latency = result.files[1]
    assert latency.item.key == "realKnownCause/ec2_request_latency_system_failure.csv"
    assert len(latency.scores) == 4032 and latency.labels.windows == 3
    # the 12 rows stamped 2014-03-09 03:00:00 stay where the file has them
    assert (latency.series.index == pd.Timestamp("2014-03-09 03:00:00", tz="UTC")).sum() == 12


def test_detectors_see_distinct_increasing_timestamps_in_file_order():
    ts = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-01 00:05", "2024-01-01 00:00",
                           "2024-01-01 00:10", "2024-01-01 00:15"], tz="UTC")
    fixed = strictly_increasing(pd.Series(np.arange(6.0), index=ts))
    assert fixed.index.strftime("%H:%M:%S").tolist() == [
        "00:00:00", "00:05:00", "00:05:01", "00:05:02", "00:10:00", "00:15:00"]
    assert fixed.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_csv_without_the_nab_columns_is_an_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,val\n2024-01-01 00:00:00,1\n")
    result = CliRunner().invoke(cli, ["backtest", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.strip() == f"{bad}: expected columns timestamp,value, found time,val"
