"""The HTTP server's own limits, against the real server (uvicorn on a loopback port) over raw
sockets: a deadline on reading a request, a cap on connections, a cap on bodies, no request with
both Transfer-Encoding and Content-Length, and only this agent's names in the Host header."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from agent.context import Context
from agent.daemon import HttpServer
from tests.agent.test_daemon import TOKEN, daemon  # noqa: F401  (the real daemon as a fixture)

CHANGE = json.dumps({"kind": "deploy", "labels": {"service": "api"}, "description": "v2"}).encode()


@pytest.fixture
def serve(make_config, tmp_path) -> Iterator[Callable[..., HttpServer]]:
    started: list[tuple[Context, HttpServer]] = []

    def start(http_yaml: str = "") -> HttpServer:
        config = make_config(f"http:\n  listen: 127.0.0.1\n  port: 0\n  token: {TOKEN}\n{http_yaml}")
        ctx = Context.create(config, tmp_path / "state")
        server = HttpServer(ctx, None)
        server.start()
        assert server.server.started
        started.append((ctx, server))
        return server

    yield start
    for ctx, server in started:
        server.stop()
        ctx.store.close()


def connect(server: HttpServer, timeout_s: float = 30) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s)


def request(path: str, *, method: str = "GET", host: str = "127.0.0.1", headers: dict[str, str] | None = None,
            body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answer(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (True) or pauses (False)."""
    data = b""
    sock.settimeout(3)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    return data, True


def status_and_detail(data: bytes) -> tuple[int, str]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["detail"]


def refused(server: HttpServer, reason: str) -> float:
    return server.config.app.metrics.http_refused.labels(reason=reason)._value.get()


def test_a_connection_that_never_finishes_its_headers_is_closed_at_the_header_timeout(serve):
    server = serve("  header_timeout: 1s\n")
    silent, slow = connect(server), connect(server)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the blank line

    assert silent.recv(1) == b"" and slow.recv(1) == b""  # closed by the server, not by the 30 s timeout
    assert refused(server, "header_timeout") == 2
    assert requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10).status_code == 200


def test_a_body_that_trickles_is_closed_at_the_body_timeout(serve):
    server = serve("  body_timeout: 1s\n")
    sock = connect(server)
    sock.sendall(request("/api/v1/changes", method="POST", body=CHANGE[:5], headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "Content-Length": str(len(CHANGE))}))

    assert sock.recv(1) == b""
    assert refused(server, "body_timeout") == 1


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_past_max_body_gets_413_and_the_connection_is_closed(serve, chunked):
    server = serve("  max_body: 1KiB\n")
    big = b'{"kind": "deploy", "description": "' + b"x" * 2000 + b'"}'
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    sock = connect(server)
    if chunked:
        sock.sendall(request("/api/v1/changes", method="POST", headers={**auth, "Transfer-Encoding": "chunked"},
                             body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)))
    else:
        sock.sendall(request("/api/v1/changes", method="POST", headers={**auth, "Content-Length": str(len(big))}))

    data, closed = answer(sock)
    found = "more" if chunked else len(big)
    assert status_and_detail(data) == (413, f"expected a body of at most 1024 bytes (http.max_body), found {found}")
    assert closed
    small = requests.post(f"http://127.0.0.1:{server.port}/api/v1/changes", data=iter([CHANGE]) if chunked else CHANGE,
                          headers=auth, timeout=10)  # an iterator goes chunked: read here, then replayed to the app
    assert small.status_code == 201, small.text


def test_the_webhook_has_a_cap_of_its_own(serve):
    server = serve("  max_body: 1KiB\n  max_webhook_body: 8KiB\n")
    url = f"http://127.0.0.1:{server.port}/api/v1/alerts"
    alerts = [{"status": "firing", "labels": {"alertname": f"A{i}", "instance": "h1"},
               "startsAt": "2026-03-02T12:00:00Z"} for i in range(30)]
    body = json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()
    assert 1024 < len(body) < 8192
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    assert requests.post(url, data=body, headers=auth, timeout=10).status_code == 200
    assert requests.post(url, data=body * 8, headers=auth, timeout=10).status_code == 413


def test_transfer_encoding_with_content_length_is_refused_and_the_connection_closed(serve):
    server = serve()
    sock = connect(server)
    # A smuggler's request: a front end reading Content-Length and this server reading chunks
    # would disagree on where the next request begins.
    sock.sendall(request("/api/v1/changes", method="POST", body=b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                         headers={"Authorization": f"Bearer {TOKEN}", "Content-Length": "5",
                                  "Transfer-Encoding": "chunked"}))

    data, closed = answer(sock)
    assert status_and_detail(data) == (400, "Transfer-Encoding and Content-Length together (RFC 9112 6.3); "
                                            "the connection is closed")
    assert closed and data.count(b"HTTP/1.1 ") == 1  # the smuggled request was never answered
    assert refused(server, "transfer_encoding_and_length") == 1


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:{port}", 200), ("localhost:{port}", 200), ("[::1]:{port}", 200), ("10.1.2.3", 200),
    ("agent.example.net:{port}", 200), ("AIOPS.internal.", 200), ("app.localhost", 200),
    ("evil.example:{port}", 400), ("127.0.0.1.nip.io", 400), ("agent.example.net.evil.example", 400)])
def test_only_this_agents_names_are_accepted_in_the_host_header(serve, host, status):
    server = serve("  public_url: https://agent.example.net/aiops\n  allowed_hosts: [aiops.internal]\n")
    sock = connect(server)
    sock.sendall(request("/incidents", host=host.format(port=server.port)))

    data, _ = answer(sock)
    assert int(data.split(b" ")[1]) == status
    if status == 400:
        assert status_and_detail(data)[1] == (f"Host {host.format(port=server.port)!r} is not a name of this agent "
                                              "(add it to http.allowed_hosts)")


def test_idle_connections_past_the_descriptor_limit_do_not_starve_healthz(daemon):  # noqa: F811
    d: Any = daemon(nofile=128)  # the connection cap: 64, half of it
    d.wait_log("event=cycle.done")
    clients = []
    try:
        for _ in range(300):  # more idle connections than the daemon has descriptors
            clients.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
        health = requests.get(d.url + "/healthz", timeout=10)
        assert health.status_code == 200, health.text
        metrics = d.get("/metrics").text
        closed = float(next(line.split()[-1] for line in metrics.splitlines()
                            if line.startswith('aiops_http_refused_total{reason="connection_cap"}')))
        assert closed >= 300 - 64
        assert "out of system resource" not in d.text()
        assert d.proc.poll() is None
    finally:
        for client in clients:
            client.close()
