"""The OpenAI-compatible API: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``.

Thin: parse the JSON, call :class:`bastion.gateway.service.Gateway`, render. Errors keep
OpenAI's shape so SDKs raise their usual exceptions; 429s carry ``Retry-After``.

The two POST routes carry every LLM call, so :class:`FastPath` serves them without
FastAPI's routing, dependency solving and per-request telemetry checks (~250 µs of CPU
per request, measured in-process); the same handlers stay declared as FastAPI routes,
for the OpenAPI document and the permission audit of every route, and answer when the
fast path is not installed. It serves ``POST /mcp`` (every MCP request) the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion import jsonio
from bastion.api.deps import require_caller, requires, route_guard
from bastion.api.errors import bastion_error_response
from bastion.api.routes import mcp
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.errors import BastionError, NotFound
from bastion.gateway.calls import Reply
from bastion.gateway.errors import BudgetExceeded, TooManyRequests, UpstreamFailure
from bastion.gateway.service import Gateway

router = APIRouter(
    prefix="/v1",
    tags=["gateway"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 404),
)
_CALL_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer; with `stream: true`, server-sent events ending in `[DONE]`",
        "content": {"application/json": {}, "text/event-stream": {}},
    },
    **errors(409, 429, 502, 503, 504),
}
Caller = Annotated[Principal | None, Depends(requires(Permission.LLM_USE))]
CONVERSATION_HEADER = "x-bastion-conversation-id"


async def get_gateway(request: Request) -> Gateway:
    # Built once in create_app: a lazily built one would race (sync dependencies run
    # in a thread pool) and split the counters between instances.
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return jsonio.dumps(content)


def _render(reply: Reply, request: Request) -> Response:
    headers = dict(reply.headers)
    if reply.stream is not None:
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        return StreamingResponse(reply.stream, media_type="text/event-stream", headers=headers)
    return _JSON(reply.body, headers=headers)


async def _call(request: Request, coro: Any) -> Response:
    try:
        reply: Reply = await coro
    except TooManyRequests as exc:
        from bastion.api.errors import error_response

        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        if isinstance(exc, BudgetExceeded) and not exc.details.get("in_flight", True):
            # Spent until the window ends: the OpenAI SDKs would retry twice at once.
            headers["x-should-retry"] = "false"
        return error_response(exc.status, exc.message, exc.type, exc.code, headers=headers)
    except UpstreamFailure as exc:
        from bastion.api.errors import error_response

        headers = None
        if exc.retry_after is not None and exc.status in (429, 503):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return error_response(exc.status, exc.message, exc.type, exc.code, headers=headers)
    return _render(reply, request)


async def _chat(request: Request, caller: Principal, gateway: Gateway) -> Response:
    # Parsed by the gateway, so a body that is not JSON is a refused call in the ledger.
    body = await request.body()
    conversation = request.headers.get(CONVERSATION_HEADER)
    return await _call(request, gateway.chat(caller, body, conversation_id=conversation))


async def _embeddings(request: Request, caller: Principal, gateway: Gateway) -> Response:
    body = await request.body()
    return await _call(request, gateway.embeddings(caller, body))


@router.post(
    "/chat/completions",
    summary="Chat completions (OpenAI-compatible), governed",
    responses=_CALL_ERRORS,
)
async def chat_completions(request: Request, caller: Caller, gateway: GatewayDep) -> Response:
    return await _chat(request, require_caller(caller), gateway)


@router.post(
    "/embeddings",
    summary="Embeddings (OpenAI-compatible), governed",
    responses=_CALL_ERRORS,
)
async def embeddings(request: Request, caller: Caller, gateway: GatewayDep) -> Response:
    return await _embeddings(request, require_caller(caller), gateway)


async def _fast_chat(request: Request, caller: Principal) -> Response:
    return await _chat(request, caller, request.app.state.gateway)


async def _fast_embeddings(request: Request, caller: Principal) -> Response:
    return await _embeddings(request, caller, request.app.state.gateway)


_FAST_HANDLERS: dict[Callable[..., Any], mcp.FastHandler] = {
    chat_completions: _fast_chat,
    embeddings: _fast_embeddings,
}


class FastPath:
    """ASGI middleware answering ``POST /v1/chat/completions``, ``/v1/embeddings`` and
    ``/mcp`` with the routes' own handlers, checks and error shapes, and passing
    everything else on. Installed inside :class:`~bastion.api.middleware.RequestContext`, so request
    ids, the body limit, the access log and HTTP metrics are the same on both paths;
    ``scope["route"]`` is the declared route, so metrics keep its path template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The guard each route declares, not one of our own: the permission audit of
        # every route then also covers what this path checks.
        handlers = _FAST_HANDLERS | mcp.FAST_HANDLERS
        self.routes = {
            route.path: (route, route_guard(route), handlers[route.endpoint])
            for route in (*router.routes, *mcp.router.routes)
            if isinstance(route, APIRoute) and route.endpoint in handlers
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = None
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]  # as Starlette's router matches
            entry = self.routes.get(path)
        if entry is None:
            await self.app(scope, receive, send)
            return
        route, guard, handler = entry
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            caller = require_caller(await guard(request))
            response = await handler(request, caller)
        except BastionError as exc:
            response = bastion_error_response(exc)
        await response(scope, receive, send)


def _model_card(name: str, owner: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


@router.get("/models", summary="The models this key may use")
async def list_models(caller: Caller, gateway: GatewayDep) -> dict[str, Any]:
    models = gateway.models_for(require_caller(caller))
    return {"object": "list", "data": [_model_card(name, cfg.provider) for name, cfg in models]}


@router.get("/models/{model}", summary="One model this key may use")
async def get_model(model: str, caller: Caller, gateway: GatewayDep) -> dict[str, Any]:
    for name, cfg in gateway.models_for(require_caller(caller)):
        if name == model:
            return _model_card(name, cfg.provider)
    raise NotFound(
        f"the model {model!r} does not exist or your key may not use it", code="model_not_found"
    )
