"""The report endpoints, served by uvicorn on loopback like the daemon serves them."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import uvicorn

from agent.api import create_app
from agent.clock import ManualClock
from agent.context import Context
from tests.conftest import free_port, wait_until
from tests.report.builders import known_incidents

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def client(make_config, store, tmp_path):
    config = make_config("http:\n  token: s3cret-token\n")
    known_incidents(store, (T0 - timedelta(days=10)).timestamp())
    store.audit("cli:alice", "incident.acknowledge", "incident:4", {"reason": "looking"}, now=T0 - timedelta(days=1))
    app = create_app(Context(config=config, store=store, state_dir=tmp_path, clock=ManualClock(T0)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, message="uvicorn to start")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http
    server.should_exit = True
    thread.join(10)


def test_mttr_json(client):
    response = client.get("/api/v1/reports/mttr", params={"since": "30d", "by": "service"})
    assert response.status_code == 200
    data = response.json()
    assert data["total"]["mttr"]["mean_s"] == 3225.0 and data["total"]["unresolved"] == 2
    assert [g["group"] for g in data["groups"]] == ["(none)", "api", "db"]


def test_mttr_rejects_a_bad_period(client):
    response = client.get("/api/v1/reports/mttr", params={"since": "last tuesday"})
    assert response.status_code == 422
    assert response.json() == {"detail": "since/until: expected a duration back from now such as 30d (or now-30d), "
                                         "now, or a date such as 2026-01-31 or 2026-01-31T08:00:00Z, "
                                         "found 'last tuesday'"}


def test_weekly_page(client):
    response = client.get("/reports/weekly", params={"since": "30d"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "<h2>MTTR per week</h2>" in response.text and "data:image/png;base64," in response.text


def test_audit_export_needs_the_token(client):
    assert client.get("/api/v1/audit").status_code == 401
    response = client.get("/api/v1/audit", params={"format": "csv"},
                          headers={"Authorization": "Bearer s3cret-token"})
    assert response.status_code == 200
    assert response.text.splitlines()[1].split(",")[2:6] == ["cli:alice", "incident.acknowledge", "incident:4", "looking"]


@pytest.mark.parametrize("path", ["/api/v1/reports/mttr", "/reports/weekly", "/api/v1/audit"])
def test_out_of_range_periods_and_zone_folders_are_422(client, path):
    auth = {"Authorization": "Bearer s3cret-token"}
    far = client.get(path, params={"since": "1000000d"}, headers=auth)
    assert (far.status_code, far.json()["detail"]) == (
        422, "since/until: expected a duration that reaches back no further than 1970-01-01, found '1000000d'")
    if path != "/api/v1/audit":
        for tz in ("America", "Europe", "x" * 300):
            answer = client.get(path, params={"tz": tz}, headers=auth)
            assert (answer.status_code, answer.json()["detail"]) == (
                422, f"tz: expected a time zone name such as UTC or Europe/Berlin, found {tz!r}")
