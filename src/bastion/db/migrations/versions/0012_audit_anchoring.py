"""audit: keyed chains, Merkle roots and seals on checkpoints, per-subject content keys

``audit_streams.chain`` names each stream's chain format: existing streams keep
``sha256`` (they verify as before); new streams write ``hmac-sha256``.
``audit_checkpoints`` gain ``root`` (NULL on checkpoints signed before), ``kind``
(``checkpoint`` or a retention ``seal``) and ``frontier``. ``audit_subject_keys`` holds
each data subject's wrapped content key.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Columns added in place (no batch copy): SQLite adds a column with a constant default.
    op.add_column(
        "audit_streams",
        sa.Column("chain", sa.String(length=32), nullable=False, server_default="sha256"),
    )
    op.add_column("audit_checkpoints", sa.Column("root", sa.String(length=64), nullable=True))
    op.add_column(
        "audit_checkpoints",
        sa.Column("kind", sa.String(length=16), nullable=False, server_default="checkpoint"),
    )
    op.add_column("audit_checkpoints", sa.Column("frontier", sa.Text(), nullable=True))
    op.create_table(
        "audit_subject_keys",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_audit_subject_keys")),
    )


def downgrade() -> None:
    op.drop_table("audit_subject_keys")
    op.drop_column("audit_checkpoints", "frontier")
    op.drop_column("audit_checkpoints", "kind")
    op.drop_column("audit_checkpoints", "root")
    op.drop_column("audit_streams", "chain")
