"""``bastion subject``: data-subject rights (GDPR Art. 15 and 17) over everything held."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from bastion.cli.common import console, fail, print_json, runtime

app = typer.Typer(
    help="Data-subject rights: export and erase a person's data.", no_args_is_help=True
)


@app.command()
def export(
    user: str = typer.Argument(..., help="The user name the person is known by."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default stdout)."
    ),
    by: str = typer.Option("cli", help="Who runs the export (recorded in the ledger)."),
) -> None:
    """Everything held about a person (ledger events, stored content decrypted) as JSON."""
    from bastion.subjects.service import SubjectError

    with runtime() as rt:
        try:
            bundle = rt.subjects().export(user, actor=f"user:{by}")
        except SubjectError as exc:
            fail(str(exc), 2, error_code=exc.code)
    text = json.dumps(bundle, indent=1, ensure_ascii=False)
    if output is None:
        typer.echo(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    counts = ", ".join(f"{len(v)} {k}" for k, v in bundle["sections"].items())
    console.print(f"exported {counts} to {output}")


@app.command()
def erase(
    user: str = typer.Argument(..., help="The user name the person is known by."),
    reason: str = typer.Option(..., "--reason", help="Why (e.g. the request's ticket)."),
    requested_by: str = typer.Option(
        "the data subject", "--requested-by", help="Who asked for the erasure."
    ),
    by: str = typer.Option("cli", help="Who carries it out (recorded in the ledger)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Destroy a person's content and keys and pseudonymise them in the ledger.

    The chain still verifies; the erasure is recorded (who asked, who did it, what went).
    """
    from bastion.subjects.service import SubjectError

    with runtime() as rt:
        try:
            done = rt.subjects().erase(
                user, reason=reason, requested_by=requested_by, actor=f"user:{by}"
            )
        except SubjectError as exc:
            fail(str(exc), 2, error_code=exc.code)
        ledger = done.removed.get("ledger", {})
        if not as_json:
            console.print(
                f"erased {done.subject}: {ledger.get('content_rows', 0)} content rows, "
                f"{ledger.get('content_keys', 0)} keys destroyed, "
                f"{ledger.get('events_pseudonymised', 0)} events pseudonymised"
            )
        # The erasure is done and recorded; the rows it left unreadable go now.
        cleaned = rt.subjects().clean_up(done, actor=f"user:{by}")
    if as_json:
        print_json({"subject": done.subject, "removed": done.removed, "cleaned_up": cleaned})
        return
    rows = cleaned.get("ledger", {}).get("content_rows", 0)
    console.print(f"cleanup: {rows} unreadable content rows deleted")
    if ledger.get("legacy_events_kept"):
        console.print(
            f"[yellow]notice[/]: {ledger['legacy_events_kept']} events written before the keyed "
            "chain still name the person (replacing the name would break their chain)"
        )
