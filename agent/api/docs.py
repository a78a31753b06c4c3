"""What the OpenAPI document says beyond the routes' signatures: the error body, which error
statuses each operation can answer, and request bodies a route parses itself.

Every error the app sends is ``{"detail": …}``: a sentence saying what was wrong (key path,
expected, found), or, for a request that fails validation, FastAPI's list of problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict


class Problem(BaseModel):
    """One validation problem: where (``loc``, the key path), what (``msg``), its ``type``."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    detail: str | list[Problem]


_MEANING = {
    400: "The body could not be used; ``detail`` says where and why.",
    401: "Missing or wrong bearer token.",
    403: "State-changing endpoints are disabled (no http.token in the config).",
    404: "No such row.",
    409: "The change conflicts with the current state (e.g. an incident already resolved).",
    422: "A parameter or body field is invalid; ``detail`` gives its key path and the reason.",
    503: "The store cannot take the write now (locked, full, down or not answering); nothing was written: "
         "retry after ``Retry-After`` seconds.",
}
AUTH = (401, 403)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with its meaning and the error body, as JSON
    even on routes that answer HTML (a ``model`` would take the route's media type)."""
    return {code: {"description": _MEANING[code], "content": {"application/json": {"schema": _ref(ErrorBody)}}}
            for code in codes}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """``openapi_extra=`` declaring ``model`` as the JSON body of a route that reads the body
    itself (to answer with its own reason); pass the model to ``install`` too."""
    return {"requestBody": {"required": True, "description": description, "content": {
        "application/json": {"schema": _ref(model)}}}}


def install(app: FastAPI, bodies: Sequence[type[BaseModel]]) -> None:
    """Serve a document whose components also hold ``ErrorBody`` and ``bodies`` (the models
    given to ``json_body``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in (ErrorBody, *bodies):
                schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
