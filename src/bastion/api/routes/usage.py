"""``GET /api/usage``, ``/api/usage/budgets``, ``/api/alerts``: what the gateway served,
from the daily rollups (never the raw ledger), team budgets and open alerts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.usage.service import Alert, BudgetBurn, Figures, UsageReport, UsageService

router = APIRouter(
    tags=["usage"], route_class=StrictJSONRoute, responses=errors(*GUARDED, 400, 422)
)


class FiguresOut(BaseModel):
    requests: int
    errors: int = Field(description="calls that failed upstream or in Bastion")
    refused: int = Field(description="calls a policy, limit or budget refused")
    error_rate: float = Field(description="errors / requests")
    latency_p50_ms: float | None = Field(
        description="median whole-call latency of calls not refused (within one histogram "
        "bucket, a factor of √2)"
    )
    latency_p95_ms: float | None
    ttft_p50_ms: float | None = Field(description="median time to first token of streams")
    ttft_p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class PointOut(FiguresOut):
    day: date
    team: str | None = Field(None, description="'' for keys without a team")
    model: str | None = None


class GroupOut(FiguresOut):
    team: str | None = None
    model: str | None = None


class AsOfOut(BaseModel):
    last_event_id: int = Field(description="the last ledger event folded into the rollups")
    events_folded: int
    refreshed_at: datetime | None


class UsageOut(BaseModel):
    start: date
    end: date
    group_by: list[Literal["team", "model"]]
    series: list[PointOut] = Field(description="one point a day and group with calls")
    groups: list[GroupOut] = Field(description="each group over the period, costliest first")
    totals: FiguresOut
    as_of: AsOfOut


class BudgetOut(BaseModel):
    team: str
    per: Literal["day", "week", "month"]
    limit_usd: float
    spent_usd: float
    remaining_usd: float
    window_start: datetime
    window_end: datetime
    rate_usd_per_day: float
    days_left: float | None = Field(description="at the current rate; null if nothing spent")
    runs_out: bool = Field(description="spent before the window ends at the current rate")
    burn_down: list[tuple[date, float]] = Field(description="(day, remaining at its end)")


class AlertOut(BaseModel):
    kind: Literal["incident", "breaker", "budget"]
    severity: Literal["critical", "warning"]
    title: str
    detail: str
    since: datetime | None
    subject: dict[str, str]


def get_usage(request: Request) -> UsageService:
    usage: UsageService = request.app.state.usage
    return usage


UsageDep = Annotated[UsageService, Depends(get_usage)]


def figures_of(f: Figures) -> dict[str, Any]:
    return dict(f.__dict__)


def usage_out(report: UsageReport) -> UsageOut:
    return UsageOut(
        start=report.start,
        end=report.end,
        group_by=list(report.group_by),
        series=[PointOut.model_validate(p.to_dict()) for p in report.series],
        groups=[GroupOut.model_validate(g.to_dict()) for g in report.groups],
        totals=FiguresOut.model_validate(figures_of(report.totals)),
        as_of=AsOfOut.model_validate(report.as_of.__dict__),
    )


def budget_out(b: BudgetBurn) -> BudgetOut:
    return BudgetOut.model_validate(b.__dict__)


def alert_out(a: Alert) -> AlertOut:
    return AlertOut.model_validate(a.__dict__)


@router.get("/api/usage", summary="Requests, errors, latency, tokens and cost per day")
async def usage(
    service: UsageDep,
    _: Annotated[Principal | None, Depends(requires(Permission.METRICS_READ))],
    start: Annotated[
        str | None, Query(max_length=10, description="first UTC day (YYYY-MM-DD)")
    ] = None,
    end: Annotated[
        str | None, Query(max_length=10, description="last UTC day, included (default today)")
    ] = None,
    group_by: Annotated[
        str, Query(max_length=20, description="team, model, team,model or empty")
    ] = "",
) -> UsageOut:
    report = await run_in_threadpool(service.usage, start, end, group_by)
    return usage_out(report)


@router.get("/api/usage/budgets", summary="Team budgets: spent, left, days left at this rate")
async def budgets(
    service: UsageDep,
    _: Annotated[Principal | None, Depends(requires(Permission.METRICS_READ))],
) -> list[BudgetOut]:
    return [budget_out(b) for b in await run_in_threadpool(service.budgets)]


@router.get("/api/alerts", summary="Open incidents, open circuit breakers, budgets at risk")
async def alerts(
    service: UsageDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.METRICS_READ))],
) -> list[AlertOut]:
    # Incidents are the auditors' (reports:read): listed only to callers who may read them.
    incidents = principal is not None and principal.can(Permission.REPORTS_READ)
    found = await run_in_threadpool(service.alerts, incidents=incidents)
    return [alert_out(a) for a in found]
