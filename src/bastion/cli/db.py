"""``bastion db``: migrations."""

from __future__ import annotations

import typer

from bastion.cli.common import console, load_settings

app = typer.Typer(help="The governance database.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Apply every pending migration (creates the database if needed)."""
    from bastion.db import create_database, current_revision, head_revision
    from bastion.db import upgrade as run_upgrade
    from bastion.runtime import ensure_home

    settings = load_settings()
    ensure_home(settings)
    db = create_database(settings.resolved_database_url)
    try:
        before = current_revision(db.engine)
        run_upgrade(db.engine)
        after = head_revision()
    finally:
        db.dispose()
    url = db.engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"{url} is up to date (revision {after})")
    else:
        console.print(f"{url} upgraded from {before or 'empty'} to {after}")


@app.command()
def current() -> None:
    """Show the database's schema revision and the one this Bastion needs."""
    from bastion.db import create_database, current_revision, head_revision

    settings = load_settings()
    db = create_database(settings.resolved_database_url)
    try:
        rev = current_revision(db.engine)
    finally:
        db.dispose()
    head = head_revision()
    state = "up to date" if rev == head else "behind: run `bastion db upgrade`"
    console.print(f"database revision {rev or 'none'}; this Bastion needs {head} ({state})")
    if rev != head:
        raise typer.Exit(1)
