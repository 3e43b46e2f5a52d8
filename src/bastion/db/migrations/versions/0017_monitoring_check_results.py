"""monitoring: the results of the checks on a model's prediction log (for /metrics)

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "monitoring_check_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("check", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("alerted", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_check_results")),
    )
    op.create_index(
        op.f("ix_monitoring_check_results_model"), "monitoring_check_results", ["model"]
    )
    op.create_index(
        op.f("ix_monitoring_check_results_checked_at"), "monitoring_check_results", ["checked_at"]
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_monitoring_check_results_checked_at"), table_name="monitoring_check_results"
    )
    op.drop_index(op.f("ix_monitoring_check_results_model"), table_name="monitoring_check_results")
    op.drop_table("monitoring_check_results")
