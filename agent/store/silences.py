"""Store methods for silences: label matchers that suppress paging for a while."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime

from agent.clock import from_epoch, to_epoch
from agent.errors import AiopsError, TransitionError
from agent.flow.incidents import EventKind, Matcher, MatchOp, Silence
from agent.store.base import StoreBase, dumps


class UnknownSilenceError(AiopsError):
    def __init__(self, silence_id: int) -> None:
        self.silence_id = silence_id
        super().__init__(f"no silence #{silence_id}")


def _silence(row: sqlite3.Row) -> Silence:
    matchers = tuple(Matcher(name=m["name"], op=MatchOp(m["op"]), value=m["value"]) for m in json.loads(row["matchers"]))
    return Silence(id=row["id"], matchers=matchers, starts_at=from_epoch(row["starts_at"]),
                   ends_at=from_epoch(row["ends_at"]), reason=row["reason"], created_by=row["created_by"],
                   created_at=from_epoch(row["created_at"]), expired_at=from_epoch(row["expired_at"]))


class SilenceStore(StoreBase):
    """silences (part of the incidents store; the timeline events come from ``IncidentStore``)."""

    def add_silence(self, matchers: Sequence[Matcher], *, starts_at: datetime, ends_at: datetime, reason: str,
                    actor: str, now: datetime) -> Silence:
        """Record a silence; every open incident it covers now gets a ``silenced`` event."""
        body = [{"name": m.name, "op": m.op.value, "value": m.value} for m in matchers]
        self._local.silences = None
        with self.transaction():
            silence_id = self._insert("silences", {
                "matchers": dumps(body), "starts_at": to_epoch(starts_at), "ends_at": to_epoch(ends_at),
                "reason": reason, "created_by": actor, "created_at": to_epoch(now)})
            silence = Silence(id=silence_id, matchers=tuple(matchers), starts_at=starts_at, ends_at=ends_at,
                              reason=reason, created_by=actor, created_at=now)
            self.audit(actor, "silence.add", f"silence:{silence_id}",
                       {"matchers": [str(m) for m in matchers], "starts_at": starts_at, "ends_at": ends_at,
                        "reason": reason}, now=now)
            if silence.active_at(now):
                for row in self.conn.execute("SELECT id, labels FROM incidents WHERE status != 'resolved'").fetchall():
                    if silence.matches(json.loads(row["labels"] or "{}")):
                        self._write_event(row["id"], kind=EventKind.SILENCED, actor=actor,
                                          message=f"silenced by #{silence_id}: {reason}",
                                          details={"silence_id": silence_id}, now=now)
        return silence

    def get_silence(self, silence_id: int) -> Silence | None:
        row = self.conn.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
        return _silence(row) if row else None

    def list_silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        """All silences, newest first; with ``active_at`` only those in force then."""
        if active_at is None:
            rows = self.conn.execute("SELECT * FROM silences ORDER BY id DESC")
        else:
            at = to_epoch(active_at)
            rows = self.conn.execute(
                "SELECT * FROM silences WHERE starts_at <= ? AND ends_at > ? AND (expired_at IS NULL OR expired_at > ?) "
                "ORDER BY id DESC", (at, at, at))
        return [_silence(r) for r in rows]

    def _silence_for_event(self, labels: Mapping[str, str], now: datetime) -> Silence | None:
        """``silence_for`` with the active silences read once per ``now`` (a batch of events shares
        one ``now`` inside one write transaction, so no other process can add a silence meanwhile)."""
        cached = getattr(self._local, "silences", None)
        if cached is None or cached[0] != now:
            cached = (now, self.list_silences(active_at=now))
            self._local.silences = cached
        return next((s for s in cached[1] if s.matches(labels)), None)

    def silence_for(self, labels: Mapping[str, str], *, at: datetime) -> Silence | None:
        for silence in self.list_silences(active_at=at):
            if silence.matches(labels):
                return silence
        return None

    def expire_silence(self, silence_id: int, *, actor: str, now: datetime) -> Silence:
        self._local.silences = None
        with self.transaction():
            silence = self.get_silence(silence_id)
            if silence is None:
                raise UnknownSilenceError(silence_id)
            if not silence.active_at(now) and silence.expired_at is not None:
                raise TransitionError(f"silence #{silence_id}", "expired", "expired", "it already is")
            self._update("silences", {"id": silence_id}, {"expired_at": to_epoch(now)})
            self.audit(actor, "silence.expire", f"silence:{silence_id}", {}, now=now)
        expired = self.get_silence(silence_id)
        assert expired is not None
        return expired
