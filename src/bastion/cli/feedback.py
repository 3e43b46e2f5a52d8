"""``bastion feedback``: record feedback on a call, list it, export it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bastion.cli.common import FORMAT_OPTION, OutputFormat, console, key_table, print_json, runtime

if TYPE_CHECKING:
    from bastion.feedback.service import FeedbackService
    from bastion.runtime import Runtime

app = typer.Typer(
    help="Feedback on answers and predictions, linked to calls.", no_args_is_help=True
)


class Kind(StrEnum):
    helpful = "helpful"
    wrong = "wrong"
    unsafe = "unsafe"
    other = "other"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def _service(rt: Runtime) -> FeedbackService:
    from bastion.feedback.service import CommentScrubber, FeedbackService

    return FeedbackService(rt.db, rt.ledger, CommentScrubber(rt.policy.policy))


@app.command()
def add(
    request_id: str = typer.Argument(..., help="The x-request-id of the call."),
    kind: Kind = typer.Option(..., help="helpful, wrong, unsafe or other."),
    rating: int | None = typer.Option(None, help="1 (worst) to 5 (best)."),
    comment: str | None = typer.Option(None, help="Free text; personal data is masked."),
    by: str = typer.Option("cli", help="Who gives it (recorded in the ledger)."),
) -> None:
    """Record feedback on the call REQUEST_ID."""
    with runtime() as rt:
        done = _service(rt).add(
            request_id=request_id,
            kind=kind.value,
            rating=rating,
            comment=comment,
            actor=f"user:{by}",
        )
    console.print(f"feedback {done.id} recorded for {done.request_id}")


@app.command("list")
def list_(
    request_id: str | None = typer.Option(None, help="Only feedback on this call."),
    limit: int = typer.Option(100, min=1, help="At most this many."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Feedback, oldest first."""
    with runtime() as rt:
        items = _service(rt).list(request_id=request_id, limit=limit)
    if fmt is OutputFormat.json:
        print_json([i.to_dict() for i in items])
        return
    rows = [
        [str(i.id), i.request_id, i.kind, str(i.rating or ""), i.comment or "", i.created_at[:19]]
        for i in items
    ]
    console.print(
        key_table(["id", "request", "kind", "rating", "comment", "at"], rows, key=["id", "request"])
    )


@app.command()
def export(
    fmt: ExportFormat = typer.Option(ExportFormat.jsonl, "--format", help="jsonl or csv."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default stdout)."),
) -> None:
    """Export all feedback as JSONL or CSV."""
    from bastion.feedback.service import to_csv, to_jsonl

    with runtime() as rt:
        items = _service(rt).list()
    text = to_csv(items) if fmt is ExportFormat.csv else "".join(to_jsonl(items))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"exported {len(items)} feedback items to {output}")
