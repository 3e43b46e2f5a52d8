"""The governance database: engine, sessions, table metadata and migrations."""

from bastion.db.base import Base, utcnow
from bastion.db.engine import Database, create_database
from bastion.db.migrate import SchemaBehind, current_revision, head_revision, upgrade

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
