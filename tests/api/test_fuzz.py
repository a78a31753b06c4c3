"""schemathesis against the real app, in process (ASGI): every operation of the OpenAPI document,
as an anonymous caller and with the bearer token, valid and invalid inputs. No answer may be a
5xx or an exception, and every status must be one the document declares for that operation.

The store is seeded first with what once broke later reads (alerts with a zone-less start, year 1
and year 9999), and the fuzzer's own writes stay in it, so reads run over hostile stored rows too.
Hypothesis is derandomized: the same examples every run; ``EXAMPLES`` bounds the time (about
40 s on two shared cores).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extra: pip install -e '.[test]'")

from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the skip)
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import status_code_conformance  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from agent.api import create_app  # noqa: E402
from agent.clock import ManualClock  # noqa: E402
from agent.config import AgentConfig  # noqa: E402
from agent.context import Context  # noqa: E402

# Per operation and run (21 operations x 3 runs); AIOPS_FUZZ_EXAMPLES=500 for a deeper search.
EXAMPLES = int(os.environ.get("AIOPS_FUZZ_EXAMPLES", "40"))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
TOKEN = "fuzz-token"
HOSTILE_STARTS = ["2026-03-02T11:00:00", "0001-01-01T00:00:01Z", "9999-12-31T23:59:59Z"]


def alert_body(starts_at: str, *, status: str = "firing", ends_at: str | None = None) -> dict[str, Any]:
    alert = {"status": status, "labels": {"alertname": "Hostile", "start": starts_at}, "annotations": {},
             "startsAt": starts_at, "endsAt": ends_at or "0001-01-01T00:00:00Z", "generatorURL": "",
             "fingerprint": ""}
    return {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": status, "receiver": "aiops",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "", "alerts": [alert]}


@pytest.fixture
def app_ctx(make_config: Callable[[str], AgentConfig], tmp_path: Path) -> Iterator[tuple[Any, Context]]:
    config = make_config(f"http:\n  token: {TOKEN}\n")
    ctx = Context.create(config, tmp_path / "state", clock=ManualClock(NOW))
    app = create_app(ctx)
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for start in HOSTILE_STARTS:
            answer = client.post("/api/v1/alerts", content=json.dumps(alert_body(start)), headers=auth)
            assert answer.status_code == 200, answer.text
        answer = client.post("/api/v1/alerts", headers=auth, content=json.dumps(
            alert_body("9999-12-31T23:59:59Z", status="resolved", ends_at="9999-12-31T23:59:59Z")))
        assert answer.status_code == 200, answer.text
    assert ctx.store.query_one("SELECT count(*) FROM incidents")[0] >= 1
    yield app, ctx
    ctx.store.close()


def has_inputs(operation: Any) -> bool:
    return bool(len(operation.path_parameters) or len(operation.query) or len(operation.body))


@pytest.mark.slow
@pytest.mark.parametrize("caller, mode", [("anonymous", GenerationMode.POSITIVE), ("token", GenerationMode.POSITIVE),
                                          ("token", GenerationMode.NEGATIVE)])
def test_no_operation_answers_a_server_error_or_an_undeclared_status(app_ctx, caller, mode):
    app, ctx = app_ctx
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {TOKEN}"} if caller == "token" else {}
    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 33, [op.label for op in operations]
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
            continue  # nothing to make invalid

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Any) -> None:
            try:
                response = case.call(headers=headers)
                statuses[(operation.label, response.status_code)] += 1
                case.validate_response(response, checks=[not_a_server_error, status_code_conformance],
                                       headers=headers)
            except BaseException as exc:  # noqa: BLE001 (an app exception or a failed check, kept to report)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:600]}\n"
                                f"  {case.as_curl_command(headers=headers)[:600]}")

        try:
            fuzz()
        except Unsatisfiable:
            failures.append(f"{operation.label}: no example could be generated")
    assert failures == []
    called = {label for label, _ in statuses}
    assert called == {op.label for op in operations if mode is GenerationMode.POSITIVE or has_inputs(op)}
    if caller == "token" and mode is GenerationMode.POSITIVE:
        # the fuzzer got past the guard and had bodies accepted, not only refused
        assert statuses[("POST /api/v1/alerts", 200)] > 0 and statuses[("POST /api/v1/changes", 201)] > 0
    if caller == "anonymous":
        assert statuses[("POST /api/v1/alerts", 401)] > 0 and statuses[("POST /api/v1/alerts", 200)] == 0


def test_openapi_declares_the_bearer_scheme_the_error_bodies_and_the_webhook_body(app_ctx):
    app, _ = app_ctx
    with TestClient(app) as client:
        doc = client.get("/api/v1/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "The token set as http.token in the agent's config."}
    ops = {(method.upper(), path): op for path, methods in doc["paths"].items() for method, op in methods.items()}
    guarded = sorted(key for key, op in ops.items() if op.get("security") == [{"bearer": []}])
    assert guarded == sorted([key for key in ops if key[0] == "POST"] + [("GET", "/api/v1/audit")])
    for key, op in ops.items():
        declared = {code for code in op["responses"] if code.startswith(("4", "5"))}
        if key in guarded:
            assert {"401", "403"} <= declared, key
        for code in declared - {"503"}:
            assert op["responses"][code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"}, (key, code)
    health = ops[("GET", "/healthz")]["responses"]
    assert {code: answer["content"]["application/json"]["schema"] for code, answer in health.items()} == {
        "200": {"$ref": "#/components/schemas/HealthOut"}, "503": {"$ref": "#/components/schemas/HealthOut"}}
    body = ops[("POST", "/api/v1/alerts")]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/WebhookPayload"}
    webhook = doc["components"]["schemas"]["WebhookPayload"]
    assert webhook["required"] == ["version", "status", "alerts"]
    assert webhook["properties"]["alerts"]["items"] == {"$ref": "#/components/schemas/AlertPayload"}
    assert sorted(doc["components"]["schemas"]["AlertPayload"]["required"]) == ["labels", "startsAt", "status"]
