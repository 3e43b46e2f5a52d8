"""A real MCP server written with the official SDK, for the tool gate's tests and bench.

    python mcp_server.py stdio
    python mcp_server.py http PORT

Tools: ``echo`` (returns its text and records what it received), ``add``,
``delete_file`` (the policy declares it destructive), ``weather`` (its description is
read from the file ``$MCP_DESCRIPTION_FILE`` on every listing, so a test can change it
after approval), ``hang`` (never answers). A prompt ``greet`` and resources
``notes://{name}``. Every argument the server receives is appended to
``$MCP_RECEIVED_FILE`` (one JSON line), so a test can see what crossed the gate.
Over HTTP, ``/garbage`` answers every POST with bytes that are not JSON-RPC.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server

RECEIVED = os.environ.get("MCP_RECEIVED_FILE")
DESCRIPTION = os.environ.get("MCP_DESCRIPTION_FILE")


def _received(name: str, arguments: dict[str, Any]) -> None:
    if RECEIVED:
        with open(RECEIVED, "a", encoding="utf-8") as out:
            out.write(json.dumps({"tool": name, "arguments": arguments}) + "\n")


def _weather_description() -> str:
    if DESCRIPTION and Path(DESCRIPTION).exists():
        return Path(DESCRIPTION).read_text(encoding="utf-8")
    return "The weather in a city."


def _text_schema(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(
        tools=[
            types.Tool(
                name="echo",
                description="Echo the text back.",
                input_schema=_text_schema(text={"type": "string"}),
            ),
            types.Tool(
                name="add",
                description="Add two integers.",
                input_schema=_text_schema(a={"type": "integer"}, b={"type": "integer"}),
            ),
            types.Tool(
                name="delete_file",
                description="Delete a file.",
                input_schema=_text_schema(path={"type": "string"}),
            ),
            types.Tool(
                name="weather",
                description=_weather_description(),
                input_schema=_text_schema(city={"type": "string"}),
            ),
            types.Tool(
                name="hang",
                description="Never answers.",
                input_schema={"type": "object", "properties": {}},
            ),
        ]
    )


async def call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    args = dict(params.arguments or {})
    _received(params.name, args)
    if params.name == "echo":
        text = f"echo: {args.get('text', '')}"
    elif params.name == "add":
        text = str(int(args["a"]) + int(args["b"]))
    elif params.name == "delete_file":
        text = f"deleted {args.get('path')}"
    elif params.name == "weather":
        text = f"sunny in {args.get('city')}"
    elif params.name == "hang":
        await anyio.sleep(3600)
        text = "late"
    else:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"unknown tool {params.name}")],
            is_error=True,
        )
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


async def list_prompts(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListPromptsResult:
    return types.ListPromptsResult(
        prompts=[
            types.Prompt(
                name="greet",
                description="Greet someone.",
                arguments=[types.PromptArgument(name="who", required=True)],
            )
        ]
    )


async def get_prompt(
    ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
) -> types.GetPromptResult:
    who = (params.arguments or {}).get("who", "")
    _received(f"prompt:{params.name}", {"who": who})
    return types.GetPromptResult(
        messages=[
            types.PromptMessage(
                role="user", content=types.TextContent(type="text", text=f"Hello {who}")
            )
        ]
    )


async def list_resources(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListResourcesResult:
    return types.ListResourcesResult(
        resources=[types.Resource(name="readme", uri="notes://readme", mime_type="text/plain")]
    )


async def read_resource(
    ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    return types.ReadResourceResult(
        contents=[
            types.TextResourceContents(
                uri=str(params.uri), mime_type="text/plain", text=f"contents of {params.uri}"
            )
        ]
    )


def build() -> Server[Any]:
    return Server(
        "test-tools",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


async def _stdio() -> None:
    from mcp.server.stdio import stdio_server

    server = build()
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def _http(port: int) -> None:
    import uvicorn
    from starlette.responses import Response
    from starlette.routing import Route

    async def garbage(request: Any) -> Response:
        return Response(b"this is not JSON-RPC", media_type="application/json")

    app = build().streamable_http_app(
        json_response=True,
        stateless_http=True,
        custom_starlette_routes=[Route("/garbage", garbage, methods=["GET", "POST", "DELETE"])],
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        anyio.run(_stdio)
    else:
        _http(int(sys.argv[2]))
