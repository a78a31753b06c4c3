"""The CLI and the HTTP API over rollouts and the registry: real store, real loopback server,
the injected clock."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.clock import ManualClock
from agent.daemon import HttpServer
from agent.flow.rollouts import RolloutStatus
from agent.rollouts import engine
from tests.rollouts.conftest import GOOD, T0, model_yaml


def invoke(tmp_path, *args: str):
    return CliRunner().invoke(cli, [*args, "--config", str(tmp_path / "agent.yaml")],
                              obj=Settings(clock=ManualClock(T0)))


def test_cli_starts_lists_shows_and_aborts(make_ctx, models_dir, tmp_path):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9"))
    started = invoke(tmp_path, "rollout", "start", "--model", "fraud", "--version", "v4", "--reason", "new features")
    assert started.exit_code == 0, started.output
    assert started.output == ("rollout 1: fraud v4 on localhost first (previous: unknown); analysis every 30s for "
                              "90s; a version failing every measurement is rolled back 60s after its canary starts "
                              "(plus up to one cycle)\n")
    again = invoke(tmp_path, "rollout", "start", "--model", "fraud", "--version", "v1")
    assert again.exit_code == 1
    assert again.output == "model fraud: rollout 1 of v4 is still pending; abort or finish it first\n"
    unknown = invoke(tmp_path, "rollout", "start", "--model", "spam", "--version", "v1")
    assert (unknown.exit_code, unknown.output) == (
        1, "model spam: expected a model configured under models (known: fraud), found none\n")

    listed = json.loads(invoke(tmp_path, "rollout", "list", "--json").output)
    assert [(r["id"], r["model"], r["version"], r["status"], r["reason"]) for r in listed] == [
        (1, "fraud", "v4", "pending", "new features")]
    assert json.loads(invoke(tmp_path, "rollout", "status", "1", "--json").output)["measurements"] == []
    assert invoke(tmp_path, "rollout", "status", "7").output == "Error: no rollout 7\n"

    aborted = invoke(tmp_path, "rollout", "abort", "1", "--reason", "wrong version")
    assert aborted.output == "rollout 1: aborted\n"
    assert invoke(tmp_path, "rollout", "promote", "1").output == (
        "rollout 1 is aborted, cannot move to promoting: from aborted it can move to nothing (it has ended)\n")
    entry = [e for e in ctx.store.audit_entries() if e.action == "rollout.aborted"][0]
    assert entry.actor.startswith("cli:") and entry.details["reason"] == "wrong version"


GATED = "    retrain: {playbook: retrain_model.yml}\n"


def test_model_list_and_show_read_the_registry(make_ctx, models_dir, tmp_path):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9"))
    ctx.store.deploy_version("fraud", "v2", actor="cli:alice", now=T0 - timedelta(days=2), outcome="promoted",
                             baseline_id=None)
    ctx.store.register_version("fraud", "v5", status="rejected", actor="agent", now=T0, metrics={"auc": 0.61},
                               gate={"metric": "auc", "passed": False, "reason": "auc 0.6100 (v5) vs 0.7900 (v2, "
                                                                                "serving): drop 0.1800 over 0.01"})
    assert invoke(tmp_path, "model", "list").output.splitlines() == [
        "model  serving  since                put there by  models dir serves  versions  rollout under way",
        "fraud  v2       2026-11-23 12:00:00  promoted      -                         2  -"]
    shown = invoke(tmp_path, "model", "show", "fraud").output.splitlines()
    assert shown[:3] == ["model fraud", "", "versions"]
    assert shown[4].split() == ["v2", "serving", "2026-11-23", "12:00:00", "cli:alice", "2026-11-23", "12:00:00",
                                "cli:alice", "none", "-", "-", "promoted"]
    assert shown[5].split()[:7] == ["v5", "rejected", "2026-11-25", "12:00:00", "agent", "-", "-"]
    assert " failed  auc 0.6100 (v5) vs 0.7900 (v2, serving): drop 0.1800 over 0.01" in shown[5]
    assert shown[7:10] == ["served", "version  from                 until  put there by  actor",
                           "v2       2026-11-23 12:00:00  now    promoted      cli:alice"]
    data = json.loads(invoke(tmp_path, "model", "show", "fraud", "--json").output)
    assert data["versions"][1]["metrics"] == {"auc": 0.61} and data["versions"][1]["gate_result"] == "failed"
    assert data["served"] == [{"model": "fraud", "version": "v2", "since": "2026-11-23T12:00:00+00:00", "until": None,
                               "source": "promoted", "actor": "cli:alice"}]


def test_a_rollout_is_refused_before_it_starts_unless_its_version_exists_and_passed_its_gate(make_ctx, models_dir,
                                                                                               tmp_path):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9", serving=True, retrain=GATED))
    missing = invoke(tmp_path, "rollout", "start", "--model", "fraud", "--version", "v999")
    assert (missing.exit_code, missing.output) == (
        1, "model fraud: expected a version the models directory holds (v1, v2, v4), found 'v999'\n")
    never = invoke(tmp_path, "rollout", "start", "--model", "fraud", "--version", "v4")
    assert (never.exit_code, never.output) == (
        1, "model fraud: v4 never passed a gate (the registry has no gate result for it); roll it out anyway only "
           "with --override-gate --reason TEXT (audited)\n")
    no_reason = invoke(tmp_path, "rollout", "start", "--model", "fraud", "--version", "v4", "--override-gate")
    assert no_reason.output.endswith("an override needs a reason, found none\n")
    assert ctx.store.list_rollouts() == []

    done = invoke(tmp_path, "rollout", "start", "--model", "fraud", "--version", "v4", "--override-gate",
                  "--reason", "hand-built v4: latency test")
    assert done.exit_code == 0, done.output
    assert done.output.startswith("gate overridden: v4 never passed a gate")
    assert "rollout 1: fraud v4 on localhost first (previous: v2);" in done.output  # what served, read from the link
    rollout = ctx.store.get_rollout(1)
    assert (rollout.gate_override["by"].startswith("cli:"), rollout.gate_override["reason"]) == (
        True, "hand-built v4: latency test")
    (entry,) = [e for e in ctx.store.audit_entries() if e.action == "rollout.gate_override"]
    assert entry.details["problem"] == "v4 never passed a gate (the registry has no gate result for it)"
    assert ctx.store.model_version("fraud", "v4").override["rollout"] == 1
    shown = invoke(tmp_path, "model", "show", "fraud").output
    assert "none, overridden  OVERRIDDEN by cli:" in shown and ": hand-built v4: latency test" in shown
    served = ctx.store.serving_history("fraud")
    assert [(s.version, s.source) for s in served] == [("v2", "found serving when the agent first looked")]


def test_rollout_status_is_a_table_with_times_to_the_second(make_ctx, models_dir, tmp_path):
    make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9"))
    invoke(tmp_path, "rollout", "start", "--model", "fraud", "--version", "v4", "--reason", "new features")
    status = invoke(tmp_path, "rollout", "status", "1").output.splitlines()
    assert status[:6] == ["rollout           1", "model             fraud", "version           v4",
                          "previous          unknown", "status            pending", "canary            localhost"]
    assert "started           2026-11-25 12:00:00 by cli:" in status[7] and status[7].endswith(" (new features)")
    assert status[-1] == "No measurement yet."
    assert not any("+00:00" in line or ".0000" in line for line in status)
    listed = invoke(tmp_path, "rollout", "list").output.splitlines()
    assert listed[0].split() == ["id", "model", "version", "previous", "status", "started", "by", "ended", "incident",
                                 "gate"]
    assert listed[1].split()[:7] == ["1", "fraud", "v4", "-", "pending", "2026-11-25", "12:00:00"]


def served(ctx):
    """The daemon's HTTP app over ``ctx`` on a loopback port, and a client of it."""
    server = HttpServer(ctx, None)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
            yield ctx, client
    finally:
        server.stop()


@pytest.fixture
def api(make_ctx, models_dir):
    yield from served(make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9")))


def test_http_start_needs_the_token_and_answers_4xx_with_a_reason(api):
    ctx, client = api
    body = {"model": "fraud", "version": "v4", "canary": ["localhost"]}
    assert client.post("/api/v1/rollouts", json=body).status_code == 401
    auth = {"Authorization": "Bearer s3cret-token"}
    created = client.post("/api/v1/rollouts", json=body, headers=auth)
    assert created.status_code == 201
    assert (created.json()["status"], created.json()["actor"]) == ("pending", "api")
    busy = client.post("/api/v1/rollouts", json={"model": "fraud", "version": "v1"}, headers=auth)
    assert (busy.status_code, busy.json()["detail"]) == (
        409, "model fraud: rollout 1 of v4 is still pending; abort or finish it first")
    bad = client.post("/api/v1/rollouts", json={"model": "fraud", "version": "../../etc"}, headers=auth)
    assert bad.status_code == 422
    assert client.post("/api/v1/rollouts", json={**body, "extra": 1}, headers=auth).status_code == 422
    assert client.get("/api/v1/rollouts/1").json()["measurements"] == []
    assert client.get("/api/v1/rollouts/5").status_code == 404
    assert client.post("/api/v1/rollouts/1/abort", json={"reason": "no"}).status_code == 401
    assert client.post("/api/v1/rollouts/1/promote", headers=auth).status_code == 409
    aborted = client.post("/api/v1/rollouts/1/abort", json={"reason": "no"}, headers=auth)
    assert aborted.json()["status"] == "aborted"
    assert ctx.store.get_rollout(1).status is RolloutStatus.ABORTED
    assert [r["id"] for r in client.get("/api/v1/rollouts", params={"model": "fraud"}).json()["rollouts"]] == [1]
    assert engine.start(ctx, "fraud", "v1", actor="cli:x", now=T0).id == 2


@pytest.fixture
def gated_api(make_ctx, models_dir):
    yield from served(make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9", serving=True,
                                          retrain=GATED)))


def test_http_refuses_a_missing_version_and_a_gate_not_passed_unless_overridden(gated_api):
    ctx, client = gated_api
    auth = {"Authorization": "Bearer s3cret-token"}
    missing = client.post("/api/v1/rollouts", json={"model": "fraud", "version": "v999"}, headers=auth)
    assert (missing.status_code, missing.json()["detail"]) == (
        422, "model fraud: expected a version the models directory holds (v1, v2, v4), found 'v999'")
    gated = client.post("/api/v1/rollouts", json={"model": "fraud", "version": "v4"}, headers=auth)
    assert gated.status_code == 409 and "v4 never passed a gate" in gated.json()["detail"]
    bare = client.post("/api/v1/rollouts", json={"model": "fraud", "version": "v4", "override_gate": True},
                       headers=auth)
    assert bare.status_code == 422 and bare.json()["detail"].endswith("an override needs a reason, found none")
    done = client.post("/api/v1/rollouts", headers=auth, json={
        "model": "fraud", "version": "v4", "override_gate": True, "reason": "<script>alert(1)</script> by hand"})
    assert done.status_code == 201
    assert (done.json()["gate_override"]["by"], done.json()["previous_version"]) == ("api", "v2")


def test_the_pages_show_what_the_cli_prints(gated_api, tmp_path):
    ctx, client = gated_api
    engine.start(ctx, "fraud", "v4", actor="cli:alice", now=T0, reason="<script>x</script>", override_gate=True)
    for path, words in (("/models", ["fraud", "v2", "found serving when the agent first looked", "1 (v4, pending)"]),
                        ("/models/fraud", ["OVERRIDDEN by cli:alice: &lt;script&gt;x&lt;/script&gt;", 'id="served"',
                                           'href="/rollouts/1"']),
                        ("/rollouts", ['id="rollouts"', "overridden by cli:alice", 'href="/rollouts/1"']),
                        ("/rollouts/1", ["2026-11-25 12:00:00 by cli:alice (&lt;script&gt;x&lt;/script&gt;)",
                                         "No measurement yet."])):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        for word in words:
            assert word in page.text, (path, word)
        assert "<script>" not in page.text
    cli = invoke(tmp_path, "model", "list").output.splitlines()[1].split()
    assert cli[:5] == ["fraud", "v2", "2026-11-25", "12:00:00", "found"]
    assert client.get("/rollouts/9").status_code == 404
    assert client.get("/models/spam").status_code == 404
    assert client.get("/rollouts/abc").status_code == 422
