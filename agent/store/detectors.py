"""Store methods for fitted detector state, drift baselines, and what a refit must leave out
(incident windows and past hits of a series)."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.clock import from_epoch, to_epoch, utcnow
from agent.store.base import StoreBase, dumps
from agent.store.migrations import migration, run_script

# SQLite binds at most 999 values per statement in old builds; stay well under it.
_CHUNK = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class FittedState:
    """One detector's fitted state for one subject (a series, an entity or a model)."""

    detector: str
    subject: str
    params: Mapping[str, Any]
    state: bytes
    fitted_at: datetime
    points: int = 0

    @property
    def key(self) -> str:
        return state_key(self.detector, self.subject)


@dataclass(frozen=True, slots=True, kw_only=True)
class Baseline:
    """A model's training distributions, recorded from a time range of its histograms."""

    model: str
    from_at: datetime
    to_at: datetime
    data: Mapping[str, Any]
    created_by: str
    created_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Exclusions:
    """What a refit of one series leaves out: incident windows ``[start, end]`` and hit times."""

    windows: list[tuple[datetime, datetime]] = field(default_factory=list)
    hits: list[datetime] = field(default_factory=list)


def state_key(detector: str, subject: str) -> str:
    return f"{detector}|{subject}"


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


@migration(20, "detection: index incident signals by series")
def _signals_by_series(conn: sqlite3.Connection) -> None:
    # Refits ask "which incidents involved these series?" for a slice of series every cycle.
    run_script(conn, "CREATE INDEX IF NOT EXISTS detection_signals_series ON incident_signals(series_id)")


@migration(21, "detector state: pickled rows of earlier agents deleted")
def _no_pickled_state(conn: sqlite3.Connection) -> None:
    # Formats 1 and 2 of agent.detection.codec were pickles: never read again (a pickle runs code),
    # so their detectors are refitted; deleting the rows says so once instead of at every start.
    conn.execute("DELETE FROM detector_state WHERE substr(state, 1, 1) IN (?, ?)", (b"\x01", b"\x02"))


class DetectorStateStore(StoreBase):
    """fitted detector state and drift baselines."""

    # -- fitted state ------------------------------------------------------------------------

    def save_fitted_states(self, states: Iterable[FittedState], *, actor: str = "agent",
                           now: datetime | None = None) -> int:
        """Insert or replace fitted states; one audit entry summarises the batch."""
        states = list(states)
        if not states:
            return 0
        by_detector: dict[str, int] = defaultdict(int)
        with self.transaction() as conn:
            for s in states:
                conn.execute(
                    "INSERT INTO detector_state (key, detector, subject, params, state, fitted_at, points) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET params = excluded.params, "
                    "state = excluded.state, fitted_at = excluded.fitted_at, points = excluded.points",
                    (s.key, s.detector, s.subject, dumps(dict(s.params)), s.state, to_epoch(s.fitted_at), s.points))
                by_detector[s.detector] += 1
            self.audit(actor, "detector.fitted", "detector_state",
                       {"fitted": dict(sorted(by_detector.items())), "subjects": len(states)}, now=now)
        return len(states)

    def load_fitted_states(self, detector: str | None = None) -> list[FittedState]:
        sql = "SELECT * FROM detector_state"
        params: tuple[Any, ...] = ()
        if detector is not None:
            sql += " WHERE detector = ?"
            params = (detector,)
        return [self._fitted_state(row) for row in self.conn.execute(sql + " ORDER BY key", params)]

    def fitted_state(self, detector: str, subject: str) -> FittedState | None:
        row = self.query_one("SELECT * FROM detector_state WHERE key = ?", (state_key(detector, subject),))
        return self._fitted_state(row) if row else None

    @staticmethod
    def _fitted_state(row: sqlite3.Row) -> FittedState:
        return FittedState(detector=row["detector"], subject=row["subject"], params=json.loads(row["params"]),
                           state=bytes(row["state"]), fitted_at=from_epoch(row["fitted_at"]), points=row["points"])

    # -- drift baselines ---------------------------------------------------------------------

    def save_baseline(self, baseline: Baseline) -> int:
        with self.transaction():
            new_id = self._insert("baselines", {
                "model": baseline.model, "created_at": to_epoch(baseline.created_at),
                "from_ts": to_epoch(baseline.from_at), "to_ts": to_epoch(baseline.to_at),
                "data": dumps(dict(baseline.data)), "created_by": baseline.created_by})
            self.audit(baseline.created_by, "baseline.save", f"model:{baseline.model}",
                       {"id": new_id, "from": baseline.from_at, "to": baseline.to_at,
                        "features": sorted(baseline.data.get("features", {}))}, now=baseline.created_at)
        return new_id

    def latest_baseline(self, model: str) -> Baseline | None:
        row = self.query_one("SELECT * FROM baselines WHERE model = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                             (model,))
        if row is None:
            return None
        return Baseline(id=row["id"], model=row["model"], from_at=from_epoch(row["from_ts"]),
                        to_at=from_epoch(row["to_ts"]), data=json.loads(row["data"]),
                        created_by=row["created_by"], created_at=from_epoch(row["created_at"]))

    # -- what a refit leaves out -------------------------------------------------------------

    def refit_exclusions(self, series_ids: Sequence[str], since: datetime, until: datetime,
                         *, now: datetime | None = None) -> dict[str, Exclusions]:
        """Per series: windows of incidents it took part in (open ones run to ``now``) and the
        times of its recorded hits, both overlapping ``[since, until]``."""
        now_s = to_epoch(now or utcnow())
        lo, hi = to_epoch(since), to_epoch(until)
        windows: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
        hits: dict[str, list[datetime]] = defaultdict(list)
        for chunk in _chunks(list(series_ids)):
            marks = ", ".join("?" for _ in chunk)
            for row in self.conn.execute(
                    f"SELECT DISTINCT s.series_id, i.started_at, COALESCE(i.resolved_at, ?) AS ended_at "
                    f"FROM incident_signals s JOIN incidents i ON i.id = s.incident_id "
                    f"WHERE s.series_id IN ({marks}) AND i.started_at <= ? AND COALESCE(i.resolved_at, ?) >= ?",
                    (now_s, *chunk, hi, now_s, lo)):
                windows[row[0]].append((from_epoch(row[1]), from_epoch(row[2])))
            for row in self.conn.execute(
                    f"SELECT series_id, ts FROM hits WHERE series_id IN ({marks}) AND ts BETWEEN ? AND ?",
                    (*chunk, lo, hi)):
                hits[row[0]].append(from_epoch(row[1]))
        return {sid: Exclusions(windows=sorted(windows.get(sid, [])), hits=sorted(hits.get(sid, [])))
                for sid in set(windows) | set(hits)}
