"""Turning what requests raises into a FetchError with a short, factual reason."""

from __future__ import annotations

import requests

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
    except requests.Timeout:
        raise FetchError(source, target, FailureKind.TIMEOUT, f"no answer within {timeout_s:g}s") from None
    except requests.ConnectionError as exc:
        raise FetchError(source, target, FailureKind.CONNECTION, describe_connection_error(exc)) from None


def looks_like_html(response: requests.Response, head: str) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    return "html" in ctype or head.lstrip()[:1] == "<"
