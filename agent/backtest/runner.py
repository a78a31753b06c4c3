"""Walk-forward runs of one detector over one series, as the daemon would run it: at every
refit boundary a fresh detector is fitted on the rows so far, then scores the following rows,
each judged only by rows before it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detectors.base import Detector
from detectors.errors import DetectorError

from agent.backtest.corpus import InputFile, find_inputs, read_series, read_windows, windows_for
from agent.backtest.scorer import ProfileScore, RowLabels, WindowError, label_rows, score_runs
from agent.backtest.corpus import CorpusError
from agent.errors import AiopsError


class UnknownDetectorError(AiopsError):
    """``--detector`` named a detector that is not registered (or not importable here)."""

    exit_code = 2

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"--detector: expected one of {', '.join(known)}, found {name!r}")


def _bounded(scores: np.ndarray) -> np.ndarray:
    """Scores already in [0, 1]."""
    return np.clip(scores, 0.0, 1.0)


def _unbounded(scores: np.ndarray) -> np.ndarray:
    """A robust z (any size, either sign) mapped monotonically into [0, 1): |z| / (|z| + 3)."""
    z = np.abs(scores)
    return z / (z + 3.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorSpec:
    """A detector the backtest can run: where its class lives and how its scores map to [0, 1]."""

    name: str
    target: str  # "module:Class"
    to_unit: Callable[[np.ndarray], np.ndarray]
    refit_every: int = 288  # rows between refits (a day of 5-minute points)
    warmup_rows: int = 64  # rows seen before the first fit; they score 0

    def make(self) -> Detector:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)()

    def available(self) -> bool:
        try:
            self.make()
        except (ImportError, AttributeError):
            return False
        return True


REGISTRY: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec(name="forecast", target="detectors.forecast:ForecastDetector", to_unit=_bounded),
        DetectorSpec(name="seasonal", target="detectors.seasonal:SeasonalDetector", to_unit=_unbounded,
                     warmup_rows=576),
    )
}
DEFAULT_DETECTOR = "forecast"


def get_spec(name: str) -> DetectorSpec:
    known = [n for n, spec in REGISTRY.items() if spec.available()]
    if name not in known:
        raise UnknownDetectorError(name, known)
    return REGISTRY[name]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesRun:
    """Scores of one series in [0, 1], one per row in file order, and how many refits failed
    (their rows score 0)."""

    scores: np.ndarray
    failed_fits: int


def run_series(series: pd.Series, spec: DetectorSpec) -> SeriesRun:
    """Score every row of ``series`` walk-forward with the detector of ``spec``."""
    n = len(series)
    series = strictly_increasing(series)
    scores = np.zeros(n)
    failed = 0
    start = min(spec.warmup_rows, n)
    while start < n:
        stop = min(start + spec.refit_every, n)
        try:
            detector = spec.make().fit(series.iloc[:start])
            out = detector.score(series.iloc[start:stop]).scores
        except DetectorError:
            failed += 1
        else:
            raw = np.asarray(out, dtype="float64").reshape(-1)
            if len(raw) != stop - start:  # a detector that dropped rows cannot be lined up
                failed += 1
                start = stop
                continue
            scores[start:stop] = spec.to_unit(np.nan_to_num(raw, nan=0.0, posinf=1e9, neginf=-1e9))
        start = stop
    return SeriesRun(scores=scores, failed_fits=failed)


def strictly_increasing(series: pd.Series) -> pd.Series:
    """The series with each repeated or backward timestamp moved to one second after the
    previous row's, so detectors that need distinct, ordered timestamps see every row, in file
    order (NAB feeds rows as they come; results keep the file's own timestamps)."""
    ns = series.index.as_unit("ns").asi8
    if len(ns) < 2 or bool(np.all(np.diff(ns) > 0)):
        return series
    fixed = ns.copy()
    for i in range(np.flatnonzero(np.diff(ns) <= 0)[0] + 1, len(fixed)):
        if fixed[i] <= fixed[i - 1]:
            fixed[i] = fixed[i - 1] + 1_000_000_000
    index = pd.DatetimeIndex(fixed.view("datetime64[ns]"), name=series.index.name).tz_localize("UTC")
    return pd.Series(series.to_numpy(), index=index, name=series.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileResult:
    """One input after its run: its rows, their scores, and how they lie against its windows
    (``labels`` is None without a label file or when the label file does not know the file)."""

    item: InputFile
    series: pd.Series
    scores: np.ndarray
    labels: RowLabels | None
    failed_fits: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    detector: str
    files: list[FileResult]
    profiles: dict[str, ProfileScore]  # empty without labels

    @property
    def unlabelled(self) -> list[str]:
        return [f.item.key for f in self.files if f.labels is None]


def backtest(paths: list[Path], *, detector: str = DEFAULT_DETECTOR, labels: Path | None = None,
             on_file: Callable[[FileResult], None] | None = None) -> BacktestResult:
    """Run ``detector`` walk-forward over every CSV under ``paths`` and, with ``labels`` (NAB's
    ``combined_windows.json``), score the run per NAB profile. ``on_file`` is called after each
    file (for progress)."""
    spec = get_spec(detector)
    inputs = find_inputs([Path(p) for p in paths])
    windows = read_windows(labels) if labels is not None else None
    files = []
    for item in inputs:
        series = read_series(item.path)
        run = run_series(series, spec)
        row_labels = None
        if windows is not None and (file_windows := windows_for(item, windows)) is not None:
            try:
                row_labels = label_rows(series.index, file_windows)
            except WindowError as exc:
                raise CorpusError(item.path, str(exc)) from exc
        result = FileResult(item=item, series=series, scores=run.scores, labels=row_labels,
                            failed_fits=run.failed_fits)
        files.append(result)
        if on_file is not None:
            on_file(result)
    runs = [(f.labels, f.scores) for f in files if f.labels is not None]
    profiles = score_runs(runs) if windows is not None else {}
    return BacktestResult(detector=spec.name, files=files, profiles=profiles)


def write_results(result: BacktestResult, out_dir: Path) -> list[Path]:
    """Write ``out_dir/<key>`` per input: timestamp,value,anomaly_score,label (label 1 inside a
    labelled window, else 0), one row per input row in file order."""
    written = []
    for f in result.files:
        path = out_dir / f.item.key
        path.parent.mkdir(parents=True, exist_ok=True)
        label = f.labels.inside if f.labels is not None else None
        frame = pd.DataFrame({
            "timestamp": f.series.index.tz_localize(None).strftime("%Y-%m-%d %H:%M:%S"),
            "value": f.series.to_numpy(),
            "anomaly_score": f.scores,
            "label": label.astype(int) if label is not None else np.zeros(len(f.scores), dtype=int),
        })
        frame.to_csv(path, index=False)
        written.append(path)
    return written
