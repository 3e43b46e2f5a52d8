"""One pass over a period of the ledger: everything a report counts, digests and charts.

A report over a quarter of a busy gateway reads a million rows, so the ledger is read
once, oldest first, as plain tuples; each distinct (action, outcome, flags) is matched
against the framework's selectors once and the answer cached. For each selector the
pass keeps the count and a digest of the events it cites: ``sha256`` over
``stream:seq:hash`` lines in ledger order. Since each row's hash covers the rows before
it in its stream, the digest pins the cited evidence and its history; ``bastion report
verify`` recomputes it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import text

from bastion.db import Database
from bastion.evidence.mapping import Selector

DAY_US = 86_400 * 1_000_000
MAX_ACTORS = 50

_SQL = text(
    "SELECT id, stream, seq, ts_us, actor, action, outcome, flags, details, hash "
    "FROM audit_events WHERE ts_us >= :start AND ts_us < :end AND id > :after "
    "ORDER BY id LIMIT :limit"
)


@dataclass
class SelectorTally:
    count: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    actors: Counter[str] = field(default_factory=Counter)


@dataclass
class StreamSpan:
    stream: str
    events: int = 0
    first_seq: int = 0
    last_seq: int = 0
    last_hash: str = ""


@dataclass
class Scan:
    events: int
    tallies: list[SelectorTally]
    streams: dict[str, StreamSpan]
    #: day (ISO date) -> action family (``llm``, ``model``…) -> events
    days: dict[str, Counter[str]]
    #: day -> approvals / incidents / flagged responses
    marks: dict[str, Counter[str]]


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def _mark(action: str) -> str | None:
    if action == "model.promotion.approve":
        return "approvals"
    if action.startswith("incident.open") or action in ("model.rollback",):
        return "incidents"
    if action == "response.flag" or action == "access.anomaly":
        return "flags"
    return None


def scan_period(
    db: Database,
    selectors: Sequence[Selector],
    start: datetime,
    end: datetime,
    *,
    batch: int = 50_000,
) -> Scan:
    start_us, end_us = to_us(start), to_us(end)
    tallies = [SelectorTally() for _ in selectors]
    cache: dict[tuple[str, str, str], tuple[int, ...]] = {}
    needs_details = [s.details_contains is not None for s in selectors]
    listing = [s.list_actors for s in selectors]
    streams: dict[str, StreamSpan] = {}
    days: dict[str, Counter[str]] = defaultdict(Counter)
    marks: dict[str, Counter[str]] = defaultdict(Counter)
    day_names: dict[int, str] = {}
    total = 0
    after = 0
    with db.engine.connect() as conn:
        while True:
            rows = conn.execute(
                _SQL, {"start": start_us, "end": end_us, "after": after, "limit": batch}
            ).all()
            if not rows:
                break
            after = rows[-1][0]
            for _id, stream, seq, ts_us, actor, action, outcome, flags, details, row_hash in rows:
                total += 1
                span = streams.get(stream)
                if span is None:
                    span = streams[stream] = StreamSpan(stream, first_seq=seq)
                span.events += 1
                span.last_seq = seq
                span.last_hash = row_hash
                day_no = ts_us // DAY_US
                day = day_names.get(day_no)
                if day is None:
                    day = day_names[day_no] = (
                        datetime.fromtimestamp(day_no * 86_400, UTC).date().isoformat()
                    )
                days[day][action.partition(".")[0]] += 1
                mark = _mark(action)
                if mark:
                    marks[day][mark] += 1
                key = (action, outcome, flags)
                hits = cache.get(key)
                if hits is None:
                    parsed = tuple(json.loads(flags))
                    # selectors that look into details are decided per row below
                    hits = cache[key] = tuple(
                        i
                        for i, s in enumerate(selectors)
                        if s.matches(action, outcome, parsed, s.details_contains or "")
                    )
                if not hits:
                    continue
                line = None
                for i in hits:
                    if needs_details[i] and selectors[i].details_contains not in details:
                        continue
                    if line is None:
                        line = f"{stream}:{seq}:{row_hash}\n".encode()
                    tally = tallies[i]
                    tally.count += 1
                    tally.digest.update(line)
                    if listing[i]:
                        tally.actors[actor] += 1
    return Scan(total, tallies, streams, dict(days), dict(marks))
