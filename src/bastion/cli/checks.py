"""What the check commands share (``bastion drift``, ``fairness``, ``performance``,
``explain``): exit codes, output, errors, alerts, and the governance database.

Exit codes, for CI gates: 0 the check passed, 1 the check failed, 2 bad input (a missing
file or column, an unreadable model) with a message saying what to fix. Heavy libraries
are imported inside the commands so ``bastion --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from bastion.monitoring.findings import Finding

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
PROGRESS_MIN_ROWS = 1_000_000

out = Console()
err = Console(stderr=True)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _bad_input(message: str, code: str = "invalid_request") -> typer.Exit:
    text = message if message.endswith("]") else f"{message} [{code}]"
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


@contextmanager
def _guard() -> Iterator[None]:
    """Map domain errors to exit code 2 with their message."""
    from bastion.errors import BastionError

    try:
        yield
    except BastionError as exc:
        raise _bad_input(f"{exc.message} [{exc.code}]") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise _bad_input(str(exc), "file_unreadable") from None


def _jsonable(value: Any) -> Any:
    """A NumPy scalar as its Python value (for a label in the JSON output)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _write_json(payload: dict[str, Any], target: str | None) -> None:
    if not target:
        return
    text = json.dumps(payload, indent=2, default=str)
    if target == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(target).write_text(text + "\n", encoding="utf-8")
        err.print(f"JSON written to {target}")


def _write_report(html: Callable[[], str], target: Path | None) -> None:
    if target is None:
        return
    from bastion.monitoring.reports import write_html

    write_html(html(), target)
    err.print(f"HTML report written to {target}")


@contextmanager
def _progress(total: int | None, label: str) -> Iterator[Callable[[int], None] | None]:
    if total is not None and total < PROGRESS_MIN_ROWS:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda rows: bar.advance(task, rows)


def _record(
    check: Literal["drift", "performance"], model: str | None, findings: list[Finding], sent: bool
) -> None:
    """A check of a model's prediction log is kept for /metrics (bastion.monitoring.signals)."""
    if model is None:
        return
    from bastion.monitoring.signals import record_check

    _from_log(lambda db: record_check(db, check, model, findings, alerted=sent))


def _send_alerts(findings: list[Finding]) -> bool:
    """Route findings through the policy's ``monitoring.alert_rules`` (``--alert``);
    True when an alert was sent."""
    from bastion.cli.common import load_settings
    from bastion.monitoring.alerts import AlertRouter
    from bastion.monitoring.errors import MonitoringError
    from bastion.policy import load_policy

    settings = load_settings()
    monitoring = load_policy(settings.policy_path).policy.monitoring
    if not monitoring.alert_rules:
        raise MonitoringError(
            f"--alert: the policy {settings.policy_path} has no monitoring.alert_rules; "
            "add a rule and a notifier (docs/monitoring.md, Alerts)",
            code="monitoring_no_alert_rules",
        )
    deliveries = AlertRouter.from_policy(monitoring).dispatch(findings)
    if not deliveries:
        err.print("alerts: no finding matched an alert rule", highlight=False)
    for d in deliveries:
        text = f"alert {d.rule} → {d.notifier}: {d.status} ({len(d.fingerprints)} finding(s))"
        if d.status == "failed":
            err.print(
                f"[yellow]warning:[/] {escape(text)}: {escape(d.error)} "
                "\\[monitoring_notifier_failed]",
                highlight=False,
                soft_wrap=True,
            )
        else:
            err.print(escape(text), highlight=False)
    return any(d.status == "sent" for d in deliveries)


ALERT_HELP = "Send the findings through the policy's monitoring.alert_rules (webhooks, log)."
FORMAT_HELP = "table (for people) or json (the JSON result on standard output)."


T = TypeVar("T")


def _from_log(read: Callable[[Any], T]) -> T:
    """Run ``read(db)`` on the governance database; its errors exit 2 like the other
    bad inputs of these checks (the runtime's own handler would exit 1)."""
    from bastion.cli.common import runtime
    from bastion.errors import BastionError

    problem: BastionError | None = None
    with runtime() as rt:
        try:
            return read(rt.db)
        except BastionError as exc:
            problem = exc
    raise problem
