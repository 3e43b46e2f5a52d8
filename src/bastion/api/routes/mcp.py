"""``/mcp``: Bastion's MCP endpoint (streamable HTTP), authenticated like every route.

A Bastion API key (``Authorization: Bearer``) whose role holds ``mcp:use``; what the
caller may then list and call is the policy's ``tools`` allow-lists
(:mod:`bastion.toolgate`). The SDK's session manager serves the protocol, stateless
(every request stands alone, so any replica can answer it), with JSON responses.
"""

from __future__ import annotations

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from bastion.api.deps import requires
from bastion.api.errors import bastion_error_response
from bastion.auth.permissions import Permission
from bastion.errors import BastionError
from bastion.toolgate.face import build_server
from bastion.toolgate.service import ToolGate

PATH = "/mcp"
METHODS = ["GET", "POST", "DELETE"]


def session_manager(gate: ToolGate) -> StreamableHTTPSessionManager:
    return StreamableHTTPSessionManager(app=build_server(gate), json_response=True, stateless=True)


class McpEndpoint:
    """The ASGI endpoint: authenticate, then hand the request to the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager
        self.guard = requires(Permission.MCP_USE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await self.guard(request)  # the principal goes into the scope's state
        except BastionError as exc:
            await bastion_error_response(exc)(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)
