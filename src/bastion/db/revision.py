"""The schema revision this code needs, read without Alembic.

Every command opens the database and checks that its schema is current; loading Alembic
for that costs a large share of a second on each command. When the revision stored in
``alembic_version`` is :data:`HEAD`, that is the whole check; anything else goes to
:func:`bastion.db.migrate.check_current`, which explains what to do. A test keeps
:data:`HEAD` equal to the newest migration.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

#: The newest migration under ``migrations/versions`` (its ``revision``).
HEAD = "0020"


def stored_revision(engine: Engine) -> str | None:
    """The one revision ``alembic_version`` holds; None when there is none (or several)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:  # no such table yet
        return None
    return str(rows[0]) if len(rows) == 1 else None


def is_current(engine: Engine) -> bool:
    return stored_revision(engine) == HEAD
