"""The HTTP API on a real loopback server: list runs, approve one with the token."""

from __future__ import annotations

import httpx
import pytest

from agent.daemon import HttpServer
from remediations.model import RunStatus
from tests.remediations.conftest import T0, open_incident, run_cycle


@pytest.fixture
def api(make_ctx, work):
    ctx = make_ctx(f"""
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
