"""The ledger writer: one thread, one stream, group commit.

Callers (async request handlers, sync services, the CLI) hand events to a bounded
queue and wait for a :class:`Receipt`. The writer thread takes everything that has
queued up while the previous group was committing (up to ``batch_max``), chains and
inserts it in one transaction, and only then releases the callers: an append returns
only after its group is durable. If the commit fails, every caller in the group gets
:class:`LedgerUnavailable` and the chain's head stays where it was, so nothing is
half-written.

A thread rather than an asyncio task because the same writer serves sync code (the
CLI, threadpool routes) and async handlers, and because SQLite's driver blocks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import insert

from bastion.audit.events import (
    Digester,
    EventIn,
    LedgerUnavailable,
    Receipt,
    canonical_json,
    chain_hash,
    genesis,
)
from bastion.audit.models import AuditCheckpoint, AuditContent, AuditEvent, AuditStream
from bastion.audit.signing import Signer
from bastion.db import Database, utcnow

log = logging.getLogger("bastion.audit")

_STOP = object()


@dataclass
class _Pending:
    event: EventIn
    future: Future[Receipt]


def _now_us() -> int:
    return time.time_ns() // 1000


class LedgerWriter:
    def __init__(
        self,
        db: Database,
        digester: Digester,
        signer: Signer | None,
        *,
        label: str = "server",
        batch_max: int = 1024,
        queue_max: int = 50_000,
        checkpoint_every: int = 10_000,
        checkpoint_interval_s: float = 60.0,
    ) -> None:
        self.db = db
        self.digester = digester
        self.signer = signer
        self.label = label
        self.batch_max = batch_max
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.stream = uuid.uuid4().hex
        self._queue: queue.Queue[_Pending | object] = queue.Queue(maxsize=queue_max)
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._head = genesis(self.stream)
        self._last_ts = 0
        self._checkpointed_seq = 0
        self._last_checkpoint_at = time.monotonic()
        self.last_error: str | None = None
        self.groups_committed = 0
        self._registered = False

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"ledger-{self.stream[:8]}", daemon=True
        )
        self._thread.start()

    def _stream_row(self) -> dict[str, object]:
        return {
            "id": self.stream,
            "created_at": utcnow(),
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "label": self.label,
        }

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, write a final checkpoint and stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def head(self) -> tuple[int, str]:
        return self._seq, self._head

    # -- appending ----------------------------------------------------------------

    def submit(self, event: EventIn) -> Future[Receipt]:
        if not self.alive:
            raise LedgerUnavailable("the audit ledger is not running: the request was not recorded")
        future: Future[Receipt] = Future()
        try:
            self._queue.put_nowait(_Pending(event, future))
        except queue.Full:
            raise LedgerUnavailable(
                "the audit ledger is overloaded: retry shortly (nothing was recorded)"
            ) from None
        return future

    def append(self, event: EventIn) -> Receipt:
        return self.submit(event).result()

    async def append_async(self, event: EventIn) -> Receipt:
        return await asyncio.wrap_future(self.submit(event))

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.checkpoint_interval_s)
            except queue.Empty:
                self._checkpoint_if_due(force_time=True)
                continue
            batch: list[_Pending] = []
            if first is _STOP:
                stopping = True
            else:
                assert isinstance(first, _Pending)
                batch.append(first)
            while len(batch) < self.batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Pending)
                batch.append(item)
            if batch:
                self._commit(batch)
        self._checkpoint_if_due(final=True)

    def _commit(self, batch: list[_Pending]) -> None:
        seq, head, last_ts = self._seq, self._head, self._last_ts
        events: list[dict[str, object]] = []
        contents: list[dict[str, object]] = []
        receipts: list[Receipt] = []
        created = utcnow()
        for pending in batch:
            ev = pending.event
            try:
                details = canonical_json(ev.details)
                flags = canonical_json(sorted(set(ev.flags)))
            except (TypeError, ValueError) as exc:
                pending.future.set_exception(
                    ValueError(f"ledger event is not JSON-serialisable: {exc}")
                )
                continue
            seq += 1
            ts_us = max(_now_us(), last_ts)
            last_ts = ts_us
            content_digest = self.digester.digest(ev.content) if ev.content else None
            row_hash = chain_hash(
                head,
                self.stream,
                seq,
                ts_us,
                ev.actor,
                ev.action,
                ev.resource,
                ev.outcome,
                ev.request_id,
                details,
                content_digest,
                flags,
            )
            events.append(
                {
                    "stream": self.stream,
                    "seq": seq,
                    "ts_us": ts_us,
                    "actor": ev.actor,
                    "action": ev.action,
                    "resource": ev.resource,
                    "outcome": ev.outcome,
                    "request_id": ev.request_id,
                    "details": details,
                    "content_digest": content_digest,
                    "flags": flags,
                    "prev_hash": head,
                    "hash": row_hash,
                }
            )
            if ev.content and ev.store_content:
                contents.extend(
                    {
                        "stream": self.stream,
                        "seq": seq,
                        "field": name,
                        "subject": ev.subject,
                        "body": body,
                        "created_at": created,
                    }
                    for name, body in ev.content.items()
                )
            receipts.append(Receipt(self.stream, seq, row_hash, ts_us))
            head = row_hash
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        checkpoint = self._due_checkpoint(seq, head, last_ts)
        try:
            with self.db.engine.begin() as conn:
                if not self._registered:
                    # Registered with its first group, so read-only runs leave no empty streams.
                    conn.execute(insert(AuditStream), [self._stream_row()])
                conn.execute(insert(AuditEvent), events)
                if contents:
                    conn.execute(insert(AuditContent), contents)
                if checkpoint is not None:
                    conn.execute(insert(AuditCheckpoint), [checkpoint])
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("ledger commit failed", extra={"error": self.last_error, "events": len(live)})
            error = LedgerUnavailable(
                "the audit ledger could not be written: the action was not recorded; retry shortly"
            )
            for pending in live:
                pending.future.set_exception(error)
            return
        self._seq, self._head, self._last_ts = seq, head, last_ts
        self._registered = True
        self.last_error = None
        self.groups_committed += 1
        if checkpoint is not None:
            self._checkpointed_seq = seq
            self._last_checkpoint_at = time.monotonic()
        for pending, receipt in zip(live, receipts, strict=True):
            pending.future.set_result(receipt)

    def _due_checkpoint(self, seq: int, head: str, ts_us: int) -> dict[str, object] | None:
        if self.signer is None or seq - self._checkpointed_seq < self.checkpoint_every:
            return None
        return self._checkpoint_row(seq, head, ts_us)

    def _checkpoint_row(self, seq: int, head: str, ts_us: int) -> dict[str, object]:
        assert self.signer is not None
        return {
            "stream": self.stream,
            "seq": seq,
            "hash": head,
            "ts_us": ts_us,
            "key_id": self.signer.key_id,
            "signature": self.signer.sign(self.stream, seq, head, ts_us),
        }

    def _checkpoint_if_due(self, *, force_time: bool = False, final: bool = False) -> None:
        if self.signer is None or self._seq == self._checkpointed_seq:
            return
        waited = time.monotonic() - self._last_checkpoint_at
        if not (final or (force_time and waited >= self.checkpoint_interval_s)):
            return
        row = self._checkpoint_row(self._seq, self._head, self._last_ts)
        try:
            with self.db.engine.begin() as conn:
                conn.execute(insert(AuditCheckpoint), [row])
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("ledger checkpoint failed", extra={"error": self.last_error})
            return
        self._checkpointed_seq = self._seq
        self._last_checkpoint_at = time.monotonic()
