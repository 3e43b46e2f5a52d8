"""``bastion policy``: validate a policy file."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli.common import console, err_console

app = typer.Typer(help="The governance policy file.", no_args_is_help=True)


@app.command()
def check(file: Path = typer.Argument(..., help="The policy YAML to validate.")) -> None:
    """Validate FILE; print every error with its file, line, column and key."""
    from bastion.policy import PolicyError, load_policy

    try:
        loaded = load_policy(file)
    except PolicyError as exc:
        for issue in exc.issues:
            err_console.print(str(issue), highlight=False, soft_wrap=True, markup=False)
        n = len(exc.issues)
        err_console.print(
            f"[red]error: {file}: {n} error{'s' if n != 1 else ''}[/] \\[{exc.code}]",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    p = loaded.policy
    for note in p.notices():
        err_console.print(f"[yellow]notice[/]: {note}", highlight=False, soft_wrap=True)
    console.print(
        f"{file}: valid ({len(p.providers)} providers, {len(p.models)} models, "
        f"{len(p.roles)} roles, {len(p.teams)} teams; digest {loaded.digest[:12]})"
    )
