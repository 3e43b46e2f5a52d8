"""Overview: requests, errors, latency, tokens and cost per day by team or model; team
budgets burning down; open alerts. One :meth:`UsageService.overview` call, read from the
rollups (never the raw ledger); the same figures as ``GET /api/usage``.

Every number links to the calls it counts (the Gateway page's call list, filtered by
team, model, outcome and the period) for viewers who may read the ledger (``audit:read``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.usage.service import Overview, UsageService
from bastion.web.frame import CHART_CSP, render, text_or_none, ui_requires

router = APIRouter(include_in_schema=False)

#: plotly.js styles what it draws through ``<style>`` elements it creates and style
#: attributes it sets, which ``style-src 'self'`` refuses (the charts stay blank and the
#: console fills with errors): this page allows inline styles; scripts stay 'self' only.

Watcher = Annotated[Principal, Depends(ui_requires(Permission.METRICS_READ))]
GROUPINGS = {"team": "Team", "model": "Model", "team,model": "Team and model"}
#: Metrics drawn per day, as (key in the figures, chart title).
CHARTS = (
    ("requests", "Requests"),
    ("errors", "Errors"),
    ("latency_p95_ms", "Latency p95 (ms)"),
    ("latency_p50_ms", "Latency p50 (ms)"),
    ("tokens", "Tokens (in + out)"),
    ("cost_usd", "Cost (USD)"),
)


@router.get("/ui/overview")
def overview(
    request: Request,
    who: Watcher,
    start: Annotated[str | None, Query(max_length=10)] = None,
    end: Annotated[str | None, Query(max_length=10)] = None,
    group_by: Annotated[str, Query(max_length=20)] = "team",
) -> HTMLResponse:
    usage: UsageService = request.app.state.usage
    found = usage.overview(
        text_or_none(start),
        text_or_none(end),
        group_by,
        incidents=who.can(Permission.REPORTS_READ),
    )
    return render(
        request,
        "overview.html",
        {
            "o": found,
            "group_by": group_by,
            "groupings": GROUPINGS,
            "charts": charts(found),
            "burn_chart": burn_chart(found),
            "calls": CallLinks(found, enabled=who.can(Permission.AUDIT_READ)),
        },
        headers={"Content-Security-Policy": CHART_CSP},
    )


class CallLinks:
    """Links from a number to the calls it counts (None when the viewer may not follow)."""

    def __init__(self, found: Overview, *, enabled: bool) -> None:
        self.start = found.usage.start
        self.end = found.usage.end
        self.enabled = enabled

    def __call__(
        self,
        *,
        team: str | None = None,
        model: str | None = None,
        outcome: str | None = None,
        day: date | None = None,
    ) -> str | None:
        if not self.enabled:
            return None
        first, last = (day, day) if day is not None else (self.start, self.end)
        query: dict[str, str] = {
            "since": _when(first),
            "until": _when(last + timedelta(days=1)),
        }
        if team:
            query["team"] = team
        if model:
            query["model"] = model
        if outcome:
            query["outcome"] = outcome
        return "/ui/gateway/calls?" + urlencode(query)


def _when(day: date) -> str:
    return datetime.combine(day, time()).strftime("%Y-%m-%dT%H:%M")


def _label(team: str | None, model: str | None) -> str:
    parts = [("(no team)" if team == "" else team) if team is not None else None, model]
    return " · ".join(p for p in parts if p) or "all"


def charts(found: Overview) -> list[dict[str, Any]]:
    """One plotly chart per metric: a trace per group, a point per day."""
    days = [d.isoformat() for d in _days(found.usage.start, found.usage.end)]
    where = {day: i for i, day in enumerate(days)}
    traces: dict[str, dict[str, dict[str, Any]]] = {key: {} for key, _ in CHARTS}
    for point in found.usage.series:
        name = _label(point.team, point.model)
        f = point.figures
        values = {
            "requests": f.requests,
            "errors": f.errors,
            "latency_p95_ms": f.latency_p95_ms,
            "latency_p50_ms": f.latency_p50_ms,
            "tokens": f.prompt_tokens + f.completion_tokens,
            "cost_usd": f.cost_usd,
        }
        for key, value in values.items():
            series = traces[key].setdefault(name, {"x": days, "y": [None] * len(days)})
            series["y"][where[point.day.isoformat()]] = value
    out = []
    for key, title in CHARTS:
        line = key.startswith("latency")
        data = [
            {
                "type": "scatter" if line else "bar",
                "mode": "lines+markers" if line else None,
                "name": name,
                "x": t["x"],
                "y": t["y"],
            }
            for name, t in sorted(traces[key].items())
        ]
        for trace in data:
            if trace["mode"] is None:
                del trace["mode"]
        out.append(
            {
                "id": f"chart-{key.replace('_', '-')}",
                "spec": {
                    "data": data,
                    "layout": {
                        "title": {"text": title},
                        "barmode": "stack",
                        "showlegend": True,
                        "xaxis": {"type": "date"},
                        "yaxis": {"rangemode": "tozero"},
                    },
                },
            }
        )
    return out


def burn_chart(found: Overview) -> dict[str, Any] | None:
    if not found.budgets:
        return None
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"{b.team} per {b.per}",
            "x": [d.isoformat() for d, _ in b.burn_down],
            "y": [left for _, left in b.burn_down],
        }
        for b in found.budgets
    ]
    return {
        "data": data,
        "layout": {
            "title": {"text": "Budget left at the end of each day (USD)"},
            "xaxis": {"type": "date"},
        },
    }


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
