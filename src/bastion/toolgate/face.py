"""Bastion's MCP server face, built with the official SDK's low-level ``Server``.

Every handler asks the :class:`~bastion.toolgate.service.ToolGate`, for the caller the
transport authenticated: over HTTP the principal the ``/mcp`` endpoint put in the ASGI
scope's state; in the stdio bridge, the one principal of the process. A Bastion error
becomes a JSON-RPC error whose ``data`` carries the stable ``code`` and HTTP-like
``status``; nothing else escapes (a bug is an internal error, never a dropped request).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, REQUEST_TIMEOUT

from bastion import __version__
from bastion.auth.principal import Principal
from bastion.errors import BastionError, Forbidden, InvalidInput, NotFound, Unauthenticated
from bastion.gateway.errors import UpstreamFailure
from bastion.toolgate.service import ToolGate

log = logging.getLogger("bastion.mcp")
T = TypeVar("T")

#: JSON-RPC codes for Bastion's refusals (the -32000..-32099 range is the server's).
UPSTREAM_FAILED = -32002
REFUSED = -32003
RATE_LIMITED = -32029
UNAVAILABLE = -32050


def rpc_code(exc: BastionError) -> int:
    if isinstance(exc, UpstreamFailure):
        return REQUEST_TIMEOUT if exc.status == 504 else UPSTREAM_FAILED
    if exc.status == 429:
        return RATE_LIMITED
    if isinstance(exc, NotFound | InvalidInput) or exc.status == 400:
        return INVALID_PARAMS
    if isinstance(exc, Forbidden | Unauthenticated):
        return REFUSED
    if exc.status == 503:
        return UNAVAILABLE
    return UPSTREAM_FAILED if exc.status in (502, 504) else INTERNAL_ERROR


def to_mcp_error(exc: BastionError) -> MCPError:
    return MCPError(rpc_code(exc), exc.message, {"code": exc.code, "status": exc.status})


PrincipalOf = Callable[[ServerRequestContext[Any, Any]], Principal]


def scope_principal(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The caller the ``/mcp`` endpoint authenticated (kept in the ASGI scope's state)."""
    request = ctx.request
    principal = None
    if request is not None:
        principal = getattr(request, "scope", {}).get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise MCPError(REFUSED, "not authenticated", {"code": "missing_api_key", "status": 401})
    return principal


async def guarded(work: Awaitable[T]) -> T:
    try:
        return await work
    except BastionError as exc:
        raise to_mcp_error(exc) from None
    except MCPError:
        raise
    except Exception as exc:
        log.exception("an MCP request failed inside Bastion")
        raise MCPError(
            INTERNAL_ERROR,
            "Bastion failed to handle this request; it is logged",
            {"code": "internal_error", "status": 500},
        ) from exc


def build_server(gate: ToolGate, principal_of: PrincipalOf = scope_principal) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools = await guarded(gate.list_tools(principal_of(ctx)))
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await guarded(
            gate.call_tool(principal_of(ctx), params.name, dict(params.arguments or {}))
        )

    async def list_prompts(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=await guarded(gate.list_prompts(principal_of(ctx))))

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        return await guarded(gate.get_prompt(principal_of(ctx), params.name, params.arguments))

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=await guarded(gate.list_resources(principal_of(ctx)))
        )

    async def list_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=await guarded(gate.list_resource_templates(principal_of(ctx)))
        )

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await guarded(gate.read_resource(principal_of(ctx), str(params.uri)))

    return Server(
        "bastion",
        version=__version__,
        instructions="Tools of the MCP servers your Bastion policy allows you, as <server>.<tool>.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        # Without it the SDK re-lists every tool on each tools/call to check Mcp-Param
        # headers; the gate's last listing answers from memory.
        get_tool_input_schema=gate.listed_input_schema,
    )
