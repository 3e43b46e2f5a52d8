"""``bastion mcp``: the MCP tool gate for operators (servers, tools, approvals, grants,
calls) and the stdio bridge for MCP clients that only spawn local servers."""

from __future__ import annotations

import re
from typing import Any

import typer

from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    fail,
    handled,
    key_table,
    print_json,
    runtime,
    short_digest,
)

app = typer.Typer(
    help="MCP tool calls: servers, pinned tool definitions, grants, the call log, the bridge.",
    no_args_is_help=True,
)

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> float:
    match = DURATION.match(value.strip())
    if match is None:
        fail(f"--for {value!r}: give a duration like 15m, 2h or 1d", 2)
    return int(match.group(1)) * UNITS[match.group(2)]


def _run(coro: Any) -> Any:
    import anyio

    async def main() -> Any:
        return await coro

    return anyio.run(main)


@app.command()
def servers(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """The MCP servers in the policy, their transport and how many tools are approved."""
    from bastion.toolgate.repository import ToolRepository

    with runtime() as rt:
        policy = rt.policy.policy
        pins = ToolRepository(rt.db).all_pins()
    rows: list[dict[str, Any]] = []
    for name, config in policy.mcp.servers.items():
        target = str(config.url) if config.url else " ".join(config.command or [])
        approved = [p for p in pins if p.server == name]
        rows.append(
            {
                "server": name,
                "transport": config.transport,
                "target": target,
                "approved_tools": len(approved),
                "destructive": sorted(t for t, r in config.tools.items() if r.destructive),
            }
        )
    if fmt is OutputFormat.json:
        print_json(rows)
        return
    table = [
        [
            r["server"],
            r["transport"],
            r["target"],
            str(r["approved_tools"]),
            ", ".join(r["destructive"]),
        ]
        for r in rows
    ]
    headers = ["server", "transport", "target", "approved", "destructive"]
    console.print(key_table(headers, table, key=["server"], right=["approved"]))


@app.command()
def tools(
    server: str = typer.Argument(..., help="A server named in the policy's mcp.servers."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """The tools a server lists now, each against its approved (pinned) definition."""
    from bastion.toolgate.admin import review

    with runtime() as rt:
        reviews = _run(review(rt, server))
    if fmt is OutputFormat.json:
        print_json([r.__dict__ for r in reviews])
        return
    rows = [[r.tool, r.state, short_digest(r.digest), ", ".join(r.fields)] for r in reviews]
    console.print(key_table(["tool", "state", "digest", "changed"], rows, key=["tool", "state"]))


@app.command()
def approve(
    server: str = typer.Argument(..., help="A server named in the policy's mcp.servers."),
    by: str = typer.Option("cli", help="Who approves (recorded in the ledger)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Pin the definitions a server lists now: its tools become callable (by those the
    allow-lists let), and any later change to one is refused until approved again."""
    from bastion.toolgate.admin import approve as approve_server

    with runtime() as rt:
        reviews = _run(approve_server(rt, server, f"user:{by}"))
    if fmt is OutputFormat.json:
        print_json([r.__dict__ for r in reviews])
        return
    rows = [[r.tool, r.state, short_digest(r.digest)] for r in reviews]
    console.print(
        key_table(["tool", "was", "digest"], rows, key=["tool"], title=f"approved {server}")
    )


@app.command()
def allow(
    tool: str = typer.Argument(..., help="A destructive tool, as <server>.<tool>."),
    user: str | None = typer.Option(None, help="The user the grant is for."),
    key: str | None = typer.Option(None, help="The key prefix the grant is for."),
    team: str | None = typer.Option(None, help="The team the grant is for."),
    duration: str = typer.Option("15m", "--for", help="How long: 15m, 2h, 1d."),
    reason: str | None = typer.Option(None, help="Why (kept with the grant)."),
    by: str = typer.Option("cli", help="Who grants (recorded in the ledger)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Let a user, key or team run a destructive tool for a limited time."""
    from bastion.toolgate.admin import grant

    chosen = [(k, v) for k, v in (("user", user), ("key", key), ("team", team)) if v]
    if len(chosen) != 1:
        fail("give exactly one of --user, --key or --team", 2)
    kind, who = chosen[0]
    seconds = parse_duration(duration)
    with runtime() as rt:
        made = grant(rt, tool, f"{kind}:{who}", f"user:{by}", seconds, reason)
    if fmt is OutputFormat.json:
        print_json(made.__dict__)
        return
    console.print(
        f"grant {made.id}: {made.grantee} may run {tool} until "
        f"{made.expires_at.strftime('%Y-%m-%d %H:%M:%S')} UTC"
    )


@app.command()
def grants(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Grants for destructive tools that are in force."""
    from bastion.toolgate.repository import ToolRepository

    with runtime() as rt:
        found = ToolRepository(rt.db).grants()
    if fmt is OutputFormat.json:
        print_json([g.__dict__ for g in found])
        return
    rows = [
        [str(g.id), f"{g.server}.{g.tool}", g.grantee, g.expires_at.strftime("%Y-%m-%d %H:%M")]
        for g in found
    ]
    console.print(key_table(["id", "tool", "grantee", "expires"], rows, key=["id", "tool"]))


@app.command()
def calls(
    limit: int = typer.Option(50, min=1, max=1000, help="How many, newest first."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """The latest MCP tool calls from the ledger: who, which tool, what was decided."""
    from bastion.audit import EventFilter

    with runtime() as rt:
        page = rt.audit.page(EventFilter(action="mcp.tools.call"), limit=limit)
    events = page.events
    if fmt is OutputFormat.json:
        print_json([e.__dict__ for e in events])
        return
    rows = []
    for e in events:
        d = e.details
        tool = f"{d.get('server') or '?'}.{d.get('tool') or '?'}"
        rows.append(
            [
                e.time[:19],
                e.actor,
                tool,
                e.outcome,
                d.get("error_code") or "",
                f"{d.get('latency_ms', 0):.1f}",
            ]
        )
    headers = ["time", "caller", "tool", "outcome", "code", "ms"]
    console.print(key_table(headers, rows, key=["time", "tool", "outcome"], right=["ms"]))


@app.command()
def bridge(
    url: str = typer.Option(
        "http://127.0.0.1:8000", help="The Bastion server (its /mcp endpoint is used)."
    ),
    key: str = typer.Option(
        ..., envvar="BASTION_API_KEY", help="A Bastion API key (or BASTION_API_KEY)."
    ),
) -> None:
    """Serve Bastion's MCP endpoint over stdio, for MCP clients that only spawn local
    servers: every request goes to Bastion's /mcp with your key."""
    from bastion.toolgate.bridge import run_bridge

    with handled():
        _run(run_bridge(url.rstrip("/") + "/mcp", key))
