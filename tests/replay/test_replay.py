"""``aiops replay`` over the embedded history of a live store and over a real Prometheus
backfilled with promtool: what would have paged and run, with nothing written, run or sent."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.config import load_config
from agent.flow.incidents import Matcher, MatchOp
from agent.replay.history import EmbeddedHistory
from agent.replay.report import build_report
from agent.replay.run import coverage, run_replay
from agent.store import Store
from tests.fixtures.prometheus import needs_prometheus, openmetrics, start_prometheus
from tests.replay.history import fleet

START = pd.Timestamp("2026-11-01", tz="UTC")
FAULT = START + pd.Timedelta(days=2, hours=10)
NOW = START + pd.Timedelta(days=3)

PLAYBOOK = """# fixes: a test fault
# vars: dest
# idempotent: yes
# check_mode_safe: no
---
- hosts: all
  gather_facts: false
  tasks:
    - name: Leave a mark
      ansible.builtin.copy:
        dest: "{{ dest }}"
        content: "ran"
"""


@pytest.fixture
def live(tmp_path: Path) -> Path:
    """A live agent's state dir whose store holds three days of scrape history of three hosts."""
    state = tmp_path / "live"
    history = fleet(START, days=3, hosts=3, fault_at=FAULT)
    store = Store(state / "aiops.db")
    store.backfill_samples(history.series, history.ts, history.values, now=float(history.ts[-1]))
    store.close()
    return state


def write_config(tmp_path: Path, state: Path, sources: str, webhook_url: str) -> Path:
    pbdir = tmp_path / "playbooks"
    pbdir.mkdir(exist_ok=True)
    (pbdir / "mark.yml").write_text(PLAYBOOK)
    text = f"""
agent:
  state_dir: {state}
{sources}
notify:
  channels:
    hook:
      type: webhook
      webhook_url: {webhook_url}
  routes:
    - channels: [hook]
      min_severity: info
remediation:
  playbook_dir: {pbdir}
  rules:
    - name: mark-web-1
      match:
        labels: {{instance: web-1}}
      playbook: mark.yml
      mode: auto
      cooldown: 1d
      vars: {{dest: {tmp_path / "ran-web-1"}}}
    - name: mark-others
      match:
        labels_regex: {{instance: "web-[23]"}}
      playbook: mark.yml
      mode: approve
      vars: {{dest: {tmp_path / "ran-others"}}}
"""
    path = tmp_path / "agent.yaml"
    path.write_text(textwrap.dedent(text))
    return path


EMBEDDED = "sources:\n  kind: scrape\n"


def replay(tmp_path: Path, *args: str):
    """``aiops replay`` at NOW, its work folder in ``tmp_path`` (a fresh one per call)."""
    work = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
    return CliRunner().invoke(cli, ["replay", "--work-dir", str(work), *args],
                              obj=Settings(clock=lambda: NOW.to_pydatetime()))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_replay_of_the_embedded_history_reports_what_would_have_paged_and_run_and_does_nothing(
        tmp_path, live, webhook):
    config = write_config(tmp_path, live, EMBEDDED, webhook.url())
    before = digest(live / "aiops.db")
    work = tmp_path / "work"
    result = replay(tmp_path, "--config", str(config), "--since", "2d", "--format", "json", "--work-dir", str(work),
                    "--keep-work")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["source"], report["days"], len(report["timeline"])) == ("embedded", 2, 2)
    assert (report["start"], report["end"]) == ("2026-11-02T00:00:00+00:00", "2026-11-04T00:00:00+00:00")
    fault = [i for i in report["incidents"]
             if pd.Timestamp(i["started_at"]) <= FAULT + pd.Timedelta(minutes=5) <= pd.Timestamp(i["started_at"])
             + pd.Timedelta(seconds=i["duration_s"]) + pd.Timedelta(minutes=5)
             and any('instance="web-1"' in s for s in i["signals"])]
    assert len(fault) == 1, report["incidents"]
    assert any(s.startswith("cpu{") for s in fault[0]["signals"])
    assert report["pages"] == sum(d["pages"] for d in report["timeline"]) >= len(report["incidents"])
    # per rule, one decision an episode: the first on web-1 would have run, later ones wait out
    # the cooldown; the other hosts' rule needs approval
    rules = {r["rule"]: r for r in report["rules"]}
    on_web1 = [i for i in report["incidents"] if any('instance="web-1"' in s for s in i["signals"])]
    assert rules["mark-web-1"]["would_run"] == 1
    assert rules["mark-web-1"]["stopped"] == sum(i["episodes"] for i in on_web1) - 1
    if rules["mark-web-1"]["stopped"]:
        assert rules["mark-web-1"]["stopped_because"] == ["cooldown"]
    others = [i for i in report["incidents"] if i not in on_web1]
    assert rules["mark-others"]["held_for_approval"] == sum(i["episodes"] for i in others) > 0
    assert report["notifications"]["hook"]["would send"] >= len(report["incidents"])
    assert any("Alertmanager" in note for note in report["notes"])
    # nothing ran, nothing was sent, the live store is as it was
    assert not (tmp_path / "ran-web-1").exists() and not (tmp_path / "ran-others").exists()
    assert webhook.requests == []
    assert digest(live / "aiops.db") == before
    live_store = Store(live / "aiops.db")
    try:
        assert live_store.list_incidents() == [] and live_store.list_runs() == []
    finally:
        live_store.close()


def test_text_and_html_reports_name_the_incidents_and_escape_labels(tmp_path, live, webhook):
    config = write_config(tmp_path, live, EMBEDDED, webhook.url())
    text = replay(tmp_path, "--config", str(config), "--since", "1d")
    assert text.exit_code == 0, text.output
    assert "replay 2026-11-03 00:00 to 2026-11-04 00:00 UTC from embedded: 1 days with data" in text.stdout
    assert "mark-web-1: would run 1" in text.stdout
    page = tmp_path / "replay.html"
    html = replay(tmp_path, "--config", str(config), "--since", "1d", "--format", "html", "-o", str(page))
    assert html.exit_code == 0, html.output
    body = page.read_text()
    assert body.startswith("<!doctype html>") and "<svg" in body and 'instance=&#34;web-1&#34;' in body


def test_a_stopped_replay_resumes_from_its_last_finished_day_and_ends_as_one_run_would(tmp_path, live, webhook):
    config = load_config(write_config(tmp_path, live, EMBEDDED, webhook.url()))
    start, end = START + pd.Timedelta(days=1), NOW

    def whole(work: Path):
        source = EmbeddedHistory.open(live)
        try:
            return run_replay(config, start, end, work, source=source, source_name="embedded")
        finally:
            source.close()

    def stop_after_first_day(day) -> None:
        raise KeyboardInterrupt

    source = EmbeddedHistory.open(live)
    with pytest.raises(KeyboardInterrupt):
        run_replay(config, start, end, tmp_path / "stopped", source=source, source_name="embedded",
                   on_day=stop_after_first_day)
    source.close()
    resumed, once = whole(tmp_path / "stopped"), whole(tmp_path / "once")
    assert resumed.resumed_from == (START + pd.Timedelta(days=2)).to_pydatetime()
    assert once.resumed_from is None and len(resumed.days) == len(once.days) == 2

    def incidents(replayed):
        store = Store(replayed.state_dir / "aiops.db")
        try:
            return [(i.title, i.started_at, i.detected_at, len(i.episodes)) for i in store.list_incidents()]
        finally:
            store.close()

    assert incidents(resumed) == incidents(once) != []


def test_a_range_with_no_data_replays_nothing_and_exits_1(tmp_path, live, webhook):
    config = write_config(tmp_path, live, EMBEDDED, webhook.url())
    result = replay(tmp_path, "--config", str(config), "--from", "2026-10-01", "--to", "2026-10-03")
    assert result.exit_code == 1
    assert ("no data from 2026-10-01 00:00 to 2026-10-03 00:00 UTC in embedded: the source holds nothing there; "
            "nothing was replayed") in result.output


def test_a_range_longer_than_the_history_says_so_and_replays_the_rest(tmp_path, live, webhook):
    config = write_config(tmp_path, live, EMBEDDED, webhook.url())
    result = replay(tmp_path, "--config", str(config), "--from", "2026-10-30", "--to", "2026-11-03", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["days"] == 3  # the history's first point, at 2026-11-01 00:00, ends the day before
    assert ("embedded holds no data before 2026-10-31 00:00 UTC: the range is longer than the source keeps; "
            "the first 1 day(s) were not replayed") in report["notes"]


def test_known_outages_give_recall_and_delay_and_an_unknown_label_is_an_error(tmp_path, live, webhook):
    config = write_config(tmp_path, live, EMBEDDED, webhook.url())
    known = tmp_path / "known.yaml"
    known.write_text(f"- name: cpu pegged\n  start: {FAULT.isoformat()}\n  end: {(FAULT + pd.Timedelta(minutes=20)).isoformat()}\n"
                     "  labels: {instance: web-1}\n")
    result = replay(tmp_path, "--config", str(config), "--since", "1d", "--known", str(known), "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["known"]
    assert found["recall"] == 1.0 and found["outages"][0]["found"]
    assert 0 <= found["median_delay_s"] <= 5 * 60
    known.write_text(f"- name: typo\n  start: {FAULT.isoformat()}\n  end: {FAULT.isoformat()}\n"
                     "  labels: {instance: web-9}\n")
    result = replay(tmp_path, "--config", str(config), "--since", "1d", "--known", str(known))
    assert result.exit_code == 1
    assert (f'{known}: outage typo: label instance="web-9" is carried by no replayed series '
            "(3 values of instance seen)") in result.output


def test_a_page_budget_is_found_by_re_thresholding_or_said_to_be_out_of_reach(tmp_path, live, webhook):
    config = write_config(tmp_path, live, EMBEDDED, webhook.url())
    result = replay(tmp_path, "--config", str(config), "--since", "2d", "--pages-per-day", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    budget = out["budget"]
    assert budget["met"] and budget["chosen"]["pages_per_day"] <= 3.0 < out["pages_per_day"]
    running = budget["tried"][0]
    assert running["factor"] == 1.0 and running["pages_per_day"] == pytest.approx(out["pages_per_day"], abs=1e-3)
    stricter = [c["pages"] for c in budget["tried"]]
    assert stricter == sorted(stricter, reverse=True)  # a stricter budget only drops pages
    if budget["chosen"]["factor"] < 1:
        chosen = budget["chosen"]
        assert budget["config"] == (f"detectors:\n  page_budget: {chosen['page_budget']:.6g}\n"
                                    f"  fleet_page_budget: {chosen['fleet_page_budget']:.6g}\n")
        assert len(chosen["dropped"]) >= running["pages"] - chosen["pages"] - 1
    # the fault is far beyond any budget: no setting pages less than once over the two days
    result = replay(tmp_path, "--config", str(config), "--since", "2d", "--pages-per-day", "0.1")
    assert result.exit_code == 1
    assert "pages at most 0.1 a day over the range; the closest pages" in result.output
    assert "config to apply:" in result.stdout


def test_the_live_stores_silences_keep_paging_channels_quiet_in_the_replay(tmp_path, live, webhook):
    store = Store(live / "aiops.db")
    store.add_silence([Matcher(name="instance", op=MatchOp.EQUAL, value="web-1")],
                      starts_at=(FAULT - pd.Timedelta(hours=1)).to_pydatetime(),
                      ends_at=(FAULT + pd.Timedelta(hours=1)).to_pydatetime(), reason="maintenance", actor="ops",
                      now=START.to_pydatetime())
    store.close()
    config = write_config(tmp_path, live, EMBEDDED, webhook.url())
    config.write_text(config.read_text().replace(f"webhook_url: {webhook.url()}",
                                                 f"webhook_url: {webhook.url()}\n      paging: true"))
    result = replay(tmp_path, "--config", str(config), "--since", "1d", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    fault = [i for i in report["incidents"] if 'cpu{instance="web-1",job="node"} (forecast)' in i["signals"]]
    assert fault and pd.Timestamp(fault[0]["started_at"]) < FAULT + pd.Timedelta(minutes=5)
    assert report["notifications"]["hook"]["silenced"] >= 1  # the fault's opening, inside the silence
    assert report["notifications"]["hook"]["would send"] >= len(report["incidents"]) - 1
    assert webhook.requests == []


@needs_prometheus
def test_a_replay_over_prometheus_reads_a_day_at_a_time_and_reports_a_gap_where_it_was_down(
        tmp_path, prometheus_factory, webhook):
    history = fleet(START, days=3, hosts=3, fault_at=FAULT)
    server = prometheus_factory(backfill_text=openmetrics(history.families()))
    sources = f"sources:\n  kind: prometheus\n  prometheus:\n    url: {server.url}\n    queries:\n" \
              "      - {name: node, expr: '{job=\"node\"}', step: 60s}\n"
    config = load_config(write_config(tmp_path, tmp_path / "state", sources, webhook.url()))
    start, end = START + pd.Timedelta(days=1), NOW
    replayed = run_replay(config, start, end, tmp_path / "work", source_name="prometheus")
    assert [d.series for d in replayed.days] == [12, 12] and not any(d.empty for d in replayed.days)
    store = Store(replayed.state_dir / "aiops.db")
    try:
        titles = [(i.started_at, i.title) for i in store.list_incidents()
                  if i.started_at <= (FAULT + pd.Timedelta(minutes=5)).to_pydatetime()
                  and any(s.labels.get("instance") == "web-1" for s in i.signals)
                  and (i.resolved_at or end.to_pydatetime()) >= FAULT.to_pydatetime()]
    finally:
        store.close()
    assert titles, "the fault on web-1 opened no incident"
    report = build_report(replayed)
    linked = [line.graph_url for line in report.incidents if line.started_at == titles[0][0]]
    assert linked and linked[0].startswith(f"{server.url}/graph?g0.expr=")
    assert webhook.requests == [] and not (tmp_path / "ran-web-1").exists()

    # down for the first day, back for the second: the gap reported, the rest replayed
    server.stop()
    again = []

    def come_back(day) -> None:
        if not again:
            again.append(start_prometheus(tmp_path / "again", data_dir=server.data_dir, port=server.port))

    try:
        gap = run_replay(config, start, end, tmp_path / "gap", source_name="prometheus", on_day=come_back)
    finally:
        for restarted in again:
            restarted.stop()
    assert [d.blind for d in gap.days] == [True, False] and gap.days[1].series == 12
    assert coverage(gap) == ["gap: 2026-11-02 00:00 to 2026-11-03 00:00 UTC: the source failed (down or "
                             "refusing); the rest was replayed"]
