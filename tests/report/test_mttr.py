"""MTTD, MTTA and MTTR against figures computed by hand.

The six known incidents (tests/report/builders.py), in seconds:

    id  service  severity  MTTD  MTTA  MTTR   resolution
    A   api      critical    60   120   900   verified remediation (auto)
    B   api      critical   120   180  3600   manual
    C   db       warning     30     -  1200   quiet
    D   db       warning     90    60     -   acknowledged, never resolved
    E   (model)  warning    300     -  7200   remediation, not verified (so not auto)
    F   api      info        60     -     -   open (model: inference latency)

MTTD 30 60 60 90 120 300: mean 110, median 75, p90 = 120 + 0.5 x 180 = 210 (linear).
MTTA 60 120 180: mean 120, median 120, p90 = 120 + 0.8 x 60 = 168.
MTTR 900 1200 3600 7200: mean 3225, median 2400, p90 = 3600 + 0.7 x 3600 = 6120.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.report.mttr import GroupFigures, Stat, mttr_report
from agent.report.period import Period, period_since
from tests.report.builders import DAY, add_incident, add_reopen, known_incidents

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()  # a Monday
NOW = datetime(2026, 3, 10, tzinfo=timezone.utc)


def _period() -> Period:
    return period_since("30d", now=NOW)


@pytest.fixture
def known(store):
    return known_incidents(store, T0)


def test_totals_match_hand_computed_figures(store, known):
    report = mttr_report(store, _period(), now=NOW)
    assert report.total == GroupFigures(
        group="all", incidents=6, episodes=6, resolved=4, unresolved=2, acknowledged=3, auto_remediated=1, auto_share=0.25,
        mttd=Stat(n=6, mean_s=110.0, median_s=75.0, p90_s=210.0),
        mtta=Stat(n=3, mean_s=120.0, median_s=120.0, p90_s=168.0),
        mttr=Stat(n=4, mean_s=3225.0, median_s=2400.0, p90_s=pytest.approx(6120.0)))


def test_model_incidents_get_their_own_row(store, known):
    # E (drift, model label) and F (inference latency signal labelled model=churn).
    model = mttr_report(store, _period(), now=NOW).model
    assert (model.group, model.incidents, model.resolved, model.unresolved) == ("model incidents", 2, 1, 1)
    assert model.mttd == Stat(n=2, mean_s=180.0, median_s=180.0, p90_s=pytest.approx(276.0))
    assert model.mttr == Stat(n=1, mean_s=7200.0, median_s=7200.0, p90_s=7200.0)
    assert model.auto_share == 0.0


def test_by_service(store, known):
    groups = {g.group: g for g in mttr_report(store, _period(), by="service", now=NOW).groups}
    assert sorted(groups) == ["(none)", "api", "db"]
    api = groups["api"]  # A, B, F
    assert (api.incidents, api.resolved, api.unresolved, api.auto_share) == (3, 2, 1, 0.5)
    assert api.mttr == Stat(n=2, mean_s=2250.0, median_s=2250.0, p90_s=pytest.approx(3330.0))
    assert api.mtta == Stat(n=2, mean_s=150.0, median_s=150.0, p90_s=pytest.approx(174.0))
    db = groups["db"]  # C, D: D acknowledged but never resolved
    assert (db.incidents, db.unresolved, db.acknowledged) == (2, 1, 1)
    assert db.mttr == Stat(n=1, mean_s=1200.0, median_s=1200.0, p90_s=1200.0)
    assert db.mtta == Stat(n=1, mean_s=60.0, median_s=60.0, p90_s=60.0)


@pytest.mark.parametrize(("by", "expected"), [
    ("severity", {"critical": (2, 2250.0), "warning": (3, 4200.0), "info": (1, None)}),
    ("rule", {"restart-api": (1, 900.0), "retrain-churn": (1, 7200.0), "(none)": (4, 2400.0)}),
    ("detector", {"stl": (3, 2250.0), "iforest": (1, 1200.0), "drift": (1, 7200.0), "threshold": (1, None)}),
    ("model", {"churn": (2, 7200.0), "(none)": (4, 1900.0)}),
    ("week", {"2026-03-02": (6, 3225.0)}),
])
def test_other_groupings(store, known, by, expected):
    groups = mttr_report(store, _period(), by=by, now=NOW).groups
    assert {g.group: (g.incidents, g.mttr.mean_s) for g in groups} == expected


def test_verified_remediation_vs_by_hand_for_the_same_kind(store, known):
    report = mttr_report(store, _period(), now=NOW)
    # Only node_cpu_usage has both: A (auto, 900 s) and B (manual, 3600 s). C, E stand alone; D is open.
    assert [c.kind for c in report.comparison] == ["node_cpu_usage"]
    cpu = report.comparison[0]
    assert (cpu.auto.n, cpu.auto.mean_s, cpu.manual.n, cpu.manual.mean_s, cpu.speedup) == (1, 900.0, 1, 3600.0, 4.0)
    assert report.comparison_total.auto.mean_s == 900.0 and report.comparison_total.manual.mean_s == 3600.0


def test_period_bounds_choose_incidents_by_start(store, known):
    period = Period(since=datetime.fromtimestamp(T0 + DAY, timezone.utc),
                    until=datetime.fromtimestamp(T0 + 3 * DAY, timezone.utc))
    report = mttr_report(store, period, now=NOW)  # B and C only
    assert (report.total.incidents, report.total.mttr.mean_s) == (2, 2400.0)


def test_no_incidents_at_all(store):
    report = mttr_report(store, _period(), by="service", now=NOW)
    none = Stat(n=0, mean_s=None, median_s=None, p90_s=None)
    assert report.groups == ()
    assert report.total == GroupFigures(group="all", incidents=0, episodes=0, resolved=0, unresolved=0, acknowledged=0,
                                        auto_remediated=0, auto_share=None, mttd=none, mtta=none, mttr=none)
    assert report.model.incidents == 0 and report.comparison == ()
    assert report.comparison_total.speedup is None


def test_only_unresolved_incidents_are_counted_but_have_no_mttr(store):
    add_incident(store, started=T0, detected=T0 + 10, acked=T0 + 70)
    add_incident(store, started=T0, detected=T0 + 20)
    total = mttr_report(store, _period(), now=NOW).total
    assert (total.incidents, total.unresolved, total.resolved, total.auto_share) == (2, 2, 0, None)
    assert total.mttr == Stat(n=0, mean_s=None, median_s=None, p90_s=None)
    assert total.mtta == Stat(n=1, mean_s=60.0, median_s=60.0, p90_s=60.0)


def test_durations_across_dst_changes_are_exact(store):
    # Europe/Berlin springs forward at 2026-03-29 01:00 UTC and falls back at 2026-10-25 01:00 UTC;
    # wall-clock arithmetic would give 1 h and 0 h here. Epoch seconds give the real 2 h and 1 h.
    spring = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc).timestamp()
    autumn = datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc).timestamp()
    add_incident(store, started=spring, detected=spring + 60, resolved=spring + 7200, resolution="manual")
    add_incident(store, started=autumn, detected=autumn + 60, resolved=autumn + 3600, resolution="manual")
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    groups = mttr_report(store, period_since("2026-03-01", now=now), by="week", tz="Europe/Berlin", now=now).groups
    assert [(g.group, g.mttr.mean_s) for g in groups] == [("2026-03-23", 7200.0), ("2026-10-19", 3600.0)]


def test_weeks_follow_local_mondays_across_dst(store):
    # 2026-03-29 22:30 UTC is already Monday 00:30 in Berlin (after the change to CEST, +2 h),
    # but still Sunday in UTC: the week it belongs to depends on --tz, never on a 7 x 24 h step.
    before = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc).timestamp()
    after = datetime(2026, 3, 29, 22, 30, tzinfo=timezone.utc).timestamp()
    add_incident(store, started=before, detected=before + 60, resolved=before + 7200, resolution="manual")
    add_incident(store, started=after, detected=after + 60, resolved=after + 1800, resolution="manual")
    now = datetime(2026, 4, 5, tzinfo=timezone.utc)
    berlin = mttr_report(store, period_since("14d", now=now), by="week", tz="Europe/Berlin", now=now).groups
    utc = mttr_report(store, period_since("14d", now=now), by="week", tz="UTC", now=now).groups
    assert [(g.group, g.incidents, g.mttr.mean_s) for g in berlin] == [("2026-03-23", 1, 7200.0), ("2026-03-30", 1, 1800.0)]
    assert [(g.group, g.incidents, g.mttr.mean_s) for g in utc] == [("2026-03-23", 2, 4500.0)]


def test_a_reopened_incident_counts_each_outage_with_its_own_times(store):
    incident = add_incident(store, started=T0, detected=T0 + 10, resolved=T0 + 100, resolution="quiet")
    add_reopen(store, incident, started=T0 + 400, detected=T0 + 430, acked=T0 + 490, resolved=T0 + 700,
               resolution="manual")
    add_reopen(store, incident, started=T0 + 900, detected=T0 + 905)
    total = mttr_report(store, _period(), now=NOW).total
    assert (total.incidents, total.episodes, total.resolved, total.unresolved) == (1, 3, 2, 1)
    assert total.mttd == Stat(n=3, mean_s=15.0, median_s=10.0, p90_s=pytest.approx(26.0))
    assert total.mtta == Stat(n=1, mean_s=60.0, median_s=60.0, p90_s=60.0)
    assert total.mttr == Stat(n=2, mean_s=200.0, median_s=200.0, p90_s=pytest.approx(280.0))


def test_unknown_grouping_is_refused(store):
    with pytest.raises(ValueError, match=r"^expected a grouping among service, severity, rule, detector, model, week, found 'team'$"):
        mttr_report(store, _period(), by="team", now=NOW)


def test_figures_from_incidents_written_by_the_incident_store(any_store):
    """On both backends: the report's one scan, and a grouping that reads labels as JSON."""
    store = any_store
    from agent.flow.incidents import IncidentStatus, Severity, Signal

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(T0 + seconds, timezone.utc)

    signal = Signal(series_id="http_errors{service=shop}", detector="stl", metric="http_errors",
                    labels={"service": "shop"}, first_at=at(0), last_at=at(30))
    fixed = store.open_incident(severity=Severity.CRITICAL, title="errors up", labels={"service": "shop"},
                                started_at=at(0), now=at(45), signals=[signal])
    store.transition_incident(fixed.id, IncidentStatus.ACKNOWLEDGED, actor="cli:alice", reason="on it", now=at(105))
    store.set_remediation_times(fixed.id, started_at=at(120), actor="agent", now=at(120))
    store.set_remediation_times(fixed.id, verified_at=at(400), actor="agent", now=at(400))
    store.transition_incident(fixed.id, IncidentStatus.RESOLVED, actor="agent", reason="verified", now=at(420),
                              resolution="remediation")
    by_hand = store.open_incident(severity=Severity.CRITICAL, title="errors up", labels={"service": "shop"},
                                  started_at=at(DAY), now=at(DAY + 15), signals=[signal])
    store.transition_incident(by_hand.id, IncidentStatus.RESOLVED, actor="cli:bob", reason="restarted", now=at(DAY + 1815))
    report = mttr_report(store, _period(), by="service", now=NOW)
    (shop,) = report.groups
    assert (shop.group, shop.incidents, shop.resolved, shop.auto_remediated, shop.auto_share) == ("shop", 2, 2, 1, 0.5)
    assert shop.mttd == Stat(n=2, mean_s=30.0, median_s=30.0, p90_s=pytest.approx(42.0))
    assert shop.mtta == Stat(n=1, mean_s=60.0, median_s=60.0, p90_s=60.0)
    assert shop.mttr == Stat(n=2, mean_s=1117.5, median_s=1117.5, p90_s=pytest.approx(1675.5))  # 420 and 1815
    (errors,) = report.comparison
    assert (errors.kind, errors.auto.mean_s, errors.manual.mean_s) == ("http_errors", 420.0, 1815.0)


# -- what the report counts each episode by, kept on the episode (migration 51) ----------------

def _kept(store) -> list[tuple[int, int, str, int]]:
    return [tuple(r) for r in store.conn.execute(
        "SELECT e.incident_id, e.number, k.name, e.is_model FROM incident_episodes e "
        "JOIN report_kinds k ON k.id = e.kind_id ORDER BY e.incident_id, e.number")]


def _from_scratch(store) -> list[tuple[int, int, str, int]]:
    """The same, computed from the incidents, signals and labels by the weekly page's query."""
    frame = store.incident_times(0, 2e9)
    return sorted(zip(frame["id"].tolist(), frame["episode"].tolist(), frame["kind"].tolist(),
                      frame["is_model"].astype(int).tolist()))


def test_kind_and_model_flag_follow_the_incident_stores_writes(any_store):
    """On both backends: SQLite's own triggers on one, plpgsql trigger functions on the other."""
    store = any_store
    from agent.flow.incidents import IncidentStatus, Severity, Signal
    from detectors.base import Hit

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(T0 + seconds, timezone.utc)

    errors = Signal(series_id="http_errors{service=shop}", detector="stl", metric="http_errors",
                    labels={"service": "shop"}, first_at=at(100), last_at=at(130))
    incident = store.open_incident(severity=Severity.WARNING, title="errors up", labels={"service": "shop"},
                                   started_at=at(100), now=at(140), signals=[errors]).id
    assert _kept(store) == [(incident, 1, "http_errors", 0)]
    # a signal whose anomaly began earlier becomes the first signal: the kind follows it
    store.record_hits([Hit(series_id="queue_depth{service=shop}", detector="stl", ts=at(150), value=9.0, score=5.0,
                           metric="queue_depth", began_at=at(40))], incident_id=incident, now=at(160))
    assert _kept(store) == [(incident, 1, "queue_depth", 0)]
    store.record_hits([Hit(series_id="queue_depth{service=shop}", detector="stl", ts=at(210), value=9.0, score=5.0,
                           metric="queue_depth")], incident_id=incident, now=at(220))  # a repeat changes nothing
    store.update_incident(incident, labels={"service": "shop", "model": "ranker"}, now=at(230))
    assert _kept(store) == [(incident, 1, "queue_depth", 1)]
    store.transition_incident(incident, IncidentStatus.RESOLVED, actor="agent", reason="quiet", now=at(600),
                              resolution="quiet")
    store.transition_incident(incident, IncidentStatus.OPEN, actor="agent", reason="back", now=at(900))
    store.update_incident(incident, labels={"service": "shop"}, now=at(910))
    assert _kept(store) == [(incident, 1, "queue_depth", 0), (incident, 2, "queue_depth", 0)]
    store.record_hits([Hit(series_id="feature_x{model=ranker}", detector="drift", ts=at(950), value=0.4, score=3.0,
                           metric="feature_x", began_at=at(10))], incident_id=incident, now=at(960))
    assert _kept(store) == [(incident, 1, "feature_x", 1), (incident, 2, "feature_x", 1)]
    # a kind already named, reached through the signals' upsert (whose conflict clause the
    # trigger's statements inherit)
    other = store.open_incident(severity=Severity.WARNING, title="queue", labels={}, started_at=at(2000),
                                now=at(2010), signals=[]).id
    for ts, began in ((2020, 2020), (2040, 2005)):  # the second moves the signal's first_at back
        store.record_hits([Hit(series_id="queue_depth{service=pay}", detector="stl", ts=at(ts), value=9.0,
                               score=5.0, metric="queue_depth", began_at=at(began))], incident_id=other, now=at(ts))
    assert _kept(store)[-1] == (other, 1, "queue_depth", 0)
    assert _kept(store) == _from_scratch(store)
    with store.transaction():  # retention takes the signals away
        store.conn.execute("DELETE FROM incident_signals WHERE incident_id = ?", (incident,))
    assert _kept(store)[:2] == [(incident, 1, "(unknown)", 0), (incident, 2, "(unknown)", 0)]
    assert _kept(store) == _from_scratch(store)


STORE_0B36CDF = Path(__file__).resolve().parent.parent / "fixtures" / "stores" / "main-0b36cdf-reports.sqlite"


def test_a_store_written_before_migration_51_migrates_with_the_same_figures(tmp_path):
    """The fixture was written by main at 0b36cdf (migrations up to 50 and 70): the six known
    incidents and G, alerted as HighLoad without a signal, which reopened once. The figures
    asserted are the ones main's report gave over it."""
    from agent.report.mttr import incident_durations, report_from_frame
    from agent.store import Store

    path = tmp_path / "aiops.db"
    shutil.copy(STORE_0B36CDF, path)
    migrated = Store(path)
    try:
        assert 51 in {r[0] for r in migrated.query("SELECT number FROM migrations")}
        assert _kept(migrated) == [(1, 1, "node_cpu_usage", 0), (2, 1, "node_cpu_usage", 0), (3, 1, "disk_io", 0),
                                   (4, 1, "node_cpu_usage", 0), (5, 1, "feature_x", 1),
                                   (6, 1, "model_inference_latency_seconds", 1), (7, 1, "HighLoad", 0),
                                   (7, 2, "HighLoad", 0)]
        report = mttr_report(migrated, _period(), now=NOW)
        assert report.total == GroupFigures(
            group="all", incidents=7, episodes=8, resolved=6, unresolved=2, acknowledged=3, auto_remediated=1,
            auto_share=pytest.approx(1 / 6),
            mttd=Stat(n=8, mean_s=89.375, median_s=60.0, p90_s=pytest.approx(174.0)),
            mtta=Stat(n=3, mean_s=120.0, median_s=120.0, p90_s=168.0),
            mttr=Stat(n=6, mean_s=pytest.approx(2333.3333333), median_s=1050.0, p90_s=5400.0))
        assert (report.model.episodes, report.model.incidents, report.model.mttr.mean_s) == (2, 2, 7200.0)
        assert [(c.kind, c.auto.mean_s, c.manual.mean_s) for c in report.comparison] == [("node_cpu_usage", 900.0, 3600.0)]
        by_model = mttr_report(migrated, _period(), by="model", now=NOW).groups
        assert [(g.group, g.incidents, g.episodes, g.mttr.mean_s) for g in by_model] == [
            ("(none)", 5, 6, 1360.0), ("churn", 2, 2, 7200.0)]
        by_detector = mttr_report(migrated, _period(), by="detector", now=NOW).groups
        assert [(g.group, g.incidents, g.episodes, g.mttr.mean_s) for g in by_detector] == [
            ("(none)", 1, 2, 550.0), ("drift", 1, 1, 7200.0), ("iforest", 1, 1, 1200.0), ("stl", 3, 3, 2250.0),
            ("threshold", 1, 1, None)]
        # and the same as the weekly page's path, which computes kinds and flags afresh
        frame = incident_durations(migrated.incident_times(_period().since_s, _period().until_s))
        assert report_from_frame(frame, _period(), by=None, tz="UTC", now=NOW) == report
    finally:
        migrated.close()
