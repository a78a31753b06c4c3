"""Alertmanager webhook and the incidents JSON API over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.incidents.conftest import TOKEN, at

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def counts(api) -> tuple[int, int, int, int]:
    one = api.ctx.store.query_one
    return tuple(one(f"SELECT count(*) FROM {t}")[0] for t in ("incidents", "incident_signals", "hits", "audit"))


def test_firing_opens_repeat_dedups_resolved_resolves(api_for):
    api = api_for()
    first = api.post("/api/v1/alerts", json=payload("firing"))
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 2, "firing": 2, "resolved": 0, "opened": [1], "incidents": [1],
                            "resolved_incidents": [], "storm": None, "truncated": 0}
    again = api.post("/api/v1/alerts", json=payload("firing"))  # Alertmanager re-sends on repeat_interval
    assert again.json()["opened"] == []
    incident = api.get("/api/v1/incidents/1").json()
    assert incident["severity"] == "critical" and incident["status"] == "open"
    assert incident["title"] == "HighLatency firing on service=api, instance=api-1:8080 (+1 more signal)"
    assert sorted((s["metric"], s["hits"]) for s in incident["signals"]) == [("HighErrorRate", 2), ("HighLatency", 2)]
    assert [e["kind"] for e in incident["events"]] == ["opened", "signal_added"]

    done = api.post("/api/v1/alerts", json=payload("resolved"))
    assert done.json()["resolved_incidents"] == [1]
    incident = api.get("/api/v1/incidents/1").json()
    assert (incident["status"], incident["resolution"], incident["resolved_by"]) == ("resolved", "alert", "api")
    assert incident["events"][-1]["message"] == "open → resolved: every alert resolved (last: HighErrorRate)"
    registry = api.ctx.metrics.registry
    assert registry.get_sample_value("aiops_alerts_ingested_total") == 6
    assert registry.get_sample_value("aiops_open_incidents") == 0


def test_one_resolved_alert_resolves_its_signal_only(api_for):
    api = api_for()
    api.post("/api/v1/alerts", json=payload("firing"))
    body = payload("resolved")
    body["alerts"] = body["alerts"][:1]
    assert api.post("/api/v1/alerts", json=body).json()["resolved_incidents"] == []
    incident = api.get("/api/v1/incidents/1").json()
    assert incident["status"] == "open"
    resolved = {s["metric"]: s["resolved_at"] for s in incident["signals"]}
    assert resolved == {"HighLatency": "2026-03-02T12:20:00Z", "HighErrorRate": None}


def _broken(change) -> dict:
    body = copy.deepcopy(payload("firing"))
    change(body)
    return body


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "body: Invalid JSON: key must be a string at line 1 column 2"),
    (_broken(lambda b: b.update(version="3")), "version: Input should be '4'"),
    (_broken(lambda b: b["alerts"][1].pop("startsAt")), "alerts.1.startsAt: Field required"),
    (_broken(lambda b: b["alerts"][0].update(status="pending")),
     "alerts.0.status: Input should be 'firing' or 'resolved'"),
    (_broken(lambda b: b.update(alerts=[])), "alerts: List should have at least 1 item after validation, not 0"),
])
def test_malformed_payload_gets_400_with_reason_and_writes_nothing(api_for, body, reason):
    api = api_for()
    before = counts(api)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = api.post("/api/v1/alerts", data=data, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json() == {"detail": f"malformed Alertmanager payload: {reason}"}
    assert counts(api) == before


@pytest.mark.parametrize(("token", "status", "detail"), [
    (None, 401, "missing bearer token"),
    ("wrong-token", 401, "invalid bearer token"),
])
def test_alerts_need_the_bearer_token(api_for, token, status, detail):
    api = api_for()
    answer = api.post("/api/v1/alerts", json=payload("firing"), token=token)
    assert (answer.status_code, answer.json()) == (status, {"detail": detail})
    assert counts(api)[0] == 0


def test_state_changing_endpoints_are_off_without_a_configured_token(api_for):
    api = api_for(token=None)
    for path in ("/api/v1/alerts", "/api/v1/changes", "/api/v1/silences", "/api/v1/incidents/1/ack"):
        answer = api.post(path, json={}, token="anything")
        assert answer.status_code == 403, path
        assert answer.json() == {"detail": "state-changing endpoints are disabled: set http.token in the config"}


def test_ack_resolve_and_refusal_over_http(api_for):
    api = api_for()
    api.post("/api/v1/alerts", json=payload("firing"))
    assert api.post("/api/v1/incidents/1/ack", token=None).status_code == 401
    acked = api.post("/api/v1/incidents/1/ack", json={"reason": "on it"})
    assert (acked.status_code, acked.json()["status"], acked.json()["acknowledged_by"]) == (200, "acknowledged", "api")
    assert api.post("/api/v1/incidents/1/resolve").json()["resolution"] == "manual"
    refused = api.post("/api/v1/incidents/1/ack")
    assert (refused.status_code, refused.json()) == (
        409, {"detail": "incident #1 is resolved, cannot move to acknowledged: from resolved it can move to open"})
    missing = api.post("/api/v1/incidents/7/ack")
    assert (missing.status_code, missing.json()) == (404, {"detail": "no incident #7"})
    listed = api.get("/api/v1/incidents", params={"status": "resolved"}).json()
    assert [(i["id"], i["signal_count"]) for i in listed] == [(1, 2)]
    assert [a.actor for a in api.ctx.store.audit_entries() if a.action.startswith("incident.")] == ["api"] * 3


def test_changes_become_suspects_nearest_first(api_for):
    api = api_for()
    for ts, version in (("2026-03-02T10:30:00Z", "v11"), ("2026-03-02T11:50:00Z", "v12"),
                        ("2026-03-02T09:00:00Z", "v10")):  # v10 is outside the 2 h lookback
        answer = api.post("/api/v1/changes", json={"kind": "deploy", "labels": {"service": "api", "version": version},
                                                   "description": f"api {version}", "ts": ts})
        assert answer.status_code == 201, answer.text
    api.post("/api/v1/changes", json={"kind": "config", "labels": {"service": "billing"}, "description": "other",
                                      "ts": "2026-03-02T11:55:00Z"})
    bad = api.post("/api/v1/changes", json={"kind": "deploy", "description": "x", "colour": "red"})
    assert bad.status_code == 422
    api.ctx.clock = lambda: at(2)  # the alerts started at 12:00 and 12:01
    api.post("/api/v1/alerts", json=payload("firing"))
    suspects = api.get("/api/v1/incidents/1").json()["suspect_changes"]
    assert [s["description"] for s in suspects] == ["api v12", "api v11"]


def test_silences_over_http(api_for):
    api = api_for()
    made = api.post("/api/v1/silences", json={"matchers": ["service=api", "instance=~api-.*"], "duration": "1h",
                                              "reason": "failover drill"})
    assert made.status_code == 201, made.text
    assert made.json()["matchers"] == ["service=api", "instance=~api-.*"]
    api.post("/api/v1/alerts", json=payload("firing"))
    opened = api.get("/api/v1/incidents/1").json()["events"][0]
    assert opened["details"] == {"severity": "critical", "silenced": True, "title": opened["details"]["title"]}
    assert [s["id"] for s in api.get("/api/v1/silences").json()] == [1]
    assert api.post("/api/v1/silences/1/expire").json()["expired_at"] is not None
    assert api.get("/api/v1/silences").json() == []
    again = api.post("/api/v1/silences/1/expire")
    assert (again.status_code, again.json()) == (
        409, {"detail": "silence #1 is expired, cannot move to expired: it already is"})
    bad = api.post("/api/v1/silences", json={"matchers": ["service"], "duration": "1h", "reason": "x"})
    assert (bad.status_code, bad.json()) == (
        400, {"detail": "expected a label matcher such as service=api or instance=~web.*, found 'service'"})


@pytest.mark.slow
def test_the_daemon_takes_alertmanager_webhooks(tmp_path, subprocess_env):
    """``aiops run`` as the service runs it: the webhook, the token from the config, the JSON API."""
    import subprocess

    import requests

    from tests.conftest import PYTHON, free_port, wait_until

    port = free_port()
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent:\n  state_dir: {tmp_path / 'state'}\n  interval: 1h\n"
        f"http:\n  listen: 127.0.0.1\n  port: {port}\n  token_file: {tmp_path / 'token'}\n"
        "sources:\n  scrape:\n    targets: []\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "token").chmod(0o600)
    base = f"http://127.0.0.1:{port}"
    daemon = subprocess.Popen([PYTHON, "-m", "agent.cli", "run", "--config", str(config)], env=subprocess_env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up() -> bool:
        try:
            return requests.get(base + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            assert daemon.poll() is None, daemon.stderr.read().decode()[-2000:]
            return False

    try:
        wait_until(up, 30, message="the daemon's HTTP app")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = requests.post(base + "/api/v1/alerts", json=payload("firing"), headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["opened"] == [1]
        listed = requests.get(base + "/api/v1/incidents", timeout=10).json()
        assert [(i["id"], i["severity"], i["signal_count"]) for i in listed] == [(1, "critical", 2)]
        assert "aiops_alerts_ingested_total 2.0" in requests.get(base + "/metrics", timeout=10).text
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0


def test_the_fingerprint_is_the_alert_identity(api_for):
    api = api_for()
    body = payload("firing")
    body["alerts"] = body["alerts"][:1]
    api.post("/api/v1/alerts", json=body)
    body["alerts"][0]["labels"]["pod"] = "api-1-7f9c"  # same fingerprint, a label more: same signal
    api.post("/api/v1/alerts", json=body)
    del body["alerts"][0]["fingerprint"]  # no fingerprint: computed from the labels, a new signal
    api.post("/api/v1/alerts", json=body)
    signals = api.get("/api/v1/incidents/1").json()["signals"]
    [signal_a, signal_b] = sorted(signals, key=lambda s: -s["hits"])
    assert (signal_a["series_id"], signal_a["hits"]) == (
        'ALERTS{alertname="HighLatency",fingerprint="a1b2c3d4e5f60718"}', 2)
    assert signal_b["hits"] == 1 and signal_b["labels"]["pod"] == "api-1-7f9c"


def test_hostile_times_and_ids_get_a_4xx_or_a_time_every_reader_can_render(api_for):
    api = api_for()
    api.ctx.clock = lambda: at(30)
    body = payload("firing")
    body["alerts"][0]["startsAt"] = "2026-03-02T12:00:00"  # no zone: UTC
    body["alerts"][1]["startsAt"] = "0001-01-01T00:00:01Z"  # Alertmanager's zero time: unknown
    assert api.post("/api/v1/alerts", json=body).status_code == 200
    future = payload("firing")
    for alert in future["alerts"]:
        alert["startsAt"] = alert["endsAt"] = "9999-12-31T23:59:59Z"
        alert["labels"]["instance"] = "far-1"
    assert api.post("/api/v1/alerts", json=future).status_code == 200
    listed = api.get("/api/v1/incidents").json()
    assert len(listed) == 2  # the far-1 alerts start at "now", beyond the first incident's window
    for incident in listed:
        page = api.get(f"/incidents/{incident['id']}")
        assert page.status_code == 200
        shown = api.get(f"/api/v1/incidents/{incident['id']}").json()
        assert "2026-03-02T12:00:00Z" <= shown["started_at"] <= "2026-03-02T12:30:00Z"

    for path in ("/api/v1/incidents/10000000000000000000", "/incidents/10000000000000000000",
                 "/api/v1/remediations/9223372036854775808", "/api/v1/incidents/0"):
        answer = api.get(path)
        assert answer.status_code == 422, (path, answer.text)
    assert api.post("/api/v1/incidents/99999999999999999999/ack").status_code == 422
    assert api.post("/api/v1/silences/9223372036854775808/expire").status_code == 422

    for silence, reason in (
            ({"duration": "99999999999d"}, "duration: expected a duration that stays between 1970-01-01 and 9000-01-01"),
            ({"duration": 1e300}, "duration: expected a duration that stays between 1970-01-01 and 9000-01-01"),
            ({"starts_at": "9999-01-01T00:00:00Z", "duration": "1h"},
             "starts_at: expected a time from 1970-01-01 to before 9000-01-01, found 9999-01-01T00:00:00+00:00")):
        made = api.post("/api/v1/silences", json={"matchers": ["service=api"], "reason": "x", **silence})
        assert made.status_code == 400 and made.json()["detail"].startswith(reason), made.text


def test_a_megabyte_label_is_cut_and_marked_and_the_page_stays_small(api_for):
    api = api_for()
    body = payload("firing")
    body["alerts"][0]["labels"]["service"] = "x" * 1_000_000
    body["alerts"][0]["annotations"]["summary"] = "y" * 5000
    assert api.post("/api/v1/alerts", json=body).status_code == 200
    shown = api.get("/api/v1/incidents/1").json()
    assert shown["labels"]["service"] == "x" * 1024 + "…[truncated: 1000000 characters]"
    page = api.get("/incidents/1")
    assert page.status_code == 200 and len(page.content) < 200_000
