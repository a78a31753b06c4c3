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
from agent.rollouts import engine
from agent.flow.rollouts import RolloutStatus
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


def test_model_list_and_show_read_the_registry(make_ctx, models_dir, tmp_path):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9"))
    ctx.store.deploy_version("fraud", "v2", actor="cli:alice", now=T0 - timedelta(days=2), outcome="promoted",
                             baseline_id=None)
    ctx.store.register_version("fraud", "v5", status="rejected", actor="agent", now=T0,
                               metrics={"auc": 0.61}, gate={"metric": "auc", "passed": False})
    assert invoke(tmp_path, "model", "list").output == "fraud            serving v2         2 versions\n"
    shown = invoke(tmp_path, "model", "show", "fraud").output.splitlines()
    assert shown[0] == "model fraud"
    assert shown[1].startswith("  v2         serving      created 2026-11-23T12:00:00+00:00 by cli:alice; "
                               "deployed 2026-11-23T12:00:00+00:00 by cli:alice")
    assert shown[2] == "  v5         rejected     created 2026-11-25T12:00:00+00:00 by agent gate failed"
    assert json.loads(invoke(tmp_path, "model", "show", "fraud", "--json").output)["versions"][1]["metrics"] == {
        "auc": 0.61}


@pytest.fixture
def api(make_ctx, models_dir):
    ctx = make_ctx(model_yaml(models_dir, GOOD, prometheus_url="http://127.0.0.1:9"))
    server = HttpServer(ctx, None)
    server.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
        yield ctx, client
    server.stop()


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
