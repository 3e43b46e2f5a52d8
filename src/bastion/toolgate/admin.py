"""What operators do: approve (pin) a server's tool definitions, grant a destructive tool
for a while, review the definitions a server lists now. Each is a ledger event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import mcp_types as types
from starlette.concurrency import run_in_threadpool

from bastion.audit import EventIn
from bastion.db.base import utcnow
from bastion.errors import InvalidInput
from bastion.runtime import Runtime
from bastion.toolgate import definitions
from bastion.toolgate.errors import ServerNotFound
from bastion.toolgate.repository import Grant, ToolRepository
from bastion.toolgate.upstream import Upstream


@dataclass(frozen=True)
class ToolReview:
    server: str
    tool: str
    digest: str
    state: str  # approved, changed, new, removed
    fields: tuple[str, ...] = ()


def _upstream(runtime: Runtime, server: str) -> Upstream:
    config = runtime.policy.policy.mcp.servers.get(server)
    if config is None:
        known = ", ".join(sorted(runtime.policy.policy.mcp.servers)) or "none"
        raise ServerNotFound(f"no MCP server {server!r} in the policy (known: {known})")
    return Upstream(server, config)


async def review(runtime: Runtime, server: str) -> list[ToolReview]:
    """The server's tools now, each against its pin."""
    upstream = _upstream(runtime, server)
    try:
        tools = await upstream.tools(refresh=True)
    finally:
        await upstream.aclose()
    pins = await run_in_threadpool(ToolRepository(runtime.db).pins_for, server)
    out = []
    for tool in tools:
        pin = pins.get(tool.name)
        dig = definitions.digest(tool)
        if pin is None:
            out.append(ToolReview(server, tool.name, dig, "new"))
        elif pin.digest == dig:
            out.append(ToolReview(server, tool.name, dig, "approved"))
        else:
            fields = tuple(definitions.changed_fields(pin.definition, tool))
            out.append(ToolReview(server, tool.name, dig, "changed", fields))
    listed = {t.name for t in tools}
    out.extend(
        ToolReview(server, name, pin.digest, "removed")
        for name, pin in pins.items()
        if name not in listed
    )
    return out


async def approve(runtime: Runtime, server: str, actor: str) -> list[ToolReview]:
    """Pin every tool the server lists now (and forget pins of tools it no longer has)."""
    upstream = _upstream(runtime, server)
    try:
        tools = await upstream.tools(refresh=True)
    finally:
        await upstream.aclose()
    before = await review_against(runtime, server, tools)
    pinned = {t.name: (definitions.digest(t), definitions.definition(t)) for t in tools}
    await run_in_threadpool(ToolRepository(runtime.db).replace_pins, server, pinned, actor)
    await runtime.ledger.append_async(
        EventIn(
            actor=actor,
            action="mcp.approve",
            resource=f"mcp_server:{server}",
            outcome="success",
            details={
                "server": server,
                "tools": {name: dig for name, (dig, _d) in sorted(pinned.items())},
                "changed": sorted(r.tool for r in before if r.state == "changed"),
                "new": sorted(r.tool for r in before if r.state == "new"),
            },
        )
    )
    return before


async def review_against(
    runtime: Runtime, server: str, tools: list[types.Tool]
) -> list[ToolReview]:
    pins = await run_in_threadpool(ToolRepository(runtime.db).pins_for, server)
    out = []
    for tool in tools:
        pin = pins.get(tool.name)
        dig = definitions.digest(tool)
        state = "new" if pin is None else ("approved" if pin.digest == dig else "changed")
        out.append(ToolReview(server, tool.name, dig, state))
    return out


def grant(
    runtime: Runtime,
    qualified: str,
    grantee: str,
    actor: str,
    duration_s: float,
    reason: str | None = None,
) -> Grant:
    """Let ``grantee`` (``user:NAME``, ``key:PREFIX``, ``team:NAME``) run a destructive
    tool for ``duration_s`` seconds."""
    policy = runtime.policy.policy
    server, _, tool = qualified.partition(".")
    config = policy.mcp.servers.get(server)
    if config is None or not tool:
        raise ServerNotFound(f"no MCP tool {qualified!r}: name it <server>.<tool>")
    if not config.rule(tool).destructive:
        raise InvalidInput(
            f"the tool {qualified!r} is not declared destructive, so it needs no grant",
            code="mcp_grant_not_needed",
        )
    kind, sep, who = grantee.partition(":")
    if not sep or kind not in ("user", "key", "team") or not who:
        raise InvalidInput(
            "a grantee is user:NAME, key:PREFIX or team:NAME", code="mcp_invalid_grantee"
        )
    if not 0 < duration_s <= policy.mcp.max_grant_s:
        raise InvalidInput(
            f"a grant lasts more than 0 and at most {policy.mcp.max_grant_s} s (mcp.max_grant_s)",
            code="mcp_invalid_grant_duration",
        )
    expires = utcnow() + timedelta(seconds=duration_s)
    made = ToolRepository(runtime.db).add_grant(server, tool, grantee, actor, expires, reason)
    runtime.ledger.append(
        EventIn(
            actor=actor,
            action="mcp.grant",
            resource=f"tool:{server}.{tool}",
            outcome="success",
            details={
                "grant": made.id,
                "grantee": grantee,
                "expires_at": expires.isoformat(),
                "duration_s": duration_s,
            },
        )
    )
    return made
