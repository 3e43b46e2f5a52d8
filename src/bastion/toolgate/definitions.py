"""A tool definition's digest: what an admin approves and what is checked on each call.

The digest covers the three fields that steer a model: the tool's name, its description
and its input schema (canonical JSON, SHA-256). A server that rewords a description
after approval ("rug pull", tool poisoning) changes the digest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import mcp_types as types


def definition(tool: types.Tool) -> dict[str, Any]:
    return {
        "name": tool.name,
        "description": tool.description or "",
        "input_schema": tool.input_schema,
    }


def digest(tool: types.Tool) -> str:
    body = json.dumps(definition(tool), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def changed_fields(approved: dict[str, Any], tool: types.Tool) -> list[str]:
    """Which of the pinned fields differ (for the alert; never their values)."""
    now = definition(tool)
    return sorted(k for k in now if approved.get(k) != now[k])
