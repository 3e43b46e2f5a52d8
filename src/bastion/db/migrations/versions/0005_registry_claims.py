"""registry: who is approving a request since when; registrations in flight

An approval claims its request (``approving``) with an attempt id and a lease time, so
one whose process died can be settled later from MLflow and the ledger. A registration
reserves its (model, artifact digest) first, so concurrent registrations of the same
artifact make one MLflow version.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("registry_requests") as batch:
        batch.add_column(sa.Column("claim_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "registry_registrations",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("claim_id", sa.String(length=32), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", "artifact_sha256", name=op.f("pk_registry_registrations")),
    )


def downgrade() -> None:
    op.drop_table("registry_registrations")
    with op.batch_alter_table("registry_requests") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")
        batch.drop_column("claim_id")
