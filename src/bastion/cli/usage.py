"""``bastion usage``: what the gateway served (from the rollups), and ``usage refresh``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

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
    from bastion.usage.service import Figures

app = typer.Typer(
    help="What the gateway served: requests, errors, latency, tokens and cost by team and "
    "model, read from the usage rollups.",
    invoke_without_command=True,
)


def _days(since: str) -> int:
    found = re.fullmatch(r"\s*(\d{1,4})\s*d?\s*", since)
    if not found or int(found.group(1)) < 1:
        fail(f"--since {since!r}: give a number of days, e.g. 7d", 2)
    return int(found.group(1))


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value:.0f}ms"


def _count(n: int) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _cells(f: Figures) -> list[str]:
    return [
        f"{f.requests:,}",
        f"{f.errors:,}",
        f"{f.error_rate:.1%}",
        _ms(f.latency_p50_ms),
        _ms(f.latency_p95_ms),
        f"${f.cost_usd:,.2f}",
        _count(f.prompt_tokens),
        _count(f.completion_tokens),
    ]


FIGURE_HEADERS = ["calls", "errors", "err %", "p50", "p95", "cost", "tok in", "tok out"]


@app.callback()
def show(
    ctx: typer.Context,
    since: str = typer.Option("7d", help="The last N days, today included (e.g. 7d, 30d)."),
    start: str | None = typer.Option(None, help="First UTC day (YYYY-MM-DD); overrides --since."),
    end: str | None = typer.Option(None, help="Last UTC day, included (default today)."),
    by: str = typer.Option("team", help="Group by team, model, team,model, or none."),
    daily: bool = typer.Option(False, "--daily", help="One row a day and group."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """What the gateway served, by team and model (rollups; run `usage refresh` first
    when the server is not running)."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import timedelta

    from bastion.usage.service import BadGrouping, BadPeriod, PeriodTooLong

    group_by = "" if by == "none" else by
    with runtime() as rt:
        service = rt.usage()
        try:
            if start is None:
                start_day = service.today() - timedelta(days=_days(since) - 1)
                report = service.usage(start_day, end, group_by)
            else:
                report = service.usage(start, end, group_by)
        except (BadPeriod, PeriodTooLong, BadGrouping) as exc:
            fail(exc.message, 2, error_code=exc.code)
    if fmt is OutputFormat.json:
        print_json(
            {
                "start": report.start.isoformat(),
                "end": report.end.isoformat(),
                "group_by": list(report.group_by),
                "series": [p.to_dict() for p in report.series],
                "groups": [g.to_dict() for g in report.groups],
                "totals": report.totals.__dict__,
                "as_of": report.as_of.__dict__,
            }
        )
        return
    dims = list(report.group_by)
    rows: list[list[str]] = []
    if daily:
        for p in report.series:
            named = {"team": p.team, "model": p.model}
            rows.append([p.day.isoformat(), *(_name(named[d]) for d in dims), *_cells(p.figures)])
        headers = ["day", *dims, *FIGURE_HEADERS]
    else:
        for g in report.groups:
            named = {"team": g.team, "model": g.model}
            rows.append([*(_name(named[d]) for d in dims), *_cells(g.figures)])
        headers = [*dims, *FIGURE_HEADERS] if dims else ["", *FIGURE_HEADERS]
        if not dims:
            rows = []
    lead = len(headers) - len(FIGURE_HEADERS)
    rows.append(["[bold]total[/]", *([""] * (lead - 1)), *_cells(report.totals)])
    as_of = report.as_of
    title = f"Gateway usage {report.start} .. {report.end} (UTC)"
    console.print(key_table(headers, rows, key=headers[:lead], right=FIGURE_HEADERS, title=title))
    when = f"{as_of.refreshed_at:%Y-%m-%d %H:%M:%S} UTC" if as_of.refreshed_at else "never"
    console.print(
        f"[dim]rollups up to ledger event {as_of.last_event_id} (refreshed {when}); "
        "latency percentiles exclude refused calls[/]"
    )


def _name(value: str | None) -> str:
    return "(no team)" if value == "" else str(value)


@app.command("refresh")
def refresh(
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Fold new gateway events from the ledger into the usage rollups now (safe while
    the server also refreshes: no event is counted twice)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bastion.cli.common import err_console

    with runtime() as rt:
        refresher = rt.usage().refresher
        start = refresher.progress()
        backlog = max(start.max_id - start.last_id, 0)
        folded = 0
        with Progress(
            TextColumn("folding ledger events"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=fmt is OutputFormat.json or backlog < 50_000,
        ) as progress:
            task = progress.add_task("refresh", total=backlog)
            for step, count in refresher.batches():
                folded += count
                progress.update(task, completed=step.last_id - start.last_id)
        end = refresher.progress()
    result: dict[str, Any] = {
        "folded": folded,
        "read": end.last_id - start.last_id,
        "last_event_id": end.last_id,
        "pending": max(end.max_id - end.last_id, 0),
    }
    if fmt is OutputFormat.json:
        print_json(result)
        return
    console.print(
        f"folded {folded:,} gateway events ({result['read']:,} ledger events read); rollups "
        f"now up to event {end.last_id}"
        + (f", {result['pending']:,} too recent to fold yet" if result["pending"] else "")
    )
