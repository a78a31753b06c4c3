"""Replays of hosts: wide CSVs (a timestamp, then one column per metric of one host) through the
daemon's own detect and correlate stages, judged by the incidents they would have opened.

A file is one host: its columns become series ``<column>{instance="<file stem>"}``. Each host
gets a fresh agent (a store in a temporary folder, the config given or the built-in defaults,
the file as its source, nothing served, sent or run) on a clock that moves with the data: the
detect stage runs on ``cycle`` of data at a time (a streaming detector judges each point by the
points before it whatever the cycle, so this changes what a replay costs, not its scores), and
the correlate stage runs every ``agent.interval`` of data, as the daemon runs it, on the hits of
that interval and the samples it covered: incidents open, take hits, count quiet cycles and
resolve exactly as they would have. Hosts share nothing but the fleet's page budget (no label
joins two of them; each gets its share of ``detectors.fleet_page_budget``, as one agent watching
them all would give it), so they replay in parallel processes.

With a labels file in the layout of ``shared/data/smd/labels.json`` (per host ``scored_from`` and
``windows`` of ``start``, ``end``), each host's episodes (an incident's first opening and every
reopening) are judged as on-call would judge pages: an episode that begins inside a window
detects it (the delay runs from the window's start to the episode's detection); one that begins
in scored time outside every window, and not within an hour after one ends, is a false incident.
A window's first labelled point is where the outage was seen, not where it began: the agent puts
an episode's start between the point it judged and the one before, so a window is taken to begin
one data step before its first point.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from agent.backtest.corpus import CorpusError
from agent.backtest.cycles import replay_chunks
from agent.clock import ManualClock
from agent.config import AgentConfig
from agent.context import Context
from agent.flow.samples import series_id
from agent.pipeline import Pipeline

log = logging.getLogger(__name__)

GRACE_S = 3600.0  # an episode within an hour after a window ends is the same outage, not a false page
HOST_LABEL = "instance"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostLabels:
    """One host's labelled outages: scored from ``scored_from`` (None: from the first row)."""

    scored_from: pd.Timestamp | None
    windows: list[tuple[pd.Timestamp, pd.Timestamp]]


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeRecord:
    """One episode the replay opened: when its anomaly began in the data and when it was detected."""

    incident_id: int
    started_at: datetime
    detected_at: datetime
    signals: int
    detectors: str  # of its signals, sorted, comma-separated
    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRun:
    host: str
    first: datetime
    last: datetime
    step_s: float  # the host's median time between rows
    series: int
    episodes: list[EpisodeRecord]
    failed_cycles: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostScore:
    """A host's episodes judged against its windows."""

    host: str
    windows: int
    detected: int
    delays_s: list[float]
    false_incidents: int
    episodes: int
    scored_days: float


def is_wide(path: Path) -> bool:
    """Whether ``path`` is a wide CSV: a ``timestamp`` column first and other columns than
    NAB's single ``value`` (anything else is read, and refused, as NAB's layout)."""
    with _open_text(path) as handle:
        try:
            header = [c.strip() for c in handle.readline().strip().split(",")]
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise CorpusError(path, f"cannot read: {exc}") from None
    return len(header) >= 2 and header[0] == "timestamp" and header != ["timestamp", "value"]


def _open_text(path: Path):
    try:
        return gzip.open(path, "rt") if path.suffix == ".gz" else open(path, encoding="utf-8")
    except OSError as exc:
        raise CorpusError(path, f"cannot read: {exc}") from None


def read_wide(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A host file as a frame (UTC index, float columns) and notes on what had to be mended.
    Rows are put in time order and a repeated timestamp keeps its last row; non-numbers are
    gaps. A file without a timestamp column or without any metric column is refused."""
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise CorpusError(path, f"cannot read CSV: {exc}") from None
    if "timestamp" not in raw.columns:
        raise CorpusError(path, f"expected a 'timestamp' column first, found {list(raw.columns)[:5]}")
    if len(raw.columns) < 2:
        raise CorpusError(path, "expected at least one metric column after 'timestamp', found none")
    stamps = raw.pop("timestamp")
    try:
        if pd.api.types.is_numeric_dtype(stamps):
            index = pd.to_datetime(stamps.astype("float64"), unit="s", utc=True)
        else:
            index = pd.to_datetime(stamps, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise CorpusError(path, f"timestamp: expected dates or epoch seconds, found {exc}") from None
    values = raw.apply(pd.to_numeric, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan)
    values.index = pd.DatetimeIndex(index, name="ts").as_unit("ns")
    values.columns = [str(c) for c in values.columns]
    notes = []
    if values.index.hasnans:
        notes.append(f"{int(values.index.isna().sum())} rows without a timestamp left out")
        values = values[values.index.notna()]
    if not values.index.is_monotonic_increasing:
        notes.append("rows put in time order (the file steps back in time)")
        values = values.sort_index(kind="stable")
    repeated = int(values.index.duplicated(keep="last").sum())
    if repeated:
        notes.append(f"{repeated} rows with a repeated timestamp: the last one kept")
        values = values[~values.index.duplicated(keep="last")]
    if values.columns.has_duplicates:
        raise CorpusError(path, f"duplicate column names {sorted(set(values.columns[values.columns.duplicated()]))}")
    if values.empty:
        raise CorpusError(path, "no rows with a timestamp")
    return values, notes


def read_host_labels(path: Path) -> dict[str, HostLabels]:
    """``{host: {"scored_from": T, "windows": [{"start": T, "end": T, ...}]}}``, checked."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorpusError(path, f"cannot read labels: {exc}") from None
    if not isinstance(data, dict):
        raise CorpusError(path, f"expected an object of hosts, found {type(data).__name__}")
    out = {}
    for host, entry in data.items():
        where = f"{host}"
        if not isinstance(entry, dict) or not isinstance(entry.get("windows", []), list):
            raise CorpusError(path, f"{where}: expected {{'scored_from': ..., 'windows': [...]}}, found {entry!r:.80}")
        try:
            scored = _utc(entry["scored_from"]) if entry.get("scored_from") else None
            windows = [(_utc(w["start"]), _utc(w["end"])) for w in entry.get("windows", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise CorpusError(path, f"{where}: expected windows with 'start' and 'end' times, found {exc}") from None
        for start, end in windows:
            if end < start:
                raise CorpusError(path, f"{where}: a window ends ({end}) before it starts ({start})")
        out[str(host)] = HostLabels(scored_from=scored, windows=sorted(windows))
    return out


def is_host_labels(path: Path) -> bool:
    """Whether a labels file is in the hosts layout (objects with windows), not NAB's lists."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorpusError(path, f"cannot read labels: {exc}") from None
    return isinstance(data, dict) and any(isinstance(v, dict) for v in data.values())


def _utc(text: object) -> pd.Timestamp:
    ts = pd.Timestamp(str(text))
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def host_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name


def replay_config(config: AgentConfig, csv: Path, state_dir: Path, *, hosts: int = 1) -> AgentConfig:
    """``config`` reading ``csv``, with its state in ``state_dir`` and nothing served, sent or
    run outside the process. Slices only split work: a replay scores all series as one. The
    host is one of ``hosts`` one agent would watch: its page budget is its share of the fleet's."""
    detectors = config.detectors
    budget = min(detectors.page_budget, detectors.fleet_page_budget / max(hosts, 1))
    detectors = detectors.model_copy(update={
        "refit": detectors.refit.model_copy(update={"slices": 1}), "page_budget": budget,
        "fleet_page_budget": budget})
    sources = config.sources.model_copy(update={
        "kind": "file",
        "file": config.sources.file.model_copy(update={"paths": [csv]}),
        "catchup_max": max(config.sources.catchup_max, 7 * 86400.0),
    })
    return config.model_copy(update={
        "agent": config.agent.model_copy(update={"state_dir": state_dir, "shard": "0/1"}),
        "http": config.http.model_copy(update={"enabled": False}),
        "sources": sources,
        "detectors": detectors,
        "remediation": config.remediation.model_copy(update={"enabled": False, "rules": []}),
        "notify": config.notify.model_copy(update={"enabled": False, "channels": {}, "routes": []}),
    })


def replay_host(path: Path, config: AgentConfig, *, cycle_s: float, hosts: int = 1) -> HostRun:
    """Replay one host file through the detect and correlate stages (see the module's text), as
    one of ``hosts`` an agent watches."""
    host = host_name(path)
    frame, notes = read_wide(path)
    quiet = logging.getLogger("agent")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))  # a cycle's info lines, thousands of times, say nothing here
    try:
        with tempfile.TemporaryDirectory(prefix="aiops-hosts-") as tmp:
            csv = Path(tmp) / f"{host}.csv"
            columns = {c: series_id(c, {HOST_LABEL: host}) for c in frame.columns}
            out = frame.rename(columns=columns)
            out.insert(0, "timestamp", frame.index.as_unit("ns").asi8 / 1e9)
            out.to_csv(csv, index=False)  # shortest repr: round-trips exactly
            del out
            run = _replay(frame.index, replay_config(config, csv, Path(tmp) / "state", hosts=hosts), cycle_s=cycle_s)
    finally:
        quiet.setLevel(level)
    gaps = np.diff(frame.index.as_unit("ns").asi8) / 1e9
    return HostRun(host=host, first=frame.index[0].to_pydatetime(), last=frame.index[-1].to_pydatetime(),
                   step_s=float(np.median(gaps)) if len(gaps) else 0.0, series=frame.shape[1], episodes=run[0],
                   failed_cycles=run[1], notes=notes)


def _replay(index: pd.DatetimeIndex, config: AgentConfig, *, cycle_s: float) -> tuple[list[EpisodeRecord], int]:
    clock = ManualClock(index[0].to_pydatetime())
    ctx = Context.create(config, clock=clock)
    pipeline = Pipeline(ctx)
    try:
        failed = sum(chunk.detect_failed for chunk in replay_chunks(pipeline, clock, index[0], index[-1],
                                                                     cycle_s=cycle_s))
        episodes = _episodes(ctx)
    finally:
        pipeline.close()
        ctx.store.close()
    return episodes, failed


def _episodes(ctx: Context) -> list[EpisodeRecord]:
    out = []
    for incident in ctx.store.list_incidents():
        for episode in incident.episodes:
            out.append(EpisodeRecord(incident_id=incident.id, started_at=episode.started_at,
                                     detected_at=episode.detected_at, signals=len(incident.signals),
                                     detectors=",".join(sorted({s.detector for s in incident.signals})),
                                     title=incident.title))
    return sorted(out, key=lambda e: e.started_at)


def judge(run: HostRun, labels: HostLabels) -> HostScore:
    """The host's episodes against its windows (see the module's text)."""
    scored_from = labels.scored_from or pd.Timestamp(run.first)
    windows = labels.windows
    detected, delays, false, counted = 0, [], 0, 0
    starts = [(pd.Timestamp(e.started_at), pd.Timestamp(e.detected_at)) for e in run.episodes]
    step = pd.Timedelta(seconds=run.step_s)
    for lo, hi in windows:
        inside = [(s, d) for s, d in starts if lo - step < s <= hi]
        if inside:
            detected += 1
            delays.append(max((min(d for _, d in inside) - lo).total_seconds(), 0.0))
    grace = pd.Timedelta(seconds=GRACE_S)
    for s, _ in starts:
        if s < scored_from:
            continue
        counted += 1
        if any(lo - step < s <= hi + grace for lo, hi in windows):
            continue
        false += 1
    days = max((pd.Timestamp(run.last) - scored_from).total_seconds(), 0.0) / 86400.0
    return HostScore(host=run.host, windows=len(windows), detected=detected, delays_s=delays,
                     false_incidents=false, episodes=counted, scored_days=days)


def summary(scores: Sequence[HostScore], runs: Sequence[HostRun]) -> dict:
    """The figures of ``summary.json``: totals and one row per host."""
    windows = sum(s.windows for s in scores)
    detected = sum(s.detected for s in scores)
    false = sum(s.false_incidents for s in scores)
    days = sum(s.scored_days for s in scores)
    delays = [d for s in scores for d in s.delays_s]
    by_host = {r.host: r for r in runs}
    return {
        "hosts": len(scores),
        "windows": windows,
        "windows_detected": detected,
        "event_recall": round(detected / windows, 4) if windows else None,
        "false_incidents": false,
        "scored_host_days": round(days, 2),
        "false_incidents_per_host_day": round(false / days, 4) if days else None,
        "median_delay_s": float(np.median(delays)) if delays else None,
        "per_host": [{
            "host": s.host, "series": by_host[s.host].series, "windows": s.windows, "windows_detected": s.detected,
            "event_recall": round(s.detected / s.windows, 4) if s.windows else None,
            "false_incidents": s.false_incidents, "episodes": s.episodes, "scored_days": round(s.scored_days, 2),
            "false_incidents_per_day": round(s.false_incidents / s.scored_days, 4) if s.scored_days else None,
            "median_delay_s": float(np.median(s.delays_s)) if s.delays_s else None,
            "failed_cycles": by_host[s.host].failed_cycles, "notes": by_host[s.host].notes,
        } for s in scores],
    }


def _replay_one(args: tuple[Path, AgentConfig, float, int]) -> HostRun:
    path, config, cycle_s, hosts = args
    return replay_host(path, config, cycle_s=cycle_s, hosts=hosts)


def replay_hosts(paths: Sequence[Path], config: AgentConfig, *, cycle_s: float, workers: int | None = None,
                 hosts: int | None = None, on_host: Callable[[HostRun], None] | None = None) -> list[HostRun]:
    """Replay every host file, ``workers`` at a time (default: one per CPU), in file order, as
    ``hosts`` (default: as many as files) of one agent: they share its fleet's page budget."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths)))
    jobs = [(Path(p), config, cycle_s, hosts or len(paths)) for p in paths]
    if workers == 1:
        runs = []
        for job in jobs:
            runs.append(_replay_one(job))
            if on_host is not None:
                on_host(runs[-1])
        return runs
    with ProcessPoolExecutor(max_workers=workers) as pool:
        runs = []
        for run in pool.map(_replay_one, jobs):
            runs.append(run)
            if on_host is not None:
                on_host(run)
        return runs


def write_summary(out_dir: Path, figures: dict, runs: Sequence[HostRun]) -> Path:
    """``DIR/summary.json`` and ``DIR/episodes.csv``, each written whole or not at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"host": r.host, **{k: v for k, v in asdict(e).items()}} for r in runs for e in r.episodes]
    episodes = pd.DataFrame(rows, columns=["host", "incident_id", "started_at", "detected_at", "signals", "detectors",
                                           "title"])
    _atomic(out_dir / "episodes.csv", episodes.to_csv(index=False))
    target = out_dir / "summary.json"
    _atomic(target, json.dumps(figures, indent=2, default=str) + "\n")
    return target


def _atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


__all__ = ["HostLabels", "HostRun", "HostScore", "is_host_labels", "is_wide", "judge", "read_host_labels",
           "read_wide", "replay_hosts", "summary", "write_summary"]
