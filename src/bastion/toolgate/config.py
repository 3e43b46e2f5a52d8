"""The policy file's ``mcp:`` section, and the ``tools:`` allow-lists of roles and teams.

The spine's policy schema imports :class:`McpPolicy` and nests it under ``mcp``. Example::

    mcp:
      servers:
        files:                              # a local server, spawned over stdio
          command: [python, -m, files_server]
          tools:
            delete_file: {destructive: true}          # needs `bastion mcp allow`
            read_file:
              max_argument_bytes: 4096
              arguments: {path: {max_length: 200, pattern: "^/srv/"}}
              rate_limit: {per_minute: 30, per: user}
        mail:                               # a remote server, streamable HTTP
          url: http://127.0.0.1:9000/mcp
          privacy: {arguments: mask, results: flag, restore: true}
    roles:
      admin: {tools: ["*"]}
      analyst: {tools: ["files.read_*", "prompt:files.*", "resource:files.*"]}

Names: a tool is ``<server>.<tool>`` (so is what ``tools/list`` shows), a prompt
``prompt:<server>.<prompt>``, a resource ``resource:<server>.<uri>``. Allow-list entries
are names or shell-style patterns; nothing is allowed that no entry matches (a role with
no ``tools`` list reaches no tool). A team's, a user's and a key's own ``tools`` lists
narrow the role's, like their ``models`` lists.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

SERVER_NAME = r"^[A-Za-z0-9_-]{1,64}$"
ServerName = Annotated[str, Field(pattern=SERVER_NAME)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]

#: What a call's arguments may weigh when the policy says nothing (JSON bytes).
DEFAULT_MAX_ARGUMENT_BYTES = 64 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolPrivacy(_Strict):
    """Personal data and deny-listed terms in a tool's arguments and results.

    ``arguments``: ``mask`` replaces findings with placeholders before the server sees
    them, ``flag`` records them, ``block`` refuses the call, ``off`` skips detection.
    ``results``: ``flag`` records what the result holds, ``redact`` replaces it, ``block``
    refuses to return it, ``off`` skips the scan. ``restore`` puts the caller's own values
    back where the server echoed a placeholder.
    """

    arguments: Literal["mask", "flag", "block", "off"] = "mask"
    results: Literal["flag", "redact", "block", "off"] = "flag"
    restore: bool = True


class ArgumentLimit(_Strict):
    """Limits on one argument, checked at call time beside the tool's own schema."""

    max_length: PositiveInt | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    allowed: list[str | int | float | bool] | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class ToolRateLimit(_Strict):
    per_minute: PositiveInt
    #: Whose calls share the limit: each key, each user, each team, or everyone.
    per: Literal["key", "user", "team", "all"] = "key"


class ToolRule(_Strict):
    #: Calls need a time-limited grant (``bastion mcp allow``) for the caller.
    destructive: bool = False
    max_argument_bytes: PositiveInt | None = None
    arguments: dict[str, ArgumentLimit] = Field(default_factory=dict)
    rate_limit: ToolRateLimit | None = None
    privacy: ToolPrivacy | None = None
    timeout_s: PositiveFloat | None = None


class McpServer(_Strict):
    """One upstream MCP server: a streamable HTTP ``url`` or a stdio ``command``."""

    url: HttpUrl | None = None
    command: list[Annotated[str, Field(min_length=1)]] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    #: Longest wait for one answer (a server that never answers gets this long).
    timeout_s: PositiveFloat = 30.0
    #: Longest wait to reach the server and agree on a protocol.
    connect_timeout_s: PositiveFloat = 10.0
    #: How long a listing of the server's tools is trusted before it is fetched again
    #: (a definition that changed is noticed within this time; 0: before every call).
    refresh_s: Annotated[float, Field(ge=0)] = 60.0
    privacy: ToolPrivacy = ToolPrivacy()
    tools: dict[Annotated[str, Field(min_length=1, max_length=128)], ToolRule] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.url is None) == (self.command is None):
            raise ValueError("give either url (streamable HTTP) or command (stdio), not both")
        if self.command is not None and not self.command:
            raise ValueError("command needs at least the program to run")
        return self

    @property
    def transport(self) -> Literal["http", "stdio"]:
        return "http" if self.url is not None else "stdio"

    def rule(self, tool: str) -> ToolRule:
        return self.tools.get(tool) or _NO_RULE

    def privacy_for(self, tool: str) -> ToolPrivacy:
        return self.rule(tool).privacy or self.privacy


_NO_RULE = ToolRule()


class McpPolicy(_Strict):
    servers: dict[ServerName, McpServer] = Field(default_factory=dict)
    max_argument_bytes: PositiveInt = DEFAULT_MAX_ARGUMENT_BYTES
    #: The longest a grant for a destructive tool may last.
    max_grant_s: PositiveInt = 86_400


def tool_name(server: str, tool: str) -> str:
    return f"{server}.{tool}"


def prompt_name(server: str, prompt: str) -> str:
    return f"prompt:{server}.{prompt}"


def resource_name(server: str, uri: str) -> str:
    return f"resource:{server}.{uri}"


def pattern_problems(patterns: list[str], servers: set[str]) -> list[tuple[int, str]]:
    """Allow-list entries that can never match: they name a server the policy lacks."""
    problems = []
    for i, pattern in enumerate(patterns):
        body = pattern.split(":", 1)[1] if pattern.startswith(("prompt:", "resource:")) else pattern
        server = body.split(".", 1)[0]
        if any(ch in server for ch in "*?["):
            if not any(fnmatch.fnmatchcase(s, server) for s in servers) and servers:
                problems.append((i, f"no MCP server matches {server!r}"))
            continue
        if server not in servers:
            problems.append((i, f"unknown MCP server {server!r}: declare it under mcp.servers"))
        elif "." not in body:
            problems.append((i, f"name a tool: {server}.<tool> or {server}.*"))
    return problems
