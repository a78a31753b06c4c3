"""Turning what requests raises into a FetchError with a short, factual reason, and reading a
body within a total deadline and a size cap."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
import urllib3

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    status_code: int
    content_type: str
    content: bytes


def fetch_bounded(session: requests.Session, source: str, target: str, url: str, *, timeout_s: float,
                  deadline_s: float, max_bytes: int, headers: dict[str, str] | None = None,
                  monotonic: Callable[[], float] = time.monotonic) -> Body:
    """GET ``url`` and read its body; a FetchError once ``deadline_s`` has passed since the start
    (however the bytes trickle in) or the body grows past ``max_bytes`` (decompressed).

    The status line and headers are bounded by ``timeout_s`` per read only (http.client reads
    them before the body can be watched): a server trickling its headers is not cut at the
    deadline."""
    started = monotonic()

    def left() -> float:
        remaining = deadline_s - (monotonic() - started)
        if remaining <= 0:
            raise FetchError(source, target, FailureKind.DEADLINE, f"not done within the {deadline_s:g}s deadline")
        return remaining

    wait = min(timeout_s, deadline_s)
    try:
        response = session.get(url, timeout=(wait, wait), stream=True, headers=headers)
    except requests.RequestException as exc:
        if isinstance(exc, requests.Timeout) and monotonic() - started >= deadline_s:
            raise FetchError(source, target, FailureKind.DEADLINE,
                             f"not done within the {deadline_s:g}s deadline") from None
        raise _fetch_error(exc, source, target, wait) from None
    with response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(source, target, FailureKind.TOO_LARGE,
                             f"a body of {int(declared)} bytes, past the {max_bytes} byte limit")
        chunks: list[bytes] = []
        size = 0
        raw = response.raw
        while True:
            # Each read waits at most what is left of the deadline: read1 returns what has
            # arrived, so a body sent a byte a second cannot hold a read open past it.
            _set_read_timeout(raw, min(timeout_s, left()))
            try:
                chunk = raw.read1(64 * 1024)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if isinstance(exc, urllib3.exceptions.TimeoutError) and monotonic() - started >= deadline_s:
                    raise FetchError(source, target, FailureKind.DEADLINE,
                                     f"not done within the {deadline_s:g}s deadline") from None
                raise _fetch_error(exc, source, target, timeout_s) from None
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(source, target, FailureKind.TOO_LARGE, f"a body past the {max_bytes} byte limit")
            chunks.append(chunk)
        raw.release_conn()  # read to its end: the connection can serve the next scrape
        return Body(status_code=response.status_code, content_type=response.headers.get("content-type", ""),
                    content=b"".join(chunks))


def _set_read_timeout(raw: urllib3.HTTPResponse, seconds: float) -> None:
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def looks_like_html(response: requests.Response | Body, head: str) -> bool:
    ctype = (response.content_type if isinstance(response, Body) else response.headers.get("content-type", "")).lower()
    return "html" in ctype or head.lstrip()[:1] == "<"
