"""Pinned tool definitions and time-limited grants for destructive tools.

``mcp_tool_pins``: one row per (server, tool) an admin approved, with the digest of the
definition approved (name, description, input schema). Approving again replaces it.
``mcp_grants``: who may run a destructive tool until when; a grant is never deleted
(revoking sets ``revoked_at``), so the table is the record of who allowed what.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow


class ToolPin(Base):
    __tablename__ = "mcp_tool_pins"
    __table_args__ = (UniqueConstraint("server", "tool"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    server: Mapped[str] = mapped_column(String(64), index=True)
    tool: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))
    #: The approved definition itself, to show what changed when it no longer matches.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    approved_by: Mapped[str] = mapped_column(String(200))
    approved_at: Mapped[datetime] = mapped_column(default=utcnow)


class ToolGrant(Base):
    __tablename__ = "mcp_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    server: Mapped[str] = mapped_column(String(64), index=True)
    tool: Mapped[str] = mapped_column(String(200))
    #: Whom it is for: ``user:<name>``, ``key:<prefix>`` or ``team:<name>``.
    grantee: Mapped[str] = mapped_column(String(240), index=True)
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(String(500))
    revoked_at: Mapped[datetime | None]
