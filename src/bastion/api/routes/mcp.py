"""``/mcp``: Bastion's MCP endpoint (streamable HTTP), authenticated like every route.

A Bastion API key (``Authorization: Bearer``) whose role holds ``mcp:use``; what the
caller may then list and call is the policy's ``tools`` allow-lists
(:mod:`bastion.toolgate`). The SDK's session manager serves the protocol, stateless
(every request stands alone, so any replica can answer it), with JSON responses: only
POST (a GET stream would carry server-initiated messages, which a stateless endpoint
never sends; other methods get 405). The
route is a FastAPI route for its permission (checked like every route's); its response
hands the untouched request to the SDK. It is left out of the OpenAPI document: MCP is
described by its own specification, not by a JSON body schema. Like the gateway's POST
routes, it is answered by :class:`~bastion.api.routes.gateway.FastPath` with this
route's own guard, without FastAPI's routing and dependency solving (every tool call
comes through here).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.types import Receive, Scope, Send

from bastion.api.deps import require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.toolgate.sessions import McpSessions

router = APIRouter(tags=["mcp"], route_class=StrictJSONRoute, responses=errors(*GUARDED))
Caller = Annotated[Principal | None, Depends(requires(Permission.MCP_USE))]


class _ToSdk(Response):
    """A response that lets the SDK answer the request itself."""

    def __init__(self, sessions: McpSessions) -> None:
        super().__init__()
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.sessions.handle(scope, receive, send)


@router.api_route("/mcp", methods=["POST"], include_in_schema=False)
async def mcp_endpoint(request: Request, caller: Caller) -> Response:
    """MCP over streamable HTTP; the caller is in the request's state for the SDK."""
    return await _to_sdk(request, require_caller(caller))


async def _to_sdk(request: Request, caller: Principal) -> Response:
    # The guard put the caller in the request's state, where the SDK's handlers find it.
    sessions: McpSessions = request.app.state.mcp_sessions
    return _ToSdk(sessions)


FastHandler = Callable[[Request, Principal], Awaitable[Response]]

#: What :class:`~bastion.api.routes.gateway.FastPath` answers for this router's routes.
FAST_HANDLERS: dict[Callable[..., Any], FastHandler] = {mcp_endpoint: _to_sdk}
