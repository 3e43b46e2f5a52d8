"""``bastion retention``: apply the policy's retention to content and ledger events."""

from __future__ import annotations

import typer

from bastion.cli.common import console, print_json, runtime

app = typer.Typer(help="Retention of stored content and ledger events.", no_args_is_help=True)


@app.command()
def sweep(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; remove nothing."),
    by: str = typer.Option("cli", help="Who ran it (recorded in the ledger)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Delete content and seal ledger events older than the policy's retention."""
    with runtime() as rt:
        retention = rt.policy.policy.retention
        result = rt.retention().sweep(
            content_days=retention.content_days,
            events_days=retention.events_days,
            actor=f"user:{by}",
            dry_run=dry_run,
        )
        notes = rt.policy.policy.notices()
    if as_json:
        print_json(result.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    if retention.content_days is None and retention.events_days is None:
        console.print("the policy sets no retention: nothing to sweep")
        return
    console.print(
        f"{verb} {result.content_rows} content rows and {result.events} ledger events "
        f"in {len(result.streams)} streams"
        + ("" if dry_run else " (each stream sealed by a signed checkpoint)")
    )
    for note in notes:
        console.print(f"[yellow]notice[/]: {note}")
