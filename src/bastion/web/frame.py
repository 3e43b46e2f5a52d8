"""The dashboard's frame: the UI guard, CSRF, templates and the headers every page gets.

A page handler is one service call and one template::

    @router.get("/ui/audit")
    def audit_page(request: Request, audit: AuditDep, who: Viewer) -> HTMLResponse:
        return render(request, "audit.html", {"page": audit.page(...)})

with ``Viewer = Annotated[Principal, Depends(ui_requires(Permission.AUDIT_READ))]``.

:func:`ui_requires` is the API's :class:`~bastion.api.deps.Guard` (the same permission
table, the same ``Principal.can``), reading the session cookie instead of an API key;
the route walk that checks every route declares one permission sees it as any guard.
Errors under ``/ui`` become HTML pages (:mod:`bastion.web.errors`): a missing session a
redirect to the sign-in page, a missing permission a page that names it.
"""

from __future__ import annotations

import functools
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import Guard, get_runtime
from bastion.auth.errors import PermissionDenied
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.auth.sessions import SessionMissing, SessionService
from bastion.errors import Forbidden, InvalidInput, Unauthenticated

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

SESSION_COOKIE = "bastion_session"
#: Before sign-in there is no session: the sign-in form's CSRF token is keyed to this.
NONCE_COOKIE = "bastion_signin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: plotly.js's bundle inserts one stylesheet of its own (maplibre's, for map traces)
#: as a ``<style>`` element when it loads: the policy allows exactly that content, and
#: the empty element it inserts first, by hash. A new plotly.js changes the hash: the
#: browser tests then fail on the refused style, whose new hash Chromium names.
PLOTLY_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty element
    "'sha256-gG0b4ixT/IQUp7JJLbyKcpYcYDjq2Wp8NGv3f+aasqo='",  # plotly.js 2.35.2 (plotly 5.24)
)
#: Only this server's own files: no inline script, no inline style (but plotly.js's
#: own sheet above), no other origin.
CSP = (
    "default-src 'self'; script-src 'self'; "
    f"style-src 'self' {' '.join(PLOTLY_STYLE_HASHES)}; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: Pages with charts: plotly.js also sets ``style`` attributes on what it draws (heatmaps,
#: colour bars, legends), which no hash can allow; scripts stay this server's files only.
#: (A hash in the directive would make browsers ignore 'unsafe-inline', so none is kept.)
CHART_CSP = re.sub(r"style-src [^;]*;", "style-src 'self' 'unsafe-inline';", CSP)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class CsrfFailed(Forbidden):
    code = "csrf_failed"


def sessions_of(request: Request) -> SessionService:
    return get_runtime(request).sessions()


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def csrf_basis(request: Request) -> str | None:
    """What this browser's CSRF token is keyed to: its session, else its sign-in nonce."""
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(NONCE_COOKIE)


def csrf_token(request: Request) -> str:
    cached = getattr(request.state, "csrf_token", None)
    if cached is not None:
        return str(cached)
    basis = csrf_basis(request)
    if basis is None:
        # A first visit to the sign-in page: the nonce is set on the response (render).
        basis = request.state.new_nonce = secrets.token_urlsafe(24)
    token = sessions_of(request).csrf_token(basis)
    request.state.csrf_token = token
    return token


async def check_csrf(request: Request) -> None:
    """Every unsafe method under ``/ui`` carries the token (form field or header)."""
    if request.method not in UNSAFE:
        return
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # cached on the request: the handler reads it again
            value = form.get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
    basis = csrf_basis(request)
    if basis is None or not sessions_of(request).csrf_ok(basis, presented):
        raise CsrfFailed(
            "this form is stale or did not come from this dashboard (no valid CSRF token): "
            "reload the page and submit it again"
        )


class UiGuard(Guard):
    """The API's guard for pages: the principal comes from the session cookie."""

    def __init__(self, permission: Permission, *, session: bool = True) -> None:
        super().__init__(permission)
        #: Public files (the stylesheet, plotly.js) do not look the session up.
        self.session = session

    async def __call__(self, request: Request) -> Principal | None:
        runtime = get_runtime(request)
        if self.is_public(runtime):
            if self.session:
                return await optional_principal(request)
            return None
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise SessionMissing("you are not signed in: sign in with an API key")
        principal = await run_in_threadpool(sessions_of(request).resolve, token)
        request.state.principal = principal
        if not principal.can(self.permission):
            runtime.metrics.auth_failures.labels("permission_denied").inc()
            raise PermissionDenied(
                f"your role {principal.role!r} lacks the permission "
                f"{self.permission.value!r} this page needs: ask an admin for a key "
                "with a role that has it",
                permission=self.permission.value,
            )
        return principal


async def optional_principal(request: Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        principal = await run_in_threadpool(sessions_of(request).resolve, token)
    except Unauthenticated:  # an ended session on a public page: not signed in
        return None
    request.state.principal = principal
    return principal


def ui_requires(permission: Permission, *, session: bool = True) -> UiGuard:
    return UiGuard(permission, session=session)


def money(value: float | None) -> str:
    """Dollars to the micro-dollar, without trailing zeros: ``$0.0042``, ``$0``."""
    if value is None:
        return ""
    return "$" + f"{float(value):,.6f}".rstrip("0").rstrip(".")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    return env


def viewer(request: Request) -> Principal | None:
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else None


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    from bastion.web.pages import nav_for

    principal = viewer(request)

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, csrf_token(request)
        )

    values = {
        "request": request,
        "principal": principal,
        "nav": nav_for(request.app, principal),
        "path": request.url.path,
        "csrf_field": csrf_field,
        "csrf_token": lambda: csrf_token(request),
        **(context or {}),
    }
    html = environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
    nonce = getattr(request.state, "new_nonce", None)
    if nonce is not None:
        response.set_cookie(
            NONCE_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=is_secure(request),
            path="/ui",
        )
    return response


class InvalidTime(InvalidInput):
    code = "invalid_time"


def text_or_none(value: str | None) -> str | None:
    """An HTML form's empty field means "no filter"."""
    value = (value or "").strip()
    return value or None


def parse_when(value: str | None, name: str) -> datetime | None:
    """A time filter from a form (``datetime-local`` or ISO 8601); UTC when no zone."""
    value = text_or_none(value)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidTime(
            f"{name}: {value!r} is not a time: use ISO 8601, e.g. 2026-01-31T12:00",
            param=name,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
