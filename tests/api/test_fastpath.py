"""The gateway's POST routes answer through :class:`FastPath`, and say exactly what the
FastAPI routes they stand in for say: the same statuses, error shapes, headers, ledger
events and metric labels, with and without the fast path installed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bastion.api.middleware import RequestContext
from bastion.api.routes.gateway import FastPath
from bastion.audit.repository import EventFilter

pytestmark = pytest.mark.anyio


def without_fast_path(app: FastAPI) -> FastAPI:
    """The same app with its fast path taken out (the middleware stack is built at the
    first request, so this holds until then)."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastPath]
    return app


@pytest.fixture(params=["fast", "routed"])
async def either(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    if request.param == "routed":
        without_fast_path(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test") as c:
        yield c
    await app.state.gateway.aclose()


def test_fast_path_sits_inside_the_request_context(app: FastAPI) -> None:
    assert [m.cls for m in app.user_middleware] == [RequestContext, FastPath]
    assert set(FastPath(app).routes) == {"/v1/chat/completions", "/v1/embeddings", "/mcp"}


async def test_fast_path_answers_without_the_app_behind_it(app: FastAPI, key_for: Any) -> None:
    """Its two routes never reach the FastAPI app it wraps; every other request does."""
    passed_on: list[str] = []

    async def behind(scope: Any, receive: Any, send: Any) -> None:
        passed_on.append(f"{scope['method']} {scope['path']}")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    fast = FastPath(behind)

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app  # as Starlette sets it, for request.app.state.gateway
        await fast(scope, receive, send)

    headers = {"Authorization": f"Bearer {key_for('admin')}"}
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        chat = await c.post("/v1/chat/completions", json=CHAT, headers=headers)
        embed = await c.post(
            "/v1/embeddings", json={"model": "local-embed", "input": "a"}, headers=headers
        )
        refused = await c.post("/v1/chat/completions", json=CHAT)
        other = await c.get("/v1/models", headers=headers)
        wrong_method = await c.get("/v1/chat/completions", headers=headers)
    await app.state.gateway.aclose()
    assert (chat.status_code, chat.json()["object"]) == (200, "chat.completion")
    assert (embed.status_code, embed.json()["object"]) == (200, "list")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "missing_api_key"
    assert (other.status_code, wrong_method.status_code) == (204, 204)
    assert passed_on == ["GET /v1/models", "GET /v1/chat/completions"]


CHAT = {"model": "local", "messages": [{"role": "user", "content": "Say hello to Jane Doe."}]}


def shape(response: httpx.Response) -> tuple[int, Any]:
    """Status and what does not change between two identical calls."""
    body = response.json()
    if "error" in body:
        error = dict(body["error"])
        assert error.pop("request_id") == response.headers["x-request-id"]
        return response.status_code, error
    return response.status_code, {
        "model": body["model"],
        "object": body["object"],
        "answer": body["choices"][0]["message"]["content"] if "choices" in body else None,
        "embeddings": len(body["data"]) if body["object"] == "list" else None,
    }


CASES: list[tuple[str, str, dict[str, Any] | bytes, str | None]] = [
    ("no key", "/v1/chat/completions", CHAT, None),
    ("bad key", "/v1/chat/completions", CHAT, "bst_notakey_0000"),
    ("role without llm.use", "/v1/chat/completions", CHAT, "auditor"),
    ("not JSON", "/v1/chat/completions", b"{not json", "admin"),
    (
        "NaN",
        "/v1/chat/completions",
        b'{"model": "local", "messages": [{"role": "user", "content": "hi"}], "top_p": NaN}',
        "admin",
    ),
    ("wrong types", "/v1/chat/completions", {"model": 3, "messages": "hi"}, "admin"),
    ("unknown model", "/v1/chat/completions", {**CHAT, "model": "nope"}, "admin"),
    ("answered", "/v1/chat/completions", CHAT, "admin"),
    ("embeddings", "/v1/embeddings", {"model": "local-embed", "input": ["a", "b"]}, "admin"),
    ("embeddings, not JSON", "/v1/embeddings", b"[", "admin"),
    ("mcp, no key", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, None),
    ("mcp, role without mcp:use", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, "auditor"),
]

# What each case must get, on both paths.
EXPECTED_STATUS = {
    "no key": 401,
    "bad key": 401,
    "role without llm.use": 403,
    "not JSON": 400,
    "NaN": 400,
    "wrong types": 400,
    "unknown model": 404,
    "answered": 200,
    "embeddings": 200,
    "embeddings, not JSON": 400,
    "mcp, no key": 401,
    "mcp, role without mcp:use": 403,
}


@pytest.mark.parametrize(("case", "path", "payload", "who"), CASES, ids=[c[0] for c in CASES])
async def test_both_paths_answer_alike(
    app: FastAPI,
    either: httpx.AsyncClient,
    key_for: Any,
    case: str,
    path: str,
    payload: dict[str, Any] | bytes,
    who: str | None,
) -> None:
    headers = {}
    if who is not None:
        secret = who if who.startswith("bst_") else key_for(who)
        headers["Authorization"] = f"Bearer {secret}"
    if isinstance(payload, bytes):
        response = await either.post(
            path, content=payload, headers={**headers, "content-type": "application/json"}
        )
    else:
        response = await either.post(path, json=payload, headers=headers)
    status, _ = shape(response)
    assert status == EXPECTED_STATUS[case], response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if case == "answered":
        assert float(response.headers["x-bastion-cost-usd"]) >= 0
        assert float(response.headers["x-bastion-overhead-ms"]) >= 0
        page = app.state.runtime.audit.page(EventFilter(action="llm.chat"))
        assert [(e.outcome, e.request_id) for e in page.events] == [
            ("success", response.headers["x-request-id"])
        ]
    admin = {"Authorization": f"Bearer {key_for('admin')}"}
    metrics = (await either.get("/metrics", headers=admin)).text
    assert f'route="{path}"' in metrics  # the route's template, not "unmatched"


async def test_the_fast_path_and_the_routes_give_the_same_answers(
    migrated: Any, key_for: Any
) -> None:
    """Two apps on one database, one without the fast path: every case gives the same
    status and body on both."""
    from bastion.app import create_app
    from bastion.runtime import open_runtime

    results: dict[str, list[tuple[int, Any]]] = {}
    for variant in ("fast", "routed"):
        rt = open_runtime(migrated)
        try:
            app = create_app(migrated, runtime=rt)
            if variant == "routed":
                without_fast_path(app)
            transport = httpx.ASGITransport(app=app)
            out: list[tuple[int, Any]] = []
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                for _case, path, payload, who in CASES:
                    headers = {}
                    if who is not None:
                        secret = who if who.startswith("bst_") else key_for(who)
                        headers["Authorization"] = f"Bearer {secret}"
                    if isinstance(payload, bytes):
                        headers["content-type"] = "application/json"
                        r = await c.post(path, content=payload, headers=headers)
                    else:
                        r = await c.post(path, json=payload, headers=headers)
                    out.append(shape(r))
            await app.state.gateway.aclose()
            results[variant] = out
        finally:
            rt.close()
    assert results["fast"] == results["routed"]
