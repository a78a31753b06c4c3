"""``aiops backtest`` on hosts: wide files replayed through the detect and correlate stages, judged
by the incidents they open; and every bad input it meets, refused or handled, by name."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from agent.backtest.hosts import EpisodeRecord, HostLabels, HostRun, judge, read_wide
from agent.cli import cli

START = pd.Timestamp("2024-03-01", tz="UTC")
ROWS = 4 * 288  # four days at 5-minute points
FAULT = 3 * 288 + 100  # a fault on the fourth day, 30 minutes long


def host_frame(seed: int, *, fault: bool) -> pd.DataFrame:
    """Four metrics of one host that move together (load drives cpu and requests), and one that
    does not; with ``fault``, cpu and memory leave their usual relation for 30 minutes."""
    rng = np.random.default_rng(seed)
    t = np.arange(ROWS)
    load = 50 + 20 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 2, ROWS)
    frame = pd.DataFrame({
        "cpu": 0.8 * load + rng.normal(0, 1, ROWS),
        "requests": 10 * load + rng.normal(0, 10, ROWS),
        "memory": 1000 + rng.normal(0, 5, ROWS),
        "disk": 200 + np.cumsum(rng.normal(0, 0.1, ROWS)),
    }, index=pd.date_range(START, periods=ROWS, freq="5min"))
    if fault:
        frame.iloc[FAULT:FAULT + 6, 0] += 45  # cpu pegged while requests do not move
        frame.iloc[FAULT:FAULT + 6, 2] += 400
    return frame


def write_host(folder: Path, name: str, frame: pd.DataFrame, *, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = frame.copy()
    out.insert(0, "timestamp", out.index.strftime("%Y-%m-%d %H:%M:%S"))
    path = folder / (f"{name}.csv.gz" if gz else f"{name}.csv")
    if gz:
        with gzip.open(path, "wt") as handle:
            out.to_csv(handle, index=False)
    else:
        out.to_csv(path, index=False)
    return path


def at(row: int) -> str:
    return str((START + pd.Timedelta(minutes=5 * row)).tz_localize(None))


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "hosts"
    write_host(data, "web-1", host_frame(1, fault=True), gz=True)
    write_host(data, "web-2", host_frame(2, fault=False))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({
        "web-1": {"scored_from": at(2 * 288), "windows": [{"start": at(FAULT), "end": at(FAULT + 5),
                                                            "metrics": ["cpu", "memory"]}]},
        "web-2": {"scored_from": at(2 * 288), "windows": []},
    }))
    return data, labels


def run(*args: str):
    return CliRunner().invoke(cli, ["backtest", *args])


def test_hosts_replay_through_correlation_and_are_judged_as_pages(fleet, tmp_path):
    data, labels = fleet
    out = tmp_path / "out"
    result = run(str(data), "--labels", str(labels), "--out", str(out), "--workers", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert {k: summary[k] for k in ("hosts", "windows", "windows_detected", "event_recall")} == {
        "hosts": 2, "windows": 1, "windows_detected": 1, "event_recall": 1.0}
    assert summary["scored_host_days"] == pytest.approx(4.0, abs=0.01)
    assert summary["false_incidents_per_host_day"] == pytest.approx(summary["false_incidents"] / 4.0, abs=1e-3)
    assert summary["median_delay_s"] == 0.0  # detected at the fault's first point
    web1, web2 = summary["per_host"]
    assert (web1["host"], web1["series"], web1["windows_detected"]) == ("web-1", 4, 1)
    assert (web2["host"], web2["windows"], web2["event_recall"]) == ("web-2", 0, None)
    episodes = pd.read_csv(out / "episodes.csv")
    began = pd.to_datetime(episodes.started_at)
    fault_at = START + pd.Timedelta(minutes=5 * FAULT)
    # the onset is estimated half a step before the first anomalous point
    fault = episodes[(episodes.host == "web-1") & (began > fault_at - pd.Timedelta(minutes=5)) & (began <= fault_at)]
    assert len(fault) == 1 and "subspace" in fault.detectors.iloc[0]  # one incident for the fault, paged once
    lines = result.stdout.splitlines()
    assert lines[0] == f"detectors forecast, subspace, group: 2 hosts replayed, results in {out / 'summary.json'}"
    assert lines[-1].startswith("event recall 1.00 (1/1 windows), false incidents ")


def test_the_judging_rule_counts_episodes_by_where_they_begin():
    windows = [(pd.Timestamp("2024-01-02 10:00", tz="UTC"), pd.Timestamp("2024-01-02 10:10", tz="UTC"))]
    labels = HostLabels(scored_from=pd.Timestamp("2024-01-02", tz="UTC"), windows=windows)

    def episode(start: str, detected: str) -> EpisodeRecord:
        return EpisodeRecord(incident_id=1, started_at=pd.Timestamp(start, tz="UTC").to_pydatetime(),
                             detected_at=pd.Timestamp(detected, tz="UTC").to_pydatetime(), signals=1,
                             detectors="forecast", title="t")

    host = HostRun(host="h", first=pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime(),
                   last=pd.Timestamp("2024-01-03", tz="UTC").to_pydatetime(), step_s=60.0, series=1,
                   failed_cycles=0, episodes=[
                       episode("2024-01-01 12:00", "2024-01-01 12:00"),  # before scored time: not counted
                       episode("2024-01-02 09:58", "2024-01-02 09:58"),  # before the window: false
                       episode("2024-01-02 09:59:30", "2024-01-02 10:00"),  # began after the point before: inside
                       episode("2024-01-02 10:03", "2024-01-02 10:04"),  # inside, 4 min late
                       episode("2024-01-02 10:50", "2024-01-02 10:50"),  # within the hour after: the same outage
                       episode("2024-01-02 11:11", "2024-01-02 11:11"),  # later: false
                   ])
    score = judge(host, labels)
    assert (score.detected, score.delays_s, score.false_incidents, score.episodes) == (1, [0.0], 2, 5)
    assert score.scored_days == 1.0


def test_odd_columns_are_replayed_and_odd_rows_are_mended_with_a_warning(tmp_path):
    frame = host_frame(3, fault=False)
    frame["flat"] = 7.0  # a constant column
    frame["empty"] = np.nan  # an all-NaN column
    frame["late"] = np.where(np.arange(ROWS) >= ROWS // 2, frame["cpu"], np.nan)  # starts mid-file
    odd = pd.concat([frame.iloc[:300], frame.iloc[290:300], frame.iloc[300:]])  # repeats, a step back
    path = write_host(tmp_path / "h", "odd-1", odd)
    values, notes = read_wide(path)
    assert values.index.is_monotonic_increasing and not values.index.has_duplicates and len(values) == ROWS
    assert notes == ["rows put in time order (the file steps back in time)",
                     "10 rows with a repeated timestamp: the last one kept"]
    out = tmp_path / "out"
    result = run(str(path), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"warning: {path}: 10 rows with a repeated timestamp: the last one kept" in result.stderr
    assert json.loads((out / "summary.json").read_text())["hosts"] == 1


def test_a_thousand_columns_replay(tmp_path):
    rng = np.random.default_rng(4)
    rows = 200
    base = rng.normal(0, 1, (rows, 1))
    frame = pd.DataFrame(base + rng.normal(0, 0.5, (rows, 1000)), columns=[f"m{i:04d}" for i in range(1000)],
                         index=pd.date_range(START, periods=rows, freq="5min"))
    path = write_host(tmp_path / "h", "wide-1", frame)
    out = tmp_path / "out"
    result = run(str(path), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("detectors forecast, subspace, group: 1 hosts replayed")


def test_bad_inputs_are_refused_by_name_and_leave_no_summary(fleet, tmp_path):
    data, labels = fleet
    out = tmp_path / "out"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "no-time.csv").write_text("when,cpu\n1,2\n")
    result = run(str(broken), "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{broken / 'no-time.csv'}: expected columns timestamp,value, found when,cpu"
    assert not (out / "summary.json").exists()

    nab = tmp_path / "mixed"
    write_host(nab, "web-3", host_frame(5, fault=False))
    (nab / "series.csv").write_text("timestamp,value\n2024-03-01 00:00:00,1\n")
    result = run(str(nab), "--out", str(out))
    assert result.exit_code == 1
    assert "a NAB file (timestamp,value) among host files" in result.stderr
    assert not (out / "summary.json").exists()

    nab_labels = tmp_path / "windows.json"
    nab_labels.write_text(json.dumps({"web-1.csv.gz": [["2024-03-01 00:00:00", "2024-03-01 01:00:00"]]}))
    result = run(str(data), "--labels", str(nab_labels), "--out", str(out))
    assert result.exit_code == 1 and "NAB windows for host files" in result.stderr


def test_a_labelled_host_without_a_file_is_named_and_left_out(fleet, tmp_path):
    data, labels = fleet
    entries = json.loads(labels.read_text())
    entries["db-9"] = {"scored_from": at(10), "windows": []}
    labels.write_text(json.dumps(entries))
    out = tmp_path / "out"
    result = run(str(data / "web-2.csv"), "--labels", str(labels), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"warning: {labels}: host db-9 has no file among the inputs; left out" in result.stderr
    assert f"warning: {labels}: host web-1 has no file among the inputs; left out" in result.stderr
    assert json.loads((out / "summary.json").read_text())["hosts"] == 1
