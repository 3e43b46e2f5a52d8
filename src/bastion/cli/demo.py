"""``bastion demo``: seed the embedded defaults with something to look at."""

from __future__ import annotations

import typer

from bastion.cli.common import console, runtime

app = typer.Typer(help="Demo data for a first look.", no_args_is_help=True)


@app.command()
def seed(
    models: bool = typer.Option(
        True, help="Also run the model-registry example (adds two versions each time)."
    ),
) -> None:
    """Create demo keys (once) for the example's two people, ana (analyst, asks) and ada
    (admin, approves), and a guest, so roles can be tried; and take the worked income
    model through the registry's gates and approvals."""
    from bastion.auth.principal import cli_principal

    with runtime(label="demo") as rt:
        if models:
            from bastion.registry import demo

            registry = rt.registry()
            for line in demo.seed(registry, rt.settings.home / "mlartifacts"):
                console.print(line, highlight=False)
        existing = {(k.user, k.role) for k in rt.keys.list_keys()}
        made = []
        for user, role, team in (
            ("ana", "analyst", "risk"),
            ("ada", "admin", "risk"),
            ("gus", "guest", None),
        ):
            if (user, role) not in existing:
                made.append(
                    rt.keys.create(
                        cli_principal("demo"), user=user, role=role, team=team, name="demo"
                    )
                )
    if not made:
        console.print("demo keys already present")
        return
    for created in made:
        console.print(
            f"demo key for {created.key.user} ({created.key.role}): [bold]{created.secret}[/]"
        )
