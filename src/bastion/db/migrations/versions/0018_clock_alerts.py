"""clock alerts: one row per (clock, threshold) alerted, so replicas alert once

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "evidence_clock_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_clock_alerts")),
        sa.UniqueConstraint(
            "incident_id", "threshold", name=op.f("uq_evidence_clock_alerts_incident_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("evidence_clock_alerts")
