"""pipelines: queue workers, and the executor that ran each run and step

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "pipeline_workers",
        sa.Column("executor", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recovered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recovered_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("executor", name=op.f("pk_pipeline_workers")),
    )
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("executor", sa.String(length=100), nullable=True))
    with op.batch_alter_table("pipeline_steps") as batch:
        batch.add_column(sa.Column("executor", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_steps") as batch:
        batch.drop_column("executor")
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("executor")
    op.drop_table("pipeline_workers")
