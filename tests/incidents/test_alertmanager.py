"""A real Alertmanager posting to the agent through its webhook receiver (with the token):
firing, resolved, a zone-less start, year 1 and year 9999, all in one group, so one refused
alert would lose the others. Alertmanager keeps real time, so the agent's clock is set to the
wall time the test starts at (and then stays there)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agent.clock import ManualClock, utcnow
from tests.conftest import wait_until
from tests.fixtures.alertmanager import needs_alertmanager
from tests.incidents.conftest import TOKEN

CASES = ("firing", "zoneless", "year1", "year9999")


def alert(case: str, starts_at: str, ends_at: str | None = None) -> dict:
    body = {"labels": {"alertname": "AiopsProbe", "case": case, "severity": "warning"},
            "annotations": {"summary": f"probe {case}"}, "startsAt": starts_at,
            "generatorURL": "http://prometheus.invalid/graph"}
    if ends_at is not None:
        body["endsAt"] = ends_at
    return body


def z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def signals(api) -> dict[str, dict]:
    """The agent's alert signals by their ``case`` label, read through its JSON API."""
    out = {}
    for brief in api.get("/api/v1/incidents").json():
        for signal in api.get(f"/api/v1/incidents/{brief['id']}").json()["signals"]:
            if signal["detector"] == "alertmanager":
                out[signal["labels"]["case"]] = signal
    return out


@needs_alertmanager
@pytest.mark.slow
def test_alertmanager_delivers_every_alert_of_a_hostile_group_and_its_resolution(api_for, alertmanager_factory):
    api = api_for()
    t0 = utcnow().replace(microsecond=0)
    api.ctx.clock = ManualClock(t0)
    manager = alertmanager_factory(f"{api.base}/api/v1/alerts", TOKEN)
    manager.post([
        alert("firing", z(t0 - timedelta(minutes=10))),
        alert("zoneless", (t0 - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")),
        alert("year1", "0001-01-01T00:00:01Z"),
        alert("year9999", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
    ])
    firing = wait_until(lambda: (found := signals(api)).keys() == set(CASES) and found, timeout_s=30,
                        message="the four firing alerts in the agent")
    # Starts outside [1970, now] are taken as now; a zone-less start is UTC (Alertmanager read it so).
    assert {case: firing[case]["first_at"] for case in CASES} == {
        "firing": z(t0 - timedelta(minutes=10)), "zoneless": z(t0 - timedelta(minutes=5)),
        "year1": z(t0), "year9999": z(t0)}
    assert all(signal["resolved_at"] is None for signal in firing.values())

    manager.post([alert("firing", z(t0 - timedelta(minutes=10)), z(t0 - timedelta(minutes=1)))])
    done = wait_until(lambda: (found := signals(api))["firing"]["resolved_at"] and found, timeout_s=30,
                      message="the resolved alert in the agent")
    assert {case: signal["resolved_at"] for case, signal in done.items()} == {
        "firing": z(t0 - timedelta(minutes=1)), "zoneless": None, "year1": None, "year9999": None}

    for brief in api.get("/api/v1/incidents").json():  # every stored row still renders
        assert api.get(f"/incidents/{brief['id']}").status_code == 200
    assert manager.metric("alertmanager_notifications_total", integration="webhook") >= 2
    assert manager.metric("alertmanager_notifications_failed_total", integration="webhook") == 0, manager.log()[-3000:]
    assert api.ctx.metrics.registry.get_sample_value("aiops_alerts_ingested_total") >= 8
