"""``bastion deploy``: canary, A/B and shadow rollouts, their status, history and controls.

The server's controller moves rollouts on its own; ``bastion deploy check`` runs one
look now (when no server replica holds the controller's lease).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from bastion.auth.permissions import Permission
from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    err_console,
    key_table,
    print_json,
    runtime,
)

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.delivery.schemas import RolloutView
    from bastion.delivery.service import DeliveryService

app = typer.Typer(help="Progressive delivery: canary, A/B and shadow rollouts.")

BY = typer.Option(
    None, "--by", help="Who is acting, as recorded in the ledger (default: the login name)."
)
KEY = typer.Option(
    None,
    "--key",
    help="Act as this API key's holder, with its role ('-' reads the key from stdin).",
)
STEPS = typer.Option(None, "--steps", help="Percent of requests at each step, e.g. 5,25,50,100.")
VERSION = typer.Argument(..., min=1, max=2_147_483_647, help="The candidate version.")
INTERVAL = typer.Option("10m", "--interval", help="Least time per step: 30s, 10m, 1h.")
REASON = typer.Option(None, "--reason", help="Why (recorded in the ledger).")


@contextmanager
def _service(
    by: str | None = None, key: str | None = None, needs: Permission = Permission.MODELS_READ
) -> Iterator[tuple[DeliveryService, Principal]]:
    from bastion.auth.errors import PermissionDenied
    from bastion.auth.principal import cli_principal
    from bastion.cli.common import login_name
    from bastion.delivery.service import DeliveryService

    secret = typer.get_text_stream("stdin").readline().strip() if key == "-" else key
    with runtime(label="deploy") as rt:
        actor = rt.keys.authenticate(secret) if secret else cli_principal(by or login_name())
        if not actor.can(needs):
            raise PermissionDenied(
                f"role {actor.role!r} lacks the permission {needs.value!r} this command needs"
            )
        yield DeliveryService(rt.db, rt.ledger, rt.policy), actor


def _show(view: RolloutView, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        print_json(view.model_dump(mode="json"))
        return
    steps = ",".join(str(s) for s in view.steps)
    console.print(
        f"{escape(view.model)} {view.kind} v{view.candidate_version} against "
        f"v{view.baseline_version}: {view.state}, {view.weight} % "
        f"(step {view.step_index + 1} of {steps}) [{view.id}]",
        highlight=False,
    )
    analysis = view.last_analysis
    if view.state == "passed":
        console.print(
            f"waiting for an approved promotion: `bastion models request {escape(view.model)} "
            f"{view.candidate_version} --to production`, then another approver approves it",
            highlight=False,
        )
    if analysis:
        rows = [
            [
                c["metric"],
                c["verdict"],
                c["test"],
                escape(c["reason"]),
                "" if c["more_requests"] is None else f"{c['more_requests']:,}",
            ]
            for c in analysis["checks"]
        ]
        console.print(
            key_table(
                ["check", "verdict", "test", "why", "more requests"],
                rows,
                key=["check", "verdict"],
                right=["more requests"],
                title=f"last analysis: {analysis['verdict']}",
            )
        )
    if view.reason and view.final:
        console.print(f"reason: {escape(view.reason)}", highlight=False)


def _start(
    kind: str,
    model: str,
    version: int,
    steps: str | None,
    interval: str,
    reason: str | None,
    by: str | None,
    key: str | None,
    fmt: OutputFormat,
) -> None:
    with _service(by, key, Permission.MODELS_WRITE) as (service, actor):
        view = service.start(
            actor, model, version, kind=kind, steps=steps, interval=interval, reason=reason
        )
    _show(view, fmt)


@app.command()
def canary(
    model: str = typer.Argument(...),
    version: int = VERSION,
    steps: str | None = STEPS,
    interval: str = INTERVAL,
    reason: str | None = REASON,
    by: str | None = BY,
    key: str | None = KEY,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Ramp a staging version up beside production, judged at every step."""
    _start("canary", model, version, steps, interval, reason, by, key, fmt)


@app.command()
def ab(
    model: str = typer.Argument(...),
    version: int = VERSION,
    split: str = typer.Option("50", "--split", help="Percent of users on the candidate (B)."),
    interval: str = INTERVAL,
    reason: str | None = REASON,
    by: str | None = BY,
    key: str | None = KEY,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Split users between production (A) and a staging version (B)."""
    _start("ab", model, version, split, interval, reason, by, key, fmt)


@app.command()
def shadow(
    model: str = typer.Argument(...),
    version: int = VERSION,
    sample: str = typer.Option(
        "100", "--sample", help="Percent of requests the candidate also scores (e.g. 10,100)."
    ),
    interval: str = INTERVAL,
    reason: str | None = REASON,
    by: str | None = BY,
    key: str | None = KEY,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Score requests with a staging version too; its answers are logged, never returned."""
    _start("shadow", model, version, sample, interval, reason, by, key, fmt)


@app.command()
def status(model: str = typer.Argument(...), fmt: OutputFormat = FORMAT_OPTION) -> None:
    """A model's latest rollout and its last analysis."""
    with _service() as (service, _):
        view = service.status(model)
    _show(view, fmt)


@app.command()
def history(model: str = typer.Argument(...), fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Every decision on a model's latest rollout: steps, verdicts, pauses, rollback."""
    with _service() as (service, _):
        found = service.history(model)
    if fmt is OutputFormat.json:
        print_json(found.model_dump(mode="json"))
        return
    rows = []
    for d in found.decisions:
        verdict = d.verdict or ""
        detail: Any = d.details.get("reason") or d.details.get("more_requests") or ""
        rows.append(
            [
                f"{d.at:%Y-%m-%d %H:%M:%S}",
                d.action,
                verdict,
                f"{d.weight} %",
                d.state,
                escape(str(detail)),
            ]
        )
    console.print(
        key_table(
            ["at", "action", "verdict", "weight", "state", "detail"],
            rows,
            key=["at", "action"],
            right=["weight"],
            title=f"{found.rollout.model} rollout {found.rollout.id}",
        )
    )


def _control(verb: str, model: str, reason: str | None, by: str | None, key: str | None) -> None:
    with _service(by, key, Permission.MODELS_WRITE) as (service, actor):
        view = getattr(service, verb)(actor, model, reason)
    _show(view, OutputFormat.table)


@app.command()
def pause(
    model: str = typer.Argument(...),
    reason: str | None = REASON,
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Stop a rollout's steps and analysis; its traffic split stays."""
    _control("pause", model, reason, by, key)


@app.command()
def resume(
    model: str = typer.Argument(...),
    reason: str | None = REASON,
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Resume a paused rollout."""
    _control("resume", model, reason, by, key)


@app.command()
def abort(
    model: str = typer.Argument(...),
    reason: str | None = REASON,
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """End a rollout now: every request goes back to production."""
    _control("abort", model, reason, by, key)


@app.command()
def check(model: str = typer.Argument(...)) -> None:
    """Analyse a model's rollout now and act on the verdict (as the controller does)."""
    from bastion.delivery.controller import RolloutController

    with _service(needs=Permission.MODELS_WRITE) as (service, _):
        controller = RolloutController(service)
        try:
            outcomes = controller.tick(model=model)
        finally:
            controller.release()  # a command's turn ends with it
        if not outcomes:
            err_console.print(
                "another controller (a running server) holds the lease: it looks on its own",
                highlight=False,
            )
            return
        view = service.status(model)
    _show(view, OutputFormat.table)
