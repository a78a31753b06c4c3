"""URLs as the agent shows them (logs, status, links, notifications): never with credentials."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` part (the rest as written)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password (``user:password@host``)."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    return bool(at) and ":" in userinfo
