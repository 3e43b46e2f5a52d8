"""Where each command group is attached to the ``bastion`` app (one line a group)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
