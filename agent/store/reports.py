"""Store methods for MTTR figures, reports and retention.

Reports read whole periods at once, so these methods return pandas frames (one row per
episode, series or playbook; columns documented per method) that the report code aggregates
without Python loops. Retention deletes in small batches, each its own short transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from agent.flow.runs import RunStatus
from agent.store.base import GENESIS, AuditBreak, StoreBase
from agent.store.ledger import LedgerDays
from agent.store.migrations import is_postgresql, migration, run_script

# What makes an incident a model incident (besides a `model` label): a drift detector, or a
# signal whose metric is about inference latency or model errors.
MODEL_DETECTORS = ("drift",)
MODEL_METRIC_LIKE = ("%inference%", "%prediction%", "%model%")

AUDIT_ANCHOR_FLAG = "audit.anchor"


def _label(column: str, name: str) -> str:
    """``json_extract`` of one label, skipped (NULL) by a cheap text search when it cannot be there."""
    return f"CASE WHEN instr({column}, '\"{name}\"') > 0 THEN json_extract({column}, '$.{name}') END"


def _model_of(s: str) -> str:
    """A model signal's model name ('' when it has none); NULL for any other signal. ``s``: the
    signal row's name in the query (``s``, a trigger's ``NEW``)."""
    return "CASE WHEN {s}.detector IN ({}) OR {} OR {} IS NOT NULL THEN coalesce({}, '') END".format(
        ", ".join(f"'{d}'" for d in MODEL_DETECTORS), " OR ".join(f"{s}.metric LIKE '{m}'" for m in MODEL_METRIC_LIKE),
        _label(f"{s}.labels", "model"), _label(f"{s}.labels", "model"), s=s)


_MODEL_OF_SIGNAL = _model_of("s")

_TIMES = ["started_at", "detected_at", "acknowledged_at", "resolved_at"]
INCIDENT_COLUMNS = [
    "id", "episode", "severity", "service", *_TIMES, "is_resolved", "is_auto", "detector", "kind", "rule", "is_model", "model"]

# Run outcomes that count as a playbook's success or failure; runs still in flight, skipped,
# suggested, shadowed, expired or canceled count as neither.
RUN_SUCCESS = (RunStatus.SUCCEEDED, RunStatus.VERIFIED)
RUN_FAILURE = (RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.NOT_FIXED, RunStatus.INTERRUPTED)



@migration(50, "reports: covering indexes for an incident's first signal and latest run")
def _report_indexes(conn: sqlite3.Connection) -> None:
    # The MTTR report looks up each episode's first signal and latest run: with these, each
    # lookup is one seek into an index that holds every column it reads.
    run_script(
        conn,
        """
        CREATE INDEX incident_signals_first ON incident_signals(incident_id, first_at, signal_key, metric, detector);
        CREATE INDEX runs_incident_latest ON remediation_runs(incident_id, requested_at, mode, rule);
        """,
    )


# What the MTTR report counts each episode by, kept on the episode itself (migration 51) so the
# report is one scan of ``incident_episodes``: ``kind_id`` names the kind (``report_kinds``),
# ``is_model`` flags a model incident. Triggers refresh both for every episode of an incident
# whenever what they derive from changes: a new episode, a signal added, changed or removed, the
# incident's labels. ``{x}`` is the incident's id in the trigger.
_KIND_OF = ("coalesce(nullif((SELECT s.metric FROM incident_signals s WHERE s.incident_id = {x} "
            "ORDER BY s.first_at, s.signal_key LIMIT 1), ''), "
            f"(SELECT {_label('i.labels', 'alertname')} FROM incidents i WHERE i.id = {{x}}), '(unknown)')")
_IS_MODEL = (f"coalesce((SELECT {_label('i.labels', 'model')} IS NOT NULL FROM incidents i WHERE i.id = {{x}}), 0) "
             "OR EXISTS (SELECT 1 FROM incident_signals s WHERE s.incident_id = {x} "
             f"AND ({_MODEL_OF_SIGNAL}) IS NOT NULL)")
# PostgreSQL has booleans: the same flag as an integer.
_IS_MODEL_PG = (f"(coalesce((SELECT {_label('i.labels', 'model')} IS NOT NULL FROM incidents i WHERE i.id = {{x}}), false) "
                "OR EXISTS (SELECT 1 FROM incident_signals s WHERE s.incident_id = {x} "
                f"AND ({_MODEL_OF_SIGNAL}) IS NOT NULL))::integer")
# Not INSERT OR IGNORE: in a trigger the firing statement's conflict clause (the signals' upsert)
# overrides the body's own.
_REFRESH = ("INSERT INTO report_kinds (name) SELECT k.name FROM (SELECT {kind} AS name) k "
            "WHERE NOT EXISTS (SELECT 1 FROM report_kinds r WHERE r.name = k.name); "
            "UPDATE incident_episodes SET kind_id = (SELECT id FROM report_kinds WHERE name = {kind}), "
            "is_model = {model} WHERE incident_id = {x};")
_SIGNAL_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in (
    "incident_id", "first_at", "signal_key", "metric", "detector", "labels"))
_TRIGGERS = {  # name: (event, when, the incident's id in it)
    "episodes_report_insert": ("AFTER INSERT ON incident_episodes", "", "NEW.incident_id"),
    "signals_report_insert": ("AFTER INSERT ON incident_signals", "", "NEW.incident_id"),
    # Only when something the report reads changed: every hit rewrites first_at (with its min)
    # and the hit counters, which decide nothing here.
    "signals_report_update": ("AFTER UPDATE ON incident_signals", _SIGNAL_CHANGED, "NEW.incident_id"),
    "signals_report_move": ("AFTER UPDATE OF incident_id ON incident_signals",
                            "OLD.incident_id IS NOT NEW.incident_id", "OLD.incident_id"),
    "signals_report_delete": ("AFTER DELETE ON incident_signals", "", "OLD.incident_id"),
    "incidents_report_labels": ("AFTER UPDATE OF labels ON incidents", "OLD.labels IS NOT NEW.labels", "NEW.id"),
}


@migration(51, "reports: each episode's kind and model flag, kept by triggers")
def _episode_kinds(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE report_kinds (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        ALTER TABLE incident_episodes ADD COLUMN kind_id INTEGER REFERENCES report_kinds(id);
        ALTER TABLE incident_episodes ADD COLUMN is_model INTEGER NOT NULL DEFAULT 0;
        """,
    )
    postgresql = is_postgresql(conn)
    is_model = _IS_MODEL_PG if postgresql else _IS_MODEL
    x = "incident_episodes.incident_id"
    conn.execute(f"INSERT INTO report_kinds (name) SELECT DISTINCT {_KIND_OF.format(x=x)} "
                 "FROM incident_episodes WHERE true ON CONFLICT (name) DO NOTHING")  # WHERE: SQLite's parser needs it
    conn.execute(f"UPDATE incident_episodes SET kind_id = (SELECT id FROM report_kinds WHERE name = "
                 f"{_KIND_OF.format(x=x)}), is_model = {is_model.format(x=x)}")
    for name, (event, when, x) in _TRIGGERS.items():
        body = _REFRESH.format(kind=_KIND_OF.format(x=x), model=is_model.format(x=x), x=x)
        if postgresql:  # a trigger runs a function there; SQLite's "a IS NOT b" is "IS DISTINCT FROM"
            when = when.replace(" IS NOT ", " IS DISTINCT FROM ")
            conn.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN "
                         f"IF {when or 'TRUE'} THEN {body} END IF; RETURN NULL; END $body$")
            conn.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW EXECUTE FUNCTION {name}()")
        else:  # one statement each: run_script would split the trigger's body at its semicolons
            conn.execute(f"CREATE TRIGGER {name} {event} {f'WHEN {when} ' if when else ''}BEGIN {body} END")


@migration(83, "reports: a new signal refreshes its incident's episodes only when it changes their kind")
def _signal_insert_in_constant_time(conn: sqlite3.Connection) -> None:
    # Migration 51's insert trigger looked through every signal of the incident for a model
    # signal, for every signal added: n signals added to one incident (a storm holding 100,000
    # alerts) cost n² reads. What a new signal can change: the kind, when it is the incident's
    # first (by first_at, then key: an index seek says), and the model flag, only to 1.
    postgresql = is_postgresql(conn)
    x = "NEW.incident_id"
    label = f"(SELECT {_label('i.labels', 'model')} IS NOT NULL FROM incidents i WHERE i.id = {x})"
    if postgresql:
        model = f"(is_model <> 0 OR coalesce({label}, false) OR ({_model_of('NEW')}) IS NOT NULL)::integer"
    else:
        model = f"(is_model OR coalesce({label}, 0) OR ({_model_of('NEW')}) IS NOT NULL)"
    first = ("NOT EXISTS (SELECT 1 FROM incident_signals s WHERE s.incident_id = NEW.incident_id AND "
             "(s.first_at < NEW.first_at OR (s.first_at = NEW.first_at AND s.signal_key < NEW.signal_key)))")
    when = f"{first} OR ({_model_of('NEW')}) IS NOT NULL"
    body = _REFRESH.format(kind=_KIND_OF.format(x=x), model=model, x=x)
    name, (event, _, _) = "signals_report_insert", _TRIGGERS["signals_report_insert"]
    if postgresql:  # a trigger's WHEN cannot hold a subquery there: the function asks
        conn.execute(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN "
                     f"IF {when} THEN {body} END IF; RETURN NULL; END $body$")
    else:
        conn.execute(f"DROP TRIGGER {name}")
        conn.execute(f"CREATE TRIGGER {name} {event} WHEN {when} BEGIN {body} END")


# Per grouping of the MTTR report, the SQL of an episode's group (``week`` is named in Python
# from ``started_at``); the columns they read are those of ``episode_figures``' query.
_FIRST_SIGNAL = ("(SELECT s.{} FROM incident_signals s WHERE s.incident_id = e.incident_id "
                 "ORDER BY s.first_at, s.signal_key LIMIT 1)")
_MODEL_SIGNAL = (f"(SELECT min(m.model) FROM (SELECT {_MODEL_OF_SIGNAL} AS model FROM incident_signals s "
                 "WHERE s.incident_id = e.incident_id) m WHERE m.model != '')")
GROUP_SQL = {
    "service": "coalesce(json_extract(i.labels, '$.service'), '(none)')",
    "severity": "i.severity",
    "rule": "coalesce((SELECT r.rule FROM remediation_runs r WHERE r.incident_id = e.incident_id "
            "AND r.mode != 'rollback' ORDER BY r.requested_at DESC, r.id DESC LIMIT 1), '(none)')",
    "detector": f"coalesce({_FIRST_SIGNAL.format('detector')}, '(none)')",
    "model": f"coalesce({_label('i.labels', 'model')}, {_MODEL_SIGNAL}, '(none)')",
    "week": "NULL",
}
# Bits of ``episode_figures``' ``flags``; FIRST marks an incident's first episode in the period,
# so counting FIRST counts distinct incidents.
RESOLVED, AUTO, MODEL, FIRST = 1, 2, 4, 8
_FIGURES = np.dtype([("id", "float64"), ("started_at", "float64"), ("group", object), ("kind", object),
                     ("flags", "int64"), ("mttd", "float64"), ("mtta", "float64"), ("mttr", "float64")])


class ReportStore(StoreBase):
    """MTTR figures, reports and retention."""

    # -- reading for reports ---------------------------------------------------------------

    def incident_times(self, since_s: float, until_s: float) -> pd.DataFrame:
        """Episodes (outages) that started in ``[since_s, until_s)``, one row each, times as epoch
        seconds: an incident that reopened has a row per outage, each with its own times.

        Columns: ``INCIDENT_COLUMNS`` (``id`` is the incident's, ``episode`` its number). ``detector`` and ``kind`` (the metric) come from the
        incident's first signal, ``rule`` from its latest non-rollback run, ``model`` from a
        ``model`` label on the incident or a model signal; ``(none)`` where there is none.
        Three plain range queries joined in pandas: much faster than window functions in SQL.
        """
        period = (since_s, until_s)
        # A period that covers most episodes reads faster as a table scan than through the
        # started_at index ("+" keeps SQLite off the index).
        started = ("+" if self._mostly_covers(since_s, until_s) else "") + "e.started_at"
        incidents = self._frame(
            "SELECT i.id, e.number, i.severity, coalesce(json_extract(i.labels, '$.service'), '(none)'), "
            "e.started_at, e.detected_at, e.acknowledged_at, e.resolved_at, e.resolved_at IS NOT NULL, "
            "e.resolved_at IS NOT NULL AND e.resolution = 'remediation' AND e.remediation_verified_at IS NOT NULL, "
            f"{_label('i.labels', 'model')}, {_label('i.labels', 'alertname')} "
            f"FROM incident_episodes e JOIN incidents i ON i.id = e.incident_id "
            f"WHERE {started} >= ? AND {started} < ?", period,
            ["id", "episode", "severity", "service", *_TIMES, "is_resolved", "is_auto", "label_model", "alertname"])
        where = ("WHERE incidents.id IN (SELECT incident_id FROM incident_episodes "
                 "WHERE started_at >= ? AND started_at < ?)")
        signals = self._frame(
            f"SELECT s.incident_id, s.first_at, s.signal_key, s.detector, s.metric, {_MODEL_OF_SIGNAL} "
            f"FROM incident_signals s JOIN incidents ON incidents.id = s.incident_id {where}", period,
            ["id", "first_at", "signal_key", "detector", "metric", "model"])
        runs = self._frame(
            "SELECT r.incident_id, r.requested_at, r.id, r.rule "
            f"FROM remediation_runs r JOIN incidents ON incidents.id = r.incident_id {where} "
            "AND r.mode != 'rollback'", period,
            ["id", "requested_at", "run_id", "rule"])
        incidents = incidents.sort_values(["started_at", "id", "episode"], kind="stable", ignore_index=True)
        first = signals.sort_values(["id", "first_at", "signal_key"]).drop_duplicates("id")
        model_ids = signals.loc[signals["model"].notna(), "id"].unique()
        named = signals[signals["model"].notna() & (signals["model"] != "")]
        model_signals = named.sort_values(["id", "model"]).drop_duplicates("id").set_index("id")["model"]
        last_run = runs.sort_values(["id", "requested_at", "run_id"]).drop_duplicates("id", keep="last")
        frame = (incidents
                 .merge(first[["id", "detector", "metric"]], on="id", how="left")
                 .merge(last_run[["id", "rule"]], on="id", how="left"))
        modelled = frame["id"].map(model_signals)
        frame["is_model"] = frame["label_model"].notna() | frame["id"].isin(model_ids)
        frame["model"] = frame["label_model"].fillna(modelled).fillna("(none)")
        frame["kind"] = frame["metric"].replace("", np.nan).fillna(frame["alertname"]).fillna("(unknown)")
        frame["detector"] = frame["detector"].fillna("(none)")
        frame["rule"] = frame["rule"].fillna("(none)")
        for column in _TIMES:
            frame[column] = frame[column].astype("float64")
        frame["is_resolved"] = frame["is_resolved"].astype(bool)
        frame["is_auto"] = frame["is_auto"].astype(bool)
        return frame[INCIDENT_COLUMNS]

    def episode_figures(self, since_s: float, until_s: float, *, by: str | None = None) -> pd.DataFrame:
        """What the MTTR report aggregates, per episode that started in ``[since_s, until_s)``,
        decided in one SQL pass (``incident_times`` defines each column the same way).

        Columns: ``id`` (the incident) and ``started_at`` (epoch seconds; both NaN unless ``by`` is
        the week), ``group`` (by ``GROUP_SQL[by]``; None without ``by``), ``kind`` (categorical,
        its categories sorted), ``flags`` (``RESOLVED | AUTO | MODEL | FIRST`` bits), and the
        durations ``mttd``, ``mtta``, ``mttr`` in seconds (NaN where undefined).

        Without ``by`` (and by week) it is one scan of ``incident_episodes``, whose kind and model
        flag triggers keep (migration 51), and each row is four numbers: kind and flags travel
        packed in one integer.
        """
        started = ("+" if self._mostly_covers(since_s, until_s) else "") + "e.started_at"
        # id and started_at only where the week needs them: each value read is a Python object
        per_episode = ["e.incident_id", "e.started_at"] if by == "week" else []
        group = [GROUP_SQL[by]] if by and by != "week" else []
        joined = "JOIN incidents i ON i.id = e.incident_id " if group else ""
        fields = [("id", "float64"), ("started_at", "float64")] if per_episode else []
        fields += [("group", object)] if group else []
        cursor = self.conn.cursor()
        cursor.row_factory = None
        cursor.execute(
            f"SELECT {', '.join([*per_episode, *group, ''])}"
            # CASE, not a truth value times a bit: PostgreSQL's booleans do not multiply
            f"coalesce(e.kind_id, 0) * 16 + CASE WHEN e.resolved_at IS NOT NULL THEN {RESOLVED} ELSE 0 END "
            f"+ CASE WHEN e.resolved_at IS NOT NULL AND e.resolution = 'remediation' "
            f"AND e.remediation_verified_at IS NOT NULL THEN {AUTO} ELSE 0 END "
            f"+ CASE WHEN e.is_model != 0 THEN {MODEL} ELSE 0 END "
            # episodes of an incident start in number order: an earlier one in the period started
            # before this one, so only the period's start needs checking
            f"+ CASE WHEN e.number = 1 OR NOT EXISTS (SELECT 1 FROM incident_episodes p "
            f"WHERE p.incident_id = e.incident_id AND p.number < e.number AND p.started_at >= ?) THEN {FIRST} "
            "ELSE 0 END, "
            "e.detected_at - e.started_at, e.acknowledged_at - e.detected_at, e.resolved_at - e.started_at "
            f"FROM incident_episodes e {joined}WHERE {started} >= ? AND {started} < ?", (since_s, since_s, until_s))
        # Straight from the cursor into typed columns (NULL becomes NaN): no list of row tuples.
        rows = np.fromiter(cursor, dtype=np.dtype([*fields, ("packed", "int64"), ("mttd", "float64"),
                                                   ("mtta", "float64"), ("mttr", "float64")]))
        packed = rows["packed"]
        frame = pd.DataFrame({
            "id": rows["id"] if per_episode else np.nan, "started_at": rows["started_at"] if per_episode else np.nan,
            "group": rows["group"] if group else None, "kind": self._kinds(packed >> 4), "flags": packed & 15,
            "mttd": rows["mttd"], "mtta": rows["mtta"], "mttr": rows["mttr"]}, index=pd.RangeIndex(len(rows)))
        return frame

    def _kinds(self, kind_ids: np.ndarray) -> pd.Categorical:
        """Kind ids (``report_kinds``) as a categorical of their names, categories sorted."""
        rows = self.conn.execute("SELECT id, name FROM report_kinds").fetchall()
        names = sorted({str(name) for _, name in rows} | {"(unknown)"})
        code_of = np.zeros(max([0, *(i for i, _ in rows)]) + 1, dtype="int64")
        code_of[:] = names.index("(unknown)")  # an id without a name (none is expected)
        for kind_id, name in rows:
            code_of[kind_id] = names.index(str(name))
        return pd.Categorical.from_codes(code_of[kind_ids], categories=names)

    def _mostly_covers(self, since_s: float, until_s: float) -> bool:
        """Whether ``[since_s, until_s)`` spans more than a third of the incidents' time range."""
        first, last = self.conn.execute("SELECT min(started_at), max(started_at) FROM incident_episodes").fetchone()
        if first is None or last <= first:
            return True
        overlap = min(until_s, last) - max(since_s, first)
        return overlap / (last - first) > 1 / 3

    def _frame(self, sql: str, params: Any, columns: list[str]) -> pd.DataFrame:
        """A query's rows as a frame (plain tuples: sqlite3.Row costs too much per row here)."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return pd.DataFrame.from_records(cursor.execute(sql, params).fetchall(), columns=columns)

    def open_incident_rows(self) -> pd.DataFrame:
        """Every incident not yet resolved: id, status, severity, title, service, started_at."""
        rows = self.conn.execute(
            "SELECT id, status, severity, title, coalesce(json_extract(labels, '$.service'), '(none)') AS service, "
            "started_at, acknowledged_by FROM incidents WHERE status != 'resolved' ORDER BY started_at").fetchall()
        return pd.DataFrame.from_records(
            [tuple(r) for r in rows],
            columns=["id", "status", "severity", "title", "service", "started_at", "acknowledged_by"])

    def noisy_signals(self, since_s: float, until_s: float, *, limit: int = 15) -> pd.DataFrame:
        """The series and detectors in the most incidents of the period (the alert-fatigue view).

        Columns: series_id, detector, metric, incidents, pages (critical incidents), hits.
        """
        rows = self.conn.execute(
            """
            SELECT s.series_id, s.detector, max(s.metric) AS metric, count(DISTINCT i.id) AS incidents,
                   count(DISTINCT CASE WHEN i.severity = 'critical' THEN i.id END) AS pages,
                   sum(s.hits) AS hits
            FROM incident_signals s JOIN incidents i ON i.id = s.incident_id
            WHERE i.started_at >= ? AND i.started_at < ?
            GROUP BY s.series_id, s.detector
            ORDER BY incidents DESC, pages DESC, hits DESC, s.series_id, s.detector LIMIT ?
            """, (since_s, until_s, limit)).fetchall()
        return pd.DataFrame.from_records(
            [tuple(r) for r in rows], columns=["series_id", "detector", "metric", "incidents", "pages", "hits"])

    def run_outcomes(self, since_s: float, until_s: float) -> pd.DataFrame:
        """Remediation runs requested in the period, per playbook and mode.

        Columns: playbook, mode, runs, succeeded, failed (see RUN_SUCCESS / RUN_FAILURE).
        """
        ok = ", ".join("?" for _ in RUN_SUCCESS)
        bad = ", ".join("?" for _ in RUN_FAILURE)
        rows = self.conn.execute(
            f"""
            SELECT playbook, mode, count(*) AS runs,
                   sum(status IN ({ok})) AS succeeded, sum(status IN ({bad})) AS failed
            FROM remediation_runs WHERE requested_at >= ? AND requested_at < ?
            GROUP BY playbook, mode ORDER BY playbook, mode
            """, (*RUN_SUCCESS, *RUN_FAILURE, since_s, until_s)).fetchall()
        return pd.DataFrame.from_records(
            [tuple(r) for r in rows], columns=["playbook", "mode", "runs", "succeeded", "failed"])

    def model_health(self, since_s: float, until_s: float) -> pd.DataFrame:
        """Per model over the period: its drift hits (the drift detector's hit value is the share
        of the model's features that drifted) and its inference latency P95.

        Latency comes from the store's sample history of series labelled ``model`` whose metric
        mentions latency: a histogram's 0.95-quantile series (the mean of its per-interval P95s)
        when there is one, else the 95th percentile of the plain values; NaN without samples.
        Columns: model, drift_hits, drift_peak, drift_mean, latency_p95 (seconds).
        """
        drift = self._frame(
            "SELECT coalesce(json_extract(labels, '$.model'), entity, series_id), value FROM hits "
            "WHERE detector IN ('drift') AND ts >= ? AND ts < ?", (since_s, until_s), ["model", "value"])
        candidates = self.conn.execute(
            """
            SELECT series_id, json_extract(labels, '$.model') AS model, kind = 'quantile' AS is_p95 FROM series
            WHERE json_extract(labels, '$.model') IS NOT NULL AND metric LIKE '%latency%'
              AND kind != 'bucket' AND metric NOT LIKE '%\\_bucket' ESCAPE '\\'
              AND (kind != 'quantile' OR json_extract(labels, '$.quantile') = '0.95')
            """).fetchall()
        found = self.sample_history(since_s, until_s, [r["series_id"] for r in candidates])
        found = found[(found["ts"] < until_s) & found["value"].notna()]
        about = pd.DataFrame([tuple(r) for r in candidates], columns=["series_id", "model", "is_p95"])
        latency = found.merge(about, on="series_id")[["model", "is_p95", "value"]]
        drift["value"] = drift["value"].astype("float64")
        latency["value"] = latency["value"].astype("float64")
        by_model = drift.groupby("model")["value"]
        p95_series = latency[latency["is_p95"] == 1].groupby("model")["value"].mean()
        plain = latency[latency["is_p95"] != 1].groupby("model")["value"].quantile(0.95)
        frame = pd.DataFrame({"drift_hits": by_model.size(), "drift_peak": by_model.max(),
                              "drift_mean": by_model.mean(), "latency_p95": p95_series.combine_first(plain)})
        frame["drift_hits"] = frame["drift_hits"].fillna(0).astype(int)
        return frame.rename_axis("model").reset_index().sort_values("model", ignore_index=True)

    # -- audit: export and a verification that survives pruning ------------------------------

    def audit_rows(self, since_s: float, until_s: float) -> Iterator[tuple[Any, ...]]:
        """(id, ts, actor, action, subject, details JSON text, prev_hash, hash), oldest first."""
        yield from self.conn.execute(
            "SELECT id, ts, actor, action, subject, details, prev_hash, hash FROM audit "
            "WHERE ts >= ? AND ts < ? ORDER BY id", (since_s, until_s))

    def audit_anchor(self) -> tuple[int, str]:
        """The id and hash of the last entry retention deleted (``(0, GENESIS)`` when none)."""
        value = self.get_flag(AUDIT_ANCHOR_FLAG)
        if not value:
            return 0, GENESIS
        anchor = json.loads(value)
        return int(anchor["id"]), str(anchor["hash"])

    def verify_audit_chain(self) -> AuditBreak | None:
        """Like ``verify_audit``, but the chain starts at the retention anchor when old entries
        were pruned (the prune entry itself records that anchor, so it cannot be moved quietly)."""
        _, prev = self.audit_anchor()
        return self.verify_audit(start_hash=prev)

    def count_audit(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM audit").fetchone()[0])

    # -- retention: each call deletes at most ``limit`` rows in one short transaction ---------

    def prune_hits(self, before_s: float, limit: int) -> int:
        with self.transaction() as conn:
            return conn.execute(
                "DELETE FROM hits WHERE id IN (SELECT id FROM hits WHERE ts < ? ORDER BY ts LIMIT ?)",
                (before_s, limit)).rowcount

    def prune_runs(self, before_s: float, limit: int) -> int:
        """Finished runs that ended before ``before_s`` (their rollbacks lose the parent link)."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM remediation_runs WHERE ended_at IS NOT NULL AND ended_at < ? ORDER BY id LIMIT ?",
                (before_s, limit))]
            if not ids:
                return 0
            marks = ", ".join("?" for _ in ids)
            with LedgerDays(conn).tracked(ids):  # the ledger forgets them, as it would reading the runs
                conn.execute(f"UPDATE remediation_runs SET parent_id = NULL WHERE parent_id IN ({marks})", ids)
                return int(conn.execute(f"DELETE FROM remediation_runs WHERE id IN ({marks})", ids).rowcount)

    def prune_incidents(self, before_s: float, limit: int) -> int:
        """Incidents resolved before ``before_s`` with no remediation run kept, and what hangs
        off them (signals, timeline, their hits, delivered notifications)."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM incidents i WHERE status = 'resolved' AND resolved_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM remediation_runs r WHERE r.incident_id = i.id) ORDER BY id LIMIT ?",
                (before_s, limit))]
            if not ids:
                return 0
            marks = ", ".join("?" for _ in ids)
            # Every table whose foreign key points at incidents (signals, timeline, keys, hits,
            # and any added later), plus the outbox, which refers to incidents without one.
            for table, column in [*self._references("incidents"), ("outbox", "incident_id")]:
                conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
            return conn.execute(f"DELETE FROM incidents WHERE id IN ({marks})", ids).rowcount

    def _references(self, target: str) -> list[tuple[str, str]]:
        """(table, column) of the foreign keys to ``target``, read from the schema itself."""
        return [(table.name, key.column) for table in sorted(self.db.tables, key=lambda t: t.name)
                if table.name != "remediation_runs" for key in table.foreign_keys if key.other_table == target]

    def prune_audit(self, before_s: float, limit: int, *, now_s: float) -> int:
        """The oldest entries written before ``before_s``: always a prefix of the chain, and the
        last deleted entry becomes the anchor ``verify_audit_chain`` starts from."""
        with self.transaction() as conn:
            prefix: list[tuple[int, str]] = []
            for row_id, ts, digest in conn.execute("SELECT id, ts, hash FROM audit ORDER BY id LIMIT ?", (limit,)):
                if ts >= before_s:
                    break
                prefix.append((row_id, digest))
            if not prefix:
                return 0
            last_id, last_hash = prefix[-1]
            conn.execute(
                "INSERT INTO flags (name, value, updated_at, updated_by) VALUES (?, ?, ?, 'retention') "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (AUDIT_ANCHOR_FLAG, json.dumps({"id": last_id, "hash": last_hash}), now_s))
            return conn.execute("DELETE FROM audit WHERE id <= ?", (last_id,)).rowcount
