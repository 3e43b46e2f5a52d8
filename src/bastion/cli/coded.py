"""The root group's error handling, in a module light enough for ``bastion --help``
(the printing, with rich, is imported only when an error is to be printed)."""

from __future__ import annotations

from typing import Any

import typer

from bastion.errors import BastionError


class CodedErrors:
    """Mixin for the root group: every error that escapes a command (a usage error, a
    Bastion error, anything unexpected) is printed as ``error: MESSAGE [CODE]``, never a
    traceback. Usage errors (unknown option, bad value) exit 2 with ``usage_error``.
    A custom root group (e.g. one that loads commands lazily) puts it first in its
    bases: ``class LazyGroup(CodedErrors, TyperGroup)``."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        from typer._click.exceptions import ClickException

        try:
            return super().make_context(*args, **kwargs)  # type: ignore[misc]
        except (ClickException, BastionError) as exc:
            from bastion.cli.common import _coded

            _coded(exc)

    def invoke(self, ctx: Any) -> Any:
        from typer._click.exceptions import ClickException

        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except (ClickException, Exception) as exc:
            from bastion.cli.common import _coded

            _coded(exc)
