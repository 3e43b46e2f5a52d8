"""audit: index every filter column together with (ts_us, id)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = {
    "ix_audit_events_actor_id": ["actor", "id"],
    "ix_audit_events_action_id": ["action", "id"],
    "ix_audit_events_resource_id": ["resource", "id"],
    "ix_audit_events_outcome_id": ["outcome", "id"],
    "ix_audit_events_ts_us": ["ts_us"],
}
NEW = {
    "ix_audit_events_ts": ["ts_us", "id"],
    "ix_audit_events_actor_ts": ["actor", "ts_us", "id"],
    "ix_audit_events_action_ts": ["action", "ts_us", "id"],
    "ix_audit_events_resource_ts": ["resource", "ts_us", "id"],
    "ix_audit_events_outcome_ts": ["outcome", "ts_us", "id"],
}


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        for name in OLD:
            batch.drop_index(name)
        for name, columns in NEW.items():
            batch.create_index(name, columns)


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        for name in NEW:
            batch.drop_index(name)
        for name, columns in OLD.items():
            batch.create_index(name, columns)
