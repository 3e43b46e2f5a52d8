"""audit identities: a person's name held apart from the events that name them

``audit_identities`` maps the keyed digest stored in ``audit_events.actor`` /
``resource`` (as ``erased:<digest>``) to the person's identifier, so that erasing a
person deletes one row instead of rewriting their events (see ``docs/audit.md``,
erasure). Rows written before keep their identifier until erased, as before.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "audit_identities",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("since_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_audit_identities")),
    )
    op.create_index(op.f("ix_audit_identities_name"), "audit_identities", ["name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_identities_name"), table_name="audit_identities")
    op.drop_table("audit_identities")
