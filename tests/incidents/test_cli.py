"""``aiops incidents``, ``aiops silence`` and ``aiops change`` through click's runner, on a real store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings, cli_actor
from agent.clock import ManualClock
from agent.flow.incidents import Matcher, MatchOp, Severity, parse_matcher
from agent.store import Store
from tests.incidents.conftest import at


@pytest.fixture
def aiops(write_config, tmp_path):
    config = write_config(f"agent:\n  state_dir: {tmp_path / 'state'}\n")

    def run(*args: str):
        return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False,
                                  obj=Settings(clock=ManualClock(at(30))))

    return run


@pytest.fixture
def state(tmp_path):
    store = Store(tmp_path / "state" / "aiops.db")
    yield store
    store.close()


def test_incidents_list_ack_resolve_and_refusal(aiops, state):
    state.open_incident(severity=Severity.CRITICAL, title="latency high on service=api", labels={"service": "api"},
                        started_at=at(0), now=at(1))
    listed = aiops("incidents", "list")
    assert listed.output == ("#1     open         critical 2026-03-02 12:00:00Z    0 signals  "
                             "latency high on service=api\n")
    assert aiops("incidents", "ack", "1", "--reason", "on it").output == "incident #1 is now acknowledged\n"
    assert aiops("incidents", "resolve", "1").output == "incident #1 is now resolved\n"
    refused = aiops("incidents", "ack", "1")
    assert refused.exit_code == 1
    assert refused.output == ("incident #1 is resolved, cannot move to acknowledged: from resolved it can move to "
                              "open\n")
    missing = aiops("incidents", "resolve", "42")
    assert (missing.exit_code, missing.output) == (1, "no incident #42\n")
    actors = [(a.actor, a.action) for a in state.audit_entries()]
    assert actors[1:] == [(cli_actor(), "incident.acknowledged"), (cli_actor(), "incident.resolved")]
    assert json.loads(aiops("incidents", "list", "--json", "--open").output) == []
    assert [i["id"] for i in json.loads(aiops("incidents", "list", "--json", "--status", "resolved").output)] == [1]
    assert [i["id"] for i in json.loads(aiops("incidents", "list", "--json", "--since", "1h").output)] == [1]
    assert aiops("incidents", "list", "--since", "10m").output == "no incidents\n"  # started 30 min ago
    bad = aiops("incidents", "list", "--since", "lately")
    assert bad.exit_code == 2 and "expected a duration back from now such as 30d (or now-30d), now, or a date" in bad.output
    assert "found 'lately'" in bad.output


def test_incidents_show_renders_formats(aiops, state):
    state.open_incident(severity=Severity.WARNING, title="queue depth high", labels={"service": "billing"},
                        started_at=at(0), now=at(1))
    text = aiops("incidents", "show", "1")
    assert text.exit_code == 0 and "queue depth high" in text.output
    body = json.loads(aiops("incidents", "show", "1", "--format", "json").output)
    assert (body["id"], body["title"], body["severity"]) == (1, "queue depth high", "warning")
    assert aiops("incidents", "show", "1", "--format", "markdown").output.count("queue depth high") >= 1
    assert aiops("incidents", "show", "9").output == "no incident #9\n"


def test_silence_add_list_expire(aiops, state):
    added = aiops("silence", "add", "-m", "service=api", "-m", "instance=~api-.*", "--duration", "2h",
                  "--reason", "failover drill", "--json")
    silence = json.loads(added.output)
    assert silence["matchers"] == ["service=api", "instance=~api-.*"]
    assert silence["created_by"] == cli_actor() and silence["reason"] == "failover drill"
    listed = aiops("silence", "list")
    assert listed.output.startswith("#1    active ") and "service=api instance=~api-.*" in listed.output
    assert aiops("silence", "expire", "1").output.startswith("silence #1 expired at ")
    assert aiops("silence", "list").output == "no silences\n"
    assert "expired" in aiops("silence", "list", "--all").output
    again = aiops("silence", "expire", "1")
    assert (again.exit_code, again.output) == (1, "silence #1 is expired, cannot move to expired: it already is\n")


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "service", "--duration", "1h"], "expected a label matcher such as service=api or instance=~web.*, "
                                            "found 'service'"),
    (["-m", "service=api"], "expected exactly one of an end time and a duration, found neither"),
    (["-m", "job=~([a", "--duration", "1h"], "expected a regular expression after =~, found '([a' "
                                              "(unterminated character set at position 1)"),
    (["-m", "service=api", "--duration", "soon"], "expected a duration such as 30s, 5m, 2h or 7d, found 'soon'"),
])
def test_silence_add_refuses_bad_input(aiops, args, message):
    result = aiops("silence", "add", *args, "--reason", "x")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == f"Error: {message}"


def test_change_add(aiops, state):
    result = aiops("change", "add", "--kind", "deploy", "--labels", "service=api,version=v12",
                   "--at", "2026-03-02T11:30:00Z", "api v12 rollout")
    assert result.output == "change #1 recorded: deploy at 2026-03-02 11:30:00Z\n"
    [change] = state.changes_near({"service": "api"}, before=at(0), lookback_s=7200)
    assert (change.kind, dict(change.labels), change.description, change.actor) == (
        "deploy", {"service": "api", "version": "v12"}, "api v12 rollout", cli_actor())
    bad = aiops("change", "add", "--kind", "deploy", "--labels", "service", "x")
    assert bad.exit_code == 2 and "expected name=value pairs separated by commas, found 'service'" in bad.output


def test_changes_near_shares_a_label_within_lookback_nearest_first(state):
    for minutes, labels in ((-30, {"service": "api"}), (-100, {"service": "api", "version": "v1"}),
                            (-10, {"service": "billing"}), (-130, {"service": "api"}), (5, {"service": "api"})):
        state.add_change(ts=at(minutes), kind="deploy", labels=labels, description=str(minutes), actor="ci",
                         now=at(minutes))
    near = state.changes_near({"service": "api", "instance": "api-1"}, before=at(0), lookback_s=7200)
    assert [c.description for c in near] == ["-30", "-100"]


@pytest.mark.parametrize(("text", "expected"), [
    ("service=api", Matcher(name="service", op=MatchOp.EQUAL, value="api")),
    ('instance=~"web-.*"', Matcher(name="instance", op=MatchOp.REGEX, value="web-.*")),
    ("env!=dev", Matcher(name="env", op=MatchOp.NOT_EQUAL, value="dev")),
    ("job!~batch.*", Matcher(name="job", op=MatchOp.NOT_REGEX, value="batch.*")),
])
def test_matchers_parse_and_match(text, expected):
    matcher = parse_matcher(text)
    assert matcher == expected
    labels = {"service": "api", "instance": "web-1", "env": "prod", "job": "node"}
    assert matcher.matches(labels)
    assert not matcher.matches({"service": "db", "instance": "db-1", "env": "dev", "job": "batch-etl"})


def test_silence_covers_open_incidents_and_expires(state):
    incident = state.open_incident(severity=Severity.CRITICAL, title="t", labels={"service": "api"},
                                   started_at=at(0), now=at(0))
    other = state.open_incident(severity=Severity.WARNING, title="u", labels={"service": "db"},
                                started_at=at(0), now=at(0))
    silence = state.add_silence([parse_matcher("service=api")], starts_at=at(1), ends_at=at(61), reason="drill",
                                actor="alice", now=at(1))
    assert [e.kind for e in state.incident_events(incident.id)] == ["opened", "silenced"]
    assert state.incident_events(incident.id)[-1].details == {"severity": "critical", "silence_id": silence.id,
                                                             "silenced": True}
    assert [e.kind for e in state.incident_events(other.id)] == ["opened"]
    event = state.add_incident_event(incident.id, kind="signal_added", actor="agent", message="x", now=at(2))
    assert event.details["silenced"] is True
    after = state.add_incident_event(incident.id, kind="signal_added", actor="agent", message="y", now=at(62))
    assert "silenced" not in after.details
    state.expire_silence(silence.id, actor="alice", now=at(3))
    assert "silenced" not in state.add_incident_event(incident.id, kind="x", actor="a", message="z",
                                                      now=at(4)).details



def test_change_list_shows_recorded_changes_newest_first(aiops):
    assert aiops("change", "add", "--kind", "deploy", "--labels", "service=api", "--at", "2h", "api v12").exit_code == 0
    assert aiops("change", "add", "--kind", "config", "--at", "now-10m", "raised a limit").exit_code == 0
    assert aiops("change", "add", "--kind", "deploy", "--at", "9d", "old one").exit_code == 0
    lines = aiops("change", "list").output.splitlines()
    assert [line.split()[:4] for line in lines] == [["#2", "2026-03-02", "12:20:00Z", "config"],
                                                    ["#1", "2026-03-02", "10:30:00Z", "deploy"]]
    assert lines[1].split()[4:6] == ["service=api", "api"] and lines[1].endswith(f"({cli_actor()})")
    deploys = json.loads(aiops("change", "list", "--since", "30d", "--kind", "deploy", "--format", "json").output)
    assert [(c["id"], c["description"]) for c in deploys] == [(1, "api v12"), (3, "old one")]
    assert aiops("change", "list", "--since", "1m").output == "no changes since 2026-03-02 12:29:00Z\n"
