"""The ``bastion`` command line.

Each command group lives in its own module, imported only when the command runs
(:mod:`bastion.cli.commands`); heavy libraries are imported inside the commands, so
``bastion --help`` imports none of them.
"""

from __future__ import annotations

import typer

from bastion import __version__
from bastion.cli.commands import LazyGroup

app = typer.Typer(
    name="bastion",
    cls=LazyGroup,
    rich_markup_mode=None,  # plain help: rich's help renderer alone costs ~0.2 s to import
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


def _register() -> None:
    """Kept for callers of the eager registration: commands now attach lazily."""


def main() -> None:
    from bastion.privacy._native import install_guard

    install_guard()  # a detector edited since the build runs as source (see _native)
    app()


if __name__ == "__main__":
    main()
