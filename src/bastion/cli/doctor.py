"""``bastion doctor``: what is wrong with this installation, and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from bastion.operations.doctor import Finding

FORMAT = typer.Option("text", "--format", help="text or json.")


def doctor(output: str = FORMAT) -> None:
    """Check the environment and configuration and say what to fix: database and
    migrations, Redis, policy, signing and secret keys, MLflow, provider keys, clock.
    Exit 1 if any check fails."""
    from pydantic import ValidationError

    from bastion.cli.common import fail, print_json
    from bastion.cli.status import has_env
    from bastion.operations.doctor import Finding, diagnose

    if output not in ("text", "json"):
        fail("--format must be text or json", 2, error_code="invalid_option")
    try:
        from bastion.cli.common import load_settings

        findings = list(diagnose(load_settings(), has_env))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        findings = [
            Finding("settings", "fail", problems, "fix the BASTION_* variables (docs/settings.md)")
        ]
    failed = [f for f in findings if f.state == "fail"]
    if output == "json":
        print_json({"ok": not failed, "findings": [f.as_dict() for f in findings]})
    else:
        _print(findings)
    if failed:
        raise typer.Exit(1)


def _print(findings: Sequence[Finding]) -> None:
    from rich.markup import escape

    from bastion.cli.common import console, key_table

    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    rows = [
        (
            f.check,
            f"[{colour[f.state]}]{f.state}[/]",
            escape(f.detail),
            escape(f.fix),
        )
        for f in findings
    ]
    headers = ("check", "state", "detail", "what to do")
    console.print(key_table(headers, rows, key=("check", "state"), title="Bastion doctor"))
    failed = sum(1 for f in findings if f.state == "fail")
    console.print(
        f"[red]{failed} check(s) failed[/]" if failed else "[green]nothing to fix[/]",
        highlight=False,
    )
