"""Every route declares one permission, and every role gets exactly what it should.

New routes are picked up automatically: a route without a declared permission fails
here, and so does a route that lets in a role that lacks its permission.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from bastion.api.deps import route_guards
from bastion.auth.permissions import DEFAULT_ROLE_PERMISSIONS, Permission

pytestmark = pytest.mark.anyio


guards = route_guards


DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def all_routes(routes: list[Any]) -> list[Any]:
    """Routes, descending into included routers (FastAPI nests them since 0.16x)."""
    flat: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        flat.extend(all_routes(inner.routes) if inner is not None else [route])
    return flat


def is_ui(path: str) -> bool:
    """The dashboard's pages: checked the same way (one guard each, the same table of
    roles) by tests/web/test_ui_routes.py, which expects HTML answers, not JSON."""
    return path == "/ui" or path.startswith("/ui/")


def api_routes(app: FastAPI) -> list[APIRoute]:
    return [
        r
        for r in all_routes(app.routes)
        if isinstance(r, APIRoute) and r.path not in DOCS and not is_ui(r.path)
    ]


def test_every_route_declares_exactly_one_permission(app: FastAPI) -> None:
    routes = api_routes(app)
    assert len(routes) >= 10
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if len(guards(r)) != 1]
    assert not missing, f"routes without exactly one requires(...): {missing}"


# What each route must require, written out by hand: the guard a route declares is
# checked against this, so a route guarded by the wrong permission fails here, and a
# new route fails until someone decides who may call it.
EXPECTED: dict[tuple[str, str], Permission] = {
    ("GET", "/healthz"): Permission.PUBLIC,
    ("GET", "/readyz"): Permission.PUBLIC,
    ("GET", "/metrics"): Permission.METRICS_READ,
    ("GET", "/api/whoami"): Permission.AUTHENTICATED,
    ("POST", "/api/keys"): Permission.KEYS_MANAGE,
    ("GET", "/api/keys"): Permission.KEYS_MANAGE,
    ("GET", "/api/keys/{key_id}"): Permission.KEYS_MANAGE,
    ("DELETE", "/api/keys/{key_id}"): Permission.KEYS_MANAGE,
    ("GET", "/api/audit/events"): Permission.AUDIT_READ,
    ("GET", "/api/audit/public-key"): Permission.AUDIT_READ,
    ("GET", "/api/audit/proofs/{event_id}"): Permission.AUDIT_READ,
    ("GET", "/api/subjects/{user}/export"): Permission.SUBJECTS_MANAGE,
    ("POST", "/api/subjects/{user}/erase"): Permission.SUBJECTS_MANAGE,
    ("GET", "/api/policy"): Permission.POLICY_READ,
    ("POST", "/api/policy/check"): Permission.POLICY_READ,
    ("POST", "/api/policy/reload"): Permission.POLICY_MANAGE,
    ("POST", "/v1/chat/completions"): Permission.LLM_USE,
    ("POST", "/v1/embeddings"): Permission.LLM_USE,
    ("GET", "/v1/models"): Permission.LLM_USE,
    ("GET", "/v1/models/{model}"): Permission.LLM_USE,
    ("GET", "/api/gateway/health"): Permission.METRICS_READ,
    ("GET", "/api/usage"): Permission.METRICS_READ,
    ("GET", "/api/usage/budgets"): Permission.METRICS_READ,
    ("GET", "/api/alerts"): Permission.METRICS_READ,
    ("GET", "/api/models"): Permission.MODELS_READ,
    ("POST", "/predict/{model}"): Permission.MODELS_PREDICT,
    ("GET", "/predict/{model}/explain/{request_id}"): Permission.MONITORING_READ,
    ("POST", "/api/labels"): Permission.PREDICTIONS_LABEL,
    ("GET", "/api/models/{name}"): Permission.MODELS_READ,
    ("POST", "/api/models/{name}/versions"): Permission.MODELS_WRITE,
    ("GET", "/api/models/{name}/versions/{version}"): Permission.MODELS_READ,
    ("GET", "/api/models/{name}/versions/{version}/lineage"): Permission.MODELS_READ,
    ("GET", "/api/models/{name}/versions/{version}/gates"): Permission.MODELS_READ,
    ("POST", "/api/models/{name}/versions/{version}/evidence"): Permission.MODELS_WRITE,
    ("GET", "/api/models/{name}/versions/{version}/card"): Permission.MODELS_READ,
    ("PUT", "/api/models/{name}/versions/{version}/card"): Permission.MODELS_WRITE,
    ("POST", "/api/models/{name}/versions/{version}/promotions"): Permission.MODELS_WRITE,
    ("POST", "/api/models/{name}/versions/{version}/archive"): Permission.MODELS_WRITE,
    ("POST", "/api/models/{name}/rollback"): Permission.MODELS_ADMIN,
    ("GET", "/api/promotions"): Permission.MODELS_READ,
    ("GET", "/api/promotions/{request_id}"): Permission.MODELS_READ,
    ("POST", "/api/promotions/{request_id}/approve"): Permission.MODELS_APPROVE,
    ("POST", "/api/promotions/{request_id}/reject"): Permission.MODELS_APPROVE,
    ("POST", "/api/registry/verify"): Permission.MODELS_READ,
    ("POST", "/api/deployments"): Permission.MODELS_WRITE,
    ("GET", "/api/deployments"): Permission.MODELS_READ,
    ("GET", "/api/deployments/{model}"): Permission.MODELS_READ,
    ("GET", "/api/deployments/{model}/history"): Permission.MODELS_READ,
    ("POST", "/api/deployments/{model}/pause"): Permission.MODELS_WRITE,
    ("POST", "/api/deployments/{model}/resume"): Permission.MODELS_WRITE,
    ("POST", "/api/deployments/{model}/abort"): Permission.MODELS_WRITE,
    ("POST", "/api/deployments/{model}/check"): Permission.MODELS_WRITE,
    ("GET", "/api/reports/compliance"): Permission.REPORTS_READ,
    ("POST", "/api/feedback"): Permission.LLM_USE,
    ("GET", "/api/feedback"): Permission.MONITORING_READ,
    ("POST", "/api/reports/attestations"): Permission.REPORTS_WRITE,
    ("GET", "/api/incidents"): Permission.REPORTS_READ,
    ("POST", "/api/incidents"): Permission.REPORTS_WRITE,
    ("POST", "/api/incidents/{incident_id}/close"): Permission.REPORTS_WRITE,
    ("GET", "/api/collections"): Permission.DOCUMENTS_READ,
    ("GET", "/api/collections/{name}/documents"): Permission.DOCUMENTS_READ,
    ("POST", "/api/collections/{name}/documents"): Permission.DOCUMENTS_WRITE,
    ("GET", "/api/documents/{document_id}"): Permission.DOCUMENTS_READ,
    ("DELETE", "/api/documents/{document_id}"): Permission.DOCUMENTS_WRITE,
    ("POST", "/api/search"): Permission.DOCUMENTS_READ,
    ("POST", "/query"): Permission.DOCUMENTS_READ,
    ("POST", "/research"): Permission.RESEARCH_RUN,
    ("POST", "/api/query"): Permission.DOCUMENTS_READ,
    ("POST", "/api/research"): Permission.RESEARCH_RUN,
    ("POST", "/mcp"): Permission.MCP_USE,
}


def test_every_route_requires_what_the_table_says(app: FastAPI) -> None:
    declared = {
        (method, route.path): guards(route)[0].permission
        for route in api_routes(app)
        for method in route.methods - {"HEAD"}
    }
    assert declared == EXPECTED


def test_only_documentation_routes_are_left_unguarded(app: FastAPI) -> None:
    unguarded = {
        getattr(r, "path", "") for r in all_routes(app.routes) if not isinstance(r, APIRoute)
    }
    assert unguarded <= DOCS


ROLES = ["admin", "analyst", "guest", "auditor"]  # auditor comes from the starter policy


async def test_route_role_matrix(app: FastAPI, client: httpx.AsyncClient, key_for: Any) -> None:
    runtime = app.state.runtime
    keys = {role: key_for(role) for role in ROLES}
    failures: list[str] = []
    checked = 0
    for route in api_routes(app):
        (guard,) = guards(route)
        path = re.sub(r"\{[^}]+\}", "does-not-exist", route.path)
        for method in sorted(route.methods - {"HEAD"}):
            for role in [None, *ROLES]:
                headers = {"Authorization": f"Bearer {keys[role]}"} if role else {}
                kwargs: dict[str, Any] = {"headers": headers}
                if method in {"POST", "PUT", "PATCH"}:
                    kwargs["json"] = {}
                response = await client.request(method, path, **kwargs)
                status = response.status_code
                if guard.is_public(runtime):
                    ok = status not in (401, 403)
                    want = "allowed (public)"
                elif role is None:
                    ok = status == 401 and response.json()["error"]["code"] == "missing_api_key"
                    want = "401 missing_api_key"
                else:
                    granted = runtime.keys.permissions_for(role)
                    allowed = (
                        guard.permission in (Permission.AUTHENTICATED,)
                        or guard.permission in granted
                    )
                    ok = (status not in (401, 403)) if allowed else status == 403
                    want = "allowed" if allowed else "403"
                checked += 1
                if not ok:
                    failures.append(
                        f"{method} {route.path} as {role or 'no key'}: got {status}, want {want}"
                    )
    assert not failures, "\n".join(failures)
    assert checked >= 50


def test_builtin_roles_are_ordered_by_power() -> None:
    admin, analyst, guest = (DEFAULT_ROLE_PERMISSIONS[r] for r in ("admin", "analyst", "guest"))
    assert guest < analyst < admin
    assert Permission.KEYS_MANAGE not in analyst and Permission.AUDIT_READ not in analyst
