"""Bearer-token guard for every endpoint that changes state.

``HTTPBearer`` (with ``auto_error`` off, so the messages below are ours) declares the scheme in
the OpenAPI document: a generated client knows which operations need the token.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="The token set as http.token in the agent's config.")


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """The caller's actor name (``api``) when the bearer token matches, else 401/403."""
    token = request.app.state.ctx.config.http.token
    if token is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "state-changing endpoints are disabled: set http.token in the config")
    given = credentials.credentials.strip() if credentials is not None else ""
    if not given:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.get_secret_value().encode("utf-8")):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    return "api"
