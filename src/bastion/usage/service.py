"""What the gateway served, read from the daily rollups: series, totals, budgets, alerts.

Every figure here comes from ``usage_daily`` (a few thousand rows for a month however
many calls the ledger holds), never from the ledger itself. Rollups trail the ledger by
the refresh interval; each answer says up to which event they go (``as_of``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from bastion.db import Database
from bastion.errors import InvalidInput
from bastion.gateway.counters.base import budget_window
from bastion.policy import PolicyStore
from bastion.usage.histogram import BUCKETS, quantiles
from bastion.usage.models import LATENCY_COLUMNS, TTFT_COLUMNS, usage_daily, usage_watermarks
from bastion.usage.refresh import WATERMARK, Refresher

if TYPE_CHECKING:
    from bastion.evidence.clocks import ClockService
    from bastion.gateway.health import HealthReport

_c = usage_daily.c
#: The sums a report reads, in the order :func:`figures_of` takes them.
SUMS = (
    sa.func.sum(_c.requests),
    sa.func.sum(_c.errors),
    sa.func.sum(sa.case((_c.outcome == "refused", _c.requests), else_=0)),
    sa.func.sum(_c.prompt_tokens),
    sa.func.sum(_c.completion_tokens),
    sa.func.sum(_c.cost_nano),
    *(sa.func.sum(_c[n]) for n in LATENCY_COLUMNS),
    *(sa.func.sum(_c[n]) for n in TTFT_COLUMNS),
)
EPOCH = date(1970, 1, 1)
#: The longest period one request may cover.
MAX_DAYS = 400
DEFAULT_DAYS = 30
Dimension = Literal["team", "model"]
GROUPINGS: dict[str, tuple[Dimension, ...]] = {
    "": (),
    "team": ("team",),
    "model": ("model",),
    "team,model": ("team", "model"),
    "model,team": ("team", "model"),
}


class BadPeriod(InvalidInput):
    code = "invalid_period"


class PeriodTooLong(InvalidInput):
    code = "period_too_long"


class BadGrouping(InvalidInput):
    code = "invalid_group_by"


def day_number(day: date) -> int:
    return (day - EPOCH).days


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=number)


@dataclass(frozen=True)
class Period:
    """Whole UTC days, ``start`` and ``end`` included."""

    start: date
    end: date

    @classmethod
    def parse(cls, start: str | date | None, end: str | date | None, today: date) -> Period:
        last = _date("end", end) if end is not None else today
        first = (
            _date("start", start) if start is not None else last - timedelta(days=DEFAULT_DAYS - 1)
        )
        if first > last:
            raise BadPeriod(
                f"the period starts ({first}) after it ends ({last}): give start <= end",
                param="start",
            )
        if (last - first).days + 1 > MAX_DAYS:
            raise PeriodTooLong(
                f"the period covers {(last - first).days + 1} days; at most {MAX_DAYS} may be "
                "asked at once: split it",
                param="start",
            )
        return cls(first, last)

    @classmethod
    def last_days(cls, days: int, today: date) -> Period:
        return cls.parse(today - timedelta(days=days - 1), today, today)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def _date(name: str, value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadPeriod(
            f"{name}={value!r} is not a date: give it as YYYY-MM-DD (UTC days)", param=name
        ) from None


def grouping(group_by: str | None) -> tuple[Dimension, ...]:
    key = (group_by or "").replace(" ", "")
    if key not in GROUPINGS:
        raise BadGrouping(
            f"group_by={group_by!r} is not one of: team, model, team,model (or none)",
            param="group_by",
        )
    return GROUPINGS[key]


def _merge(
    keys: list[tuple[Any, ...]], data: npt.NDArray[np.int64]
) -> tuple[list[tuple[Any, ...]], npt.NDArray[np.int64]]:
    """Rows of sums added up per key: (distinct keys, their sums)."""
    index: dict[tuple[Any, ...], int] = {}
    positions = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    merged = np.zeros((len(index), data.shape[1]), dtype=np.int64)
    if len(keys):
        np.add.at(merged, positions, data)
    return list(index), merged


def figures_of(data: npt.NDArray[np.int64]) -> list[Figures]:
    """Figures of rows of sums (:data:`SUMS` order), percentiles computed all at once."""
    if data.shape[0] == 0:
        return []
    latency = data[:, 6 : 6 + BUCKETS]
    p50, p95 = quantiles(latency, 0.5), quantiles(latency, 0.95)
    ttft = data[:, 6 + BUCKETS : 6 + 2 * BUCKETS]
    t50, t95 = quantiles(ttft, 0.5), quantiles(ttft, 0.95)
    out = []
    for i, (requests, errors, refused, prompt, completion, cost) in enumerate(data[:, :6].tolist()):
        out.append(
            Figures(
                requests=requests,
                errors=errors,
                refused=refused,
                error_rate=round(errors / requests, 6) if requests else 0.0,
                latency_p50_ms=_ms(p50[i]),
                latency_p95_ms=_ms(p95[i]),
                ttft_p50_ms=_ms(t50[i]),
                ttft_p95_ms=_ms(t95[i]),
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd=round(cost / 1e9, 9),
            )
        )
    return out


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True)
class Figures:
    requests: int
    errors: int
    refused: int
    error_rate: float
    #: Percentiles of calls that were not refused, within one histogram bucket (√2).
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class Point:
    day: date
    team: str | None
    model: str | None
    figures: Figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            **_group(self.team, self.model),
            **asdict(self.figures),
        }


@dataclass(frozen=True)
class Group:
    team: str | None
    model: str | None
    figures: Figures

    def to_dict(self) -> dict[str, Any]:
        return {**_group(self.team, self.model), **asdict(self.figures)}


def _group(team: str | None, model: str | None) -> dict[str, str]:
    out = {}
    if team is not None:
        out["team"] = team
    if model is not None:
        out["model"] = model
    return out


@dataclass(frozen=True)
class AsOf:
    """How far the rollups go: the last ledger event folded in, and when."""

    last_event_id: int
    events_folded: int
    refreshed_at: datetime | None


@dataclass(frozen=True)
class UsageReport:
    start: date
    end: date
    group_by: tuple[Dimension, ...]
    #: One point a day and group that had calls (days without calls are left out).
    series: list[Point]
    groups: list[Group]
    totals: Figures
    as_of: AsOf
    #: Each day's figures over every group (days without calls are left out).
    days: list[Point] = field(default_factory=list)


@dataclass(frozen=True)
class BudgetBurn:
    """One team budget's window: spent so far and when, at this rate, it runs out."""

    team: str
    per: str
    limit_usd: float
    spent_usd: float
    remaining_usd: float
    window_start: datetime
    window_end: datetime
    #: Spend per day so far in the window (USD), from its start to now.
    rate_usd_per_day: float
    #: Days until the budget is spent at that rate; None when nothing is spent yet.
    days_left: float | None
    #: Whether at that rate it runs out before the window ends.
    runs_out: bool
    #: (day, remaining at the end of that day) for each day of the window so far.
    burn_down: list[tuple[date, float]]


@dataclass(frozen=True)
class Alert:
    kind: Literal["incident", "breaker", "budget"]
    severity: Literal["critical", "warning"]
    title: str
    detail: str
    since: datetime | None = None
    #: What to filter on to see the evidence (team, model, incident id, …).
    subject: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Overview:
    usage: UsageReport
    budgets: list[BudgetBurn]
    alerts: list[Alert]


class UsageService:
    def __init__(
        self,
        db: Database,
        policy: PolicyStore,
        *,
        clocks: ClockService | None = None,
        health: Callable[[], HealthReport] | None = None,
        refresh_batch: int = 50_000,
        refresh_lag_s: float = 5.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.policy = policy
        self.clocks = clocks
        self.health = health
        self.now = now
        self.refresher = Refresher(db, batch=refresh_batch, lag_s=refresh_lag_s)

    def today(self) -> date:
        return self.now().astimezone(UTC).date()

    # --- usage --------------------------------------------------------------------------

    def usage(
        self, start: str | date | None = None, end: str | date | None = None, group_by: str = ""
    ) -> UsageReport:
        period = Period.parse(start, end, self.today())
        return self.report(period, grouping(group_by))

    def report(self, period: Period, dims: tuple[Dimension, ...]) -> UsageReport:
        """One pass over the period's rollup rows, summed per day and group by the
        database; the per-group, per-day and overall figures are merged from those sums
        (NumPy), so the rollups are read once."""
        c = usage_daily.c
        keys = (c.day, *(c[d] for d in dims))
        rows = self._read(
            sa.select(*keys, *SUMS)
            .where(c.day >= day_number(period.start), c.day <= day_number(period.end))
            .group_by(*keys)
        )
        width = 1 + len(dims)
        data = np.array([[int(v or 0) for v in r[width:]] for r in rows], dtype=np.int64).reshape(
            len(rows), len(SUMS)
        )
        labels = [tuple(r[:width]) for r in rows]
        series = [
            Point(day_of(int(k[0])), *_names(dims, k[1:]), f)
            for k, f in zip(labels, figures_of(data), strict=True)
        ]
        series.sort(key=lambda p: (p.day, p.team or "", p.model or ""))
        group_keys, group_sums = _merge([k[1:] for k in labels], data)
        groups = (
            [
                Group(*_names(dims, k), f)
                for k, f in zip(group_keys, figures_of(group_sums), strict=True)
            ]
            if dims
            else []
        )
        groups.sort(
            key=lambda g: (-g.figures.cost_usd, -g.figures.requests, g.team or "", g.model or "")
        )
        day_keys, day_sums = _merge([k[:1] for k in labels], data)
        days = sorted(
            (
                Point(day_of(int(k[0])), None, None, f)
                for k, f in zip(day_keys, figures_of(day_sums), strict=True)
            ),
            key=lambda p: p.day,
        )
        total = figures_of(data.sum(axis=0, keepdims=True))[0]
        with self.db.engine.connect() as conn:
            as_of = _as_of(conn)
        return UsageReport(period.start, period.end, dims, series, groups, total, as_of, days)

    def _read(self, query: sa.Select[Any]) -> list[Any]:
        with self.db.engine.connect() as conn:
            return list(conn.execute(query))

    # --- budgets ------------------------------------------------------------------------

    def budgets(self) -> list[BudgetBurn]:
        """Every team budget in the policy, against what the rollups say was spent.

        Budgets of users and keys are left out: rollups keep no user or key (no personal
        data), so only team budgets can be shown from them."""
        now = self.now().astimezone(UTC)
        wanted = [
            (team, budget, *budget_window(budget.per, now))
            for team, cfg in sorted(self.policy.policy.teams.items())
            for budget in cfg.budgets
        ]
        if not wanted:
            return []
        first = min(day_number(start.date()) for *_, start, _ in wanted)
        c = usage_daily.c
        spent: dict[str, dict[int, int]] = {}
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.team, c.day, sa.func.sum(c.cost_nano))
                .where(c.day >= first, c.team.in_({team for team, *_ in wanted}))
                .group_by(c.team, c.day)
            )
            for team, day, nano in rows:
                spent.setdefault(team, {})[int(day)] = int(nano or 0)
        return [
            _burn(team, budget.per, budget.usd, start, end, now, spent.get(team, {}))
            for team, budget, start, end in wanted
        ]

    # --- alerts ---------------------------------------------------------------------------

    def alerts(
        self, budgets: list[BudgetBurn] | None = None, *, incidents: bool = True
    ) -> list[Alert]:
        """What needs someone now: open incidents (when ``incidents``: they are for those
        who may read reports), open circuit breakers, budgets spent or set to run out
        before their window ends. Drift findings are not stored, so not listed here."""
        now = self.now().astimezone(UTC)
        found: list[Alert] = []
        if self.clocks is not None and incidents:
            for clock in self.clocks.items(open_only=True):
                late = now > clock.deadline_at
                found.append(
                    Alert(
                        "incident",
                        "critical" if late or clock.kind == "serious_incident" else "warning",
                        clock.title,
                        f"{clock.kind.replace('_', ' ')}, deadline "
                        f"{clock.deadline_at:%Y-%m-%d %H:%M} UTC" + (" (overdue)" if late else ""),
                        clock.aware_at,
                        {"incident": str(clock.id)},
                    )
                )
        if self.health is not None:
            found.extend(_breaker_alerts(self.health()))
        for burn in self.budgets() if budgets is None else budgets:
            what = f"{burn.team}: ${burn.limit_usd:,.2f} per {burn.per}"
            if burn.remaining_usd <= 0:
                found.append(
                    Alert(
                        "budget",
                        "critical",
                        f"budget spent ({what})",
                        f"${burn.spent_usd:,.2f} spent; calls are refused until "
                        f"{burn.window_end:%Y-%m-%d %H:%M} UTC",
                        burn.window_start,
                        {"team": burn.team},
                    )
                )
            elif burn.runs_out and burn.days_left is not None:
                found.append(
                    Alert(
                        "budget",
                        "warning",
                        f"budget runs out early ({what})",
                        f"at ${burn.rate_usd_per_day:,.2f} a day it is spent in "
                        f"{burn.days_left:.1f} days, before the window ends",
                        burn.window_start,
                        {"team": burn.team},
                    )
                )
        return found

    def overview(
        self,
        start: str | date | None = None,
        end: str | date | None = None,
        group_by: str = "",
        *,
        incidents: bool = True,
    ) -> Overview:
        """The dashboard's first page in one call: usage, budgets, alerts."""
        usage = self.usage(start, end, group_by)
        budgets = self.budgets()
        return Overview(usage, budgets, self.alerts(budgets, incidents=incidents))

    # --- refreshing -------------------------------------------------------------------------

    def refresh(self) -> int:
        return self.refresher.refresh()


def _names(dims: tuple[Dimension, ...], values: Sequence[Any]) -> tuple[str | None, str | None]:
    named = dict(zip(dims, values, strict=True))
    return named.get("team"), named.get("model")


def _as_of(conn: sa.Connection) -> AsOf:
    w = usage_watermarks.c
    row = conn.execute(
        sa.select(w.last_id, w.folded, w.updated_at).where(w.name == WATERMARK)
    ).first()
    if row is None:
        return AsOf(0, 0, None)
    return AsOf(int(row[0]), int(row[1]), row[2])


def _burn(
    team: str,
    per: str,
    limit: float,
    start: datetime,
    end: datetime,
    now: datetime,
    spent_by_day: dict[int, int],
) -> BudgetBurn:
    first, today = day_number(start.date()), day_number(now.date())
    remaining = limit
    burn_down: list[tuple[date, float]] = []
    for day in range(first, today + 1):
        remaining -= spent_by_day.get(day, 0) / 1e9
        burn_down.append((day_of(day), round(remaining, 6)))
    spent = limit - remaining
    elapsed = max((now - start).total_seconds() / 86_400, 1 / 24)  # an hour at least
    rate = spent / elapsed
    days_left = max(remaining, 0.0) / rate if rate > 0 else None
    window_left = (end - now).total_seconds() / 86_400
    return BudgetBurn(
        team=team,
        per=per,
        limit_usd=limit,
        spent_usd=round(spent, 6),
        remaining_usd=round(remaining, 6),
        window_start=start,
        window_end=end,
        rate_usd_per_day=round(rate, 6),
        days_left=None if days_left is None else round(days_left, 2),
        runs_out=days_left is not None and days_left < window_left,
        burn_down=burn_down,
    )


def _breaker_alerts(report: HealthReport) -> list[Alert]:
    found = []
    for p in report.providers:
        if p.breaker.state != "closed":
            found.append(
                Alert(
                    "breaker",
                    "critical" if p.breaker.state == "open" else "warning",
                    f"provider {p.provider} circuit {p.breaker.state.replace('_', '-')}",
                    f"{p.breaker.failing_deployments} deployments failing to connect",
                    _since(p.breaker.opened_at),
                    {"provider": p.provider},
                )
            )
    for d in report.deployments:
        if d.breaker.state != "closed":
            found.append(
                Alert(
                    "breaker",
                    "critical" if d.breaker.state == "open" else "warning",
                    f"{d.provider}/{d.upstream_model} circuit {d.breaker.state.replace('_', '-')}",
                    f"{d.breaker.failures} failures in a row"
                    + (f", last: {d.breaker.last_failure}" if d.breaker.last_failure else "")
                    + (f"; serves {', '.join(d.models)}" if d.models else ""),
                    _since(d.breaker.opened_at),
                    {"provider": d.provider, "model": ",".join(d.models)},
                )
            )
    return found


def _since(unix: float | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)
