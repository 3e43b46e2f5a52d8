"""mcp: pinned tool definitions and grants for destructive tools

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "mcp_tool_pins",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("server", sa.String(length=64), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mcp_tool_pins")),
        sa.UniqueConstraint("server", "tool", name=op.f("uq_mcp_tool_pins_server")),
    )
    op.create_index(op.f("ix_mcp_tool_pins_server"), "mcp_tool_pins", ["server"])
    op.create_table(
        "mcp_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("server", sa.String(length=64), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("grantee", sa.String(length=240), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mcp_grants")),
    )
    op.create_index(op.f("ix_mcp_grants_server"), "mcp_grants", ["server"])
    op.create_index(op.f("ix_mcp_grants_grantee"), "mcp_grants", ["grantee"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mcp_grants_grantee"), table_name="mcp_grants")
    op.drop_index(op.f("ix_mcp_grants_server"), table_name="mcp_grants")
    op.drop_table("mcp_grants")
    op.drop_index(op.f("ix_mcp_tool_pins_server"), table_name="mcp_tool_pins")
    op.drop_table("mcp_tool_pins")
