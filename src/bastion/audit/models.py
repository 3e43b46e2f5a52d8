"""Ledger tables.

``audit_events`` is the chain: append-only, one chain per ``stream`` (a writer
process), each row's ``hash`` covering the previous hash and the row's canonical form.
``audit_content`` holds what may have to be erased (prompts, responses, identifiers);
the chain only holds keyed digests of it, so deleting content never breaks the chain.
``audit_checkpoints`` are signed statements "stream S had reached seq N with hash H"
(and, since anchoring, "whose Merkle tree had root R"); a ``seal`` checkpoint is the
one retention writes before it removes the rows up to it.
``audit_subject_keys`` hold each data subject's content key, wrapped (AES-GCM) by a
key that is not in the database: deleting the row makes the subject's content, in
this database and in its backups, unreadable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for 1e9+ rows.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditStream(Base):
    __tablename__ = "audit_streams"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    label: Mapped[str] = mapped_column(String(100))
    #: The chain format (``sha256`` for streams written before the keyed chain).
    chain: Mapped[str] = mapped_column(String(32), server_default=text("'sha256'"))


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("stream", "seq", name="uq_audit_events_stream_seq"),
        # Pages are read newest first by (ts_us, id); each filter column leads an index
        # in that order, so a filtered, time-bounded page is one index range scan that
        # stops after `limit` rows, however large the ledger.
        Index("ix_audit_events_ts", "ts_us", "id"),
        Index("ix_audit_events_actor_ts", "actor", "ts_us", "id"),
        Index("ix_audit_events_action_ts", "action", "ts_us", "id"),
        Index("ix_audit_events_resource_ts", "resource", "ts_us", "id"),
        Index("ix_audit_events_outcome_ts", "outcome", "ts_us", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    ts_us: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[str] = mapped_column(Text)
    content_digest: Mapped[str | None] = mapped_column(String(64))
    flags: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditContent(Base):
    __tablename__ = "audit_content"
    __table_args__ = (Index("ix_audit_content_stream_seq", "stream", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    field: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(200), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("stream", "seq", name="uq_audit_checkpoints_stream_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    ts_us: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    #: Merkle root of the stream's first ``seq`` rows; None on checkpoints signed before.
    root: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), server_default=text("'checkpoint'"))
    #: A seal's Merkle frontier of the rows it removes, for proofs of the rows after it.
    frontier: Mapped[str | None] = mapped_column(Text)


class AuditSubjectKey(Base):
    __tablename__ = "audit_subject_keys"

    #: The subject's keyed digest (:meth:`bastion.audit.events.ChainKey.digest_of`).
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditIdentity(Base):
    """The name behind a pseudonymised identifier in ``audit_events``.

    On keyed streams a person's identifier (``user:<name>``) is stored in ``actor`` and
    ``resource`` as ``erased:<keyed digest>`` from the moment it is written (the digest
    the chain already covers); this row lets display and lookup by name find it.
    Erasing the person deletes this row: their events are then unlinked without a
    write to the events table. ``since_us``: the name applies to events from then on,
    so a person who comes back after an erasure is not linked to their erased events.
    """

    __tablename__ = "audit_identities"

    #: The keyed digest (:meth:`bastion.audit.events.ChainKey.digest_of`) of ``name``.
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), index=True)
    since_us: Mapped[int] = mapped_column(BigInteger)
