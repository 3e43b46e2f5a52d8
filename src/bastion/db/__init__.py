"""The governance database: engine, sessions, table metadata and migrations.

The migration helpers load Alembic, which costs about a second; they are imported on
first use so that commands which never migrate start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.db.base import Base, utcnow
from bastion.db.engine import Database, create_database

if TYPE_CHECKING:
    from bastion.db.migrate import SchemaBehind, current_revision, head_revision, upgrade

_LAZY = {"SchemaBehind", "current_revision", "head_revision", "upgrade"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from bastion.db import migrate

        return getattr(migrate, name)
    raise AttributeError(f"module 'bastion.db' has no attribute {name!r}")


__all__ = [
    "Base",
    "Database",
    "SchemaBehind",
    "create_database",
    "current_revision",
    "head_revision",
    "upgrade",
    "utcnow",
]
