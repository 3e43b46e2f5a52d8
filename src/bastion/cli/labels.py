"""``bastion labels add FILE``: ground truth for logged predictions, by request id."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.cli.common import console, runtime

app = typer.Typer(help="Ground truth for logged predictions.", no_args_is_help=True)


@app.command("add")
def add(
    file: Path = typer.Argument(
        ..., help="CSV with a header (request_id,label) or JSON lines ({request_id, label})."
    ),
) -> None:
    """Attach labels to logged predictions by request id (a later label replaces one)."""
    from bastion.serving.labels import add_labels, read_file

    with runtime() as rt:
        added = add_labels(rt.db, read_file(file))
    console.print(
        f"{added.added} labels added; {added.matched} match a logged prediction"
        + (f", {added.unmatched} do not (yet)" if added.unmatched else ""),
        highlight=False,
    )
