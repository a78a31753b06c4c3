"""Turning what requests raises into a FetchError with a short, factual reason, and reading a
body within a total deadline and a size cap.

``fetch_bounded`` asks for gzip (what exporters send when asked: node_exporter always does) and
inflates the body itself, a bounded piece at a time, so the size cap counts inflated bytes: a
gzip bomb stops at the cap, having cost the cap and one read of compressed bytes. An answer in an
encoding that was not asked for (``br``, ``deflate``), or a gzip body that does not inflate
(not gzip at all, or cut short), is a FetchError of kind ``encoding``.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from agent.sources.base import FailureKind, FetchError


def describe_connection_error(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, ConnectionResetError):
            return "connection reset by the server"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "RemoteDisconnected" in text or "without response" in text:
        return "the server closed the connection without a response"
    if "Name or service not known" in text or "NameResolutionError" in text:
        return "the host name does not resolve"
    return "cannot connect"


def send(session: requests.Session, method: str, source: str, target: str, url: str, *, timeout_s: float,
         **kwargs: object) -> requests.Response:
    """One request; connection problems and timeouts become a FetchError (status codes are the caller's)."""
    try:
        return session.request(method, url, timeout=timeout_s, **kwargs)  # type: ignore[arg-type]
    except requests.RequestException as exc:
        raise _fetch_error(exc, source, target, timeout_s) from None


def read_error(exc: requests.RequestException, source: str, target: str, timeout_s: float) -> FetchError:
    """The FetchError for a failure while a streamed body (``stream=True``) is read."""
    return _fetch_error(exc, source, target, timeout_s)


def _fetch_error(exc: BaseException, source: str, target: str, timeout_s: float) -> FetchError:
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        return FetchError(source, target, FailureKind.TIMEOUT, f"no answer within {timeout_s:g}s")
    if isinstance(exc, requests.TooManyRedirects):
        return FetchError(source, target, FailureKind.REDIRECTS, "too many redirects (a redirect loop?)")
    # A broken answer (bad chunking or compression, a body cut short) is not a refused
    # connection: these are told apart before the ConnectionError catch-all below.
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                        urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError)):
        return FetchError(source, target, FailureKind.PROTOCOL, f"a broken HTTP answer ({type(exc).__name__})")
    if isinstance(exc, requests.ConnectionError):
        return FetchError(source, target, FailureKind.CONNECTION, describe_connection_error(exc))
    return FetchError(source, target, FailureKind.PROTOCOL, f"the request failed ({type(exc).__name__})")


ACCEPT_ENCODING = "gzip"
_GZIP = ("gzip", "x-gzip")
_IDENTITY = ("", "identity")
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


class _Inflater:
    """A gzip body inflated as it arrives, never more than the caller has room for: deflate can
    expand a thousandfold, so each piece is inflated up to a limit, not whole."""

    def __init__(self) -> None:
        self._stream = zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes, room: int) -> bytes:
        """What ``data`` inflates to, cut at ``room + 1`` bytes (one past: the caller sees the cap
        passed). A body may hold several gzip members one after another (RFC 1952)."""
        out: list[bytes] = []
        produced = 0
        while data and produced <= room:
            if self._stream.eof:
                self._stream = zlib.decompressobj(_GZIP_WBITS)
            piece = self._stream.decompress(data, room + 1 - produced)
            out.append(piece)
            produced += len(piece)
            data = self._stream.unused_data if self._stream.eof else self._stream.unconsumed_tail
        return b"".join(out)

    @property
    def complete(self) -> bool:
        return self._stream.eof


def _inflater(encoding: str, source: str, target: str) -> _Inflater | None:
    """The decoder for a Content-Encoding (None: the body is as sent), or a FetchError."""
    if encoding in _IDENTITY:
        return None
    if encoding in _GZIP:
        return _Inflater()
    raise FetchError(source, target, FailureKind.ENCODING,
                     f"a body in {encoding!r} encoding, which was not asked for (only {ACCEPT_ENCODING})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    status_code: int
    content_type: str
    content: bytes


def fetch_bounded(session: requests.Session, source: str, target: str, url: str, *, timeout_s: float,
                  deadline_s: float, max_bytes: int, headers: dict[str, str] | None = None,
                  monotonic: Callable[[], float] = time.monotonic) -> Body:
    """GET ``url`` and read its body; a FetchError once ``deadline_s`` has passed since the start
    (however the bytes trickle in) or the body grows past ``max_bytes`` (inflated, for gzip).

    The body is read here, a bounded piece at a time; the status line and headers, which
    http.client reads in one go, are cut by a timer that shuts the socket down at the deadline
    (with a session from ``bounded_session``)."""
    deadline = _Deadline(source=source, target=target, deadline_s=deadline_s, started=monotonic(),
                         monotonic=monotonic)
    response = _get_headers(session, url, headers, wait=min(timeout_s, deadline_s), deadline=deadline)
    with response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(source, target, FailureKind.TOO_LARGE,
                             f"a body of {int(declared)} bytes, past the {max_bytes} byte limit")
        inflater = _inflater(response.headers.get("content-encoding", "").strip().lower(), source, target)
        content = _read_body(response.raw, inflater, timeout_s=timeout_s, max_bytes=max_bytes, deadline=deadline)
        response.raw.release_conn()  # read to its end: the connection can serve the next scrape
        return Body(status_code=response.status_code, content_type=response.headers.get("content-type", ""),
                    content=content)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Deadline:
    """The deadline of one fetch, on the caller's clock, and the FetchError it ends in."""

    source: str
    target: str
    deadline_s: float
    started: float
    monotonic: Callable[[], float]

    def passed(self) -> bool:
        return self.monotonic() - self.started >= self.deadline_s

    def left(self) -> float:
        """Seconds left; the FetchError once none are."""
        remaining = self.deadline_s - (self.monotonic() - self.started)
        if remaining <= 0:
            raise self.error()
        return remaining

    def error(self) -> FetchError:
        return FetchError(self.source, self.target, FailureKind.DEADLINE,
                          f"not done within the {self.deadline_s:g}s deadline")


def _get_headers(session: requests.Session, url: str, headers: dict[str, str] | None, *, wait: float,
                 deadline: _Deadline) -> requests.Response:
    """The response with its status line and headers read, its body not yet; a timer shuts the
    socket down if the deadline comes first."""
    watch = _HeaderWatch()
    timer = threading.Timer(deadline.deadline_s, watch.abort)
    timer.daemon = True
    watching = getattr(session, "watching", None) or threading.local()  # a plain Session: no header cut
    watching.current = watch
    timer.start()
    try:
        response = session.get(url, timeout=(wait, wait), stream=True,
                               headers={"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})})
    except requests.RequestException as exc:
        if watch.finish() or (isinstance(exc, requests.Timeout) and deadline.passed()):
            raise deadline.error() from None
        raise _fetch_error(exc, deadline.source, deadline.target, wait) from None
    finally:
        timer.cancel()
        watching.current = None
    if watch.finish():  # the timer shut the socket as the headers arrived: the body is cut
        response.close()
        raise deadline.error()
    return response


def _read_body(raw: urllib3.HTTPResponse, inflater: _Inflater | None, *, timeout_s: float, max_bytes: int,
               deadline: _Deadline) -> bytes:
    """The body, read to its end a bounded piece at a time (inflated, for gzip)."""
    source, target = deadline.source, deadline.target
    chunks: list[bytes] = []
    size = 0
    while True:
        # Each read waits at most what is left of the deadline: read1 returns what has
        # arrived, so a body sent a byte a second cannot hold a read open past it.
        _set_read_timeout(raw, min(timeout_s, deadline.left()))
        try:
            chunk = raw.read1(64 * 1024)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, urllib3.exceptions.TimeoutError) and deadline.passed():
                raise deadline.error() from None
            raise _fetch_error(exc, source, target, timeout_s) from None
        if not chunk:
            break
        if inflater is not None:
            chunk = _inflate(inflater, chunk, max_bytes - size, source, target)
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(source, target, FailureKind.TOO_LARGE, f"a body past the {max_bytes} byte limit"
                             + (" once inflated" if inflater is not None else ""))
        chunks.append(chunk)
    if inflater is not None and not inflater.complete:
        raise FetchError(source, target, FailureKind.ENCODING, "a gzip body cut short (it ends mid-stream)")
    return b"".join(chunks)


def _inflate(inflater: _Inflater, chunk: bytes, room: int, source: str, target: str) -> bytes:
    try:
        return inflater.feed(chunk, room)
    except zlib.error as exc:  # "Error -3 while decompressing data: incorrect header check"
        reason = str(exc).rpartition(": ")[2] or str(exc)
        raise FetchError(source, target, FailureKind.ENCODING,
                         f"a body that claims gzip but does not inflate ({reason})") from None


class _HeaderWatch:
    """The socket a request is waiting on for its headers, shut down if the deadline comes first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sock: socket.socket | None = None
        self._done = False
        self._fired = False

    def abort(self) -> None:
        with self._lock:
            if self._done or self.sock is None:
                self._fired = not self._done
                return
            self._fired = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read; close() would not
            except OSError:
                pass

    def finish(self) -> bool:
        """Stop watching; whether the deadline fired first."""
        with self._lock:
            self._done = True
            return self._fired


class _WatchedMixin:
    # The watch of the request this thread is making on the session: urllib3 builds connections
    # deep inside requests, so a connection finds it through its class, which the session's
    # adapters made for that session's thread-local (``bounded_session``).
    watching: threading.local

    def getresponse(self):  # type: ignore[no-untyped-def]
        watch = getattr(self.watching, "current", None)
        if watch is not None:
            with watch._lock:
                watch.sock = self.sock  # type: ignore[attr-defined]
                fired = watch._fired
            if fired:
                raise urllib3.exceptions.ProtocolError("deadline passed before the headers were read")
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def __init__(self, watching: threading.local) -> None:
        self.watching = watching  # before HTTPAdapter's init, which builds the pool manager
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            scheme: type(pool.__name__, (pool,), {"ConnectionCls": type(
                pool.ConnectionCls.__name__, (pool.ConnectionCls,), {"watching": self.watching})})
            for scheme, pool in (("http", _WatchedHTTPPool), ("https", _WatchedHTTPSPool))}


class BoundedSession(requests.Session):
    """A Session whose requests ``fetch_bounded`` can cut at the deadline while headers trickle in."""

    def __init__(self) -> None:
        super().__init__()
        self.watching = threading.local()
        self.mount("http://", _WatchedAdapter(self.watching))
        self.mount("https://", _WatchedAdapter(self.watching))


def bounded_session() -> requests.Session:
    return BoundedSession()


def _set_read_timeout(raw: urllib3.HTTPResponse, seconds: float) -> None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def looks_like_html(response: requests.Response | Body, head: str) -> bool:
    ctype = (response.content_type if isinstance(response, Body) else response.headers.get("content-type", "")).lower()
    return "html" in ctype or head.lstrip()[:1] == "<"
