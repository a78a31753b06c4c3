"""What the daemon's HTTP server refuses before a route sees a request.

Two layers, each where the fact is known:

- ``GuardedProtocol`` (uvicorn's h11 protocol, per connection): a request's line and headers must
  arrive within ``http.header_timeout`` of the connection (or of the first byte after the previous
  answer), and its body within ``http.body_timeout``; otherwise the connection is closed. At most
  ``http.max_connections`` are open: a new one past that closes the connection that has waited
  longest without a request under way (an idle keep-alive, a client that never finished its
  headers), or itself when every one is busy. So idle connections, however many, cannot use up
  the descriptors and starve ``/healthz`` or a scrape.
- ``RequestGuard`` (ASGI, per request): the ``Host`` header must name this agent (DNS rebinding: a
  page of another site whose name now resolves to 127.0.0.1 must not read ours); a request with
  both ``Transfer-Encoding`` and ``Content-Length`` is refused and its connection closed (RFC 9112
  §6.3: the two disagree on where the body ends, the start of request smuggling); a body past
  ``http.max_body`` (``http.max_webhook_body`` for the Alertmanager webhook) gets 413 and the
  connection is closed without reading the rest.

Every refusal is counted (``aiops_http_refused_total{reason}``); refusals are not logged one by
one, since a flood of them would flood the log.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import resource
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent.config.model import HttpSection
from agent.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WEBHOOK_PATH = "/api/v1/alerts"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_WILDCARDS = ("", "0.0.0.0", "::")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    max_body: int
    max_webhook_body: int
    hosts: frozenset[str]  # names a Host header may carry (lower case, no port); "*": any

    @classmethod
    def of(cls, http: HttpSection) -> Limits:
        return cls(header_timeout_s=http.header_timeout, body_timeout_s=http.body_timeout,
                   max_connections=http.max_connections or default_max_connections(),
                   max_body=http.max_body, max_webhook_body=http.max_webhook_body, hosts=allowed_hosts(http))


def default_max_connections() -> int:
    """Half the process's descriptor limit (the rest is the store's, the scrapes', the playbooks'),
    at most 1024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(8, min(1024, soft // 2)) if soft != resource.RLIM_INFINITY else 1024


def allowed_hosts(http: HttpSection) -> frozenset[str]:
    """The names this agent answers to: loopback names, the listen address, the host of
    ``public_url``, this machine's names, and ``http.allowed_hosts``. An IP address is always
    accepted: DNS rebinding needs a name."""
    names = {*LOOPBACK_NAMES, *(h.lower() for h in http.allowed_hosts)}
    if http.listen not in _WILDCARDS:
        names.add(http.listen.lower().strip("[]"))
    if http.public_url:
        names.add((urlsplit(http.public_url).hostname or "").lower())
    if http.listen in _WILDCARDS:  # reached from other machines: by this machine's own names too
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return frozenset(n for n in names if n)


def host_allowed(header: str, hosts: frozenset[str]) -> bool:
    if "*" in hosts:
        return True
    if header.startswith("["):  # [IPv6]:port
        name = header[1:header.find("]")] if "]" in header else header
    else:
        name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    name = name.lower().rstrip(".")
    if name.endswith(".localhost") or name in hosts:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class RequestGuard:
    """ASGI middleware: Host, Transfer-Encoding with Content-Length, body size (see the module)."""

    def __init__(self, app: ASGIApp, limits: Limits, metrics: Metrics) -> None:
        self.app = app
        self.limits = limits
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if host is not None and not host_allowed(host, self.limits.hosts):
            await self.refuse(send, 400, "host", f"Host {host[:100]!r} is not a name of this agent "
                                                 "(add it to http.allowed_hosts)")
            return
        if "transfer-encoding" in headers and "content-length" in headers:
            await self.refuse(send, 400, "transfer_encoding_and_length",
                              "Transfer-Encoding and Content-Length together (RFC 9112 6.3); the connection is closed")
            return
        key, cap = (("max_webhook_body", self.limits.max_webhook_body) if scope["path"] == WEBHOOK_PATH
                    else ("max_body", self.limits.max_body))
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            await self.refuse(send, 413, "body_too_large",
                              f"expected a body of at most {cap} bytes (http.{key}), found {int(length)}")
            return
        if "transfer-encoding" in headers:  # no length said: read it here, within the cap
            body = await _read_within(receive, cap)
            if body is None:
                await self.refuse(send, 413, "body_too_large",
                                  f"expected a body of at most {cap} bytes (http.{key}), found more")
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def refuse(self, send: Send, status: int, reason: str, detail: str) -> None:
        self.metrics.http_refused.labels(reason=reason).inc()
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


async def _read_within(receive: Receive, cap: int) -> bytes | None:
    """The whole body, or None once it passes ``cap`` bytes (the rest is left unread)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: the app sees an empty body, as it would have
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # a disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class ConnectionGuard:
    """The open connections of one server, oldest first, and the limits they live under."""

    def __init__(self, limits: Limits, metrics: Metrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open: dict[GuardedProtocol, None] = {}  # insertion order: oldest first

    def admit(self, conn: GuardedProtocol) -> None:
        self.open[conn] = None
        if len(self.open) <= self.limits.max_connections:
            return
        victim = next((c for c in self.open if c is not conn and c.idle), conn)
        self.close(victim, "connection_cap")

    def forget(self, conn: GuardedProtocol) -> None:
        self.open.pop(conn, None)

    def close(self, conn: GuardedProtocol, reason: str) -> None:
        self.forget(conn)
        self.metrics.http_refused.labels(reason=reason).inc()
        conn.transport.close()

    @property
    def backlog(self) -> int:
        """The listen backlog, which is also how many connections asyncio accepts at one wake-up
        before any of them is admitted here: a quarter of the cap keeps a burst of new connections
        within the descriptors the cap leaves free."""
        return max(8, min(2048, self.limits.max_connections // 4))

    def protocol_factory(self) -> Callable[..., asyncio.Protocol]:
        """What ``uvicorn.Config(http=...)`` takes: builds a GuardedProtocol per connection."""
        return cast(Callable[..., asyncio.Protocol], functools.partial(GuardedProtocol, guard=self))


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request and a cap on connections."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        """No request under way: before its first, between two, or still reading a request's head."""
        return self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("header_timeout", self.guard.limits.header_timeout_s)
        self.guard.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm("header_timeout", self.guard.limits.header_timeout_s)  # the next request begins
        before = self.conn.their_state
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY and before is not h11.SEND_BODY:
            self._arm("body_timeout", self.guard.limits.body_timeout_s)
        elif state is not h11.IDLE and state is not h11.SEND_BODY:
            self._disarm()  # the request is read: what the app takes is not the client's doing

    def _arm(self, reason: str, after_s: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(after_s, self._expired, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, reason: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.guard.close(self, reason)
