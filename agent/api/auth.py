"""Bearer-token guard for every endpoint that changes state."""

from __future__ import annotations

import hmac

from fastapi import Header, HTTPException, Request, status


def require_token(request: Request, authorization: str | None = Header(default=None)) -> str:
    """The caller's actor name (``api``) when the bearer token matches, else 401/403."""
    token = request.app.state.ctx.config.http.token
    if token is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "state-changing endpoints are disabled: set http.token in the config")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode("utf-8"), token.get_secret_value().encode("utf-8")):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    return "api"
