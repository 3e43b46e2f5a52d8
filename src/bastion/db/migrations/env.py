"""Alembic environment: runs on the engine handed over by ``bastion.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

# Alembic runs this file as a script, at the top of the house: the whole schema comes
# from ``bastion.schema``, so ``bastion.db`` itself never imports a domain.
from bastion.schema import metadata

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
