"""Store methods for hits, incidents, their signals and timeline (changes and silences: their own modules).

Every lifecycle step writes its timeline event (``incident_events``, read by the notify stage)
and its audit entry in the same transaction. Each event's details carry the incident's
``severity`` and, when an active silence matches the incident, ``"silenced": true``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any, TypeVar

from agent.clock import from_epoch, to_epoch
from agent.errors import AiopsError, TransitionError
from agent.flow.incidents import (
    STORM_LABEL,
    TRANSITIONS,
    Episode,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentMark,
    IncidentStatus,
    Severity,
    Signal,
)
from agent.store.base import StoreBase, dumps
from agent.store.changes import ChangeStore
from agent.store.episodes import EpisodeStore
from agent.store.migrations import migration, run_script
from agent.store.silences import SilenceStore
from detectors.base import Direction, Hit


class UnknownIncidentError(AiopsError):
    def __init__(self, incident_id: int) -> None:
        self.incident_id = incident_id
        super().__init__(f"no incident #{incident_id}")


@migration(30, "incident correlation keys and quiet cycles")
def _incident_keys(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE incident_keys (
            incident_id INTEGER NOT NULL REFERENCES incidents(id), key TEXT NOT NULL,
            PRIMARY KEY (key, incident_id)) WITHOUT ROWID;
        CREATE INDEX incident_signals_key ON incident_signals(signal_key);
        CREATE INDEX incidents_resolved ON incidents(resolved_at);
        CREATE INDEX silences_active ON silences(ends_at);
        ALTER TABLE incidents ADD COLUMN quiet_cycles INTEGER NOT NULL DEFAULT 0;
        """,
    )


@migration(32, "incident signals: the figures at their peak, and how their start was found")
def _signal_peaks(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        ALTER TABLE incident_signals ADD COLUMN peak_at REAL;
        ALTER TABLE incident_signals ADD COLUMN peak_value REAL;
        ALTER TABLE incident_signals ADD COLUMN peak_expected REAL;
        ALTER TABLE incident_signals ADD COLUMN peak_lower REAL;
        ALTER TABLE incident_signals ADD COLUMN peak_upper REAL;
        ALTER TABLE incident_signals ADD COLUMN onset TEXT;
        ALTER TABLE hits ADD COLUMN onset TEXT;
        """,
    )
    # What a store written before knows of a peak: the newest figures.
    conn.execute("UPDATE incident_signals SET peak_at = last_at, peak_value = last_value, peak_expected = last_expected")


# Which timeline event a move writes.
_EVENT_FOR = {
    IncidentStatus.ACKNOWLEDGED: EventKind.ACKNOWLEDGED,
    IncidentStatus.REMEDIATING: EventKind.REMEDIATING,
    IncidentStatus.RESOLVED: EventKind.RESOLVED,
}

_UPDATABLE = frozenset({"severity", "title", "labels", "root_cause", "root_cause_reason", "last_signal_at",
                        "quiet_cycles", "started_at", "summary"})


def _labels(text: str | None) -> dict[str, str]:
    return json.loads(text) if text else {}


def _signal(row: sqlite3.Row) -> Signal:
    return Signal(
        series_id=row["series_id"], detector=row["detector"], metric=row["metric"], labels=_labels(row["labels"]),
        first_at=from_epoch(row["first_at"]), last_at=from_epoch(row["last_at"]), hits=row["hits"],
        peak_score=row["peak_score"], last_value=row["last_value"], last_expected=row["last_expected"],
        direction=row["direction"], explanation=row["explanation"], resolved_at=from_epoch(row["resolved_at"]),
        peak_at=from_epoch(row["peak_at"]), peak_value=row["peak_value"], peak_expected=row["peak_expected"],
        peak_lower=row["peak_lower"], peak_upper=row["peak_upper"], onset=row["onset"] or "")


def _incident(row: sqlite3.Row, signals: Sequence[Signal], episodes: Sequence[Episode] = ()) -> Incident:
    return Incident(
        id=row["id"], status=IncidentStatus(row["status"]), severity=Severity(row["severity"]), title=row["title"],
        labels=_labels(row["labels"]), started_at=from_epoch(row["started_at"]),
        detected_at=from_epoch(row["detected_at"]), updated_at=from_epoch(row["updated_at"]),
        acknowledged_at=from_epoch(row["acknowledged_at"]), acknowledged_by=row["acknowledged_by"],
        remediation_started_at=from_epoch(row["remediation_started_at"]),
        remediation_verified_at=from_epoch(row["remediation_verified_at"]),
        resolved_at=from_epoch(row["resolved_at"]), resolved_by=row["resolved_by"], resolution=row["resolution"],
        root_cause=row["root_cause"], root_cause_reason=row["root_cause_reason"], flapping=bool(row["flapping"]),
        reopened=row["reopened"], last_signal_at=from_epoch(row["last_signal_at"]), summary=row["summary"],
        signals=tuple(signals), quiet_cycles=row["quiet_cycles"], episodes=tuple(episodes))


def _event(row: sqlite3.Row) -> IncidentEvent:
    return IncidentEvent(id=row["id"], incident_id=row["incident_id"], ts=from_epoch(row["ts"]), kind=row["kind"],
                         actor=row["actor"], message=row["message"], details=json.loads(row["details"]))


def signal_key(series_id: str, detector: str) -> str:
    return f"{series_id}|{detector}"


# A hit scoring above the signal's peak brings its figures; one that began earlier, its start.
_PEAK_FIGURES = ("at", "value", "expected", "lower", "upper")
_NEW_PEAK = "{t}peak_score IS NULL OR {new_score} > {t}peak_score"
_UPSERT_SIGNAL = f"""
    INSERT INTO incident_signals (incident_id, signal_key, series_id, detector, metric, labels, first_at, last_at,
        hits, peak_score, last_value, last_expected, direction, explanation, resolved_at,
        peak_at, peak_value, peak_expected, peak_lower, peak_upper, onset)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (incident_id, signal_key) DO UPDATE SET
        first_at = min(incident_signals.first_at, excluded.first_at),
        onset = CASE WHEN excluded.first_at < incident_signals.first_at THEN excluded.onset
                ELSE incident_signals.onset END,
        last_at = max(incident_signals.last_at, excluded.last_at), hits = incident_signals.hits + 1,
        peak_score = max(coalesce(incident_signals.peak_score, excluded.peak_score), excluded.peak_score),
        {", ".join(f"peak_{f} = CASE WHEN {_NEW_PEAK.format(t='incident_signals.', new_score='excluded.peak_score')} "
                   f"THEN excluded.peak_{f} ELSE incident_signals.peak_{f} END"
                   for f in _PEAK_FIGURES)},
        last_value = excluded.last_value, last_expected = excluded.last_expected,
        direction = excluded.direction, explanation = excluded.explanation, resolved_at = NULL
    RETURNING hits
"""

# Parameters: first, onset, first, ts, then (score, figure) per peak figure, score, score, value,
# expected, direction, explanation, incident id, signal key (see ``_repeat_params``).
_REPEAT_SIGNAL = f"""
    UPDATE incident_signals SET
        onset = CASE WHEN ? < first_at THEN ? ELSE onset END,
        first_at = min(first_at, ?), last_at = max(last_at, ?), hits = hits + 1,
        {", ".join(f"peak_{f} = CASE WHEN {_NEW_PEAK.format(t='', new_score='?')} THEN ? ELSE peak_{f} END"
                   for f in _PEAK_FIGURES)},
        peak_score = max(coalesce(peak_score, ?), ?), last_value = ?, last_expected = ?, direction = ?,
        explanation = ?, resolved_at = NULL
    WHERE incident_id = ? AND signal_key = ?
"""

_INSERT_HIT = """
    INSERT INTO hits (ts, series_id, detector, entity, metric, labels, value, expected, lower, upper, score,
        direction, explanation, incident_id, recorded_at, began_at, onset)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


_T = TypeVar("_T")


def _parts(values: list[_T], size: int = 500) -> Iterator[list[_T]]:
    """``values`` in slices a bound ``IN (…)`` list can take."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _began(h: Hit) -> float:
    return to_epoch(h.first_at)


def _hit_signal_params(incident_id: int, h: Hit) -> tuple[Any, ...]:
    """``_UPSERT_SIGNAL``'s parameters for a hit: its figures are the peak's when it scores higher."""
    ts = to_epoch(h.ts)
    return (incident_id, signal_key(h.series_id, h.detector), h.series_id, h.detector, h.metric,
            dumps(dict(h.labels)), _began(h), ts, h.score, h.value, h.expected, str(h.direction), h.explanation,
            ts, h.value, h.expected, h.lower, h.upper, h.onset)


def _repeat_params(incident_id: int, h: Hit) -> tuple[Any, ...]:
    ts, first, score = to_epoch(h.ts), _began(h), h.score
    peaks = (ts, h.value, h.expected, h.lower, h.upper)
    return (first, h.onset, first, ts, *(x for figure in peaks for x in (score, figure)), score, score, h.value,
            h.expected, str(h.direction), h.explanation, incident_id, signal_key(h.series_id, h.detector))


class IncidentStore(EpisodeStore, ChangeStore, SilenceStore, StoreBase):
    """hits, incidents, their signals and timeline; changes and silences come from their mixins."""

    def _atomic(self) -> Any:
        """A transaction, or nothing inside one already: the hot paths of ingestion run many small
        writes inside one batch transaction, and a savepoint for each would double the statements."""
        return nullcontext() if getattr(self._local, "depth", 0) > 0 else self.transaction()

    def open_storms(self) -> set[int]:
        """The incidents not resolved that the correlator opened as storms (``aiops_storm``)."""
        rows = self.conn.execute("SELECT id FROM incidents WHERE status != 'resolved' AND "
                                 f"json_extract(labels, '$.{STORM_LABEL}') = 'true'")
        return {int(r[0]) for r in rows}

    def waiting_for_signals_of(self, detector: str) -> set[int]:
        """The incidents not resolved holding a signal of ``detector`` not resolved yet (an
        Alertmanager alert: only its ``resolved`` alert ends it, never quiet cycles)."""
        rows = self.conn.execute(
            "SELECT DISTINCT s.incident_id FROM incident_signals s JOIN incidents i ON i.id = s.incident_id "
            "WHERE i.status != 'resolved' AND s.detector = ? AND s.resolved_at IS NULL", (detector,))
        return {int(r[0]) for r in rows}

    def count_open_incidents(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM incidents WHERE status != 'resolved'").fetchone()
        return int(row[0])

    # -- reading ---------------------------------------------------------------------------

    def get_incident(self, incident_id: int, *, with_signals: bool = True) -> Incident | None:
        row = self.conn.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            return None
        if not with_signals:
            return _incident(row, ())
        return _incident(row, self.incident_signals(incident_id), self.incident_episodes(incident_id))

    def incident_signals(self, incident_id: int) -> list[Signal]:
        rows = self.conn.execute("SELECT * FROM incident_signals WHERE incident_id = ? ORDER BY first_at, signal_key",
                                 (incident_id,))
        return [_signal(r) for r in rows]

    def list_incidents(self, *, status: IncidentStatus | Iterable[IncidentStatus] | None = None,
                       since: datetime | None = None, limit: int | None = None,
                       without_signals_of: Collection[int] = ()) -> list[Incident]:
        """Newest first. ``since`` keeps incidents started at or after it, or still open. The
        incidents in ``without_signals_of`` come without their signals (a storm holding 100,000
        alerts is not read every cycle by a stage that needs none of them)."""
        sql = "SELECT * FROM incidents WHERE 1 = 1"
        params: list[Any] = []
        if status is not None:
            wanted = [IncidentStatus(status)] if isinstance(status, str) else [IncidentStatus(s) for s in status]
            sql += f" AND status IN ({', '.join('?' for _ in wanted)})"
            params += [s.value for s in wanted]
        if since is not None:
            sql += " AND (started_at >= ? OR status != 'resolved')"
            params.append(to_epoch(since))
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._incidents_of(self.conn.execute(sql, params).fetchall(), without_signals_of=without_signals_of)

    def get_incidents(self, incident_ids: Iterable[int]) -> list[Incident]:
        """``get_incident`` for many, in the order asked (those not found left out): three
        statements for a cycle's incidents, not three each."""
        ids = list(dict.fromkeys(incident_ids))
        rows = []
        for part in _parts(ids):
            rows += self.conn.execute(f"SELECT * FROM incidents WHERE id IN ({', '.join('?' for _ in part)})",
                                      part).fetchall()
        found = {r["id"]: r for r in rows}
        return self._incidents_of([found[i] for i in ids if i in found])

    def _incidents_of(self, rows: Sequence[Any], *, without_signals_of: Collection[int] = ()) -> list[Incident]:
        """Incidents of ``incidents`` rows, with their signals (but for ``without_signals_of``)
        and episodes."""
        signals: dict[int, list[Signal]] = {r["id"]: [] for r in rows}
        wanted_ids = [i for i in signals if i not in set(without_signals_of)]
        for part in _parts(wanted_ids):
            for s in self.conn.execute(
                    f"SELECT * FROM incident_signals WHERE incident_id IN ({', '.join('?' for _ in part)}) "
                    "ORDER BY first_at, signal_key", part):
                signals[s["incident_id"]].append(_signal(s))
        episodes = self.episodes_of(signals)
        return [_incident(r, signals[r["id"]], episodes[r["id"]]) for r in rows]

    def onset_at(self, incident_id: int, at: datetime) -> str | None:
        """How the start ``at`` of one of the incident's outages was found: the words of the hit
        that began there (None when no hit recorded any)."""
        row = self.conn.execute("SELECT onset FROM hits WHERE incident_id = ? AND began_at = ? AND onset != '' "
                                "ORDER BY id LIMIT 1", (incident_id, to_epoch(at))).fetchone()
        return row[0] if row else None

    def incident_marks(self, *, resolved_since: datetime, limit: int) -> list[IncidentMark]:
        """Open incidents and those resolved at or after ``resolved_since``, newest first, with
        their current outage's start: what a dashboard marks on its time axis."""
        rows = self.conn.execute(
            "SELECT i.id, i.severity, i.status, i.labels, e.started_at, i.resolved_at FROM incidents i "
            "JOIN incident_episodes e ON e.incident_id = i.id AND e.number = "
            "(SELECT max(number) FROM incident_episodes WHERE incident_id = i.id) "
            "WHERE i.status != 'resolved' OR i.resolved_at >= ? ORDER BY i.id DESC LIMIT ?",
            (to_epoch(resolved_since), limit)).fetchall()
        return [IncidentMark(id=r[0], severity=Severity(r[1]), status=IncidentStatus(r[2]), labels=_labels(r[3]),
                             started_at=from_epoch(r[4]), resolved_at=from_epoch(r[5])) for r in rows]

    def incident_events(self, incident_id: int) -> list[IncidentEvent]:
        rows = self.conn.execute("SELECT * FROM incident_events WHERE incident_id = ? ORDER BY ts, id", (incident_id,))
        return [_event(r) for r in rows]

    def events_since(self, after_id: int, *, limit: int = 1000) -> list[IncidentEvent]:
        """Timeline events of every incident with id above ``after_id``, oldest first (for notify)."""
        rows = self.conn.execute("SELECT * FROM incident_events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [_event(r) for r in rows]

    def incident_state(self, incident_id: int) -> tuple[IncidentStatus, Severity, datetime]:
        """(status, severity, started_at): what correlation needs to know, read cheaply."""
        row = self.conn.execute("SELECT status, severity, started_at FROM incidents WHERE id = ?",
                                (incident_id,)).fetchone()
        if row is None:
            raise UnknownIncidentError(incident_id)
        return IncidentStatus(row[0]), Severity(row[1]), from_epoch(row[2])

    def _row(self, incident_id: int) -> sqlite3.Row:
        row: sqlite3.Row | None = self.conn.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if row is None:
            raise UnknownIncidentError(incident_id)
        return row

    # -- writing the lifecycle ------------------------------------------------------------

    def open_incident(self, *, severity: Severity, title: str, labels: Mapping[str, str], started_at: datetime,
                      now: datetime, signals: Sequence[Signal] = (), actor: str = "agent",
                      root_cause: str | None = None, root_cause_reason: str | None = None,
                      keys: Iterable[str] = (), message: str | None = None) -> Incident:
        """A new open incident with its signals, its ``opened`` event and audit entry."""
        severity = Severity(severity)
        ts = to_epoch(now)
        last = max((s.last_at for s in signals), default=started_at)
        with self.transaction():
            incident_id = self._insert("incidents", {
                "status": IncidentStatus.OPEN.value, "severity": severity.value, "title": title,
                "labels": dumps(dict(labels)), "started_at": to_epoch(started_at), "detected_at": ts,
                "updated_at": ts, "last_signal_at": to_epoch(last), "root_cause": root_cause,
                "root_cause_reason": root_cause_reason})
            self._start_episode(incident_id, started_at=started_at, detected_at=now)
            for s in signals:
                self.conn.execute(_UPSERT_SIGNAL, self._signal_params(incident_id, s)).fetchall()
            self.set_incident_keys(incident_id, keys)
            self._write_event(incident_id, kind=EventKind.OPENED, actor=actor, message=message or f"opened: {title}",
                              details={"title": title}, now=now, labels=labels, severity=severity)
            self.audit(actor, "incident.open", f"incident:{incident_id}",
                       {"severity": severity.value, "title": title, "labels": dict(labels)}, now=now)
        incident = self.get_incident(incident_id)
        assert incident is not None
        return incident

    def transition_incident(self, incident_id: int, to: IncidentStatus, *, actor: str, reason: str, now: datetime,
                            resolution: str | None = None, flapping: bool = False,
                            started_at: datetime | None = None) -> Incident:
        """Move along ``model.TRANSITIONS``; anything else raises ``TransitionError``.

        A move to open from resolved starts a new episode, detected now, starting at
        ``started_at`` (the recurrence's first anomalous point; default now); ``flapping`` marks a
        recurrence inside the flap window."""
        to = IncidentStatus(to)
        ts = to_epoch(now)
        with self.transaction():
            row = self._row(incident_id)
            current = IncidentStatus(row["status"])
            if to not in TRANSITIONS[current]:
                allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
                why = "it already is" if to is current else f"from {current} it can move to {allowed}"
                raise TransitionError(f"incident #{incident_id}", current.value, to.value, why)
            values: dict[str, Any] = {"status": to.value, "updated_at": ts}
            kind = _EVENT_FOR.get(to, EventKind.STATUS_CHANGED)
            details: dict[str, Any] = {"from": current.value, "to": to.value, "reason": reason}
            episode: dict[str, Any] = {}
            if to is IncidentStatus.ACKNOWLEDGED:
                values.update(acknowledged_at=row["acknowledged_at"] or ts, acknowledged_by=row["acknowledged_by"] or actor)
                episode = {"acknowledged_at": values["acknowledged_at"], "acknowledged_by": values["acknowledged_by"]}
            elif to is IncidentStatus.REMEDIATING:
                values["remediation_started_at"] = row["remediation_started_at"] or ts
                episode = {"remediation_started_at": values["remediation_started_at"]}
            elif to is IncidentStatus.RESOLVED:
                values.update(resolved_at=ts, resolved_by=actor, resolution=resolution or "manual")
                details["resolution"] = values["resolution"]
                episode = {k: values[k] for k in ("resolved_at", "resolved_by", "resolution")}
            elif current is IncidentStatus.RESOLVED:  # reopening: a new outage of the same incident
                kind = EventKind.REOPENED
                values.update(resolved_at=None, resolved_by=None, resolution=None, reopened=row["reopened"] + 1,
                              quiet_cycles=0, acknowledged_at=None, acknowledged_by=None,
                              remediation_started_at=None, remediation_verified_at=None)
                if flapping:
                    values["flapping"] = 1
                details["flapping"] = bool(flapping or row["flapping"])
                details["episode"] = self._start_episode(incident_id, started_at=started_at or now, detected_at=now,
                                                         flapping=flapping)
            self._update("incidents", {"id": incident_id}, values)
            self._update_episode(incident_id, episode)
            message = f"{current.value} → {to.value}" + (f": {reason}" if reason else "")
            self._write_event(incident_id, kind=kind, actor=actor, message=message, details=details, now=now)
            self.audit(actor, f"incident.{to.value}", f"incident:{incident_id}", details, now=now)
        incident = self.get_incident(incident_id)
        assert incident is not None
        return incident

    def add_incident_event(self, incident_id: int, *, kind: str, actor: str, message: str,
                           details: Mapping[str, Any] | None = None, now: datetime) -> IncidentEvent:
        with self.transaction():
            self._row(incident_id)
            return self._write_event(incident_id, kind=kind, actor=actor, message=message, details=details, now=now)

    def _write_event(self, incident_id: int, *, kind: str, actor: str, message: str,
                     details: Mapping[str, Any] | None, now: datetime, labels: Mapping[str, str] | None = None,
                     severity: str | None = None) -> IncidentEvent:
        if labels is None or severity is None:
            row = self.conn.execute("SELECT labels, severity FROM incidents WHERE id = ?", (incident_id,)).fetchone()
            labels, severity = _labels(row["labels"]), row["severity"]
        body = {**dict(details or {}), "severity": str(severity)}
        if self._silence_for_event(labels, now) is not None:
            body["silenced"] = True
        ts = to_epoch(now)
        event_id = self._insert("incident_events", {"incident_id": incident_id, "ts": ts, "kind": str(kind),
                                                    "actor": actor, "message": message, "details": dumps(body)})
        return IncidentEvent(id=event_id, incident_id=incident_id, ts=now, kind=str(kind), actor=actor,
                             message=message, details=body)

    def set_remediation_times(self, incident_id: int, *, started_at: datetime | None = None,
                              verified_at: datetime | None = None, actor: str, now: datetime) -> None:
        """Record when remediation started and when its effect was verified (for MTTR and auto-resolve)."""
        values: dict[str, Any] = {"updated_at": to_epoch(now)}
        if started_at is not None:
            values["remediation_started_at"] = to_epoch(started_at)
        if verified_at is not None:
            values["remediation_verified_at"] = to_epoch(verified_at)
        details = {k: v for k, v in values.items() if k != "updated_at"}
        with self.transaction():
            self._row(incident_id)
            self._update("incidents", {"id": incident_id}, values)
            self._update_episode(incident_id, details)
            what = "verified" if verified_at is not None else "started"
            self._write_event(incident_id, kind=EventKind.REMEDIATION, actor=actor, message=f"remediation {what}",
                              details=details, now=now)
            self.audit(actor, "incident.remediation_times", f"incident:{incident_id}", details, now=now)

    def update_incident(self, incident_id: int, *, now: datetime, **fields: Any) -> None:
        """Correlation bookkeeping (title, labels, root cause, last signal, quiet cycles); no event."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"expected incident fields among {sorted(_UPDATABLE)}, found {sorted(unknown)}")
        values: dict[str, Any] = {"updated_at": to_epoch(now)}
        for key, value in fields.items():
            if isinstance(value, datetime):
                value = to_epoch(value)
            elif key == "labels":
                value = dumps(dict(value))
            elif key == "severity":
                value = Severity(value).value
            values[key] = value
        with self.transaction():
            self._update("incidents", {"id": incident_id}, values)
            if "started_at" in fields:
                self._sync_first_start(incident_id)

    def escalate_incident(self, incident_id: int, severity: Severity, *, actor: str, reason: str,
                          now: datetime) -> None:
        with self.transaction():
            row = self._row(incident_id)
            before = Severity(row["severity"])
            self._update("incidents", {"id": incident_id}, {"severity": Severity(severity).value,
                                                            "updated_at": to_epoch(now)})
            details = {"from": before.value, "to": Severity(severity).value, "reason": reason}
            self._write_event(incident_id, kind=EventKind.ESCALATED, actor=actor,
                              message=f"severity {before.value} → {Severity(severity).value}: {reason}",
                              details=details, now=now)
            self.audit(actor, "incident.escalate", f"incident:{incident_id}", details, now=now)

    # -- hits and signals -------------------------------------------------------------------

    @staticmethod
    def _signal_params(incident_id: int, s: Signal) -> tuple[Any, ...]:
        return (incident_id, s.key, s.series_id, s.detector, s.metric, dumps(dict(s.labels)), to_epoch(s.first_at),
                to_epoch(s.last_at), s.peak_score, s.last_value, s.last_expected, s.direction, s.explanation,
                to_epoch(s.peak_at), s.peak_value, s.peak_expected, s.peak_lower, s.peak_upper, s.onset)

    def record_hits(self, hits: Sequence[Hit], *, incident_id: int | None, now: datetime,
                    actor: str = "agent", events: bool = True) -> list[str]:
        """Store ``hits`` (pending ones with ``incident_id=None``) and fold them into the incident's
        signals; a signal new to the incident gets a ``signal_added`` event. Returns the new keys."""
        recorded = to_epoch(now)
        added: list[str] = []
        execute = self.conn.execute
        with self._atomic():
            for h in hits:
                ts, labels, direction = to_epoch(h.ts), dumps(dict(h.labels)), str(h.direction)
                began = _began(h)
                execute(_INSERT_HIT, (ts, h.series_id, h.detector, h.entity, h.metric, labels, h.value, h.expected,
                                      h.lower, h.upper, h.score, direction, h.explanation, incident_id, recorded,
                                      began, h.onset))
                if incident_id is None:
                    continue
                key = signal_key(h.series_id, h.detector)
                (count,) = execute(_UPSERT_SIGNAL, _hit_signal_params(incident_id, h)).fetchone()
                if count != 1:
                    continue
                added.append(key)
                if events:
                    self._write_event(incident_id, kind=EventKind.SIGNAL_ADDED, actor=actor,
                                      message=f"signal added: {h.metric or h.series_id} ({h.detector})",
                                      details={"series_id": h.series_id, "detector": h.detector}, now=now)
            if incident_id is not None and hits:
                execute("UPDATE incidents SET last_signal_at = max(coalesce(last_signal_at, 0), ?), updated_at = ?, "
                        "quiet_cycles = 0 WHERE id = ?", (max(to_epoch(h.ts) for h in hits), recorded, incident_id))
        return added

    def record_held_hits(self, hits: Sequence[Hit], *, incident_id: int, now: datetime) -> None:
        """``record_hits`` in bulk, without timeline events: what a storm incident holds (a few
        statements for any number of hits)."""
        if not hits:
            return
        recorded = to_epoch(now)
        rows, signals = [], []
        for h in hits:
            ts, labels, direction, began = to_epoch(h.ts), dumps(dict(h.labels)), str(h.direction), _began(h)
            rows.append((ts, h.series_id, h.detector, h.entity, h.metric, labels, h.value, h.expected, h.lower,
                         h.upper, h.score, direction, h.explanation, incident_id, recorded, began, h.onset))
            signals.append(_hit_signal_params(incident_id, h))
        with self._atomic():
            self.conn.executemany(_INSERT_HIT, rows)
            self.conn.executemany(_UPSERT_SIGNAL.replace("RETURNING hits", ""), signals)
            self.conn.execute("UPDATE incidents SET last_signal_at = max(coalesce(last_signal_at, 0), ?), "
                              "updated_at = ?, quiet_cycles = 0 WHERE id = ?",
                              (max(r[0] for r in rows), recorded, incident_id))

    def signal_holders(self, keys: Iterable[str], *, resolved_since: datetime) -> list[tuple[str, int, bool]]:
        """(signal key, incident id, resolved) of each incident holding one of ``keys`` that is
        open or resolved after ``resolved_since`` (``incident_with_signal`` for many keys)."""
        found = []
        for part in _parts(list(dict.fromkeys(keys))):
            rows = self.conn.execute(
                f"SELECT s.signal_key, i.id, i.status = 'resolved' FROM incident_signals s "
                f"JOIN incidents i ON i.id = s.incident_id WHERE s.signal_key IN ({', '.join('?' for _ in part)}) "
                f"AND (i.status != 'resolved' OR i.resolved_at >= ?)", [*part, to_epoch(resolved_since)])
            found += [(r[0], int(r[1]), bool(r[2])) for r in rows]
        return found

    def key_holders(self, keys: Iterable[str], *, resolved_since: datetime) -> list[tuple[str, int, bool, float]]:
        """(correlation key, incident id, resolved, its last signal's time or, resolved, its
        resolution's) of each incident sharing one of ``keys`` that is open or resolved after
        ``resolved_since`` (``incidents_with_keys`` for many hits)."""
        found = []
        for part in _parts(list(dict.fromkeys(keys))):
            rows = self.conn.execute(
                f"SELECT k.key, i.id, i.status = 'resolved', CASE WHEN i.status = 'resolved' THEN i.resolved_at "
                f"ELSE coalesce(i.last_signal_at, 0) END FROM incident_keys k JOIN incidents i ON i.id = k.incident_id "
                f"WHERE k.key IN ({', '.join('?' for _ in part)}) AND (i.status != 'resolved' OR i.resolved_at >= ?)",
                [*part, to_epoch(resolved_since)])
            found += [(r[0], int(r[1]), bool(r[2]), float(r[3])) for r in rows]
        return found

    def open_signal_owners(self, keys: Iterable[str]) -> dict[str, tuple[int, Severity, datetime]]:
        """Signal key → (incident id, severity, started_at) of the open incident holding it."""
        keys = list(dict.fromkeys(keys))
        owners: dict[str, tuple[int, Severity, datetime]] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = self.conn.execute(
                f"SELECT s.signal_key, i.id, i.severity, i.started_at FROM incident_signals s "
                f"JOIN incidents i ON i.id = s.incident_id "
                f"WHERE s.signal_key IN ({', '.join('?' for _ in part)}) AND i.status != 'resolved'", part)
            for key, incident_id, severity, started in rows:
                if key not in owners or owners[key][0] < incident_id:
                    owners[key] = (incident_id, Severity(severity), from_epoch(started))
        return owners

    def record_repeats(self, repeats: Sequence[tuple[int, Hit]], *, now: datetime) -> None:
        """Hits of signals their incidents already hold: rows written in bulk, no timeline events."""
        if not repeats:
            return
        recorded = to_epoch(now)
        rows, updates = [], []
        last: dict[int, float] = {}
        for incident_id, h in repeats:
            ts, direction = to_epoch(h.ts), str(h.direction)
            rows.append((ts, h.series_id, h.detector, h.entity, h.metric, dumps(dict(h.labels)), h.value, h.expected,
                         h.lower, h.upper, h.score, direction, h.explanation, incident_id, recorded, _began(h), h.onset))
            updates.append(_repeat_params(incident_id, h))
            last[incident_id] = max(last.get(incident_id, ts), ts)
        with self._atomic():
            self.conn.executemany(_INSERT_HIT, rows)
            self.conn.executemany(_REPEAT_SIGNAL, updates)
            for part in _parts(list(last)):  # one statement for the incidents of the cycle
                # typed: PostgreSQL cannot tell a bare parameter in a CASE is a number (REAL is 4 bytes there)
                cases = " ".join("WHEN ? THEN CAST(? AS DOUBLE PRECISION)" for _ in part)
                self.conn.execute(
                    f"UPDATE incidents SET last_signal_at = max(coalesce(last_signal_at, 0), CASE id {cases} END), "
                    f"updated_at = ?, quiet_cycles = 0 WHERE id IN ({', '.join('?' for _ in part)})",
                    [*(x for i in part for x in (i, last[i])), recorded, *part])

    def resolve_signal(self, incident_id: int, key: str, *, at: datetime, now: datetime, actor: str = "agent") -> bool:
        """Mark one signal resolved (an Alertmanager ``resolved`` alert); False when it already was."""
        with self._atomic():
            cursor = self.conn.execute(
                "UPDATE incident_signals SET resolved_at = ? WHERE incident_id = ? AND signal_key = ? "
                "AND resolved_at IS NULL", (to_epoch(at), incident_id, key))
            if cursor.rowcount == 0:
                return False
            self._write_event(incident_id, kind=EventKind.SIGNAL_RESOLVED, actor=actor,
                              message=f"signal resolved: {key}", details={"signal": key}, now=now)
        return True

    def unresolved_signal_count(self, incident_id: int) -> int:
        row = self.conn.execute("SELECT count(*) FROM incident_signals WHERE incident_id = ? AND resolved_at IS NULL",
                                (incident_id,)).fetchone()
        return int(row[0])

    def attach_pending_hits(self, series_id: str, detector: str, *, since: datetime, incident_id: int) -> None:
        """Hand the hits that waited for a persistence rule to the incident they finally opened."""
        with self.transaction():
            self.conn.execute(
                "UPDATE hits SET incident_id = ? WHERE series_id = ? AND detector = ? AND incident_id IS NULL "
                "AND recorded_at >= ?", (incident_id, series_id, detector, to_epoch(since)))
            row = self.conn.execute("SELECT coalesce(began_at, ts), onset FROM hits WHERE incident_id = ? "
                                    "AND series_id = ? AND detector = ? ORDER BY coalesce(began_at, ts), id LIMIT 1",
                                    (incident_id, series_id, detector)).fetchone()
            if row is not None:
                self.conn.execute("UPDATE incident_signals SET onset = CASE WHEN ? < first_at THEN ? ELSE onset END, "
                                  "first_at = min(first_at, ?) WHERE incident_id = ? AND signal_key = ?",
                                  (row[0], row[1], row[0], incident_id, signal_key(series_id, detector)))
                self.conn.execute("UPDATE incidents SET started_at = min(started_at, ?) WHERE id = ?",
                                  (row[0], incident_id))
                self._sync_first_start(incident_id)

    def pending_hits(self, *, since: datetime, other_than: str) -> list[tuple[int, Hit]]:
        """(row id, hit) of hits no incident holds, at or after ``since``, of series other than
        ``other_than``; oldest first."""
        rows = self.conn.execute(
            "SELECT id, ts, series_id, detector, entity, metric, labels, value, expected, lower, upper, score, "
            "direction, explanation, began_at, onset FROM hits WHERE incident_id IS NULL AND ts >= ? AND series_id != ? "
            "ORDER BY ts, id",
            (to_epoch(since), other_than)).fetchall()
        return [(int(r[0]), Hit(ts=from_epoch(r[1]), series_id=r[2], detector=r[3], entity=r[4], metric=r[5],
                                labels=_labels(r[6]), value=r[7], expected=r[8], lower=r[9], upper=r[10], score=r[11],
                                direction=Direction(r[12]), explanation=r[13], began_at=from_epoch(r[14]),
                                onset=r[15] or ""))
                for r in rows]

    def claim_hits(self, claimed: Sequence[tuple[int, Hit]], *, incident_id: int, now: datetime,
                   actor: str = "agent") -> None:
        """Give pending hits (from ``pending_hits``) to an incident, as signals of it."""
        with self._atomic():
            for row_id, h in claimed:
                self.conn.execute("UPDATE hits SET incident_id = ? WHERE id = ? AND incident_id IS NULL",
                                  (incident_id, row_id))
                began = _began(h)
                (count,) = self.conn.execute(_UPSERT_SIGNAL, _hit_signal_params(incident_id, h)).fetchone()
                if count == 1:
                    self._write_event(incident_id, kind=EventKind.SIGNAL_ADDED, actor=actor, now=now,
                                      message=f"signal added: {h.metric or h.series_id} ({h.detector}); it fired "
                                              "first and waited for a second signal",
                                      details={"series_id": h.series_id, "detector": h.detector})
                self.conn.execute("UPDATE incidents SET started_at = min(started_at, ?) WHERE id = ?",
                                  (began, incident_id))
            self._sync_first_start(incident_id)

    def pending_hit_cycles(self, series_id: str, detector: str, *, since: datetime) -> int:
        """Cycles since ``since`` in which this series and detector fired (for N-of-M rules)."""
        row = self.conn.execute(
            "SELECT count(DISTINCT recorded_at) FROM hits WHERE series_id = ? AND detector = ? AND recorded_at >= ?",
            (series_id, detector, to_epoch(since))).fetchone()
        return int(row[0])

    # -- finding the incident a hit belongs to ---------------------------------------------

    def set_incident_keys(self, incident_id: int, keys: Iterable[str]) -> None:
        self.conn.executemany("INSERT INTO incident_keys (incident_id, key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                              [(incident_id, k) for k in keys])

    def incident_with_signal(self, key: str, *, resolved_since: datetime | None = None) -> int | None:
        """The newest incident holding signal ``key`` that is open (or resolved after ``resolved_since``)."""
        row = self.conn.execute(
            "SELECT i.id FROM incident_signals s JOIN incidents i ON i.id = s.incident_id WHERE s.signal_key = ? "
            "AND (i.status != 'resolved' OR i.resolved_at >= ?) ORDER BY i.status = 'resolved', i.id DESC LIMIT 1",
            (key, to_epoch(resolved_since) if resolved_since else float("inf"))).fetchone()
        return int(row[0]) if row else None

    def incidents_with_keys(self, keys: Iterable[str], *, active_since: datetime,
                            resolved_since: datetime | None = None) -> list[tuple[int, str]]:
        """(id, status) of incidents sharing a correlation key: open ones whose last signal is at or
        after ``active_since`` first, then those resolved after ``resolved_since``; newest first."""
        keys = list(keys)
        if not keys:
            return []
        rows = self.conn.execute(
            f"SELECT DISTINCT i.id, i.status, i.status = 'resolved' AS resolved FROM incident_keys k "
            f"JOIN incidents i ON i.id = k.incident_id "
            f"WHERE k.key IN ({', '.join('?' for _ in keys)}) AND ((i.status != 'resolved' AND i.last_signal_at >= ?) "
            f"OR (i.status = 'resolved' AND i.resolved_at >= ?)) ORDER BY resolved, i.id DESC",
            [*keys, to_epoch(active_since), to_epoch(resolved_since) if resolved_since else float("inf")]).fetchall()
        return [(int(r[0]), r[1]) for r in rows]

    def remediation_outcome(self, incident_id: int) -> tuple[bool, bool]:
        """(a remediation ran, it was verified) in the incident's current episode, from its times and runs.

        Runs that never executed (check, shadow, waiting, expired, skipped, canceled) do not count."""
        row = self._row(incident_id)
        ran = row["remediation_started_at"] is not None
        verified = row["remediation_verified_at"] is not None
        # Only the current episode's runs: a run that fixed an earlier outage says nothing of this one.
        (since,) = self.conn.execute("SELECT max(detected_at) FROM incident_episodes WHERE incident_id = ?",
                                     (incident_id,)).fetchone()
        executed = self.conn.execute(
            "SELECT status FROM remediation_runs WHERE incident_id = ? AND mode IN ('apply', 'rollback') "
            "AND status NOT IN ('waiting_approval', 'approved', 'expired', 'pending', 'skipped', 'canceled', "
            "'suggested', 'shadow') AND requested_at >= ?", (incident_id, since or 0)).fetchall()
        ran = ran or bool(executed)
        verified = verified or any(r["status"] == "verified" for r in executed)
        return ran, verified

    def merge_incident(self, source_id: int, into_id: int, *, actor: str, reason: str, now: datetime) -> None:
        """Fold incident ``source_id`` into ``into_id``, one story instead of two: its signals (one
        both hold keeps the earliest start, the latest hit and both counts), hits and correlation
        keys move, the target starts at the earlier start, and the source resolves as ``merged``
        with a timeline event saying where it went."""
        with self.transaction():
            source, _ = self._row(source_id), self._row(into_id)
            self.conn.execute(
                "INSERT INTO incident_signals (incident_id, signal_key, series_id, detector, metric, labels, first_at, "
                "last_at, hits, peak_score, last_value, last_expected, direction, explanation, resolved_at) "
                "SELECT ?, signal_key, series_id, detector, metric, labels, first_at, last_at, hits, peak_score, "
                "last_value, last_expected, direction, explanation, resolved_at FROM incident_signals "
                "WHERE incident_id = ? ON CONFLICT (incident_id, signal_key) DO UPDATE SET "
                "first_at = min(incident_signals.first_at, excluded.first_at), "
                "last_at = max(incident_signals.last_at, excluded.last_at), hits = incident_signals.hits + excluded.hits, "
                "resolved_at = NULL", (into_id, source_id))
            moved = self.conn.execute("DELETE FROM incident_signals WHERE incident_id = ?", (source_id,)).rowcount
            self.conn.execute("UPDATE hits SET incident_id = ? WHERE incident_id = ?", (into_id, source_id))
            self.conn.execute("INSERT INTO incident_keys (incident_id, key) SELECT ?, key FROM incident_keys "
                              "WHERE incident_id = ? ON CONFLICT DO NOTHING", (into_id, source_id))
            self.conn.execute("DELETE FROM incident_keys WHERE incident_id = ?", (source_id,))
            self.conn.execute("UPDATE incidents SET started_at = min(started_at, ?), last_signal_at = "
                              "max(coalesce(last_signal_at, 0), coalesce(?, 0)), quiet_cycles = 0, updated_at = ? "
                              "WHERE id = ?", (source["started_at"], source["last_signal_at"], to_epoch(now), into_id))
            self._sync_first_start(into_id)
            self._write_event(into_id, kind="joined", actor=actor, now=now,
                              message=f"incident #{source_id} joined ({moved} signals): {reason}",
                              details={"incident": source_id, "title": source["title"], "signals": moved})
            self.transition_incident(source_id, IncidentStatus.RESOLVED, actor=actor, now=now, resolution="merged",
                                     reason=f"joined incident #{into_id}: {reason}")

