"""The OpenAI-compatible API: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``.

Thin: parse the JSON, call :class:`bastion.gateway.service.Gateway`, render. Errors keep
OpenAI's shape so SDKs raise their usual exceptions; 429s carry ``Retry-After``.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from bastion.api.deps import require_caller, requires
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.errors import InvalidInput, NotFound
from bastion.gateway.errors import BudgetExceeded, TooManyRequests, UpstreamFailure
from bastion.gateway.service import Gateway, Reply

router = APIRouter(prefix="/v1", tags=["gateway"])
Caller = Annotated[Principal | None, Depends(requires(Permission.LLM_USE))]
CONVERSATION_HEADER = "x-bastion-conversation-id"


async def get_gateway(request: Request) -> Gateway:
    # Built once in create_app: a lazily built one would race (sync dependencies run
    # in a thread pool) and split the counters between instances.
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the request body is not valid JSON", code="invalid_json") from None


def _render(reply: Reply, request: Request) -> Response:
    headers = dict(reply.headers)
    if reply.stream is not None:
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        return StreamingResponse(reply.stream, media_type="text/event-stream", headers=headers)
    return JSONResponse(reply.body, headers=headers)


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


@router.post("/chat/completions", summary="Chat completions (OpenAI-compatible), governed")
async def chat_completions(request: Request, caller: Caller, gateway: GatewayDep) -> Response:
    body = await _json_body(request)
    conversation = request.headers.get(CONVERSATION_HEADER)
    return await _call(
        request, gateway.chat(require_caller(caller), body, conversation_id=conversation)
    )


@router.post("/embeddings", summary="Embeddings (OpenAI-compatible), governed")
async def embeddings(request: Request, caller: Caller, gateway: GatewayDep) -> Response:
    body = await _json_body(request)
    return await _call(request, gateway.embeddings(require_caller(caller), body))


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
