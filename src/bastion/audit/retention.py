"""Retention: stored content after N days, ledger events after M days, verifiably.

Content goes by a plain delete (the chain holds only its keyed digest). Events are
the chain itself, so removing the oldest rows of a stream is done under a **seal**: a
signed checkpoint of kind ``seal`` at the last removed row, vouching for its hash, the
Merkle root of the rows up to it and their Merkle frontier. In one transaction the
seal is written, the rows up to it (with their content and the checkpoints over them)
are deleted; then the seal is published to the anchors like any checkpoint. Verification
accepts a stream that starts at ``seal + 1`` only when the seal verifies and the first
remaining row links to the hash it signed; a prefix deleted without a seal is still
``missing_rows``, and only the holder of the signing key can seal. Proofs of the rows
that remain are built from the seal's frontier (:mod:`bastion.audit.proofs`).

Rows of a stream are in time order, so the expired rows are always a prefix. Every
sweep, dry or not, is itself a ledger event (``retention.sweep``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select

from bastion.audit.anchors import AnchorPublisher, SignedCheckpoint
from bastion.audit.events import CHAIN_SHA256, EventIn, Ledger
from bastion.audit.merkle import Frontier
from bastion.audit.models import (
    AuditCheckpoint,
    AuditContent,
    AuditEvent,
    AuditStream,
    AuditSubjectKey,
)
from bastion.audit.signing import Signer
from bastion.audit.vault import PREFIX
from bastion.db import Database

#: EU AI Act Art. 19(1): automatically generated logs kept at least six months.
ART_19_MIN_DAYS = 183


@dataclass
class StreamSweep:
    stream: str
    sealed_seq: int
    events: int


@dataclass
class SweepResult:
    dry_run: bool
    content_rows: int = 0
    #: Content sealed under a key an erasure shredded, left by an interrupted cleanup.
    unreadable_rows: int = 0
    events: int = 0
    streams: list[StreamSweep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetentionSweeper:
    def __init__(
        self,
        db: Database,
        signer: Signer,
        ledger: Ledger,
        publisher: AnchorPublisher | None = None,
    ) -> None:
        self.db = db
        self.signer = signer
        self.ledger = ledger
        self.publisher = publisher

    def sweep(
        self,
        *,
        content_days: int | None,
        events_days: int | None,
        actor: str,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> SweepResult:
        now = now or datetime.now(UTC)
        result = SweepResult(dry_run=dry_run)
        details: dict[str, object] = {
            "content_days": content_days,
            "events_days": events_days,
            "dry_run": dry_run,
        }
        if not dry_run:
            self.ledger.append(EventIn(actor, "retention.sweep", "ledger", "started", details))
        try:
            if content_days is not None:
                result.content_rows = self._content(now - timedelta(days=content_days), dry_run)
            result.unreadable_rows = self._unreadable(dry_run)
            if events_days is not None:
                cutoff_us = int((now - timedelta(days=events_days)).timestamp() * 1_000_000)
                for stream, chain in self._streams():
                    swept = self._stream(stream, chain, cutoff_us, dry_run)
                    if swept is not None:
                        result.streams.append(swept)
                        result.events += swept.events
        except Exception as exc:
            if not dry_run:
                failed = details | {"error": type(exc).__name__}
                self.ledger.append(EventIn(actor, "retention.sweep", "ledger", "failure", failed))
            raise
        summary = details | {
            "content_rows": result.content_rows,
            "unreadable_content_rows": result.unreadable_rows,
            "events": result.events,
            "sealed": {s.stream: s.sealed_seq for s in result.streams},
        }
        self.ledger.append(EventIn(actor, "retention.sweep", "ledger", "success", summary))
        return result

    def _content(self, cutoff: datetime, dry_run: bool) -> int:
        with self.db.engine.begin() as conn:
            if dry_run:
                query = select(func.count()).where(AuditContent.created_at < cutoff)
                return int(conn.scalar(query) or 0)
            result = conn.execute(delete(AuditContent).where(AuditContent.created_at < cutoff))
            return int(result.rowcount or 0)

    def _unreadable(self, dry_run: bool) -> int:
        """Sealed content whose subject's key is gone (an erasure's cleanup that did not
        finish): unreadable already, deleted here."""
        with self.db.engine.begin() as conn:
            orphans = conn.scalars(
                select(AuditContent.subject)
                .distinct()
                .where(AuditContent.subject.not_in(select(AuditSubjectKey.subject)))
            ).all()
            if not orphans:
                return 0
            where = (AuditContent.subject.in_(orphans), AuditContent.body.startswith(PREFIX))
            if dry_run:
                return int(conn.scalar(select(func.count()).where(*where)) or 0)
            return int(conn.execute(delete(AuditContent).where(*where)).rowcount or 0)

    def _streams(self) -> list[tuple[str, str]]:
        with self.db.engine.connect() as conn:
            chains = {
                str(r[0]): str(r[1])
                for r in conn.execute(select(AuditStream.id, AuditStream.chain))
            }
            ids = conn.scalars(select(AuditEvent.stream).distinct()).all()
        return [(s, chains.get(s, CHAIN_SHA256)) for s in sorted(ids)]

    def _stream(self, stream: str, chain: str, cutoff_us: int, dry_run: bool) -> StreamSweep | None:
        with self.db.engine.connect() as conn:
            last = conn.scalar(
                select(func.max(AuditEvent.seq)).where(
                    AuditEvent.stream == stream, AuditEvent.ts_us < cutoff_us
                )
            )
            if last is None:
                return None
            seal = conn.execute(
                select(AuditCheckpoint.seq, AuditCheckpoint.frontier)
                .where(AuditCheckpoint.stream == stream, AuditCheckpoint.kind == "seal")
                .order_by(AuditCheckpoint.seq.desc())
                .limit(1)
            ).first()
            if seal is not None and seal[0] >= last:
                return None  # swept already
            base = Frontier.load(seal[1]) if seal is not None else Frontier()
            count = conn.scalar(
                select(func.count()).where(AuditEvent.stream == stream, AuditEvent.seq <= last)
            )
            if dry_run:
                return StreamSweep(stream, int(last), int(count or 0))
            head = ""
            for (row_hash,) in conn.execute(
                select(AuditEvent.hash)
                .where(
                    AuditEvent.stream == stream,
                    AuditEvent.seq > base.size,
                    AuditEvent.seq <= last,
                )
                .order_by(AuditEvent.seq)
            ).yield_per(20_000):
                base.append(row_hash)
                head = row_hash
        if base.size != last:
            raise RuntimeError(
                f"stream {stream}: rows before seq {last} are missing; run `bastion audit "
                "verify` before sweeping"
            )
        ts_us = time.time_ns() // 1000
        root = base.root()
        signature = self.signer.sign(stream, last, head, ts_us, root=root, chain=chain, kind="seal")
        row = {
            "stream": stream,
            "seq": last,
            "hash": head,
            "ts_us": ts_us,
            "key_id": self.signer.key_id,
            "signature": signature,
            "root": root,
            "kind": "seal",
            "frontier": base.dump(),
        }
        with self.db.engine.begin() as conn:
            conn.execute(
                delete(AuditCheckpoint).where(
                    AuditCheckpoint.stream == stream,
                    AuditCheckpoint.seq > 0,
                    AuditCheckpoint.seq <= last,
                )
            )
            conn.execute(insert(AuditCheckpoint), [row])
            conn.execute(
                delete(AuditContent).where(AuditContent.stream == stream, AuditContent.seq <= last)
            )
            removed = conn.execute(
                delete(AuditEvent).where(AuditEvent.stream == stream, AuditEvent.seq <= last)
            )
        if self.publisher is not None and self.publisher.enabled:
            self.publisher.publish([SignedCheckpoint.from_row(row, chain)])
        return StreamSweep(stream, last, int(removed.rowcount or 0))
