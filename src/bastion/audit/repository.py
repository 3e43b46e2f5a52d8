"""Reading the ledger: filtered pages with an opaque cursor, and streamed export.

A person's identifier (``user:<name>``) is stored in keyed streams' rows as
``erased:<keyed digest>``, with the name in ``audit_identities`` (see
:class:`bastion.audit.models.AuditIdentity`): pages show the name while that row
exists, and a filter by the name finds both those rows and rows written before, which
hold the name itself. Once the person is erased, their rows show ``erased:<digest>``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Select, and_, delete, func, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from bastion.audit.events import ERASED
from bastion.audit.models import AuditCheckpoint, AuditContent, AuditEvent, AuditIdentity
from bastion.db import Database
from bastion.errors import InvalidInput


class BadCursor(InvalidInput):
    code = "invalid_cursor"


#: How the ledger names a person: identifiers with this prefix are stored as digests.
PERSONAL = "user:"

#: digest -> (name, since_us) of the pseudonymised identifiers a set of rows holds.
Names = dict[str, tuple[str, int]]


def is_personal(value: str) -> bool:
    return value.startswith(PERSONAL)


def insert_identities(conn: Connection, rows: list[dict[str, object]]) -> None:
    """Write names of pseudonymised identifiers; one already there is kept as it is."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(AuditIdentity).on_conflict_do_nothing(), rows)


def names_of(conn: Connection, rows: list[AuditEvent]) -> Names:
    digests = {
        value[len(ERASED) :]
        for row in rows
        for value in (row.actor, row.resource)
        if value.startswith(ERASED)
    }
    if not digests:
        return {}
    found = conn.execute(
        select(AuditIdentity.digest, AuditIdentity.name, AuditIdentity.since_us).where(
            AuditIdentity.digest.in_(sorted(digests))
        )
    )
    return {digest: (name, since) for digest, name, since in found}


def identities(db: Database) -> Names:
    """Every pseudonymised identifier whose person is not erased, as stored
    (``erased:<digest>``) -> (name, since_us): for listings that tally events by actor.
    A person who came back after an erasure shares their digest with their erased
    events; only events from ``since_us`` on are theirs to show."""
    with db.engine.connect() as conn:
        found = conn.execute(
            select(AuditIdentity.digest, AuditIdentity.name, AuditIdentity.since_us)
        )
        return {ERASED + digest: (name, since) for digest, name, since in found}


def _shown(value: str, ts_us: int, names: Names) -> str:
    if not value.startswith(ERASED):
        return value
    found = names.get(value[len(ERASED) :])
    return found[0] if found is not None and ts_us >= found[1] else value


def naming(conn: Connection, column: Any, value: str) -> ColumnElement[bool]:
    """Rows whose ``column`` names ``value``: as written before, or as its digest from
    the time its name was recorded (an erased person's rows no longer match)."""
    if not is_personal(value):
        return column == value  # type: ignore[no-any-return]
    found = conn.execute(
        select(AuditIdentity.digest, AuditIdentity.since_us).where(AuditIdentity.name == value)
    ).all()
    if not found:
        return column == value  # type: ignore[no-any-return]
    return or_(
        column == value,
        *(and_(column == ERASED + digest, AuditEvent.ts_us >= since) for digest, since in found),
    )


@dataclass(frozen=True)
class EventFilter:
    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    outcome: str | None = None
    stream: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Any of these actions (the gateway's calls: ``llm.chat``, ``llm.embeddings``).
    actions: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EventView:
    id: int
    stream: str
    seq: int
    time: str
    actor: str
    action: str
    resource: str
    outcome: str
    request_id: str | None
    details: dict[str, Any]
    flags: list[str]
    content_digest: str | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: AuditEvent, names: Names | None = None) -> EventView:
        """The row as shown: a pseudonymised identifier by its name, given ``names``
        (:func:`names_of`) that holds it."""
        names = names or {}
        return cls(
            id=row.id,
            stream=row.stream,
            seq=row.seq,
            time=datetime.fromtimestamp(row.ts_us / 1_000_000, UTC).isoformat(),
            actor=_shown(row.actor, row.ts_us, names),
            action=row.action,
            resource=_shown(row.resource, row.ts_us, names),
            outcome=row.outcome,
            request_id=row.request_id,
            details=json.loads(row.details),
            flags=json.loads(row.flags),
            content_digest=row.content_digest,
            prev_hash=row.prev_hash,
            hash=row.hash,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Page:
    events: list[EventView]
    next_cursor: str | None


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def encode_cursor(ts_us: int, last_id: int, order: str) -> str:
    raw = f"{order}:{ts_us}:{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        cursor_order, ts_us, last = raw.split(":")
        values = int(ts_us), int(last)
        if cursor_order != order or not all(0 <= v < 2**63 for v in values):
            raise ValueError("not a cursor of this order")
        return values
    except (ValueError, UnicodeDecodeError):
        raise BadCursor(
            "the cursor is not valid: pass the next_cursor of the previous page unchanged "
            "(with the same order)"
        ) from None


class EventRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _filtered(self, f: EventFilter) -> Select[AuditEvent]:
        query = select(AuditEvent)
        for column, value in ((AuditEvent.actor, f.actor), (AuditEvent.resource, f.resource)):
            if value is not None and is_personal(value):
                with self.db.engine.connect() as conn:  # the name's digest, if held apart
                    query = query.where(naming(conn, column, value))
            elif value is not None:
                query = query.where(column == value)
        for column, value in (
            (AuditEvent.action, f.action),
            (AuditEvent.outcome, f.outcome),
            (AuditEvent.stream, f.stream),
        ):
            if value is not None:
                query = query.where(column == value)
        if f.actions is not None:
            query = query.where(AuditEvent.action.in_(f.actions))
        if f.since is not None:
            query = query.where(AuditEvent.ts_us >= _to_us(f.since))
        if f.until is not None:
            query = query.where(AuditEvent.ts_us < _to_us(f.until))
        return query

    def page(
        self,
        f: EventFilter,
        *,
        limit: int = 100,
        cursor: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> Page:
        """A page in time order (ties by id), continued by keyset on (ts_us, id)."""
        query = self._filtered(f)
        key = tuple_(AuditEvent.ts_us, AuditEvent.id)
        if cursor is not None:
            after = tuple_(*decode_cursor(cursor, order))
            query = query.where(key < after if order == "desc" else key > after)
        if order == "desc":
            query = query.order_by(AuditEvent.ts_us.desc(), AuditEvent.id.desc())
        else:
            query = query.order_by(AuditEvent.ts_us.asc(), AuditEvent.id.asc())
        with self.db.session() as session:
            rows = list(session.scalars(query.limit(limit + 1)))
            more = len(rows) > limit
            rows = rows[:limit]
            names = names_of(session.connection(), rows)
        next_cursor = encode_cursor(rows[-1].ts_us, rows[-1].id, order) if more and rows else None
        return Page([EventView.of(r, names) for r in rows], next_cursor)

    def stream_all(self, f: EventFilter, batch: int = 5_000) -> Iterator[EventView]:
        """Every matching event, oldest first, in bounded memory."""
        last = 0
        while True:
            query = (
                self._filtered(f).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(batch)
            )
            with self.db.session() as session:
                rows = list(session.scalars(query))
                names = names_of(session.connection(), rows)
            if not rows:
                return
            for row in rows:
                yield EventView.of(row, names)
            last = rows[-1].id

    def by_id(self, event_id: int) -> EventView | None:
        with self.db.session() as session:
            row = session.get(AuditEvent, event_id)
            if row is None:
                return None
            return EventView.of(row, names_of(session.connection(), [row]))

    def cursor_at(self, event_id: int, order: Literal["asc", "desc"] = "desc") -> str | None:
        """The cursor that continues a page after event ``event_id``."""
        with self.db.session() as session:
            ts_us = session.scalar(select(AuditEvent.ts_us).where(AuditEvent.id == event_id))
        return None if ts_us is None else encode_cursor(int(ts_us), event_id, order)

    def content_rows(self, stream: str, seq: int) -> list[AuditContent]:
        with self.db.session() as session:
            rows = session.scalars(
                select(AuditContent)
                .where(AuditContent.stream == stream, AuditContent.seq == seq)
                .order_by(AuditContent.id)
            )
            return list(rows)

    def has_content(self, stream: str, seq: int) -> bool:
        with self.db.session() as session:
            found = session.scalar(
                select(AuditContent.id)
                .where(AuditContent.stream == stream, AuditContent.seq == seq)
                .limit(1)
            )
            return found is not None

    def latest_checkpoints(self) -> list[AuditCheckpoint]:
        """Each stream's newest signed checkpoint."""
        newest = (
            select(func.max(AuditCheckpoint.id)).group_by(AuditCheckpoint.stream).scalar_subquery()
        )
        with self.db.session() as session:
            rows = session.scalars(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.id.in_(newest))
                .order_by(AuditCheckpoint.ts_us.desc())
            )
            return list(rows)

    def count(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)

    def content_for(self, stream: str, seq: int) -> dict[str, str]:
        with self.db.session() as session:
            rows = session.scalars(
                select(AuditContent).where(AuditContent.stream == stream, AuditContent.seq == seq)
            )
            return {row.field: row.body for row in rows}

    def erase_subject(self, subject: str) -> int:
        with self.db.session() as session:
            result = session.execute(delete(AuditContent).where(AuditContent.subject == subject))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def purge_content_before(self, cutoff: datetime) -> int:
        with self.db.session() as session:
            result = session.execute(delete(AuditContent).where(AuditContent.created_at < cutoff))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
