"""The ledger's part of a subject's data: events naming them, and their stored content.

Erasing: content rows deleted and the subject's content key shredded (copies of the
content anywhere become unreadable); on keyed streams the identifier in ``actor`` and
``resource`` is replaced by ``erased:<keyed digest>``, which the chain already covered
instead of the identifier, so the chain still verifies. Streams written before the
keyed chain chained the identifier itself: their events keep it (counted as
``legacy_events_kept``), since replacing it would break their chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

from bastion.audit.events import CHAIN_HMAC
from bastion.audit.models import AuditContent, AuditEvent, AuditStream
from bastion.audit.repository import EventView
from bastion.subjects.registry import SubjectContext, register_eraser, register_exporter


def _names(ctx: SubjectContext) -> list[str]:
    return [ctx.actor, ctx.erased_actor]


def export_events(ctx: SubjectContext) -> list[dict[str, Any]]:
    names = _names(ctx)
    query = (
        select(AuditEvent)
        .where(or_(AuditEvent.actor.in_(names), AuditEvent.resource.in_(names)))
        .order_by(AuditEvent.ts_us, AuditEvent.id)
    )
    with ctx.db.session() as session:
        return [EventView.of(row).to_dict() for row in session.scalars(query)]


def export_content(ctx: SubjectContext) -> list[dict[str, Any]]:
    digest = ctx.content_subject
    key = ctx.vault.key_for(digest, create=False)
    query = (
        select(AuditContent)
        .where(AuditContent.subject.in_([digest, ctx.user]))
        .order_by(AuditContent.id)
    )
    out = []
    with ctx.db.session() as session:
        for row in session.scalars(query):
            body = ctx.vault.open_body(key, row.stream, row.seq, row.field, row.body)
            out.append(
                {
                    "stream": row.stream,
                    "seq": row.seq,
                    "field": row.field,
                    "stored_at": row.created_at.isoformat(),
                    "body": body,
                    "readable": body is not None,
                }
            )
    return out


#: SQLite page cache (KiB) for an erasure's transaction: the subject's rows are spread
#: over the whole ledger, and the default 2 MB cache spills the pages the updates dirty
#: to the WAL mid-statement and reads them back. Measured at 26,000 events of 1 M (two
#: pairs, load 5-8): the statements' CPU 0.75 -> 0.53 s, the commit's CPU up as much
#: (the same pages are written, once, at commit), wall 5.3-6.4 -> 4.1-4.3 s. The time
#: left is the write of those pages: about a quarter of the ledger's pages hold a row
#: of the subject.
ERASE_CACHE_KIB = 262_144


@contextmanager
def _large_cache(conn: Connection) -> Iterator[None]:
    if conn.dialect.name != "sqlite":
        yield
        return
    # on the driver's connection: SQLAlchemy's transaction is not begun by a pragma
    raw: Any = conn.connection.dbapi_connection
    before = raw.execute("PRAGMA cache_size").fetchone()[0]
    raw.execute(f"PRAGMA cache_size = -{ERASE_CACHE_KIB}")
    try:
        yield
    finally:  # the connection goes back to the pool: give it its own cache back
        raw.execute(f"PRAGMA cache_size = {int(before)}")


def erase_ledger(ctx: SubjectContext) -> dict[str, int]:
    digest = ctx.content_subject
    with ctx.db.engine.connect() as conn, _large_cache(conn), conn.begin():
        content = conn.execute(
            delete(AuditContent).where(AuditContent.subject.in_([digest, ctx.user]))
        ).rowcount
        keyed = select(AuditStream.id).where(AuditStream.chain == CHAIN_HMAC)
        changed = 0
        for column in (AuditEvent.actor, AuditEvent.resource):
            result = conn.execute(
                update(AuditEvent)
                .where(column == ctx.actor, AuditEvent.stream.in_(keyed))
                .values({column.key: ctx.erased_actor})
            )
            changed += int(result.rowcount or 0)
        legacy = conn.execute(  # counted, not fetched: only streams before the keyed chain
            select(func.count())
            .select_from(AuditEvent)
            .where(or_(AuditEvent.actor == ctx.actor, AuditEvent.resource == ctx.actor))
        ).scalar_one()
    keys = ctx.vault.shred(digest)
    return {
        "content_rows": int(content or 0),
        "content_keys": keys,
        "events_pseudonymised": changed,
        "legacy_events_kept": int(legacy),
    }


register_exporter("ledger_events", export_events)
register_exporter("stored_content", export_content)
register_eraser("ledger", erase_ledger)
