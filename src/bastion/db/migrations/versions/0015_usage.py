"""usage: daily rollups of gateway calls and their watermark

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None

#: Latency histogram buckets (bastion.usage.histogram.BUCKETS when this was written).
BUCKETS = 40


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        *(
            _count(name)
            for name in ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_nano")
        ),
        *(_count(f"latency_{i:02d}") for i in range(BUCKETS)),
        *(_count(f"ttft_{i:02d}") for i in range(BUCKETS)),
        sa.PrimaryKeyConstraint("day", "team", "model", "outcome", name=op.f("pk_usage_daily")),
    )
    op.create_table(
        "usage_watermarks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("folded", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_usage_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("usage_watermarks")
    op.drop_table("usage_daily")
