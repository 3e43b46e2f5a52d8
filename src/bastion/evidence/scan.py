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
from operator import itemgetter
from typing import Any

from bastion.audit.repository import identities
from bastion.db import Database
from bastion.evidence.mapping import Selector

DAY_US = 86_400 * 1_000_000
MAX_ACTORS = 50

_COLUMNS = "id, stream, seq, ts_us, actor, action, outcome, flags, hash"


def _query(dialect: str, fragments: list[str]) -> str:
    """The batch query in the driver's own parameter style; each details fragment is
    tested by the database (``instr``/``strpos``), so the details text never crosses."""
    ph = "?" if dialect == "sqlite" else "%s"
    find = "instr(details, {}) > 0" if dialect == "sqlite" else "strpos(details, {}) > 0"
    tests = "".join(f", CASE WHEN {find.format(ph)} THEN 1 ELSE 0 END" for _ in fragments)
    # only constants and placeholders are formatted in: the values are bound parameters
    return (
        f"SELECT {_COLUMNS}{tests} FROM audit_events "  # noqa: S608
        f"WHERE ts_us >= {ph} AND ts_us < {ph} AND id > {ph} ORDER BY id LIMIT {ph}"
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
    if action in ("incident.open", "model.rollback"):
        return "incidents"
    if action in ("response.flag", "access.anomaly"):
        return "flags"
    return None


def _spans(streams: dict[str, StreamSpan], rows: Sequence[Any]) -> None:
    """Each stream's events, first and last seq and last hash, from a batch in id order:
    counted in C, the first and last rows found by a short walk from each end."""
    counts = Counter(map(itemgetter(1), rows))
    for name, n in counts.items():
        span = streams.get(name)
        if span is None:
            seq = next(row[2] for row in rows if row[1] == name)
            span = streams[name] = StreamSpan(name, first_seq=seq)
        span.events += n
    wanted = set(counts)
    for row in reversed(rows):
        if row[1] in wanted:
            wanted.discard(row[1])
            span = streams[row[1]]
            span.last_seq, span.last_hash = row[2], row[8]
            if not wanted:
                break


def scan_period(
    db: Database,
    selectors: Sequence[Selector],
    start: datetime,
    end: datetime,
    *,
    batch: int = 50_000,
) -> Scan:
    """One tally per selector. Selectors that ask the same question (two controls citing
    the same evidence) are tallied once, and the tally copied."""
    first: dict[str, int] = {}
    same = [first.setdefault(_question(s), i) for i, s in enumerate(selectors)]
    unique = [selectors[i] for i in sorted(set(same))]
    scan = _scan_period(db, unique, start, end, batch)
    position = {i: k for k, i in enumerate(sorted(set(same)))}
    tallies = [scan.tallies[position[i]] for i in same]
    scan.tallies = [
        SelectorTally(t.count, t.digest.copy(), Counter(t.actors)) if i != k else t
        for k, (i, t) in enumerate(zip(same, tallies, strict=True))
    ]
    return scan


def _question(selector: Selector) -> str:
    """What a selector asks of the ledger (its name and threshold aside)."""
    return json.dumps([selector.query(), selector.list_actors], sort_keys=True)


def _scan_period(
    db: Database, selectors: Sequence[Selector], start: datetime, end: datetime, batch: int
) -> Scan:
    start_us, end_us = to_us(start), to_us(end)
    tallies = [SelectorTally() for _ in selectors]
    fragments = sorted({s.details_contains for s in selectors if s.details_contains is not None})
    column_of = {f: 9 + i for i, f in enumerate(fragments)}
    # per selector: the result column of its details test (None: no test)
    detail_col = [
        column_of[s.details_contains] if s.details_contains is not None else None for s in selectors
    ]
    listing = [s.list_actors for s in selectors]
    # People are stored as their digests: listed by name from the time the name applies
    # (a person who came back after an erasure is not linked to their erased events).
    people = identities(db) if any(listing) else {}

    def shown(actor: str, ts_us: int) -> str:
        found = people.get(actor)
        return found[0] if found is not None and ts_us >= found[1] else actor

    # per distinct (action, outcome, flags): its index, the selectors it hits with no
    # further test (counted per combination, digested per row), and the others
    cache: dict[tuple[str, str, str], tuple[int, tuple[Any, ...], tuple[int, ...]]] = {}
    combos: list[tuple[str, str | None, tuple[int, ...]]] = []
    combo_rows: list[int] = []
    streams: dict[str, StreamSpan] = {}
    per_day: Counter[tuple[int, str]] = Counter()
    marks_per_day: Counter[tuple[int, str]] = Counter()
    day = -1
    today: list[int] = []  # rows per combination on ``day``

    def close_day() -> None:
        for k, n in enumerate(today):
            if n:
                family, mark, _ = combos[k]
                per_day[(day, family)] += n
                if mark is not None:
                    marks_per_day[(day, mark)] += n

    total = 0
    after = 0
    sql = _query(db.engine.dialect.name, fragments)
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        while True:
            cursor.execute(sql, (*fragments, start_us, end_us, after, batch))
            rows = cursor.fetchall()
            if not rows:
                break
            after = rows[-1][0]
            total += len(rows)
            _spans(streams, rows)
            for row in rows:
                key = (row[5], row[6], row[7])
                known = cache.get(key)
                if known is None:
                    action, outcome, flags = key
                    parsed = tuple(json.loads(flags))
                    # a details test is decided per row below: pass it here
                    hits = tuple(
                        i
                        for i, s in enumerate(selectors)
                        if s.matches(action, outcome, parsed, s.details_contains or "")
                    )
                    plain = tuple(i for i in hits if detail_col[i] is None and not listing[i])
                    known = cache[key] = (
                        len(combos),
                        tuple(tallies[i].digest.update for i in plain),
                        tuple(i for i in hits if i not in plain),
                    )
                    combos.append((action.partition(".")[0], _mark(action), plain))
                    combo_rows.append(0)
                    today.append(0)
                k, updates, others = known
                row_day = row[3] // DAY_US
                if row_day != day:
                    close_day()
                    day = row_day
                    today = [0] * len(combos)
                today[k] += 1
                if not updates and not others:
                    continue
                combo_rows[k] += 1
                line = f"{row[1]}:{row[2]}:{row[8]}\n".encode()
                for update in updates:
                    update(line)
                for i in others:
                    col = detail_col[i]
                    if col is not None and not row[col]:
                        continue
                    tally = tallies[i]
                    tally.count += 1
                    tally.digest.update(line)
                    if listing[i]:
                        tally.actors[shown(row[4], row[3])] += 1
        raw.rollback()
    finally:
        raw.close()
    close_day()
    for (_family, _mark_name, plain), n in zip(combos, combo_rows, strict=True):
        for i in plain:
            tallies[i].count += n
    names: dict[int, str] = {}

    def name(day: int) -> str:
        if day not in names:
            names[day] = datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()
        return names[day]

    days: dict[str, Counter[str]] = defaultdict(Counter)
    for (day, family), n in per_day.items():
        days[name(day)][family] = n
    marks: dict[str, Counter[str]] = defaultdict(Counter)
    for (day, mark), n in marks_per_day.items():
        marks[name(day)][mark] = n
    return Scan(total, tallies, streams, dict(days), dict(marks))
