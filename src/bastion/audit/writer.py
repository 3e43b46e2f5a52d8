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

Async callers do not cross threads one by one: the events appended during one turn of
an event loop go to the writer as one item, and the writer answers all of a loop's
callers in a group with one ``call_soon_threadsafe``. Two thread wake-ups per event
cost more than chaining and inserting the event.

On SQLite a loop's group is committed right there, on the loop, when nothing else is
being written: an INSERT and a COMMIT on a local file take about a tenth of a
millisecond, less than the two wake-ups, and a call's answer waits for its event. That
connection never waits for SQLite's write lock (``busy_timeout=0``) and never
checkpoints the WAL itself, so the loop is never held up by another process or by a
disk sync: a busy database, a failed write, a group with stored content, a large group
or a due signed checkpoint goes to the thread instead. The thread opens that connection
(a checkout from the pool can wait) and checkpoints the WAL.

Groups of plain events (the common case) are inserted with one statement compiled for
the database's dialect and run on the driver's cursor: SQLAlchemy's per-statement work
was most of such a commit's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from bastion.audit.anchors import AnchorPublisher, SignedCheckpoint
from bastion.audit.events import (
    CHAIN_HMAC,
    CHAIN_SHA256,
    ERASED,
    ChainFields,
    ChainKey,
    Digester,
    EventIn,
    LedgerUnavailable,
    Receipt,
    canonical_json,
    chain_hash,
    genesis,
)
from bastion.audit.merkle import EMPTY_ROOT, Frontier
from bastion.audit.models import AuditCheckpoint, AuditContent, AuditEvent, AuditStream
from bastion.audit.repository import insert_identities, is_personal
from bastion.audit.signing import Signer
from bastion.audit.vault import ContentVault
from bastion.db import Database, utcnow
from bastion.observability.context import client_request_id_var, current_request_id

log = logging.getLogger("bastion.audit")
# Built once: a statement object keeps its compiled-cache key, so each group skips
# building and keying a new one.
_INSERT_STREAM = insert(AuditStream)
_INSERT_EVENT = insert(AuditEvent)
_INSERT_CONTENT = insert(AuditContent)
_INSERT_CHECKPOINT = insert(AuditCheckpoint)

_STOP = object()
#: Asks the thread to checkpoint SQLite's WAL (the loop's connection never does).
_WAL = object()
#: Loop commits between two WAL checkpoints by the thread: a commit writes about seven
#: pages (the table and its indexes), SQLite's own default is a checkpoint per 1,000.
WAL_CHECKPOINT_EVERY = 100
#: Seconds after which a writer writes a person's ``audit_identities`` row again (a
#: no-op when it is there): an erasure in another process may have deleted it.
IDENTITY_RECHECK_S = 60.0
# SQLITE_BUSY and SQLITE_LOCKED, the primary codes under their extended ones.
_SQLITE_WAITS = (5, 6)
#: The largest group a loop commits itself; a bigger turn's worth goes to the thread.
INLINE_MAX = 64


class _EventInsert:
    """``INSERT INTO audit_events``, compiled once for the engine's dialect and run on the
    driver's cursor. Every column is a string or an integer, so no value needs a bind
    processor; ``for_executemany`` leaves out the ``RETURNING`` PostgreSQL would add."""

    def __init__(self, engine: Engine) -> None:
        # Every column but the id the database assigns: what _prepare's rows hold.
        columns = [c.name for c in AuditEvent.__table__.columns if not c.primary_key]
        compiled = insert(AuditEvent).compile(
            dialect=engine.dialect, column_keys=columns, for_executemany=True
        )
        self.sql = compiled.string
        self.order = compiled.positiontup  # None for named parameters (psycopg)

    def run(self, dbapi_conn: Any, rows: list[dict[str, object]]) -> None:
        params: list[Any] = (
            rows if self.order is None else [tuple(r[k] for k in self.order) for r in rows]
        )
        cursor = dbapi_conn.cursor()
        try:
            cursor.executemany(self.sql, params)
        finally:
            cursor.close()
        dbapi_conn.commit()


@dataclass
class _Pending:
    """An event and whom to answer: a thread's future, or an event loop's."""

    event: EventIn
    future: Future[Receipt] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[Receipt] | None = None


class _Answers:
    """Results for a group of callers, handed over per event loop in one call."""

    def __init__(self) -> None:
        self._by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Receipt], Receipt | BaseException]]
        ] = {}

    def give(self, pending: _Pending, outcome: Receipt | BaseException) -> None:
        if pending.future is not None:
            if pending.future.done():
                return
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
        elif pending.loop is not None and pending.waiter is not None:
            self._by_loop.setdefault(pending.loop, []).append((pending.waiter, outcome))

    def send(self, here: asyncio.AbstractEventLoop | None = None) -> None:
        """Hand the outcomes over; those of the loop ``here`` (the caller's) directly."""
        by_loop, self._by_loop = self._by_loop, {}
        for loop, outcomes in by_loop.items():
            if loop is here:
                _resolve(outcomes)
                continue
            with contextlib.suppress(RuntimeError):  # a loop that has closed has no one left
                loop.call_soon_threadsafe(_resolve, outcomes)


def _resolve(outcomes: list[tuple[asyncio.Future[Receipt], Receipt | BaseException]]) -> None:
    for waiter, outcome in outcomes:
        if waiter.done():  # the caller was cancelled; its event is recorded all the same
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)


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
        chain_key: ChainKey | None = None,
        publisher: AnchorPublisher | None = None,
        vault: ContentVault | None = None,
    ) -> None:
        self.db = db
        self.chain_key = chain_key
        self.chain = CHAIN_HMAC if chain_key is not None else CHAIN_SHA256
        self._hash = chain_key.chain_hash if chain_key is not None else chain_hash
        self.publisher = publisher
        self.vault = vault
        #: The stream's Merkle frontier (for the root each checkpoint signs).
        self._frontier = Frontier()
        self.digester = digester
        self.signer = signer
        self.label = label
        self.batch_max = batch_max
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.stream = uuid.uuid4().hex
        self._queue: queue.Queue[_Pending | list[_Pending] | object] = queue.Queue(
            maxsize=queue_max
        )
        #: Async appends of the current turn of each event loop, not yet handed over.
        self._outboxes: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._head = genesis(self.stream)
        self._last_ts = 0
        self._checkpointed_seq = 0
        self._last_checkpoint_at = time.monotonic()
        self.last_error: str | None = None
        self.groups_committed = 0
        #: Of those, committed on an event loop (SQLite, nothing else being written).
        self.groups_inline = 0
        self._registered = False
        #: Keyed digests whose ``audit_identities`` row this writer ensured, and when
        #: (monotonic): ensured again after IDENTITY_RECHECK_S, since an erasure in
        #: another process deletes it.
        self._named: dict[str, float] = {}
        #: One committer at a time: the thread, or a loop committing its own group.
        self._lock = threading.Lock()
        self._events = _EventInsert(db.engine)
        self._inline = db.is_sqlite
        #: The loop's SQLite connection, checked out of the pool and set up by the
        #: thread (a checkout can wait for the pool); None until then, or after a failure.
        self._inline_conn: Any = None
        self._inline_since_wal = 0
        #: Set once by the thread when it stops taking groups; read and set under _gate,
        #: so a group is either queued before the final drain or refused.
        self._stopped = False
        self._gate = threading.Lock()

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
            "chain": self.chain,
        }

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, write a final checkpoint and stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        # A thread stuck in a commit keeps the lock; the connection goes with the process.
        if self._lock.acquire(timeout=max(0.0, timeout)):
            try:
                self._drop_inline_conn()
            finally:
                self._lock.release()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def head(self) -> tuple[int, str]:
        return self._seq, self._head

    # -- appending ----------------------------------------------------------------

    def _checked(self, event: EventIn) -> EventIn:
        if not self.alive:
            raise LedgerUnavailable("the audit ledger is not running: the request was not recorded")
        if event.request_id is None and (request_id := current_request_id()) is not None:
            # The request being served, so every event can be traced to its request.
            event = dataclasses.replace(event, request_id=request_id)
            client = client_request_id_var.get()
            if client is not None and "client_request_id" not in event.details:
                # The id the client sent, which was not safe to keep: only its digest.
                details = {**event.details, "client_request_id": client}
                event = dataclasses.replace(event, details=details)
        return event

    def submit(self, event: EventIn) -> Future[Receipt]:
        future: Future[Receipt] = Future()
        refusal = self._enqueue(_Pending(self._checked(event), future=future))
        if refusal is not None:
            raise refusal
        return future

    def _enqueue(self, item: _Pending | list[_Pending]) -> LedgerUnavailable | None:
        """Queued for the thread, or why not (stopped, full)."""
        with self._gate:
            if self._stopped:
                return _closed()
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                return _overloaded()
        return None

    def append(self, event: EventIn, timeout: float = 60.0) -> Receipt:
        try:
            return self.submit(event).result(timeout)
        except TimeoutError:
            raise LedgerUnavailable(
                "the audit ledger did not confirm the write in time: the action may not be recorded"
            ) from None

    async def append_async(self, event: EventIn) -> Receipt:
        loop = asyncio.get_running_loop()
        pending = _Pending(self._checked(event), loop=loop, waiter=loop.create_future())
        outbox = self._outboxes.get(loop)
        if outbox is None:
            outbox = self._outboxes[loop] = []
            loop.call_soon(self._hand_over, loop)
        outbox.append(pending)
        assert pending.waiter is not None
        return await pending.waiter

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """This turn's async appends, to the writer as one item."""
        outbox = self._outboxes.pop(loop, [])
        if not outbox:
            return
        if (
            self._inline
            and len(outbox) <= INLINE_MAX
            and self._queue.empty()
            and self._commit_inline(outbox, loop)
        ):
            return
        refusal = self._enqueue(outbox)
        if refusal is not None:
            for pending in outbox:
                if pending.waiter is not None and not pending.waiter.done():
                    pending.waiter.set_exception(refusal)

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            if self._inline and self._inline_conn is None:
                with self._lock:
                    self._open_inline_conn()
            try:
                first = self._queue.get(timeout=self.checkpoint_interval_s)
            except queue.Empty:
                with self._lock:
                    self._checkpoint_guarded(force_time=True)
                continue
            batch: list[_Pending] = []
            item: object = first
            while True:
                if item is _STOP:
                    stopping = True
                elif item is _WAL:
                    with self._lock:  # no commit in between, so the next one restarts the WAL
                        self._checkpoint_wal()
                elif isinstance(item, list):
                    batch.extend(item)
                else:
                    assert isinstance(item, _Pending)
                    batch.append(item)
                if len(batch) >= self.batch_max or stopping:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                with self._lock:
                    self._commit_guarded(batch)
        with self._lock:
            with self._gate:
                self._stopped = True  # no loop commits, no queueing from here on
            self._checkpoint_guarded(final=True)
        # Whatever arrived after the stop is refused, never left waiting.
        answers = _Answers()
        refused = _closed()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            for pending in item if isinstance(item, list) else [item]:
                if isinstance(pending, _Pending):
                    answers.give(pending, refused)
        answers.send()

    def _commit_guarded(
        self, batch: list[_Pending], here: asyncio.AbstractEventLoop | None = None
    ) -> bool:
        """Commit a group; whatever goes wrong, its callers get an answer and the
        writer carries on (a thread that dies would leave every later caller waiting).

        With ``here`` (the loop committing its own group, under the lock) the group may
        be declined: False, no one answered, nothing changed; the thread takes it."""
        answers = _Answers()
        done = True
        try:
            done = self._commit(batch, answers, inline=here is not None)
        except Exception as exc:
            self._note_failure(exc)
            failure = LedgerUnavailable("the audit ledger failed to record this event")
            for pending in batch:
                answers.give(pending, failure)  # those answered already keep their answer
        finally:
            if done:
                answers.send(here)
        return done

    def _commit_inline(self, batch: list[_Pending], loop: asyncio.AbstractEventLoop) -> bool:
        """A loop's group committed on the loop, when nothing else is being written."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._stopped or self._inline_conn is None:
                return False
            return self._commit_guarded(batch, loop)
        finally:
            self._lock.release()

    def _checkpoint_guarded(self, *, force_time: bool = False, final: bool = False) -> None:
        try:
            self._checkpoint_if_due(force_time=force_time, final=final)
        except Exception as exc:
            self._note_failure(exc)

    def _note_failure(self, exc: Exception) -> None:
        self.last_error = type(exc).__name__
        log.exception("ledger writer step failed; the writer carries on")

    def forget_identity(self, digest: str) -> None:
        """An erasure deleted ``digest``'s name: write it again with the next event."""
        self._named.pop(digest, None)

    def _stored(self, value: str, ts_us: int, names: dict[str, dict[str, object]]) -> str:
        """How a keyed stream stores an identifier: a person's as ``erased:<digest>``
        (the digest the chain covers), their name kept apart in ``audit_identities``."""
        key = self.chain_key
        if key is None or not is_personal(value):
            return value
        digest = key.ident(value)  # cached: people repeat
        ensured = self._named.get(digest)
        if digest not in names and (
            ensured is None or time.monotonic() - ensured > IDENTITY_RECHECK_S
        ):
            names[digest] = {"digest": digest, "name": value, "since_us": ts_us}
        return ERASED + digest

    def _prepare(
        self,
        ev: EventIn,
        seq: int,
        head: str,
        ts_us: int,
        created: object,
        names: dict[str, dict[str, object]],
    ) -> tuple[dict[str, object], list[dict[str, object]]]:
        details = canonical_json(ev.details)
        flags = canonical_json(sorted(set(ev.flags)))
        content_digest = self.digester.digest(ev.content) if ev.content else None
        fields = ChainFields(
            stream=self.stream,
            seq=seq,
            ts_us=ts_us,
            actor=self._stored(ev.actor, ts_us, names),
            action=ev.action,
            resource=self._stored(ev.resource, ts_us, names),
            outcome=ev.outcome,
            request_id=ev.request_id,
            details=details,
            content_digest=content_digest,
            flags=flags,
        )
        row_hash = self._hash(head, fields)
        row: dict[str, object] = {**fields._asdict(), "prev_hash": head, "hash": row_hash}
        contents: list[dict[str, object]] = []
        if ev.content and ev.store_content:
            contents = [
                {
                    "stream": self.stream,
                    "seq": seq,
                    "field": name,
                    "subject": ev.subject,
                    "body": body,
                    "created_at": created,
                }
                for name, body in ev.content.items()
            ]
        return row, contents

    def _commit(self, batch: list[_Pending], answers: _Answers, *, inline: bool = False) -> bool:
        """Chain and insert a group. ``inline``: on the loop's own connection, declined
        (False, nothing changed) unless the group is plain events and the write succeeds."""
        seq, head, last_ts = self._seq, self._head, self._last_ts
        events: list[dict[str, object]] = []
        contents: list[dict[str, object]] = []
        names: dict[str, dict[str, object]] = {}
        live: list[tuple[_Pending, Receipt]] = []
        created = utcnow()
        frontier = self._frontier.copy()
        for pending in batch:
            ts_us = max(_now_us(), last_ts)
            try:
                row, rows = self._prepare(pending.event, seq + 1, head, ts_us, created, names)
            except (TypeError, ValueError, AttributeError) as exc:
                answers.give(pending, ValueError(f"ledger event is not serialisable: {exc}"))
                continue
            seq, last_ts, head = seq + 1, ts_us, str(row["hash"])
            frontier.append(head)
            events.append(row)
            contents.extend(rows)
            live.append((pending, Receipt(self.stream, seq, head, ts_us)))
        if not live:
            return True
        checkpoints = []
        if not self._registered and self.signer is not None:
            # The stream's start is signed, so a stream forged whole does not verify.
            checkpoints.append(self._checkpoint_row(0, genesis(self.stream), _now_us(), EMPTY_ROOT))
        due = self._due_checkpoint(seq, head, last_ts, frontier)
        if due is not None:
            checkpoints.append(due)
        plain = self._registered and not contents and not checkpoints and not names
        if inline and not plain:
            return False
        try:
            if inline:
                if not self._write_inline(events):
                    return False
            elif plain:
                self._write_plain(events)
            else:
                self._write_group(events, contents, checkpoints, list(names.values()))
        except Exception as exc:
            # The class only: SQL error texts can carry the row's values.
            self.last_error = type(exc).__name__
            log.error("ledger commit failed", extra={"error": self.last_error, "events": len(live)})
            self._resync()
            error = LedgerUnavailable(
                "the audit ledger could not be written: the action was not recorded; retry shortly"
            )
            for pending, _receipt in live:
                answers.give(pending, error)
            return True
        self._seq, self._head, self._last_ts = seq, head, last_ts
        self._frontier = frontier
        self._registered = True
        ensured = time.monotonic()
        for digest in names:
            self._named[digest] = ensured
        self.last_error = None
        self.groups_committed += 1
        self.groups_inline += inline
        if due is not None:
            self._checkpointed_seq = seq
            self._last_checkpoint_at = time.monotonic()
        for pending, receipt in live:
            answers.give(pending, receipt)
        if checkpoints:
            self._publish(checkpoints)
        return True

    def _publish(self, rows: list[dict[str, object]]) -> None:
        if self.publisher is not None and self.publisher.enabled:
            self.publisher.publish([SignedCheckpoint.from_row(r, self.chain) for r in rows])

    def _write_group(
        self,
        events: list[dict[str, object]],
        contents: list[dict[str, object]],
        checkpoints: list[dict[str, object]],
        names: list[dict[str, object]],
    ) -> None:
        if contents and self.vault is not None:
            # Before the group's transaction: a new subject's key is committed on its own
            # connection (SQLite has one writer at a time).
            contents = self.vault.seal_rows(contents)
        with self.db.engine.begin() as conn:
            if not self._registered:
                # Registered with its first group, so read-only runs leave no empty streams.
                conn.execute(_INSERT_STREAM, [self._stream_row()])
            if names:  # before the events naming them, in the same transaction
                insert_identities(conn, names)
            conn.execute(_INSERT_EVENT, events)
            if contents:
                conn.execute(_INSERT_CONTENT, contents)
            if checkpoints:
                conn.execute(_INSERT_CHECKPOINT, checkpoints)

    def _write_plain(self, events: list[dict[str, object]]) -> None:
        """Events alone, on a pooled connection (checked before use, as every checkout)."""
        conn = self.db.engine.raw_connection()
        try:
            self._events.run(conn, events)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        finally:
            conn.close()

    def _write_inline(self, events: list[dict[str, object]]) -> bool:
        """Events alone, on the loop's SQLite connection. False, with nothing written, if
        the write lock is taken (another process, or this one's other tables) or the
        write failed: the thread then commits the group, waiting for the lock, and
        deals with any failure (resynchronising the head) off the loop."""
        conn = self._inline_conn
        try:
            self._events.run(conn, events)
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            code = getattr(exc, "sqlite_errorcode", 0) if isinstance(exc, sqlite3.Error) else 0
            if code & 0xFF not in _SQLITE_WAITS:
                self.last_error = type(exc).__name__
                self._drop_inline_conn()  # the thread opens another
            return False
        self._inline_since_wal += 1
        if self._inline_since_wal >= WAL_CHECKPOINT_EVERY:
            self._inline_since_wal = 0
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_WAL)
        return True

    def _open_inline_conn(self) -> None:
        """The loop's connection: it never waits for the write lock and never
        checkpoints (which syncs the disk); on the thread, as a checkout can wait."""
        try:
            conn = self.db.engine.raw_connection()
        except Exception as exc:
            self._note_failure(exc)
            return
        try:
            cursor = conn.cursor()
            try:
                cursor.execute("PRAGMA busy_timeout=0")
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            finally:
                cursor.close()
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.invalidate()
            self._note_failure(exc)
            return
        self._inline_conn = conn

    def _drop_inline_conn(self) -> None:
        conn, self._inline_conn = self._inline_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()  # closed, not returned to the pool with its pragmas

    def _checkpoint_wal(self) -> None:
        """Copy the WAL into the database without waiting for readers or writers."""
        try:
            with self.db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:
            self._note_failure(exc)

    def _resync(self) -> None:
        """After a failed commit, take the head from the database: a COMMIT can succeed
        on the server while the client sees an error, and the chain must go on from
        what was actually written."""
        try:
            with self.db.engine.connect() as conn:
                rows = conn.execute(
                    select(AuditEvent.seq, AuditEvent.hash, AuditEvent.ts_us)
                    .where(AuditEvent.stream == self.stream, AuditEvent.seq > self._seq)
                    .order_by(AuditEvent.seq)
                ).all()
        except Exception:
            return  # still unreachable; the next group will try again
        if rows:
            self._frontier.extend(str(r[1]) for r in rows)
            last = rows[-1]
            self._seq, self._head, self._last_ts = int(last[0]), str(last[1]), int(last[2])
            self._registered = True

    def _due_checkpoint(
        self, seq: int, head: str, ts_us: int, frontier: Frontier
    ) -> dict[str, object] | None:
        if self.signer is None or seq == self._checkpointed_seq:
            return None
        waited = time.monotonic() - self._last_checkpoint_at
        if (
            seq - self._checkpointed_seq < self.checkpoint_every
            and waited < self.checkpoint_interval_s
        ):
            return None
        return self._checkpoint_row(seq, head, ts_us, frontier.root())

    def _checkpoint_row(
        self, seq: int, head: str, ts_us: int, root: str, kind: str = "checkpoint"
    ) -> dict[str, object]:
        assert self.signer is not None
        signature = self.signer.sign(
            self.stream, seq, head, ts_us, root=root, chain=self.chain, kind=kind
        )
        return {
            "stream": self.stream,
            "seq": seq,
            "hash": head,
            "ts_us": ts_us,
            "key_id": self.signer.key_id,
            "signature": signature,
            "root": root,
            "kind": kind,
            "frontier": None,
        }

    def _checkpoint_if_due(self, *, force_time: bool = False, final: bool = False) -> None:
        """A checkpoint when the interval has passed; at shutdown a ``final`` one, which
        says the stream ends here (rows appended after it are forged)."""
        if self.signer is None or self._seq == 0:
            return
        if not final and self._seq == self._checkpointed_seq:
            return
        waited = time.monotonic() - self._last_checkpoint_at
        if not (final or (force_time and waited >= self.checkpoint_interval_s)):
            return
        kind = "final" if final else "checkpoint"
        row = self._checkpoint_row(
            self._seq, self._head, self._last_ts, self._frontier.root(), kind
        )
        try:
            with self.db.engine.begin() as conn:
                if final and self._seq == self._checkpointed_seq:
                    # The last checkpoint becomes the final one (one per seq).
                    conn.execute(
                        delete(AuditCheckpoint).where(
                            AuditCheckpoint.stream == self.stream,
                            AuditCheckpoint.seq == self._seq,
                            AuditCheckpoint.kind == "checkpoint",
                        )
                    )
                conn.execute(_INSERT_CHECKPOINT, [row])
        except Exception as exc:
            self.last_error = type(exc).__name__
            log.error("ledger checkpoint failed", extra={"error": self.last_error})
            return
        self._checkpointed_seq = self._seq
        self._last_checkpoint_at = time.monotonic()
        self._publish([row])


def _closed() -> LedgerUnavailable:
    return LedgerUnavailable("the audit ledger is shutting down: nothing was recorded")


def _overloaded() -> LedgerUnavailable:
    return LedgerUnavailable("the audit ledger is overloaded: retry shortly (nothing was recorded)")
