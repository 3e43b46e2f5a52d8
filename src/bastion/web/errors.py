"""Errors under ``/ui`` as pages people can read, never a stack trace.

The API's handlers stay the one place that maps an error to a status and a stable code;
for a request under ``/ui`` their JSON answer is turned into HTML: 401 a redirect to the
sign-in page (with ``next``), 403 a page naming the missing permission, 404 and the
rest a page with the code and the message. Unexpected exceptions get a page with the
request id (the log holds the rest).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from bastion.errors import BastionError
from bastion.observability import current_request_id
from bastion.web.frame import SESSION_COOKIE, render

log = logging.getLogger("bastion.web")

Handler = Callable[[Request, Exception], Awaitable[Response]]

TITLES = {
    400: "That request was not understood",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    409: "Conflict",
    422: "That request was not understood",
    503: "Unavailable for now",
}


def is_ui(request: Request) -> bool:
    path = request.url.path
    return (path == "/ui" or path.startswith("/ui/")) and not path.startswith("/ui/static/")


def sign_in_redirect(request: Request, reason: str) -> RedirectResponse:
    query = {"reason": reason}
    if request.method == "GET" and request.url.path not in ("/ui/login", "/ui/logout"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query["next"] = target
    response = RedirectResponse(f"/ui/login?{urlencode(query)}", status_code=303)
    if reason == "session_expired":
        response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


def error_page(
    request: Request, status: int, code: str, message: str, permission: str | None = None
) -> Response:
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": TITLES.get(status, "Something went wrong"),
            "code": code,
            "message": message,
            "permission": permission,
            "request_id": current_request_id(),
        },
        status=status,
    )


def _for_ui(original: Handler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        response = await original(request, exc)
        if not is_ui(request):
            return response
        try:
            error = json.loads(bytes(response.body))["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "error", "the request could not be served"
        status = response.status_code
        if status == 401:
            return sign_in_redirect(request, code)
        if code == "not_found" and status == 404:
            message = "there is no such page: use the menu to find your way"
        permission = None
        if isinstance(exc, BastionError):
            found = exc.details.get("permission")
            permission = str(found) if found else None
        page = error_page(request, status, code, message, permission)
        for name in ("Allow", "Retry-After"):
            if name in response.headers:
                page.headers[name] = response.headers[name]
        return page

    return handler


async def _unexpected(request: Request, exc: Exception) -> Response:
    if not is_ui(request):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return error_page(
        request,
        500,
        "internal_error",
        "something went wrong on our side; the server log has the details under this request id",
    )


def install_ui_errors(app: FastAPI) -> None:
    """Wrap the handlers installed so far (the API's) so ``/ui`` answers in HTML."""
    for exc_class, original in list(app.exception_handlers.items()):
        app.exception_handlers[exc_class] = _for_ui(original)  # type: ignore[arg-type]
    app.exception_handlers.setdefault(Exception, _unexpected)
