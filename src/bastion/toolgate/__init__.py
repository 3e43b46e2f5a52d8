"""Govern agents' tool calls over MCP: allow-lists, checked and masked arguments, pinned
tool definitions, every call in the ledger (docs/mcp.md).

Named ``toolgate`` so that it never shadows the ``mcp`` SDK it is built on. This module
imports nothing: the policy schema imports :mod:`bastion.toolgate.config`, and the
service sits above the policy.
"""
