"""Errors of the MCP tool gate; each becomes a JSON-RPC error for the MCP client.

    BastionError (bastion.errors)
    ├── NotFound
    │   ├── ToolNotFound             mcp_tool_not_found         no such tool (or not yours)
    │   └── ServerNotFound           mcp_server_not_found       no such server in the policy
    ├── Forbidden
    │   ├── ToolNotAllowed           mcp_tool_not_allowed       the allow-lists do not cover it
    │   ├── ToolNotApproved          mcp_tool_not_approved      no admin has pinned it
    │   ├── ToolDefinitionChanged    mcp_tool_definition_changed changed since it was pinned
    │   └── GrantRequired            mcp_grant_required         destructive: needs a grant
    ├── InvalidInput
    │   ├── InvalidArguments         mcp_invalid_arguments      schema or limits say no
    │   └── ArgumentsTooLarge        mcp_arguments_too_large    over max_argument_bytes
    └── UpstreamFailure (bastion.gateway.errors)
        └── ToolServerFailure        mcp_upstream_*             down, timeout, malformed

A refused call never reaches the server; a server failure never takes Bastion down.
"""

from __future__ import annotations

from typing import Literal

from bastion.errors import Forbidden, InvalidInput, NotFound
from bastion.gateway.errors import UpstreamFailure


class ToolNotFound(NotFound):
    code = "mcp_tool_not_found"


class ServerNotFound(NotFound):
    code = "mcp_server_not_found"


class ToolNotAllowed(Forbidden):
    code = "mcp_tool_not_allowed"


class ToolNotApproved(Forbidden):
    code = "mcp_tool_not_approved"


class ToolDefinitionChanged(Forbidden):
    code = "mcp_tool_definition_changed"


class GrantRequired(Forbidden):
    code = "mcp_grant_required"


class InvalidArguments(InvalidInput):
    code = "mcp_invalid_arguments"


class ArgumentsTooLarge(InvalidInput):
    code = "mcp_arguments_too_large"


ServerFailureKind = Literal["connect", "timeout", "malformed", "error"]
_CODES: dict[str, str] = {
    "connect": "mcp_upstream_unavailable",
    "timeout": "mcp_upstream_timeout",
    "malformed": "mcp_upstream_malformed",
    "error": "mcp_upstream_error",
}


class ToolServerFailure(UpstreamFailure):
    """The upstream MCP server failed: unreachable (``connect``), silent (``timeout``),
    answering nonsense (``malformed``) or answering with a JSON-RPC error (``error``)."""

    def __init__(self, kind: ServerFailureKind, message: str) -> None:
        super().__init__(
            "bad_request" if kind == "error" else kind, message, connection=kind == "connect"
        )
        self.code = _CODES[kind]  # type: ignore[misc]
        self.status = 502 if kind != "timeout" else 504  # type: ignore[misc]
