"""``bastion policy``: validate a policy file; its history, and rollback."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    err_console,
    fail,
    key_table,
    print_json,
    runtime,
    short_digest,
)

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


@app.command()
def history(
    diff: bool = typer.Option(
        False, "--diff", help="Print each version's diff from the one before."
    ),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Every policy version that was in force: digest, who loaded it, when, lines changed."""
    from bastion.policy.history import PolicyHistory

    with runtime() as rt:
        versions = PolicyHistory(rt.db).versions()
    if fmt is OutputFormat.json:
        print_json([v.to_dict() for v in versions])
        return
    rows = [
        [
            str(v.version),
            short_digest(v.digest),
            v.loaded_at[:19],
            v.loaded_by,
            v.trigger,
            f"+{v.added} -{v.removed}",
        ]
        for v in versions
    ]
    console.print(
        key_table(
            ["version", "digest", "loaded at", "by", "trigger", "change"],
            rows,
            key=["version", "digest"],
        )
    )
    if diff:
        for v in versions:
            typer.echo(f"--- version {v.version} ({short_digest(v.digest)})")
            typer.echo(v.diff, nl=False)


@app.command()
def rollback(
    version: int = typer.Argument(..., help="The version to restore (see bastion policy history)."),
    by: str = typer.Option("cli", help="Who rolls back (recorded in the ledger)."),
) -> None:
    """Restore policy VERSION: the file is rewritten and reloaded, and the change recorded.

    Needs a key-less local operator (like every CLI command that writes); a running
    server picks the file up through its policy watcher.
    """
    with runtime() as rt:
        outcome = rt.rollback_policy(version, f"user:{by}")
    if outcome.error is not None:
        fail(str(outcome.error), 1, error_code=outcome.error.code)
    state = "restored" if outcome.changed else "already in force"
    console.print(f"policy version {version} {state} (digest {short_digest(outcome.digest)})")
