"""``bastion mcp bridge``: Bastion's MCP endpoint over stdio.

Some MCP clients only spawn local servers. The bridge is one: a stdio MCP server (the
SDK's) whose every request is relayed, with the user's Bastion key, to a Bastion
server's ``/mcp``, where the policy is applied and the ledger written. The bridge holds
no policy of its own; an error from Bastion reaches the client as Bastion sent it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx2
import mcp_types as types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from bastion import __version__
from bastion.toolgate.face import UPSTREAM_FAILED
from mcp import Client

T = TypeVar("T")
Ctx = ServerRequestContext[Any, Any]


@contextlib.asynccontextmanager
async def bastion_client(url: str, key: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120)
    async with http, Client(streamable_http_client(url, http_client=http), cache=None) as c:
        yield c


def relay_server(client: Client) -> Server[Any]:
    async def relay(send: Callable[[], Awaitable[T]]) -> T:
        try:
            return await send()
        except MCPError:
            raise
        except Exception as exc:
            raise MCPError(
                UPSTREAM_FAILED,
                f"Bastion could not be reached ({type(exc).__name__})",
                {"code": "bastion_unreachable", "status": 502},
            ) from None

    async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Any:
        return await relay(lambda: client.list_tools())

    async def call_tool(ctx: Ctx, params: types.CallToolRequestParams) -> Any:
        return await relay(lambda: client.call_tool(params.name, dict(params.arguments or {})))

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Any:
        return await relay(lambda: client.list_prompts())

    async def get_prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> Any:
        return await relay(lambda: client.get_prompt(params.name, params.arguments))

    async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Any:
        return await relay(lambda: client.list_resources())

    async def list_templates(ctx: Ctx, params: types.PaginatedRequestParams | None) -> Any:
        return await relay(lambda: client.list_resource_templates())

    async def read_resource(ctx: Ctx, params: types.ReadResourceRequestParams) -> Any:
        return await relay(lambda: client.read_resource(str(params.uri)))

    return Server(
        "bastion-bridge",
        version=__version__,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


async def run_bridge(url: str, key: str) -> None:
    async with bastion_client(url, key) as client:
        server = relay_server(client)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
