"""One JSON error shape for every failure, in OpenAI's form so SDKs raise as usual:

{"error": {"message": "...", "type": "...", "code": "...", "param": null,
           "request_id": "..."}}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from bastion.errors import BastionError
from bastion.observability import current_request_id

log = logging.getLogger("bastion.api")


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": type_,
            "code": code,
            "param": param,
            "request_id": current_request_id(),
        }
    }


def error_response(
    status: int,
    message: str,
    type_: str,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, type_, code, param), status_code=status, headers=headers
    )


def bastion_error_response(exc: BastionError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    param = exc.details.get("param")
    return error_response(exc.status, exc.message, exc.type, exc.code, param, headers)


async def _bastion_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BastionError)
    return bastion_error_response(exc)


def _describe(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "value_error"}
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx")
        reason = ctx.get("error", "parse error") if isinstance(ctx, dict) else "parse error"
        return error_response(
            400,
            f"the request body is not valid JSON ({reason}): send a JSON object",
            "invalid_request_error",
            "invalid_json",
        )
    field = _describe(tuple(first.get("loc", ())))
    more = (
        f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        if len(errors) > 1
        else ""
    )
    return error_response(
        422 if first.get("type") != "missing" else 400,
        f"{field}: {first.get('msg', 'invalid')}{more}",
        "invalid_request_error",
        "invalid_request",
        field,
    )


def _allowed(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first)."""
    methods: set[str] = set()
    stack = list(request.app.router.routes)
    while stack:
        route = stack.pop()
        inner = getattr(route, "original_router", None)  # included routers nest
        if inner is not None:
            stack.extend(inner.routes)
            continue
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(request.scope["path"]):
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(
            404, "no such route: see /docs for the API", "not_found_error", "not_found"
        )
    if exc.status_code == 405:
        allow = _allowed(request) or (exc.headers or {}).get("Allow", "")
        return error_response(
            405,
            f"method not allowed on this route; it allows {allow or 'other methods'}",
            "invalid_request_error",
            "method_not_allowed",
            headers={"Allow": allow} if allow else None,
        )
    return error_response(exc.status_code, str(exc.detail), "invalid_request_error", "http_error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BastionError, _bastion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
