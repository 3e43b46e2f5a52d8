"""The ledger's part of a subject's data: events naming them, and their stored content.

Erasing makes the person's data unreadable and unlinkable without rewriting the pages
their rows live on (``docs/audit.md``, erasure):

- content: the subject's content key is shredded (crypto-shredding): every copy of
  their sealed content, backups included, is unreadable from then on. The sealed rows
  are deleted afterwards, in bounded batches, as the erasure's physical cleanup
  (:func:`purge_unreadable`); content stored before encryption (plaintext, keyed by
  the user's name) is deleted at once.
- events: keyed streams store a person's identifier as ``erased:<keyed digest>`` from
  the start, with the name in ``audit_identities`` (privacy by design): erasure deletes
  that one row. Rows written before that hold the identifier itself: on keyed streams
  it is replaced by ``erased:<keyed digest>``, which the chain already covered
  instead of the identifier, so the chain still verifies. Streams written before the
  keyed chain chained the identifier itself: their events keep it (counted as
  ``legacy_events_kept``), since replacing it would break their chain.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

from bastion.audit.events import CHAIN_HMAC
from bastion.audit.models import AuditContent, AuditEvent, AuditIdentity, AuditStream
from bastion.audit.repository import EventView, names_of, naming
from bastion.db import Database
from bastion.subjects.registry import (
    Erased,
    SubjectContext,
    register_eraser,
    register_exporter,
)

#: Content rows deleted per transaction by the cleanup: short transactions, so the
#: ledger's writer never waits long for SQLite's write lock.
PURGE_BATCH = 2_000


def export_events(ctx: SubjectContext) -> list[dict[str, Any]]:
    """The events naming the person (by name, or by digest while their name is held);
    once they are erased, none."""
    with ctx.db.session() as session:
        conn = session.connection()
        query = (
            select(AuditEvent)
            .where(
                or_(
                    naming(conn, AuditEvent.actor, ctx.actor),
                    naming(conn, AuditEvent.resource, ctx.actor),
                )
            )
            .order_by(AuditEvent.ts_us, AuditEvent.id)
        )
        rows = list(session.scalars(query))
        names = names_of(conn, rows)
        return [EventView.of(row, names).to_dict() for row in rows]


def export_content(ctx: SubjectContext) -> list[dict[str, Any]]:
    """The person's stored content, decrypted. Once their key is shredded, rows sealed
    under it are no one's readable data and are not listed (the cleanup deletes them)."""
    digest = ctx.content_subject
    key = ctx.vault.key_for(digest, create=False)
    subjects = [digest, ctx.user] if key is not None else [ctx.user]
    query = select(AuditContent).where(AuditContent.subject.in_(subjects)).order_by(AuditContent.id)
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


def _count(conn: Connection, *conditions: Any) -> int:
    query = select(func.count()).select_from(AuditEvent).where(*conditions)
    return int(conn.execute(query).scalar_one())


def erase_ledger(ctx: SubjectContext) -> Erased:
    digest = ctx.content_subject
    erased = ctx.erased_actor
    with ctx.db.engine.begin() as conn:
        forgotten = conn.execute(
            delete(AuditIdentity).where(
                or_(
                    AuditIdentity.digest == ctx.chain_key.digest_of(ctx.actor),
                    AuditIdentity.name == ctx.actor,
                )
            )
        ).rowcount
        plaintext = conn.execute(  # stored before encryption: not covered by the key
            delete(AuditContent).where(AuditContent.subject == ctx.user)
        ).rowcount
        sealed = conn.execute(
            select(func.count(), func.max(AuditContent.id)).where(AuditContent.subject == digest)
        ).one()
        keyed = select(AuditStream.id).where(AuditStream.chain == CHAIN_HMAC)
        changed = 0
        for column in (AuditEvent.actor, AuditEvent.resource):
            # Rows written before identities were held apart (zero once they age out).
            result = conn.execute(
                update(AuditEvent)
                .where(column == ctx.actor, AuditEvent.stream.in_(keyed))
                .values({column.key: erased})
            )
            changed += int(result.rowcount or 0)
        legacy = _count(  # only streams before the keyed chain can still hold the name
            conn, or_(AuditEvent.actor == ctx.actor, AuditEvent.resource == ctx.actor)
        )
        unlinked = _count(conn, AuditEvent.actor == erased) + _count(
            conn, AuditEvent.resource == erased
        )
    keys = ctx.vault.shred(digest)
    count, upto = int(sealed[0]), sealed[1]
    counts = {
        "content_rows": count + int(plaintext or 0),
        "content_keys": keys,
        "identities_forgotten": int(forgotten or 0),
        "events_pseudonymised": unlinked,
        "events_rewritten": changed,
        "legacy_events_kept": legacy,
    }
    if not count:
        return Erased(counts)
    return Erased(counts, lambda: {"content_rows": purge_unreadable(ctx.db, digest, int(upto))})


def purge_unreadable(db: Database, digest: str, upto_id: int, batch: int = PURGE_BATCH) -> int:
    """Delete ``digest``'s content rows up to ``upto_id`` (those sealed under the key an
    erasure shredded; a person who came back has a new key and later rows), ``batch``
    rows a transaction. Returns how many were deleted."""
    deleted = 0
    while True:
        with db.engine.begin() as conn:
            ids = list(
                conn.execute(
                    select(AuditContent.id)
                    .where(AuditContent.subject == digest, AuditContent.id <= upto_id)
                    .order_by(AuditContent.id)
                    .limit(batch)
                ).scalars()
            )
            if not ids:
                return deleted
            conn.execute(delete(AuditContent).where(AuditContent.id.in_(ids)))
        deleted += len(ids)


register_exporter("ledger_events", export_events)
register_exporter("stored_content", export_content)
register_eraser("ledger", erase_ledger)
