"""Alembic environment: runs on the engine handed over by ``bastion.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

# The top of the house: the migration environment imports every domain's tables so
# that autogenerate sees the whole schema; ``bastion.db`` itself stays below the domains.
import bastion.audit.models
import bastion.auth.models
import bastion.registry.models  # noqa: F401
from bastion.db.base import Base

metadata = Base.metadata

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations with `bastion db upgrade`, not the alembic command")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
