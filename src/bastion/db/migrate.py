"""Alembic migrations, run from code: the only way the schema changes."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from bastion.errors import Unavailable


class SchemaBehind(Unavailable):
    code = "schema_behind"


def _config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("bastion.db") / "migrations"))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(_config(engine), revision)
    if engine.dialect.name == "sqlite":  # PostgreSQL's autovacuum analyzes by itself
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def check_current(engine: Engine) -> None:
    """Refuse to run on a schema that is behind the code (or ahead of it)."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    url = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise SchemaBehind(
            f"the database at {url} has no Bastion schema yet: run `bastion db upgrade`"
        )
    scripts = ScriptDirectory.from_config(_config())
    known = {rev.revision for rev in scripts.walk_revisions()}
    if current not in known:
        raise SchemaBehind(
            f"the database at {url} is at revision {current}, which this version of Bastion "
            f"does not know (it expects {head}): upgrade Bastion"
        )
    raise SchemaBehind(
        f"the database at {url} is at revision {current} but this Bastion needs {head}: "
        "run `bastion db upgrade`"
    )
