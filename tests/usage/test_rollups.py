"""The usage rollups equal a direct aggregation of the same ledger events, however the
refresh is cut into batches, repeated, or run by several refreshers at once (SQLite and
PostgreSQL); percentiles read from the histograms are within one bucket of the exact."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.testing.usage import SyntheticCall, event_of, synthetic_calls
from bastion.usage.histogram import BUCKETS, bucket_of, quantile
from bastion.usage.models import LATENCY_COLUMNS, TTFT_COLUMNS, usage_daily
from bastion.usage.refresh import Refresher
from bastion.usage.service import day_of

START_DAY = 20_400  # 2025-11-07


def ledger_with(runtime: Any, calls: list[SyntheticCall]) -> None:
    """Append the calls through the real ledger, then move each to its own time (the
    writer stamps events with the time of writing)."""
    futures = [runtime.ledger.submit(event_of(c)) for c in calls]
    receipts = [f.result(60) for f in futures]
    with runtime.db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_events SET ts_us = :ts WHERE stream = :stream AND seq = :seq"),
            [
                {"ts": c.ts_us, "stream": r.stream, "seq": r.seq}
                for c, r in zip(calls, receipts, strict=True)
            ],
        )


def direct(calls: list[SyntheticCall]) -> dict[tuple[int, str, str, str], dict[str, Any]]:
    """What the rollups must hold, computed from the calls themselves."""
    out: dict[tuple[int, str, str, str], dict[str, Any]] = {}
    for c in calls:
        # Served or not, the synthetic call names a policy model: it is the row's model.
        key = (c.day, c.team or "", c.model, c.outcome)
        row = out.setdefault(
            key,
            {
                "requests": 0,
                "errors": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_nano": 0,
                "latency": [0] * BUCKETS,
                "ttft": [0] * BUCKETS,
            },
        )
        row["requests"] += 1
        row["errors"] += c.outcome in ("failure", "error")
        row["prompt_tokens"] += c.prompt
        row["completion_tokens"] += c.completion
        row["cost_nano"] += round(c.cost_usd * 1e9)
        if c.outcome != "refused":
            row["latency"][bucket_of(c.latency_ms)] += 1
        if c.ttft_ms is not None:
            row["ttft"][bucket_of(c.ttft_ms)] += 1
    return out


def stored(db: Any) -> dict[tuple[int, str, str, str], dict[str, Any]]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(usage_daily)).mappings().all()
    return {
        (r["day"], r["team"], r["model"], r["outcome"]): {
            "requests": r["requests"],
            "errors": r["errors"],
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "cost_nano": r["cost_nano"],
            "latency": [r[c] for c in LATENCY_COLUMNS],
            "ttft": [r[c] for c in TTFT_COLUMNS],
        }
        for r in rows
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_rollups_equal_a_direct_aggregation_and_a_second_refresh_adds_nothing(
    runtime: Any, seed: int
) -> None:
    calls = list(synthetic_calls(1500, seed=seed, start_day=START_DAY, days=12, teams=5))
    ledger_with(runtime, calls)
    refresher = Refresher(runtime.db, batch=97, lag_s=0)  # many batches, cut anywhere

    folded = refresher.refresh()

    assert folded == len(calls)  # the ledger's own events (policy, keys) are not calls
    expected = direct(calls)
    assert stored(runtime.db) == expected
    assert len({k[3] for k in expected}) == 5 and len({k[1] for k in expected}) == 6
    assert refresher.refresh() == 0
    assert stored(runtime.db) == expected
    more = list(synthetic_calls(300, seed=seed + 10, start_day=START_DAY + 11, days=3))
    ledger_with(runtime, more)
    assert refresher.refresh() == len(more)
    assert stored(runtime.db) == direct(calls + more)


def test_refreshers_running_at_once_count_each_event_once(runtime: Any) -> None:
    calls = list(synthetic_calls(2000, seed=3, start_day=START_DAY, days=5))
    ledger_with(runtime, calls)
    start = threading.Barrier(3)
    counts: list[int] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            refresher = Refresher(runtime.db, batch=50, lag_s=0)
            start.wait()
            counts.append(refresher.refresh())
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert failures == []
    assert sum(counts) == len(calls)
    assert stored(runtime.db) == direct(calls)


def test_the_service_reads_the_same_figures_as_a_direct_aggregation(runtime: Any) -> None:
    calls = list(synthetic_calls(1200, seed=4, start_day=START_DAY, days=10, teams=3))
    ledger_with(runtime, calls)
    service = runtime.usage()
    service.refresher.lag_s = 0
    service.refresh()
    first, last = day_of(START_DAY + 2), day_of(START_DAY + 7)
    inside = [c for c in calls if START_DAY + 2 <= c.day <= START_DAY + 7]

    report = service.usage(first, last, "team,model")

    by_group: dict[tuple[str, str], list[SyntheticCall]] = defaultdict(list)
    for c in inside:
        by_group[(c.team or "", c.model)].append(c)
    assert {(g.team, g.model) for g in report.groups} == set(by_group)
    for g in report.groups:
        mine = by_group[(g.team or "", g.model or "")]
        f = g.figures
        assert f.requests == len(mine)
        assert f.errors == sum(c.outcome in ("failure", "error") for c in mine)
        assert f.refused == sum(c.outcome == "refused" for c in mine)
        assert f.prompt_tokens == sum(c.prompt for c in mine)
        assert f.cost_usd == pytest.approx(sum(c.cost_usd for c in mine), abs=1e-9)
        served = sorted(c.latency_ms for c in mine if c.outcome != "refused")
        if served:
            exact = served[math.ceil(0.95 * len(served)) - 1]
            assert f.latency_p95_ms is not None
            # a value check on the histogram, not a timing: within one bucket of exact
            buckets_apart = abs(bucket_of(f.latency_p95_ms) - bucket_of(exact))
            assert buckets_apart <= 1
    assert report.totals.requests == len(inside)
    days = {p.day for p in report.series}
    assert min(days) == first and max(days) == last
    assert sum(p.figures.requests for p in report.series) == len(inside)
    assert report.as_of.events_folded == len(calls)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=0.001, max_value=400_000, allow_nan=False), min_size=1, max_size=300
    ),
    q=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
)
def test_a_percentile_from_the_histogram_is_within_one_bucket_of_the_exact(
    values: list[float], q: float
) -> None:
    counts = [0] * BUCKETS
    for v in values:
        counts[bucket_of(v)] += 1
    ordered = sorted(values)
    exact = ordered[max(math.ceil(q * len(ordered)) - 1, 0)]

    estimate = quantile(counts, q)

    assert estimate is not None
    assert abs(bucket_of(estimate) - bucket_of(exact)) <= 1


def test_retention_and_erasure_leave_the_rollups_as_they_were(runtime: Any) -> None:
    calls = list(synthetic_calls(400, seed=5, start_day=START_DAY, days=4))
    ledger_with(runtime, calls)
    service = runtime.usage()
    service.refresher.lag_s = 0
    service.refresh()
    before = stored(runtime.db)

    runtime.subjects().erase(
        "synth-user", reason="ticket 1", requested_by="user:admin", actor="user:admin"
    )
    runtime.retention().sweep(content_days=None, events_days=1, actor="user:admin")
    service.refresh()

    assert stored(runtime.db) == before
    assert service.usage(day_of(START_DAY), day_of(START_DAY + 3)).totals.requests == 400


def test_a_day_outside_every_period_is_not_counted(runtime: Any) -> None:
    service = runtime.usage()
    assert service.usage(date(2020, 1, 1), date(2020, 1, 31)).totals.requests == 0
