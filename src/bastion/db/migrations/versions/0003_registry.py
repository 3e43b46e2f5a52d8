"""registry: model versions, evidence, promotion requests, stage changes, cards

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_sha256", sa.String(length=64), nullable=False),
        sa.Column("dataset", sa.JSON(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("training_seconds", sa.Float(), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("code_version", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("registered_by", sa.String(length=200), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("stage_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_versions")),
        sa.UniqueConstraint("name", "artifact_sha256", name="uq_registry_versions_name_artifact"),
        sa.UniqueConstraint("name", "version", name="uq_registry_versions_name_version"),
    )
    with op.batch_alter_table("registry_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registry_versions_name"), ["name"], unique=False)

    op.create_table(
        "registry_cards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["registry_versions.id"],
            name=op.f("fk_registry_cards_version_id_registry_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_cards")),
        sa.UniqueConstraint("version_id", "kind", name="uq_registry_cards_version_kind"),
    )
    op.create_table(
        "registry_evidence",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["registry_versions.id"],
            name=op.f("fk_registry_evidence_version_id_registry_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_evidence")),
    )
    with op.batch_alter_table("registry_evidence", schema=None) as batch_op:
        batch_op.create_index(
            "ix_registry_evidence_version_kind", ["version_id", "kind", "id"], unique=False
        )

    op.create_table(
        "registry_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(length=20), nullable=False),
        sa.Column("to_stage", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("gates", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("decision_gates", sa.JSON(), nullable=True),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["registry_versions.id"],
            name=op.f("fk_registry_requests_version_id_registry_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_requests")),
    )
    with op.batch_alter_table("registry_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_registry_requests_name"), ["name"], unique=False)
        batch_op.create_index(
            "ix_registry_requests_status_at", ["status", "requested_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registry_requests_version_id"), ["version_id"], unique=False
        )

    op.create_table(
        "registry_stage_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(length=20), nullable=True),
        sa.Column("to_stage", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["registry_versions.id"],
            name=op.f("fk_registry_stage_changes_version_id_registry_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_stage_changes")),
    )
    with op.batch_alter_table("registry_stage_changes", schema=None) as batch_op:
        batch_op.create_index("ix_registry_stage_changes_name_id", ["name", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_registry_stage_changes_version_id"), ["version_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_stage_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_stage_changes_version_id"))
        batch_op.drop_index("ix_registry_stage_changes_name_id")

    op.drop_table("registry_stage_changes")
    with op.batch_alter_table("registry_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_requests_version_id"))
        batch_op.drop_index("ix_registry_requests_status_at")
        batch_op.drop_index(batch_op.f("ix_registry_requests_name"))

    op.drop_table("registry_requests")
    with op.batch_alter_table("registry_evidence", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_evidence_version_kind")

    op.drop_table("registry_evidence")
    op.drop_table("registry_cards")
    with op.batch_alter_table("registry_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_versions_name"))

    op.drop_table("registry_versions")
