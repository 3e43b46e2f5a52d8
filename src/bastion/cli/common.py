"""What every command shares: settings, the runtime, and turning errors into exit codes.

Exit codes: 0 success; 1 a check failed (the ledger does not verify, the policy is
invalid, the schema is behind); 2 bad input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from bastion.errors import BastionError, InvalidInput
from bastion.observability import configure_logging
from bastion.settings import Settings

if TYPE_CHECKING:
    from bastion.runtime import Runtime

console = Console()
err_console = Console(stderr=True)


def load_settings() -> Settings:
    settings = Settings()
    configure_logging("WARNING", "text")
    return settings


def fail(message: str, code: int = 1, *, error_code: str | None = None) -> NoReturn:
    """Print ``error: MESSAGE [ERROR_CODE]`` (the stable code scripts can match) and exit."""
    text = f"{message} [{error_code}]" if error_code else message
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
