"""``bastion incidents``: serious incidents and data-subject requests with legal clocks."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    fail,
    key_table,
    print_json,
    runtime,
)

if TYPE_CHECKING:
    from bastion.evidence.clocks import ClockService
    from bastion.runtime import Runtime

app = typer.Typer(
    help="Serious incidents and data-subject requests, with their legal deadlines.",
    no_args_is_help=True,
)


class Kind(StrEnum):
    serious_incident = "serious-incident"
    subject_request = "subject-request"


class Severity(StrEnum):
    standard = "standard"
    death = "death"
    widespread = "widespread"


def _clocks(rt: Runtime) -> ClockService:
    from bastion.evidence.clocks import ClockService

    return ClockService(rt.db, rt.ledger)


@app.command("open")
def open_(
    title: str = typer.Argument(..., help="What happened (no personal data)."),
    kind: Kind = typer.Option(Kind.serious_incident, help="serious-incident or subject-request."),
    severity: Severity = typer.Option(
        Severity.standard, help="Serious incidents: standard (15 days), death (10), widespread (2)."
    ),
    aware: str | None = typer.Option(
        None, help="When you became aware / received the request (ISO 8601; default now)."
    ),
    by: str = typer.Option("cli", help="Who opens it (recorded in the ledger)."),
) -> None:
    """Open an incident or a data-subject request; prints its deadline."""
    aware_at = None
    if aware is not None:
        try:
            aware_at = datetime.fromisoformat(aware)
        except ValueError:
            fail(f"--aware {aware!r}: give an ISO 8601 date or time", 2)
        if aware_at.tzinfo is None:
            aware_at = aware_at.replace(tzinfo=UTC)
    with runtime() as rt:
        clock = _clocks(rt).open(
            kind="subject_request" if kind is Kind.subject_request else "serious_incident",
            title=title,
            actor=f"user:{by}",
            severity=severity.value,
            aware_at=aware_at,
        )
    console.print(
        f"opened {clock.kind} {clock.id}: deadline {clock.deadline_at:%Y-%m-%d %H:%M} UTC"
    )


@app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Closed items too."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Open items with their deadlines (soonest first)."""
    now = datetime.now(UTC)
    with runtime() as rt:
        clocks = _clocks(rt).items(open_only=not all_)
    items = [c.to_dict(now) for c in clocks]
    if fmt is OutputFormat.json:
        print_json(items)
        return
    if not items:
        console.print("no open incidents or data-subject requests")
        return
    rows = [
        [
            str(i["id"]),
            f"{i['kind']} ({i['severity']})",
            i["title"],
            i["deadline_at"][:16],
            i["status"] + (f" ({i['days_left']} d)" if i["days_left"] is not None else ""),
        ]
        for i in items
    ]
    console.print(
        key_table(["id", "kind", "title", "deadline", "status"], rows, key=["id", "deadline"])
    )


@app.command()
def close(
    incident: int = typer.Argument(..., help="The id from bastion incidents list."),
    resolution: str = typer.Option("", help="How it was resolved (reported, answered…)."),
    by: str = typer.Option("cli", help="Who closes it (recorded in the ledger)."),
) -> None:
    """Close an item (reported to the authority, or the request answered)."""
    with runtime() as rt:
        clock = _clocks(rt).close(incident, actor=f"user:{by}", resolution=resolution)
    console.print(
        f"closed {clock.kind} {clock.id}: {clock.status(datetime.now(UTC)).replace('_', ' ')}"
    )
