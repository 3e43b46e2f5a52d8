"""The tool gate: what Bastion's MCP face calls for every request.

``tools/call``, in order; each step passes or refuses with a stable code, and each
decision goes into the call's one ledger event:

1. the name: ``<server>.<tool>``, a server of the policy (else ``mcp_tool_not_found``);
2. the allow-lists (role ∩ team ∩ user ∩ key): the same check that filters
   ``tools/list`` (``mcp_tool_not_allowed``);
3. the definition the server lists now, against the one an admin pinned
   (``mcp_tool_not_approved``, ``mcp_tool_definition_changed``: an alert and an event);
4. a destructive tool: a grant for the caller that has not expired (``mcp_grant_required``);
5. arguments: size, the tool's JSON schema, the policy's limits (``mcp_invalid_arguments``);
6. the tool's rate limit, through the gateway's counters (``rate_limit_exceeded``);
7. privacy: arguments masked, flagged or refused; deny-listed terms;
8. forwarded; the result scanned, placeholders restored when the policy says so.

If any check itself fails (the database, the counters, detection), the call is refused:
nothing is forwarded unchecked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import jsonschema  # type: ignore[import-untyped]
import mcp_types as types
from starlette.concurrency import run_in_threadpool

from bastion.audit import EventIn
from bastion.auth.principal import Principal
from bastion.gateway.access import Access
from bastion.gateway.counters import Counters, RateLimit
from bastion.gateway.resilience import Attempt
from bastion.policy.schema import Policy
from bastion.privacy import PrivacyKeys
from bastion.runtime import Runtime
from bastion.toolgate import definitions
from bastion.toolgate.access import ToolAccess, resolve_tool_access
from bastion.toolgate.config import (
    McpServer,
    ToolRule,
    prompt_name,
    resource_name,
    tool_name,
)
from bastion.toolgate.errors import (
    ArgumentsTooLarge,
    GrantRequired,
    InvalidArguments,
    ToolDefinitionChanged,
    ToolNotAllowed,
    ToolNotApproved,
    ToolNotFound,
    ToolServerFailure,
)
from bastion.toolgate.lifecycle import ToolCall, ToolLifecycle
from bastion.toolgate.privacy import ToolGuards, check_result, protect_arguments
from bastion.toolgate.repository import Pin, ToolRepository
from bastion.toolgate.upstream import Upstream, Upstreams
from mcp import Client

log = logging.getLogger("bastion.mcp")
R = TypeVar("R")

#: How long pinned digests are read from memory before the database is asked again.
PINS_TTL_S = 5.0


@dataclass(frozen=True)
class VisibleTool:
    server: str
    tool: types.Tool
    pinned: str  # "approved", "changed" or "not_approved"


def split_name(name: str) -> tuple[str, str]:
    server, sep, rest = name.partition(".")
    return (server, rest) if sep else ("", name)


def split_uri(uri: str) -> tuple[str, str]:
    """``files+notes://a`` -> (``files``, ``notes://a``): server names have no ``+``."""
    server, sep, rest = uri.partition("+")
    return (server, rest) if sep else ("", uri)


def json_digest(value: Any) -> str:
    body = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class ToolGate:
    def __init__(
        self,
        runtime: Runtime,
        counters: Counters,
        *,
        privacy_keys: PrivacyKeys | None = None,
        upstreams: Upstreams | None = None,
    ) -> None:
        self.runtime = runtime
        self.lifecycle = ToolLifecycle(counters, runtime.ledger, runtime.metrics)
        self.repository = ToolRepository(runtime.db)
        self.upstreams = upstreams or Upstreams()
        self.guards = ToolGuards(privacy_keys or PrivacyKeys())
        self._pins: dict[str, tuple[float, dict[str, Pin]]] = {}
        #: A listed tool's digest, by the object: a listing is kept and reused, so each
        #: call's pin check hashes its definition once per listing, not once per call.
        self._digests: dict[int, tuple[types.Tool, str]] = {}
        self._alerted: set[tuple[str, str, str]] = set()

    @property
    def policy(self) -> Policy:
        return self.runtime.policy.policy

    async def aclose(self) -> None:
        await self.lifecycle.aclose()
        await self.upstreams.aclose()

    def access(self, principal: Principal) -> ToolAccess:
        return resolve_tool_access(self.policy, principal)

    def upstream(self, policy: Policy, server: str) -> tuple[McpServer, Upstream] | None:
        config = policy.mcp.servers.get(server)
        if config is None:
            return None
        return config, self.upstreams.get(server, config)

    # --- pins ---------------------------------------------------------------------------

    async def pins(self, server: str) -> dict[str, Pin]:
        cached = self._pins.get(server)
        if cached is not None and time.monotonic() - cached[0] < PINS_TTL_S:
            return cached[1]
        pins = await run_in_threadpool(self.repository.pins_for, server)
        self._pins[server] = (time.monotonic(), pins)
        return pins

    def forget_pins(self, server: str | None = None) -> None:
        if server is None:
            self._pins.clear()
        else:
            self._pins.pop(server, None)

    def _digest(self, tool: types.Tool) -> str:
        """``definitions.digest(tool)``, kept while that very object is (models are not
        changed in place here: a new listing is new objects)."""
        cached = self._digests.get(id(tool))
        if cached is not None and cached[0] is tool:
            return cached[1]
        if len(self._digests) > 4096:
            self._digests.clear()
        value = definitions.digest(tool)
        self._digests[id(tool)] = (tool, value)
        return value

    async def _pin_state(self, server: str, tool: types.Tool) -> str:
        pin = (await self.pins(server)).get(tool.name)
        if pin is None:
            return "not_approved"
        if pin.digest == self._digest(tool):
            return "approved"
        await self._changed(server, tool, pin)
        return "changed"

    async def _changed(self, server: str, tool: types.Tool, pin: Pin) -> None:
        """A definition that no longer matches its pin: an alert and a ledger event, once
        per (server, tool, new digest) in this process."""
        new = definitions.digest(tool)
        key = (server, tool.name, new)
        if key in self._alerted:
            return
        self._alerted.add(key)
        fields = definitions.changed_fields(pin.definition, tool)
        self.runtime.metrics.mcp_definition_changes.labels(server).inc()
        log.warning(
            "an MCP tool's definition changed since it was approved; calls are refused "
            "until an admin approves the server again",
            extra={"server": server, "tool": tool.name, "fields": fields},
        )
        await self.runtime.ledger.append_async(
            EventIn(
                actor="system",
                action="mcp.definition_changed",
                resource=f"tool:{server}.{tool.name}",
                outcome="alert",
                details={
                    "server": server,
                    "tool": tool.name,
                    "approved_digest": pin.digest,
                    "digest": new,
                    "fields": fields,
                },
                flags=("mcp_definition_changed",),
            )
        )

    # --- listing --------------------------------------------------------------------------

    async def _servers_for(self, access: ToolAccess, prefix: str = "") -> list[str]:
        """Servers of which the caller may use something (a cheap first filter)."""
        out = []
        for server in self.policy.mcp.servers:
            probe = f"{prefix}{server}."
            if access.role and any(
                _could_match(p, probe) for p in access.role
            ):  # patterns that could name something of this server
                out.append(server)
        return out

    async def list_tools(self, principal: Principal) -> list[types.Tool]:
        """The tools this caller may call, as ``<server>.<tool>``; approved and unchanged."""
        tools = []
        for visible in await self.visible_tools(principal):
            if visible.pinned == "approved":
                tools.append(
                    visible.tool.model_copy(
                        update={"name": tool_name(visible.server, visible.tool.name)}
                    )
                )
        return tools

    async def visible_tools(
        self, principal: Principal | None, servers: list[str] | None = None
    ) -> list[VisibleTool]:
        """Each server's tools with their pin state (``principal`` None: every tool)."""
        policy = self.policy
        access = self.access(principal) if principal is not None else None
        names = servers if servers is not None else list(policy.mcp.servers)
        if access is not None:
            names = [n for n in names if n in await self._servers_for(access)]
        out = []
        for server in names:
            found = self.upstream(policy, server)
            if found is None:
                continue
            _, upstream = found
            try:
                listed = await upstream.tools()
            except ToolServerFailure as exc:
                # One server down hides its tools; the others still list.
                log.warning(
                    "the MCP server %s could not list its tools: %s",
                    server,
                    exc.code,
                    extra={"server": server, "code": exc.code},
                )
                continue
            for tool in listed:
                if access is not None and not access.allows(tool_name(server, tool.name)):
                    continue
                out.append(VisibleTool(server, tool, await self._pin_state(server, tool)))
        return out

    def listed_input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's input schema from the last listing, without I/O (None: not known)."""
        server, tool = split_name(name)
        found = self.upstream(self.policy, server)
        listed = found[1].listed() if found is not None else None
        for candidate in listed or ():
            if candidate.name == tool:
                return candidate.input_schema
        return None

    # --- tools/call ---------------------------------------------------------------------

    async def call_tool(
        self, principal: Principal, name: str, arguments: dict[str, Any] | None
    ) -> types.CallToolResult:
        policy = self.policy
        call = ToolCall(principal, endpoint="tools.call", family="mcp", resource_kind="tool")
        arguments = arguments or {}
        async with self.lifecycle.governed(call, policy):
            server, tool = split_name(name)
            found = self.upstream(policy, server)
            if found is None:
                call.decisions["server"] = "unknown"
                raise ToolNotFound(
                    f"no tool {name!r}: tools are named <server>.<tool>; tools/list shows "
                    "the ones you may call"
                )
            config, upstream = found
            call.server, call.tool = server, tool
            call.decisions["server"] = "known"
            access = self.access(principal)
            if not access.allows(name):
                call.decisions["allow"] = "denied"
                raise ToolNotAllowed(
                    f"your key may not call the tool {name!r}; tools/list shows the ones it may"
                )
            call.decisions["allow"] = "allowed"
            definition = await self._definition(upstream, tool, refresh=config.refresh_s == 0)
            if definition is None:
                raise ToolNotFound(f"the MCP server {server!r} has no tool {tool!r}")
            call.known = True
            state = await self._pin_state(server, definition)
            call.decisions["pin"] = state
            if state == "not_approved":
                raise ToolNotApproved(
                    f"the tool {name!r} has not been approved: an admin runs "
                    f"`bastion mcp approve {server}` after reviewing its definition"
                )
            if state == "changed":
                raise ToolDefinitionChanged(
                    f"the tool {name!r} changed its definition since it was approved, so it "
                    f"is refused: an admin reviews it with `bastion mcp tools {server}` and "
                    f"runs `bastion mcp approve {server}` if the change is wanted"
                )
            rule = config.rule(tool)
            if rule.destructive:
                await self._check_grant(principal, server, tool, call)
            call.arguments_digest = json_digest(arguments)
            self._check_arguments(policy, rule, definition, arguments, call)
            if rule.rate_limit is not None:  # else no counter to charge (no round trip)
                await self.lifecycle.admit(
                    call, policy, _tool_limits(principal, name, rule), 0, 0.0
                )
            guard = self.guards.guard(policy, config.privacy_for(tool))
            vault = guard.vault()
            masked, counts, flags = protect_arguments(guard, arguments, vault)
            call.flags.update(flags)
            call.decisions["privacy"] = _privacy_decision(
                config.privacy_for(tool).arguments, counts
            )
            result = await self._forward(call, upstream.call_tool(tool, masked, rule.timeout_s))
            result, result_flags = check_result(guard, result, vault)
            call.flags.update(result_flags)
            call.result_digest = json_digest(result.model_dump(mode="json", exclude_none=True))
            if result.is_error:
                call.is_error = True
                call.outcome = "failure"
                call.error_code = "mcp_tool_error"
            await self.lifecycle.finish(call, policy)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _definition(
        self, upstream: Upstream, tool: str, *, refresh: bool
    ) -> types.Tool | None:
        listed = await upstream.tools(refresh=refresh)
        for candidate in listed:
            if candidate.name == tool:
                return candidate
        if not refresh:  # a tool added since the last listing
            for candidate in await upstream.tools(refresh=True):
                if candidate.name == tool:
                    return candidate
        return None

    async def _check_grant(
        self, principal: Principal, server: str, tool: str, call: ToolCall
    ) -> None:
        grantees = [f"user:{principal.user}", f"key:{principal.key_prefix}"]
        if principal.team:
            grantees.append(f"team:{principal.team}")
        grant = await run_in_threadpool(self.repository.active_grant, server, tool, grantees)
        if grant is None:
            call.decisions["grant"] = "missing"
            raise GrantRequired(
                f"the tool {server}.{tool} is destructive and needs a time-limited grant: an "
                f"admin runs `bastion mcp allow {server}.{tool} --user {principal.user} "
                "--for 15m`"
            )
        call.decisions["grant"] = grant.id

    def _check_arguments(
        self,
        policy: Policy,
        rule: ToolRule,
        definition: types.Tool,
        arguments: dict[str, Any],
        call: ToolCall,
    ) -> None:
        size = len(json.dumps(arguments, separators=(",", ":"), default=str).encode())
        cap = rule.max_argument_bytes or policy.mcp.max_argument_bytes
        if size > cap:
            call.decisions["arguments"] = "too_large"
            raise ArgumentsTooLarge(
                f"the arguments are {size} bytes; this tool takes at most {cap}",
            )
        try:
            validator = _validator(definition.input_schema)
            error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
        except jsonschema.exceptions.SchemaError:
            call.decisions["arguments"] = "schema_invalid"
            raise InvalidArguments(
                "the tool's own input schema is not a valid JSON schema, so its arguments "
                "cannot be checked; the call is refused"
            ) from None
        if error is not None:
            call.decisions["arguments"] = "schema"
            where = "/".join(str(p) for p in error.absolute_path) or "(arguments)"
            raise InvalidArguments(
                f"the arguments do not match the tool's schema at {where}: {_short(error.message)}"
            )
        for arg, limit in rule.arguments.items():
            if arg not in arguments:
                continue
            value = arguments[arg]
            problem = _limit_problem(value, limit)
            if problem:
                call.decisions["arguments"] = "limits"
                raise InvalidArguments(f"the argument {arg!r} {problem}")
        call.decisions["arguments"] = "valid"

    async def _forward(self, call: ToolCall, work: Awaitable[R]) -> R:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await work
        except ToolServerFailure as exc:
            outcome = exc.kind
            raise
        finally:
            spent = time.perf_counter() - started
            call.trail.upstream_s += spent
            call.trail.attempts.append(Attempt(call.tool, call.server, outcome, spent * 1000))

    # --- prompts and resources ---------------------------------------------------------

    async def _listed(
        self,
        access: ToolAccess,
        kind: str,
        method: str,
        ask: Callable[[Any], Awaitable[Any]],
        each: Callable[[str, Any], list[Any]],
    ) -> list[Any]:
        """One listing across the servers ``access`` may reach for ``kind``; a server
        that fails to answer is left out, never an error for the whole listing."""
        out: list[Any] = []
        for server in await self._servers_for(access, kind):
            found = self.upstream(self.policy, server)
            if found is None:
                continue
            try:
                listed = await found[1].request(method, ask)
            except ToolServerFailure:
                continue
            out.extend(each(server, listed))
        return out

    async def list_prompts(self, principal: Principal) -> list[types.Prompt]:
        access = self.access(principal)
        return await self._listed(
            access,
            "prompt:",
            "prompts/list",
            lambda c: c.list_prompts(),
            lambda server, listed: [
                p.model_copy(update={"name": tool_name(server, p.name)})
                for p in listed.prompts
                if access.allows(prompt_name(server, p.name))
            ],
        )

    async def get_prompt(
        self, principal: Principal, name: str, arguments: dict[str, str] | None
    ) -> types.GetPromptResult:
        server, prompt = split_name(name)
        result = await self._governed_read(
            principal,
            "prompts.get",
            server,
            prompt,
            prompt_name(server, prompt),
            dict(arguments or {}),
            lambda c, args: c.get_prompt(prompt, args),
        )
        assert isinstance(result, types.GetPromptResult)
        return result

    async def list_resources(self, principal: Principal) -> list[types.Resource]:
        access = self.access(principal)
        return await self._listed(
            access,
            "resource:",
            "resources/list",
            lambda c: c.list_resources(),
            lambda server, listed: [
                r.model_copy(update={"uri": f"{server}+{r.uri}"})
                for r in listed.resources
                if access.allows(resource_name(server, str(r.uri)))
            ],
        )

    async def list_resource_templates(self, principal: Principal) -> list[types.ResourceTemplate]:
        return await self._listed(
            self.access(principal),
            "resource:",
            "resources/templates/list",
            lambda c: c.list_resource_templates(),
            lambda server, listed: [
                t.model_copy(update={"uri_template": f"{server}+{t.uri_template}"})
                for t in listed.resource_templates
            ],
        )

    async def read_resource(self, principal: Principal, uri: str) -> types.ReadResourceResult:
        server, inner = split_uri(uri)
        result = await self._governed_read(
            principal,
            "resources.read",
            server,
            inner,
            resource_name(server, inner),
            {},
            lambda c, _args: c.read_resource(inner),
        )
        assert isinstance(result, types.ReadResourceResult)
        return result.model_copy(
            update={
                "contents": [
                    c.model_copy(update={"uri": f"{server}+{c.uri}"}) for c in result.contents
                ]
            }
        )

    async def _governed_read(
        self,
        principal: Principal,
        method: str,
        server: str,
        item: str,
        qualified: str,
        arguments: dict[str, Any],
        send: Callable[[Client, Any], Awaitable[Any]],
    ) -> Any:
        """A prompt or a resource: allow-list, privacy both ways, one ledger event."""
        policy = self.policy
        kind = "prompt" if method.startswith("prompt") else "resource"
        call = ToolCall(principal, endpoint=method, family="mcp", resource_kind=kind)
        async with self.lifecycle.governed(call, policy):
            found = self.upstream(policy, server)
            if found is None:
                call.decisions["server"] = "unknown"
                raise ToolNotFound(f"no {kind} {qualified!r}: no such MCP server")
            config, upstream = found
            call.server, call.tool = server, _label(item)
            call.decisions["server"] = "known"
            if not self.access(principal).allows(qualified):
                call.decisions["allow"] = "denied"
                raise ToolNotAllowed(f"your key may not use the {kind} {qualified!r}")
            call.decisions["allow"] = "allowed"
            call.known = False  # a caller's prompt name or URI is never a metric label
            call.arguments_digest = json_digest(arguments)
            guard = self.guards.guard(policy, config.privacy)
            vault = guard.vault()
            masked, counts, flags = protect_arguments(guard, arguments, vault)
            call.flags.update(flags)
            call.decisions["privacy"] = _privacy_decision(config.privacy.arguments, counts)
            result = await self._forward(call, upstream.request(method, lambda c: send(c, masked)))
            result, result_flags = check_result(guard, result, vault)
            call.flags.update(result_flags)
            call.result_digest = json_digest(result.model_dump(mode="json", exclude_none=True))
            await self.lifecycle.finish(call, policy)
            return result
        raise AssertionError("unreachable")  # pragma: no cover


def _label(item: str) -> str:
    return item if len(item) <= 200 else item[:200]


def _could_match(pattern: str, probe: str) -> bool:
    """Whether ``pattern`` could match some name that starts with ``probe``."""
    import fnmatch

    for i, ch in enumerate(pattern):
        if ch in "*?[":
            return fnmatch.fnmatchcase(probe[:i], pattern[:i]) if i <= len(probe) else True
        if i >= len(probe):
            return True
        if ch != probe[i]:
            return False
    return pattern.startswith(probe)


def _privacy_decision(action: str, counts: dict[str, int]) -> str:
    if action == "off":
        return "off"
    if not counts:
        return "clean"
    return "masked" if action == "mask" else "flagged"


def _tool_limits(principal: Principal, name: str, rule: ToolRule) -> Access:
    limits: tuple[RateLimit, ...] = ()
    if rule.rate_limit is not None:
        per = rule.rate_limit.per
        who = {
            "key": f"key:{principal.key_id}",
            "user": f"user:{principal.user}",
            "team": f"team:{principal.team or '-'}",
            "all": "tool:all",
        }[per]
        limits = (RateLimit(f"{who}/mcp:{name}", "requests", rule.rate_limit.per_minute),)
    return Access((), (), None, limits, ())


_VALIDATORS: dict[str, Any] = {}
#: The same, by the schema object of a listing (kept with it, so its id stays its own):
#: the canonical key costs more than the validation of small arguments.
_VALIDATORS_BY_ID: dict[int, tuple[dict[str, Any], Any]] = {}


def _validator(schema: dict[str, Any]) -> Any:
    """A compiled validator per schema (schemas repeat on every call of a tool)."""
    known = _VALIDATORS_BY_ID.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    validator = _validator_for(schema)
    if len(_VALIDATORS_BY_ID) > 1000:
        _VALIDATORS_BY_ID.clear()
    _VALIDATORS_BY_ID[id(schema)] = (schema, validator)
    return validator


def _validator_for(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True, default=str)
    validator = _VALIDATORS.get(key)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        validator = cls(schema)
        if len(_VALIDATORS) > 1000:
            _VALIDATORS.clear()
        _VALIDATORS[key] = validator
    return validator


def _short(message: str) -> str:
    # A schema message quotes the offending value: keep it short (it may be data).
    return message if len(message) <= 200 else message[:200] + "…"


def _limit_problem(value: Any, limit: Any) -> str | None:
    if (
        limit.max_length is not None
        and isinstance(value, str | list | dict)
        and len(value) > limit.max_length
    ):
        return f"is longer than {limit.max_length}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if limit.minimum is not None and value < limit.minimum:
            return f"is below {limit.minimum:g}"
        if limit.maximum is not None and value > limit.maximum:
            return f"is above {limit.maximum:g}"
    if (
        limit.pattern is not None
        and isinstance(value, str)
        and re.search(limit.pattern, value) is None
    ):
        return "does not match the pattern the policy requires"
    if limit.allowed is not None and value not in limit.allowed:
        return "is not one of the values the policy allows"
    return None
