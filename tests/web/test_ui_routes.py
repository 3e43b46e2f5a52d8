"""Every dashboard route declares one permission, and every role gets what it should.

The same rule as tests/api/test_route_matrix.py, for ``/ui``: one guard per route, a
:class:`UiGuard` (the API's guard reading the session), and for each role exactly the
pages its permissions allow, answered in HTML: a redirect to sign in without a session,
a 403 page naming the permission without it. New page modules are picked up as they
are mounted.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from bastion.api.deps import route_guards
from bastion.auth.permissions import Permission
from bastion.testing.ui import csrf_of, sign_in
from bastion.web.frame import UiGuard

pytestmark = pytest.mark.anyio
ROLES = ["admin", "analyst", "guest", "auditor"]


def all_routes(routes: list[Any]) -> list[Any]:
    """Routes, descending into included routers (as tests/api/test_route_matrix.py)."""
    flat: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        flat.extend(all_routes(inner.routes) if inner is not None else [route])
    return flat


def is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


def ui_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in all_routes(app.routes) if isinstance(r, APIRoute) and is_ui(r.path)]


def test_every_ui_route_declares_exactly_one_ui_guard(app: FastAPI) -> None:
    routes = ui_routes(app)
    assert len(routes) >= 10
    wrong = [
        f"{sorted(r.methods)} {r.path}"
        for r in routes
        if len(route_guards(r)) != 1 or not isinstance(route_guards(r)[0], UiGuard)
    ]
    assert not wrong, f"/ui routes without exactly one ui_requires(...): {wrong}"


def test_the_frame_and_pages_require_what_the_api_does(app: FastAPI) -> None:
    declared = {
        (method, r.path): route_guards(r)[0].permission
        for r in ui_routes(app)
        for method in r.methods - {"HEAD"}
    }
    # The frame's own routes, and the pages this branch built (others add theirs).
    expected = {
        ("GET", "/ui"): Permission.AUTHENTICATED,
        ("GET", "/ui/login"): Permission.PUBLIC,
        ("POST", "/ui/login"): Permission.PUBLIC,
        ("POST", "/ui/logout"): Permission.AUTHENTICATED,
        ("GET", "/ui/static/{name}"): Permission.PUBLIC,
        ("GET", "/ui/gateway"): Permission.METRICS_READ,  # as GET /api/gateway/health
        ("GET", "/ui/gateway/calls"): Permission.AUDIT_READ,  # ledger events
        ("GET", "/ui/gateway/calls/{event_id}"): Permission.AUDIT_READ,
        ("GET", "/ui/audit"): Permission.AUDIT_READ,
        ("POST", "/ui/audit/verify"): Permission.AUDIT_READ,
        ("GET", "/ui/audit/export"): Permission.AUDIT_READ,
        ("GET", "/ui/admin"): Permission.KEYS_MANAGE,  # as /api/keys
        ("POST", "/ui/admin/keys"): Permission.KEYS_MANAGE,
        ("POST", "/ui/admin/keys/{key_id}/revoke"): Permission.KEYS_MANAGE,
        ("GET", "/ui/admin/policy"): Permission.POLICY_READ,  # as /api/policy
    }
    assert {k: declared.get(k) for k in expected} == expected


async def test_ui_role_matrix(app: FastAPI, key_for: Any) -> None:
    runtime = app.state.runtime
    failures: list[str] = []
    checked = 0
    transport = httpx.ASGITransport(app=app)
    for role in [None, *ROLES]:
        async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test") as c:
            token = ""
            if role is not None:
                signed = await sign_in(c, key_for(role))
                assert signed.status_code == 303, signed.text[:300]
            token = csrf_of((await c.get("/ui/login")).text)
            granted = runtime.keys.permissions_for(role) if role else frozenset()
            for route in ui_routes(app):
                (guard,) = route_guards(route)
                if guard.permission is Permission.PUBLIC or route.path == "/ui/logout":
                    continue  # sign-out is tested in test_frame.py (it would end the walk)
                path = re.sub(r"\{[^}]+\}", "0", route.path)
                for method in sorted(route.methods - {"HEAD"}):
                    data = {"csrf_token": token} if method != "GET" else None
                    response = await c.request(method, path, data=data)
                    status = response.status_code
                    if role is None:
                        ok = status == 303 and "/ui/login" in response.headers["location"]
                        want = "303 to /ui/login"
                    elif (
                        guard.permission is Permission.AUTHENTICATED or guard.permission in granted
                    ):
                        ok = status not in (401, 403) and not (
                            status == 303 and "/ui/login" in response.headers.get("location", "")
                        )
                        want = "allowed"
                    else:
                        ok = (
                            status == 403
                            and f">{guard.permission.value}<" in response.text
                            and "text/html" in response.headers["content-type"]
                        )
                        want = "403 page naming the permission"
                    checked += 1
                    if not ok:
                        failures.append(
                            f"{method} {route.path} as {role}: got {status}, want {want}"
                        )
    assert not failures, "\n".join(failures)
    assert checked >= 40
