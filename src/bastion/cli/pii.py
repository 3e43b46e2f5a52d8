"""``bastion pii``: find and mask personal data in a text file, line by line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from bastion.privacy import Analyzer

app = typer.Typer(
    help="Find and mask personal data (offline, no model download).", no_args_is_help=True
)

FILE_HELP = "A UTF-8 text file, or - for standard input."
ENTITIES_HELP = "Entity types to look for (repeat the option); default: the built-in set."


class Format(StrEnum):
    table = "table"
    json = "json"


def _lines(file: Path) -> Iterator[str]:
    if str(file) == "-":
        for line in sys.stdin:
            yield line.rstrip("\n").rstrip("\r")
        return
    try:
        with file.open(encoding="utf-8") as handle:
            for line in handle:
                yield line.rstrip("\n").rstrip("\r")
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror} [file_unreadable]", err=True)
        raise typer.Exit(2) from None
    except UnicodeDecodeError:
        typer.echo(f"error: {file} is not UTF-8 text [invalid_encoding]", err=True)
        raise typer.Exit(2) from None


def _analyzer(entities: list[str] | None) -> Analyzer:
    from bastion.privacy import KNOWN_ENTITIES, Analyzer

    if entities:
        unknown = sorted(set(entities) - KNOWN_ENTITIES)
        if unknown:
            typer.echo(
                f"error: unknown entity type(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(KNOWN_ENTITIES))} [unknown_entity]",
                err=True,
            )
            raise typer.Exit(2)
        return Analyzer(entities)
    return Analyzer()


@app.command()
def scan(
    file: Path = typer.Argument(..., help=FILE_HELP),
    format: Format = typer.Option(Format.table, "--format", "-f", help="table or json"),
    entity: list[str] | None = typer.Option(None, "--entity", "-e", help=ENTITIES_HELP),
    fail_on_find: bool = typer.Option(
        False, "--fail-on-find", help="Exit 1 when any personal data is found (a CI gate)."
    ),
) -> None:
    """List the personal data in FILE: a table, or one JSON object per input line.

    JSON lines read {"line": n, "spans": [{"type", "start", "end", "score", "text"}]},
    with n counted from 1 and offsets in characters within that line. Exits 0 whatever
    it finds, unless --fail-on-find is given: then 1 when anything is found.
    """
    analyzer = _analyzer(entity)
    if format is Format.json:
        found = 0
        for n, line in enumerate(_lines(file), start=1):
            spans = [s.as_dict() for s in analyzer.analyze(line)]
            found += len(spans)
            typer.echo(json.dumps({"line": n, "spans": spans}, ensure_ascii=False))
        if fail_on_find and found:
            raise typer.Exit(1)
        return

    from rich.console import Console
    from rich.markup import escape

    from bastion.cli.common import key_table

    rows = [
        [str(n), s.entity_type, str(s.start), str(s.end), f"{s.score:.2f}", escape(s.text)]
        for n, line in enumerate(_lines(file), start=1)
        for s in analyzer.analyze(line)
    ]
    found = len(rows)
    table = key_table(
        ["line", "type", "start", "end", "score", "text"],
        rows,
        key=["line", "type", "start", "end", "score"],
        right=["line", "start", "end", "score"],
        title=f"Personal data in {escape(str(file))}",
    )
    console = Console()
    if found:
        console.print(table)
    console.print(f"{found} finding{'s' if found != 1 else ''}")
    if fail_on_find and found:
        raise typer.Exit(1)


@app.command()
def mask(
    file: Path = typer.Argument(..., help=FILE_HELP),
    entity: list[str] | None = typer.Option(None, "--entity", "-e", help=ENTITIES_HELP),
) -> None:
    """Print FILE with personal data replaced by placeholders (<EMAIL_1>, <PERSON_2>, ...).

    The same value gets the same placeholder throughout the file.
    """
    from bastion.privacy import Operators, OperatorSpec, PrivacyKeys, Vault

    analyzer = _analyzer(entity)
    operators = Operators({}, OperatorSpec(), PrivacyKeys())
    vault = Vault("cli")
    for line in _lines(file):
        typer.echo(operators.apply(line, analyzer.analyze(line), vault))
