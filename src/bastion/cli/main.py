"""The ``bastion`` command line.

Each command group lives in its own module; heavy libraries are imported inside the
commands so that ``bastion --help`` stays fast.
"""

from __future__ import annotations

import typer

from bastion import __version__

app = typer.Typer(
    name="bastion",
    help="Bastion: govern LLM traffic and model releases, and prove what happened.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bastion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Bastion: govern LLM traffic and model releases, and prove what happened."""


_registered = False


def _register() -> None:
    """Attach the command groups (once; tests build the app in-process)."""
    global _registered
    if _registered:
        return
    from bastion.cli import commands

    commands.register(app)
    _registered = True


def main() -> None:
    _register()
    app()


if __name__ == "__main__":
    main()
