"""What operators and local clients do: the CLI against the same policy and database,
and the stdio bridge spawned by an MCP client (the official SDK's)."""

from __future__ import annotations

import json
import os
import sys

import pytest
from mcp.shared.exceptions import MCPError

from mcp import Client, StdioServerParameters

from .conftest import Served

pytestmark = pytest.mark.anyio


def _bastion(served: Served, *args: str) -> tuple[int, str]:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env |= {
        "BASTION_HOME": str(served.home),
        "BASTION_DATABASE_URL": str(served.runtime.settings.resolved_database_url),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bastion.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


async def test_operators_approve_review_grant_and_read_calls_from_the_cli(served: Served) -> None:
    import anyio

    run = anyio.to_thread.run_sync
    code, out = await run(lambda: _bastion(served, "mcp", "tools", "local", "--format", "json"))
    assert code == 0, out
    assert {t["tool"]: t["state"] for t in json.loads(out)}["echo"] == "new"
    code, out = await run(lambda: _bastion(served, "mcp", "approve", "local", "--by", "alice"))
    assert code == 0, out
    served.app.state.toolgate.forget_pins()
    code, out = await run(lambda: _bastion(served, "mcp", "servers", "--format", "json"))
    rows = {r["server"]: r for r in json.loads(out)}
    assert rows["local"]["approved_tools"] == 5 and rows["local"]["destructive"] == ["delete_file"]
    code, out = await run(lambda: _bastion(served, "mcp", "allow", "local.echo", "--user", "bob"))
    assert code != 0 and "mcp_grant_not_needed" in out  # echo is not destructive
    code, out = await run(
        lambda: _bastion(
            served, "mcp", "allow", "local.delete_file", "--user", "admin-user", "--for", "5m"
        )
    )
    assert code == 0 and "admin-user" in out, out
    async with served.client("admin") as admin:
        await admin.call_tool("local.delete_file", {"path": "/tmp/y"})
    code, out = await run(lambda: _bastion(served, "mcp", "calls", "--format", "json"))
    calls = json.loads(out)
    assert calls[0]["details"]["tool"] == "delete_file" and calls[0]["outcome"] == "success"
    code, out = await run(lambda: _bastion(served, "mcp", "approve", "nowhere"))
    assert code != 0 and "mcp_server_not_found" in out


async def test_a_client_that_spawns_local_servers_goes_through_the_bridge(served: Served) -> None:
    from .conftest import approve

    await approve(served, "local")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_API_KEY"] = served.keys["guest"]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion.cli.main", "mcp", "bridge", "--url", served.url],
        env=env,
    )
    async with Client(params) as guest:
        assert {t.name for t in (await guest.list_tools()).tools} == {"local.echo"}
        result = await guest.call_tool("local.echo", {"text": "via the bridge"})
        assert result.content[0].text == "echo: via the bridge"  # type: ignore[union-attr]
        with pytest.raises(MCPError) as refused:
            await guest.call_tool("local.add", {"a": 1, "b": 2})
    assert isinstance(refused.value.error.data, dict)
    assert refused.value.error.data["code"] == "mcp_tool_not_allowed"
