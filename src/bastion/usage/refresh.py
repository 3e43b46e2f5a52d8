"""Fold new gateway ledger events into the daily rollups, a bounded batch at a time.

Each batch is one transaction that (1) moves the watermark from the id it read to the
batch's last id — a compare-and-set, so of two refreshers (two server processes, a
server and ``bastion usage refresh``) that read the same watermark only one goes on,
the other finds the row changed and reads again — and (2) adds the batch's sums to the
rollup rows with ``INSERT … ON CONFLICT DO UPDATE`` (SQLite and PostgreSQL alike). A
batch that fails leaves both as they were, so a refresh run twice counts nothing twice.

Event ids are taken before their transaction commits, so on PostgreSQL an event with a
lower id can become visible after one with a higher id. Events younger than ``lag_s``
are left for the next run: a ledger group commit takes milliseconds, the lag seconds.

Retention removes old events (those the watermark passed stay counted); erasure deletes
content, never the fields read here (team, model, tokens, cost, latencies, outcome).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from bastion.audit.models import AuditEvent
from bastion.db import Database
from bastion.db.base import utcnow
from bastion.usage.histogram import BOUNDS_MS, BUCKETS, empty
from bastion.usage.models import (
    LATENCY_COLUMNS,
    SUM_COLUMNS,
    TTFT_COLUMNS,
    usage_daily,
    usage_watermarks,
)

log = logging.getLogger("bastion.usage")

#: The watermark row of the gateway rollups.
WATERMARK = "gateway"
#: Ledger actions of governed gateway calls (``Call.action``: ``llm.<endpoint>``).
ACTION_PREFIX = "llm."
#: Outcomes counted as errors: the call failed upstream or in Bastion. Refusals (a
#: policy said no) and cancellations (the client left) are not errors.
ERROR_OUTCOMES = ("failure", "error")
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Progress:
    """Where a refresh stands: events folded so far, and the ids left to read."""

    folded: int
    last_id: int
    max_id: int


def _bucket_expr(value: sa.ColumnElement[Any], lo: int = 0, hi: int = BUCKETS - 1) -> Any:
    """The bucket of ``value`` as a nested CASE, a binary search over the bounds (six
    comparisons a row rather than forty)."""
    if lo == hi:
        return sa.literal(lo)
    mid = (lo + hi) // 2
    return sa.case(
        (value <= BOUNDS_MS[mid], _bucket_expr(value, lo, mid)),
        else_=_bucket_expr(value, mid + 1, hi),
    )


def batch_query(db: Database) -> sa.Select[Any]:
    """The sums of the gateway events with ids in ``(:last, :upper]``, grouped by day,
    team, model, outcome and latency buckets. Each event's details are read once, in a
    materialized CTE (inlined, SQLite would parse the JSON again in every CASE)."""
    if db.is_sqlite:
        details: Any = sa.type_coerce(AuditEvent.details, sa.JSON)
    else:
        details = sa.cast(AuditEvent.details, postgresql.JSONB)
    events = (
        sa.select(
            (AuditEvent.ts_us // DAY_US).label("day"),
            sa.func.coalesce(details["team"].as_string(), "").label("team"),
            sa.func.coalesce(
                details["served_model"].as_string(),
                details["requested_model"].as_string(),
                "unknown",
            ).label("model"),
            AuditEvent.outcome.label("outcome"),
            sa.func.coalesce(details["latency_ms"].as_float(), 0.0).label("latency"),
            details["ttft_ms"].as_float().label("ttft"),
            sa.func.coalesce(details[("tokens", "prompt")].as_integer(), 0).label("prompt"),
            sa.func.coalesce(details[("tokens", "completion")].as_integer(), 0).label("completion"),
            sa.func.coalesce(details["cost_usd"].as_float(), 0.0).label("cost"),
        )
        .where(
            AuditEvent.id > sa.bindparam("last", type_=sa.BigInteger),
            AuditEvent.id <= sa.bindparam("upper", type_=sa.BigInteger),
            AuditEvent.action.startswith(ACTION_PREFIX, autoescape=True),
        )
        .cte("events")
        .prefix_with("MATERIALIZED")
    )
    e = events.c
    latency = _bucket_expr(e.latency)
    ttft = sa.case((e.ttft.is_(None), None), else_=_bucket_expr(e.ttft))
    keys = (e.day, e.team, e.model, e.outcome, latency, ttft)
    return sa.select(
        *keys,
        sa.func.count(),
        sa.func.sum(e.prompt),
        sa.func.sum(e.completion),
        sa.func.sum(sa.cast(sa.func.round(e.cost * 1e9), sa.BigInteger)),
    ).group_by(*keys)


class Refresher:
    """Folds ledger events past the watermark into ``usage_daily``."""

    def __init__(self, db: Database, *, batch: int = 50_000, lag_s: float = 5.0) -> None:
        if batch < 1:
            raise ValueError("a refresh batch holds at least one event")
        self.db = db
        self.batch = batch
        self.lag_s = lag_s
        self._query = batch_query(db)
        insert = sqlite.insert if db.is_sqlite else postgresql.insert
        stmt = insert(usage_daily)
        self._upsert = stmt.on_conflict_do_update(
            index_elements=["day", "team", "model", "outcome"],
            set_={c: usage_daily.c[c] + stmt.excluded[c] for c in SUM_COLUMNS},
        )

    # --- reading where things stand -------------------------------------------------------

    def progress(self) -> Progress:
        with self.db.engine.connect() as conn:
            last, folded = self._watermark(conn)
            top = conn.execute(sa.select(sa.func.max(AuditEvent.id))).scalar()
        return Progress(folded=folded, last_id=last, max_id=int(top or 0))

    def _watermark(self, conn: Connection) -> tuple[int, int]:
        row = conn.execute(
            sa.select(usage_watermarks.c.last_id, usage_watermarks.c.folded).where(
                usage_watermarks.c.name == WATERMARK
            )
        ).first()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def _ensure_watermark(self) -> None:
        insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(usage_watermarks)
                .values(name=WATERMARK, last_id=0, folded=0, updated_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )

    # --- folding ---------------------------------------------------------------------------

    def refresh(self, on_batch: Callable[[Progress], None] | None = None) -> int:
        """Fold every event old enough; returns how many events were folded."""
        total = 0
        for progress, folded in self.batches():
            total += folded
            if on_batch is not None:
                on_batch(progress)
        return total

    def batches(self) -> Iterator[tuple[Progress, int]]:
        """Fold batch after batch until nothing old enough is left; yields after each
        batch the progress and the gateway events it folded."""
        self._ensure_watermark()
        while True:
            step = self.fold_once()
            if step is None:
                continue  # another refresher moved the watermark: read it again
            progress, folded, moved = step
            if not moved:
                return
            yield progress, folded
            if progress.last_id >= progress.max_id:
                return

    def fold_once(self) -> tuple[Progress, int, bool] | None:
        """One batch: (progress, gateway events folded, whether the watermark moved);
        None when another refresher moved the watermark first."""
        cutoff_us = int((time.time() - self.lag_s) * 1_000_000)
        with self.db.engine.connect() as conn:
            last, folded = self._watermark(conn)
            top = int(conn.execute(sa.select(sa.func.max(AuditEvent.id))).scalar() or 0)
            upper = min(top, last + self.batch)
            if upper > last:
                young = conn.execute(
                    sa.select(sa.func.min(AuditEvent.id)).where(
                        AuditEvent.id > last, AuditEvent.id <= upper, AuditEvent.ts_us > cutoff_us
                    )
                ).scalar()
                if young is not None:
                    upper = int(young) - 1
        if upper <= last:  # nothing old enough to fold
            return Progress(folded, last, top), 0, False
        try:
            count = self._fold(last, upper)
        except OperationalError as exc:  # SQLite busy past its timeout: try next time
            log.warning("a usage refresh batch could not take the database: %s", exc.orig)
            return Progress(folded, last, top), 0, False
        if count is None:
            return None
        return Progress(folded + count, upper, top), count, True

    def _fold(self, last: int, upper: int) -> int | None:
        try:
            return self._fold_raced(last, upper)
        except _Raced:
            return None

    def _fold_raced(self, last: int, upper: int) -> int:
        with self.db.engine.begin() as conn:
            moved = conn.execute(
                sa.update(usage_watermarks)
                .where(usage_watermarks.c.name == WATERMARK, usage_watermarks.c.last_id == last)
                .values(last_id=upper, updated_at=utcnow())
            )
            if moved.rowcount != 1:
                raise _Raced  # rolls back what this transaction did (nothing yet)
            rows: dict[tuple[int, str, str, str], dict[str, Any]] = {}
            count = 0
            grouped = conn.execute(self._query, {"last": last, "upper": upper})
            for day, team, model, outcome, lat, ttft, n, prompt, completion, cost in grouped:
                row = rows.get((day, team, model, outcome))
                if row is None:
                    row = rows[(day, team, model, outcome)] = {
                        "day": int(day),
                        "team": team,
                        "model": model,
                        "outcome": outcome,
                        "requests": 0,
                        "errors": 0,
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "cost_nano": 0,
                        "latency": empty(),
                        "ttft": empty(),
                    }
                n = int(n)
                count += n
                row["requests"] += n
                if outcome in ERROR_OUTCOMES:
                    row["errors"] += n
                row["prompt_tokens"] += int(prompt or 0)
                row["completion_tokens"] += int(completion or 0)
                row["cost_nano"] += int(cost or 0)
                if outcome != "refused":  # a refusal's microseconds say nothing of serving
                    row["latency"][int(lat)] += n
                if ttft is not None:
                    row["ttft"][int(ttft)] += n
            if rows:
                conn.execute(self._upsert, [_flat(r) for r in rows.values()])
            conn.execute(
                sa.update(usage_watermarks)
                .where(usage_watermarks.c.name == WATERMARK)
                .values(folded=usage_watermarks.c.folded + count)
            )
        return count


class _Raced(Exception):
    """Another refresher moved the watermark between our read and our update."""


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("latency", "ttft")}
    out.update(zip(LATENCY_COLUMNS, row["latency"], strict=True))
    out.update(zip(TTFT_COLUMNS, row["ttft"], strict=True))
    return out
