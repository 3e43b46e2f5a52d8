"""The frame's own routes: the landing page, sign-in, sign-out and the static files."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.errors import NotFound, Unauthenticated
from bastion.web.frame import (
    NONCE_COOKIE,
    SESSION_COOKIE,
    STATIC,
    is_secure,
    render,
    sessions_of,
    ui_requires,
)
from bastion.web.pages import nav_for

router = APIRouter(include_in_schema=False)

Anyone = Annotated[Principal | None, Depends(ui_requires(Permission.PUBLIC))]
Files = Annotated[Principal | None, Depends(ui_requires(Permission.PUBLIC, session=False))]
SignedIn = Annotated[Principal, Depends(ui_requires(Permission.AUTHENTICATED))]

REASONS = {
    "session_required": "Sign in to continue.",
    "session_expired": "Your session has ended. Sign in again to continue.",
    "signed_out": "You are signed out.",
    "api_key_revoked": "The key of your session has been revoked. Sign in with another key.",
    "api_key_expired": "The key of your session has expired. Sign in with another key.",
    "invalid_api_key": "The key of your session is no longer valid. Sign in again.",
}


def safe_next(target: str | None) -> str:
    """Only a page of this dashboard (never another site: ``//host``, ``/\\host``)."""
    if (
        target
        and (target == "/ui" or target.startswith(("/ui/", "/ui?")))
        and not any(c in target for c in "\\\r\n")
    ):
        return target
    return "/ui"


@router.get("/ui")
def home(request: Request, who: SignedIn) -> Response:
    pages = nav_for(request.app, who)
    if pages:
        return RedirectResponse(pages[0].href, status_code=303)
    return render(request, "home.html", {})


@router.get("/ui/login")
def login_form(
    request: Request, _: Anyone, next: str | None = None, reason: str | None = None
) -> Response:
    return render(
        request,
        "login.html",
        {"next": safe_next(next), "notice": REASONS.get(reason or ""), "error": None},
    )


@router.post("/ui/login")
async def login(
    request: Request,
    _: Anyone,
    api_key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/ui",
) -> Response:
    try:
        opened = await run_in_threadpool(sessions_of(request).sign_in, api_key)
    except Unauthenticated as exc:
        return render(
            request,
            "login.html",
            {"next": safe_next(next), "notice": None, "error": exc.message, "code": exc.code},
            status=401,
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        max_age=int(sessions_of(request).max.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=is_secure(request),
        path="/ui",
    )
    response.delete_cookie(NONCE_COOKIE, path="/ui")
    return response


@router.post("/ui/logout")
async def logout(request: Request, who: SignedIn) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await run_in_threadpool(sessions_of(request).sign_out, token, who)
    response = RedirectResponse("/ui/login?reason=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@functools.cache
def static_files() -> dict[str, Path]:
    """The files served under ``/ui/static``: the frame's own, and plotly.js as the
    ``plotly`` package ships it (no CDN, no build)."""
    import plotly

    files = {p.name: p for p in STATIC.iterdir() if p.is_file()}
    files["plotly.min.js"] = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return files


MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@router.get("/ui/static/{name}")
def static(name: str, _: Files) -> Response:
    path = static_files().get(name)
    if path is None:
        raise NotFound(f"no static file {name!r}", code="not_found")
    return FileResponse(
        path,
        media_type=MEDIA.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
