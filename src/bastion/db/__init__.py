"""The governance database: engine, sessions, table metadata and migrations.

The migration helpers load Alembic, which costs about a second; they are imported on
first use so that commands which never migrate start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.db.base import Base, utcnow
from bastion.db.engine import Database, create_database
from bastion.lazy import lazy_exports

if TYPE_CHECKING:
    from bastion.db.migrate import SchemaBehind, current_revision, head_revision, upgrade

__getattr__ = lazy_exports(
    __name__,
    {
        name: "bastion.db.migrate"
        for name in ("SchemaBehind", "current_revision", "head_revision", "upgrade")
    },
)


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
