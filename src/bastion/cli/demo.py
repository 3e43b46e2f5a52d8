"""``bastion demo``: seed the embedded defaults with something to look at."""

from __future__ import annotations

import typer

from bastion.cli.common import console, runtime

app = typer.Typer(help="Demo data for a first look.", no_args_is_help=True)


@app.command()
def seed() -> None:
    """Create demo keys for an analyst and a guest (once), so roles can be tried."""
    from bastion.auth.principal import cli_principal

    with runtime(label="demo") as rt:
        existing = {(k.user, k.role) for k in rt.keys.list_keys()}
        made = []
        for user, role, team in (("ana", "analyst", "risk"), ("gus", "guest", None)):
            if (user, role) not in existing:
                made.append(
                    rt.keys.create(
                        cli_principal("demo"), user=user, role=role, team=team, name="demo"
                    )
                )
    if not made:
        console.print("demo data already present")
        return
    for created in made:
        console.print(
            f"demo key for {created.key.user} ({created.key.role}): [bold]{created.secret}[/]"
        )
