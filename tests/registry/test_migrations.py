"""The migrations build the registry's tables as the code declares them, and upgrading
keeps what an earlier Bastion left (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bastion.db import create_database, upgrade, utcnow
from bastion.schema import metadata


def registry_drift(url: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    return [d for d in diffs if "registry_" in repr(d)]


def test_upgrading_keeps_an_approval_an_earlier_bastion_left_unfinished(settings: Any) -> None:
    url = settings.resolved_database_url
    db = create_database(url)
    now = utcnow()
    try:
        upgrade(db.engine, "0004")
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO registry_versions (name, version, source, artifact_sha256, "
                    "stored_sha256, params, metrics, registered_by, registered_at, stage, "
                    "stage_changed_at) VALUES ('income', 1, 'runs:/r/model', :d, :d, '{}', "
                    "'{}', 'ana', :now, 'development', :now)"
                ),
                {"d": "0" * 64, "now": now},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO registry_requests (id, version_id, name, version, from_stage, "
                    "to_stage, reason, requested_by, requested_at, status, gates, overrides) "
                    "SELECT 'pr_old', id, name, 1, 'development', 'staging', 'first', 'ana', "
                    ":now, 'approving', '[]', '[]' FROM registry_versions"
                ),
                {"now": now},
            )
        upgrade(db.engine)
        with db.engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT id, status, claim_id, claimed_at FROM registry_requests")
            ).one()
    finally:
        db.dispose()
    # Kept as it was, with no lease: the next decision or verify settles it at once.
    assert tuple(row) == ("pr_old", "approving", None, None)
    assert registry_drift(url) == []


def test_semver_labels_arrive_without_touching_what_was_there(settings: Any) -> None:
    """0006 adds the label in place: on SQLite a table copy would cascade to the
    requests that reference the versions."""
    url = settings.resolved_database_url
    db = create_database(url)
    now = utcnow()
    insert = sa.text(
        "INSERT INTO registry_versions (name, version, source, artifact_sha256, "
        "stored_sha256, params, metrics, registered_by, registered_at, stage, "
        "stage_changed_at) VALUES ('income', :v, 'runs:/r/model', :d, :d, '{}', "
        "'{}', 'ana', :now, 'development', :now)"
    )
    try:
        upgrade(db.engine, "0005")
        with db.engine.begin() as conn:
            for v in (1, 2):
                conn.execute(insert, {"v": v, "d": str(v) * 64, "now": now})
            conn.execute(
                sa.text(
                    "INSERT INTO registry_requests (id, version_id, name, version, from_stage, "
                    "to_stage, reason, requested_by, requested_at, status, gates, overrides) "
                    "SELECT 'pr_1', id, name, 1, 'development', 'staging', 'first', 'ana', "
                    ":now, 'pending', '[]', '[]' FROM registry_versions WHERE version = 1"
                ),
                {"now": now},
            )
        upgrade(db.engine)
        with db.engine.begin() as conn:
            labels = conn.execute(
                sa.text("SELECT version, semver FROM registry_versions ORDER BY version")
            ).all()
            requests = conn.execute(sa.text("SELECT id FROM registry_requests")).all()
            conn.execute(sa.text("UPDATE registry_versions SET semver = '1.0.0' WHERE version = 1"))
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE registry_versions SET semver = '1.0.0' WHERE version = 2"))
    finally:
        db.dispose()
    assert [tuple(r) for r in labels] == [(1, None), (2, None)]  # unlabelled, both
    assert [r[0] for r in requests] == ["pr_1"]
    assert registry_drift(url) == []


def test_the_revision_read_without_alembic_is_the_newest_migration(settings: Any) -> None:
    from bastion.db import head_revision
    from bastion.db.revision import HEAD, is_current, stored_revision

    assert head_revision() == HEAD, "set bastion.db.revision.HEAD to the new migration"
    db = create_database(settings.resolved_database_url)
    try:
        assert stored_revision(db.engine) is None and not is_current(db.engine)
        upgrade(db.engine, "0005")
        assert stored_revision(db.engine) == "0005" and not is_current(db.engine)
        upgrade(db.engine)
        assert is_current(db.engine)
    finally:
        db.dispose()
