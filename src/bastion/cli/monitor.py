"""``bastion monitor``: after-the-fact checks of gateway traffic, and legal clocks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    fail,
    key_table,
    print_json,
    runtime,
)

if TYPE_CHECKING:
    from bastion.monitoring.findings import Finding
    from bastion.runtime import Runtime

app = typer.Typer(
    help="After-the-fact checks of gateway traffic: responses, access anomalies, legal clocks.",
    no_args_is_help=True,
)


def _since(value: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([hd])", value.strip())
    if not match or int(match.group(1)) == 0:
        fail(f"--since {value!r}: write a span like 7d or 12h", 2)
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(hours=n) if unit == "h" else timedelta(days=n)


def _dispatch(rt: Runtime, findings: list[Finding]) -> int:
    from bastion.monitoring.alerts import AlertRouter

    if not findings:
        return 0
    deliveries = AlertRouter.from_policy(rt.policy.policy.monitoring).dispatch(findings)
    return sum(1 for d in deliveries if d.status == "sent")


@app.command()
def responses(
    since: str = typer.Option("7d", help="How far back: 7d, 24h…"),
    html: Path | None = typer.Option(None, "--html", help="Write the daily summary with a chart."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Flag slow, leaking, failed and refused calls; print the daily summary."""
    from bastion.evidence.traffic import FLAG_KINDS, check_responses, responses_html

    now = datetime.now(UTC)
    with runtime() as rt:
        cfg = rt.policy.policy.evidence.responses
        summary = check_responses(rt.db, rt.ledger, cfg, since=now - _since(since), now=now)
        alerts = _dispatch(rt, summary.findings())
    if html is not None:
        html.write_text(responses_html(summary), encoding="utf-8")
    data = summary.to_dict()
    if fmt is OutputFormat.json:
        print_json(data | {"alerts_sent": alerts})
        return
    rows = [[d["day"], str(d["calls"]), *[str(d[k]) for k in FLAG_KINDS]] for d in data["days"]]
    console.print(key_table(["day", "calls", *FLAG_KINDS], rows, key=["day"]))
    t = data["totals"]
    console.print(
        f"{t['calls']} calls; {summary.flagged_now} newly flagged; alerts sent: {alerts}"
        + (f"; chart in {html}" if html else "")
    )


@app.command()
def access(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Compare each key's last day with its baseline; alert on unusual use."""
    from bastion.evidence.traffic import check_access

    with runtime() as rt:
        found = check_access(
            rt.db, rt.ledger, rt.policy.policy.evidence.access, now=datetime.now(UTC)
        )
        alerts = _dispatch(rt, [a.finding() for a in found])
    if fmt is OutputFormat.json:
        print_json([a.__dict__ for a in found])
        return
    if not found:
        console.print("no unusual use of any key")
        return
    for a in found:
        console.print(f"[yellow]{a.kind}[/]: {a.message}", highlight=False)
    console.print(f"alerts sent: {alerts}")


@app.command()
def clocks(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Alert on incidents and data-subject requests close to (or past) their deadline."""
    from bastion.evidence.clocks import ClockService, alert_clocks

    now = datetime.now(UTC)
    with runtime() as rt:
        warn = rt.policy.policy.evidence.clocks.warn_days
        findings = ClockService(rt.db).due_findings(now, warn)
        # each (clock, threshold) is alerted once, by this or by a server's own check
        alerts = len(alert_clocks(rt.db, rt.ledger, rt.policy.policy, now))
    if fmt is OutputFormat.json:
        print_json([f.to_dict() for f in findings])
        return
    for f in findings:
        console.print(f"[red]{f.kind}[/]: {f.message}", highlight=False)
    console.print(f"{len(findings)} items due within {warn} days; alerts sent: {alerts}")
