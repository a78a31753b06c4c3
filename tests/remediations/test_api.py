"""The HTTP API on a real loopback server: list runs, approve one with the token."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.cli.common import Settings
from agent.daemon import HttpServer
from agent.flow.runs import RunStatus
from tests.remediations.conftest import T0, later, open_incident, run_cycle


@pytest.fixture
def api(make_ctx, work):
    ctx = make_ctx(f"""
    approval_expiry: 30m
    rules:
      - name: fix
        match: {{labels: {{service: api}}}}
        playbook: touch_direct.yml
        mode: approve
        vars: {{dest: {work / 'out.txt'}, runs_log: {work / 'runs.log'}}}
    """)
    server = HttpServer(ctx, None)
    server.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
        yield ctx, client
    server.stop()


def test_list_and_approve_over_http(api):
    ctx, client = api
    open_incident(ctx)
    (run,) = run_cycle(ctx, T0)

    listed = client.get("/api/v1/remediations", params={"status": "waiting_approval"}).json()["runs"]
    assert [(r["id"], r["status"], r["playbook"], r["targets"]) for r in listed] == \
        [(run.id, "waiting_approval", "touch_direct.yml", ["localhost"])]

    url = f"/api/v1/remediations/{run.id}/approve"
    assert client.post(url).status_code == 401
    denied = client.post(url, headers={"Authorization": "Bearer wrong"})
    assert (denied.status_code, denied.json()["detail"]) == (401, "invalid bearer token")
    assert ctx.store.get_run(run.id).status is RunStatus.WAITING_APPROVAL

    granted = client.post(url, headers={"Authorization": "Bearer s3cret-token"})
    assert granted.status_code == 200
    assert (granted.json()["status"], granted.json()["approved_by"]) == ("approved", "api")
    again = client.post(url, headers={"Authorization": "Bearer s3cret-token"})
    assert (again.status_code, again.json()["detail"]) == \
        (409, f"remediation run {run.id} is approved, cannot move to approved")
    missing = client.post("/api/v1/remediations/999/approve", headers={"Authorization": "Bearer s3cret-token"})
    assert (missing.status_code, missing.json()["detail"]) == (404, "no remediation run 999")
    assert client.get(f"/api/v1/remediations/{run.id}").json()["approved_by"] == "api"
    assert [e.actor for e in ctx.store.audit_entries() if e.action == "remediation.approved"] == ["api"]


@pytest.mark.parametrize("face", ["cli", "http"])
def test_approval_window_follows_the_injected_clock_not_todays_date(api, tmp_path, face):
    """A run created at T0 waits 30 minutes: approved at T0 + 10 min, refused at T0 + 31 min,
    through the CLI and over HTTP alike, whatever the date is today."""
    ctx, client = api

    def approve(run_id: int) -> tuple[bool, str]:
        if face == "http":
            answer = client.post(f"/api/v1/remediations/{run_id}/approve",
                                 headers={"Authorization": "Bearer s3cret-token"})
            return answer.status_code == 200, answer.text
        result = CliRunner().invoke(cli, ["remediation", "approve", str(run_id), "--config", str(tmp_path / "agent.yaml")],
                                    obj=Settings(clock=ctx.clock))
        return result.exit_code == 0, result.output

    open_incident(ctx)
    (first,) = run_cycle(ctx, T0)
    assert (first.status, first.expires_at) == (RunStatus.WAITING_APPROVAL, later(30))
    ctx.clock.set(later(10))
    ok, said = approve(first.id)
    assert ok, said
    assert ctx.store.get_run(first.id).approved_at == later(10)

    second = open_incident(ctx, {"service": "api", "host": "h2"})
    (waiting,) = [r for r in run_cycle(ctx, T0) if r.incident_id == second.id]
    ctx.clock.set(later(31))
    ok, said = approve(waiting.id)
    assert not ok
    assert (f"remediation run {waiting.id} is expired, cannot move to approved: "
            f"its approval window ended at {later(30).isoformat()}") in said
    refused = ctx.store.get_run(waiting.id)
    assert (refused.status, refused.ended_at) == (RunStatus.EXPIRED, later(31))
