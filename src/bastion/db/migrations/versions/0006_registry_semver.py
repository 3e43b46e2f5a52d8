"""registry: an optional semantic version label per model version

``registry_versions.semver`` (``1.2.0``), unique per model; versions registered before
have none (NULLs do not collide under a unique index, on SQLite and PostgreSQL).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Not a batch (copy-and-drop) on SQLite: dropping registry_versions would cascade
    # to the requests, evidence and history that reference it. SQLite adds a column in
    # place, and a unique index is a unique constraint on both backends.
    op.add_column("registry_versions", sa.Column("semver", sa.String(length=100), nullable=True))
    op.create_index(
        "uq_registry_versions_name_semver", "registry_versions", ["name", "semver"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_registry_versions_name_semver", table_name="registry_versions")
    op.drop_column("registry_versions", "semver")  # in place on SQLite 3.35+, as above
