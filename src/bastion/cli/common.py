"""What every command shares: settings, the runtime, and turning errors into exit codes.

Exit codes: 0 success; 1 a check failed (the ledger does not verify, the policy is
invalid, the schema is behind); 2 bad input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from bastion.errors import BastionError, InvalidInput

if TYPE_CHECKING:
    from rich.table import Table

    from bastion.runtime import Runtime
    from bastion.settings import Settings

console = Console()
err_console = Console(stderr=True)


def load_settings() -> Settings:
    # imported here: pydantic-settings costs a large share of ``bastion --help``
    from bastion.observability import configure_logging
    from bastion.settings import Settings

    settings = Settings()
    configure_logging("WARNING", "text")
    return settings


def fail(message: str, code: int = 1, *, error_code: str | None = None) -> NoReturn:
    """Print ``error: MESSAGE [ERROR_CODE]`` (the stable code scripts can match) and exit.

    Without an ``error_code``: ``invalid_request`` for bad input (exit 2), else
    ``check_failed``."""
    error_code = error_code or ("invalid_request" if code == 2 else "check_failed")
    text = f"{message} [{error_code}]"
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def handled() -> Iterator[None]:
    try:
        yield
    except BastionError as exc:
        fail(exc.message, 2 if isinstance(exc, InvalidInput) else 1, error_code=exc.code)


@contextmanager
def runtime(label: str = "cli", **kwargs: Any) -> Iterator[Runtime]:
    from bastion.runtime import open_runtime

    settings = load_settings()
    with handled():
        rt = open_runtime(settings, label=label, **({"write_policy": True} | kwargs))
    try:
        with handled():
            yield rt
    finally:
        rt.close()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FORMAT_OPTION: Any = typer.Option(
    OutputFormat.table, "--format", help="table (for people) or json (for scripts)."
)
"""``--format table|json``: every command that prints a table can print JSON instead."""


DIGEST_CHARS = 12


def short_digest(digest: str) -> str:
    """A digest as shown in tables: its first 12 hex digits (``--format json`` has all)."""
    return digest[:DIGEST_CHARS]


MIN_FOLDED_WIDTH = 6


def key_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    key: Sequence[str] = (),
    right: Sequence[str] = (),
    title: str | None = None,
    width: int | None = None,
) -> Table:
    """A table whose ``key`` columns (names, methods, ids, digests) are never cut or
    wrapped: they get their full width and the other columns fold to fit. When even
    that does not fit ``width`` (the terminal's), the rightmost other columns are left
    out and the caption names them (``--format json`` has everything).

    A light box (no vertical rules) leaves 80-column terminals room for the data.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    def cells(i: int) -> list[int]:
        return [Text.from_markup(str(r[i])).cell_len for r in rows] + [len(headers[i])]

    full = [max(cells(i)) for i in range(len(headers))]
    least = [
        full[i] if name in key else min(full[i], MIN_FOLDED_WIDTH) for i, name in enumerate(headers)
    ]
    shown = list(range(len(headers)))
    limit = width if width is not None else Console().width
    hidden: list[str] = []
    # SIMPLE_HEAD without padded edges: one space each side, three between columns
    while sum(least[i] for i in shown) + 3 * (len(shown) - 1) + 2 > limit:
        droppable = [i for i in shown if headers[i] not in key]
        if not droppable:
            break
        hidden.insert(0, headers[droppable[-1]])
        shown.remove(droppable[-1])
    caption = (
        f"not shown at this width: {', '.join(hidden)} (see --format json)" if hidden else None
    )
    table = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for i in shown:
        name = headers[i]
        justify: Any = "right" if name in right else "left"
        if name in key:
            table.add_column(name, no_wrap=True, min_width=full[i], justify=justify)
        else:
            table.add_column(name, overflow="fold", min_width=least[i], justify=justify)
    for row in rows:
        table.add_row(*[row[i] for i in shown])
    return table


def _coded(exc: BaseException) -> NoReturn:
    """Print any error escaping a command as ``error: MESSAGE [CODE]`` and exit."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    if isinstance(exc, NoArgsIsHelpError):
        # ``bastion drift`` alone: the help, as ``no_args_is_help`` promises
        typer.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        raise typer.Exit(2)
    if isinstance(exc, BastionError):
        fail(exc.message, 2 if isinstance(exc, InvalidInput) else 1, error_code=exc.code)
    if isinstance(exc, ClickException):
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, UsageError) and ctx is not None:
            hint = f"; see '{ctx.command_path} --help'"
        code = "usage_error" if isinstance(exc, UsageError) else "invalid_request"
        fail(exc.format_message().rstrip(".") + hint, exc.exit_code or 2, error_code=code)
    logging.getLogger("bastion.cli").debug("unexpected error", exc_info=exc)
    fail(
        f"unexpected {type(exc).__name__}: {exc}; this is a bug, please report it with the "
        "command you ran",
        1,
        error_code="internal_error",
    )


def login_name() -> str:
    """Who runs this command, as the operating system knows them (when no --by is given)."""
    import os
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "cli"
