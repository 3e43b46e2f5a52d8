"""Recompute every chain and name the first broken link.

For each stream: rows must run seq 1, 2, 3 … (a gap means rows were deleted), each
row's ``prev_hash`` must be the previous row's ``hash`` (else rows were reordered or
inserted), and each row's ``hash`` must match its recomputed value (else it was
edited). Each checkpoint's signature must verify with a trusted key, the row it names
must carry the hash it vouches for, and the chain must reach it (else the tail was
truncated). A stream may start after seq 1 only where a checkpoint anchors its first
row (retention pruned the prefix); on streams whose checkpoints carry a Merkle root,
that checkpoint must be a retention ``seal``.

Keyed streams (``hmac-sha256``) are recomputed with the chain key; without it they
cannot be verified (``no_chain_key``). With anchors (signed checkpoints published
outside the database, :mod:`bastion.audit.anchors`), every anchored checkpoint must
still be matched by the database: its stream present (else ``missing_stream``), its
rows present (``truncated``), its row's hash unchanged (``rewritten``) and the
checkpoint itself still stored (``checkpoint_deleted``). Without anchors, the report
says how many events, and how much time, no signed checkpoint covers yet.

A large stream is cut into seq ranges verified in parallel processes (hashing is
CPU-bound and the GIL would serialise threads); each range reports its first and last
links and the ranges are stitched together, so the result is the same as one pass.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from hashlib import sha256
from json.encoder import encode_basestring
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select, text

from bastion.audit.anchors import SignedCheckpoint
from bastion.audit.events import (
    CHAIN_HMAC,
    CHAIN_SHA256,
    ChainFields,
    ChainKey,
    chain_hash,
    genesis,
    hasher_for,
)
from bastion.audit.models import AuditCheckpoint, AuditStream
from bastion.audit.signing import verify_signature
from bastion.db import Database


@dataclass(frozen=True)
class Problem:
    stream: str
    seq: int | None
    row_id: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"stream {self.stream}" + (f" seq {self.seq}" if self.seq is not None else "")
        if self.row_id is not None:
            where += f" (row id {self.row_id})"
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class StreamReport:
    stream: str
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    chain: str = CHAIN_SHA256
    #: The highest seq a valid signed checkpoint (in the database or anchored) covers.
    covered_seq: int = 0
    #: Events after it, and the time from that checkpoint to the last of them (µs).
    uncovered_events: int = 0
    uncovered_us: int = 0
    #: Rows removed by retention (up to this seq), under a signed seal.
    sealed_seq: int = 0
    anchors: int = 0


@dataclass
class VerifyReport:
    streams: list[StreamReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def events(self) -> int:
        return sum(s.events for s in self.streams)

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def uncovered_events(self) -> int:
        return sum(s.uncovered_events for s in self.streams)

    @property
    def uncovered_seconds(self) -> float:
        return max((s.uncovered_us for s in self.streams), default=0) / 1e6

    @property
    def anchors(self) -> int:
        return sum(s.anchors for s in self.streams)


def verify_ledger(
    db: Database,
    trusted_keys: dict[str, Ed25519PublicKey],
    *,
    chain_key: ChainKey | None = None,
    anchors: list[SignedCheckpoint] | None = None,
    on_progress: Callable[[int], None] | None = None,
    batch: int = 20_000,
    workers: int | None = None,
    parallel_threshold: int = 200_000,
    since_us: int | None = None,
    until_us: int | None = None,
) -> VerifyReport:
    """Verify every stream (and, given ``anchors``, every anchored checkpoint).
    ``workers`` processes share streams longer than ``parallel_threshold`` rows
    (default: one per core, at most four).

    ``since_us`` / ``until_us`` verify only the part of each stream that a period needs:
    from the last signed checkpoint before ``since_us`` (its signed hash is where the
    chain is picked up; without one, from the stream's start) to the first checkpoint
    at or after ``until_us`` (the one that seals the period's end; without one, to the
    stream's end). Checkpoints and anchors outside that part are not checked."""
    return start_verification(
        db,
        trusted_keys,
        chain_key=chain_key,
        anchors=anchors,
        on_progress=on_progress,
        batch=batch,
        workers=workers,
        parallel_threshold=parallel_threshold,
        since_us=since_us,
        until_us=until_us,
    ).result()


def start_verification(
    db: Database,
    trusted_keys: dict[str, Ed25519PublicKey],
    *,
    chain_key: ChainKey | None = None,
    anchors: list[SignedCheckpoint] | None = None,
    on_progress: Callable[[int], None] | None = None,
    batch: int = 20_000,
    workers: int | None = None,
    parallel_threshold: int = 200_000,
    since_us: int | None = None,
    until_us: int | None = None,
) -> PendingVerification:
    """:func:`verify_ledger` in two halves: the large streams' ranges are handed to the
    worker processes now, and :meth:`PendingVerification.result` verifies the rest and
    stitches. In between, this process is free (a report scans its period meanwhile)."""
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    anchored: dict[str, list[SignedCheckpoint]] = {}
    for anchor in anchors or []:
        anchored.setdefault(anchor.stream, []).append(anchor)
    with db.engine.connect() as conn:
        streams = sorted(set(_stream_ids(conn)) | set(anchored))
        registered = {
            str(r[0]): str(r[1]) for r in conn.execute(select(AuditStream.id, AuditStream.chain))
        }
        plans = [
            _plan(
                conn,
                stream,
                registered,
                anchored.get(stream, []),
                trusted_keys,
                chain_key,
                since_us,
                until_us,
            )
            for stream in streams
        ]
    pending = PendingVerification(db, trusted_keys, chain_key, plans, batch, on_progress)
    in_memory = db.is_sqlite and db.engine.url.database in (None, "", ":memory:")
    big = [
        p
        for p in plans
        if p.scan and workers > 1 and p.span >= parallel_threshold and not in_memory
    ]
    if big:
        # One pool for every large stream: its ranges are queued together, so the
        # workers stay busy from the first range to the last (a pool per stream paid a
        # start and an idle tail for each).
        url = db.engine.url.render_as_string(hide_password=False)
        # fork: workers start in milliseconds with everything imported; the parent's
        # connections are not used by them (each opens its own engine).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = pending.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        key_bytes = chain_key.key if chain_key is not None else None
        try:
            for p in big:
                pending.futures[p.stream] = [
                    pool.submit(
                        _scan_range, url, p.stream, a, b, p.marks, batch, p.chain, key_bytes
                    )
                    for a, b in _ranges(p.lo, p.hi, workers * 4)
                ]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return pending


class PendingVerification:
    """A verification whose large streams are being read by worker processes."""

    def __init__(
        self,
        db: Database,
        trusted_keys: dict[str, Ed25519PublicKey],
        chain_key: ChainKey | None,
        plans: list[_Plan],
        batch: int,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.db = db
        self.trusted_keys = trusted_keys
        self.chain_key = chain_key
        self.plans = plans
        self.batch = batch
        self.on_progress = on_progress
        self.pool: ProcessPoolExecutor | None = None
        self.futures: dict[str, list[Future[_Chunk]]] = {}

    def cancel(self) -> None:
        """Stop the workers (the result is no longer wanted)."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None

    def result(self) -> VerifyReport:
        """Wait for the workers, verify the small streams here, stitch every stream."""
        report = VerifyReport()
        report.streams.extend(p.sr for p in self.plans if p.sr is not None)
        chain_key, on_progress = self.chain_key, self.on_progress
        try:
            with self.db.engine.connect() as conn:
                for p in self.plans:
                    report.problems.extend(p.problems)
                    if not p.scan:
                        continue
                    assert p.sr is not None
                    if p.stream in self.futures:
                        chunks = []
                        for future in self.futures[p.stream]:
                            chunks.append(future.result())
                            if on_progress is not None:
                                on_progress(chunks[-1].count)
                    else:
                        hasher = hasher_for(p.chain, chain_key)
                        assert hasher is not None or not p.span
                        rows = _raw_rows(conn, p.stream, self.batch, (p.first, p.last))
                        key = _key_of(p.chain, chain_key)
                        chunks = [_scan(p.stream, rows, p.marks, on_progress, hasher, key)]
                    report.problems.extend(
                        _stitch(
                            p.stream,
                            chunks,
                            p.checkpoints,
                            self.trusted_keys,
                            p.sr,
                            p.chain,
                            p.theirs,
                            p.start,
                        )
                    )
        finally:
            self.cancel()
        return report


@dataclass
class _Plan:
    """What verifying one stream takes: its part (seq first..last), its checkpoints and
    anchors there, and the problems found before reading a row."""

    stream: str
    chain: str = CHAIN_SHA256
    sr: StreamReport | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    theirs: list[SignedCheckpoint] = field(default_factory=list)
    start: Checkpoint | None = None
    first: int = 0
    last: int = 2**62
    lo: int = 0
    hi: int = 0
    #: seqs lo..hi: the rows there are, at most (a count would read every index entry)
    span: int = 0
    marks: frozenset[int] = frozenset()
    problems: list[Problem] = field(default_factory=list)
    #: whether its rows are to be read (False: a problem already says it cannot be)
    scan: bool = False


def _plan(
    conn: Connection,
    stream: str,
    registered: dict[str, str],
    theirs: list[SignedCheckpoint],
    trusted_keys: dict[str, Ed25519PublicKey],
    chain_key: ChainKey | None,
    since_us: int | None,
    until_us: int | None,
) -> _Plan:
    chain = registered.get(stream, CHAIN_SHA256)
    checkpoints = [
        cast(Checkpoint, tuple(row))
        for row in conn.execute(
            select(
                AuditCheckpoint.seq,
                AuditCheckpoint.hash,
                AuditCheckpoint.ts_us,
                AuditCheckpoint.key_id,
                AuditCheckpoint.signature,
                AuditCheckpoint.root,
                AuditCheckpoint.kind,
            )
            .where(AuditCheckpoint.stream == stream)
            .order_by(AuditCheckpoint.seq)
        )
    ]
    start, end = _window(stream, checkpoints, trusted_keys, chain, since_us, until_us)
    first = start[0] + 1 if start is not None else 0
    last = end if end is not None else 2**62
    if start is not None or end is not None:
        checkpoints = [cp for cp in checkpoints if first <= cp[0] <= last]
        theirs = [a for a in theirs if first <= a.seq <= last]
    plan = _Plan(stream, chain, checkpoints=checkpoints, theirs=theirs, start=start)
    plan.first, plan.last = first, last
    sr = plan.sr = StreamReport(stream, checkpoints=len(checkpoints), chain=chain)
    sr.anchors = len(theirs)
    # the two ends of the stream's part, each one index lookup
    lo, hi = (
        conn.execute(text(end), {"s": stream, "a": first, "b": last}).scalar()
        for end in (_FIRST_SEQ, _LAST_SEQ)
    )
    count = 0 if lo is None or hi is None else int(hi) - int(lo) + 1
    if not count and not checkpoints and stream not in registered and start is None:
        # Known only from the anchors: everything of it was deleted.
        plan.problems.append(_missing_stream(stream, theirs))
        return plan
    if stream not in registered:
        plan.problems.append(
            Problem(
                stream,
                None,
                None,
                "unregistered_stream",
                "events name a stream no writer registered",
            )
        )
    if count and hasher_for(chain, chain_key) is None:
        plan.problems.append(
            Problem(
                stream,
                None,
                None,
                "no_chain_key",
                f"the stream is chained with {chain}: give the chain key "
                "(BASTION_AUDIT_CHAIN_KEY or the secret key) to verify it",
            )
        )
        return plan
    plan.scan = True
    plan.lo, plan.hi, plan.span = int(lo or 0), int(hi or 0), count
    plan.marks = frozenset(cp[0] for cp in checkpoints) | {a.seq for a in theirs}
    return plan


_PART = "SELECT seq FROM audit_events WHERE stream = :s AND seq >= :a AND seq <= :b ORDER BY seq"
_FIRST_SEQ = _PART + " LIMIT 1"
_LAST_SEQ = _PART + " DESC LIMIT 1"


def _window(
    stream: str,
    checkpoints: list[Checkpoint],
    trusted: dict[str, Ed25519PublicKey],
    chain: str,
    since_us: int | None,
    until_us: int | None,
) -> tuple[Checkpoint | None, int | None]:
    """(the signed checkpoint a period's verification starts from, the seq it ends at)."""
    start: Checkpoint | None = None
    if since_us is not None:
        for cp in checkpoints:  # in seq order: the last one before the period wins
            if (
                cp[0] > 0
                and cp[2] < since_us
                and _check_signature(stream, cp, trusted, chain) is None
            ):
                start = cp
    end: int | None = None
    if until_us is not None:
        after = [cp[0] for cp in checkpoints if cp[2] >= until_us]
        after = [seq for seq in after if start is None or seq > start[0]]
        end = min(after) if after else None
    return start, end


def _missing_stream(stream: str, anchors: list[SignedCheckpoint]) -> Problem:
    top = max(a.seq for a in anchors)
    return Problem(
        stream,
        top,
        None,
        "missing_stream",
        f"an anchored checkpoint vouches for {top} events of this stream but the database "
        "holds nothing of it: the stream was deleted",
    )


def _ranges(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    step = max(1, -(-(hi - lo + 1) // parts))
    return [(a, min(a + step - 1, hi)) for a in range(lo, hi + 1, step)]


_SELECT = (
    "SELECT id, seq, ts_us, actor, action, resource, outcome, request_id, details, "
    "content_digest, flags, prev_hash, hash FROM audit_events WHERE stream = {p}"
)


def _raw_rows(
    conn: Connection, stream: str, batch: int, seq_range: tuple[int, int] | None
) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of rows as plain tuples straight from the driver: verification is bound by per-row
    cost, and SQLAlchemy's Row objects would double it. PostgreSQL streams through a
    server-side cursor so a large ledger never sits in memory."""
    raw: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = raw.cursor(name=f"verify_{uuid.uuid4().hex[:8]}")
        cursor.itersize = batch
    else:
        cursor = raw.cursor()
    p = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = _SELECT.format(p=p)
    params: tuple[Any, ...] = (stream,)
    if seq_range is not None:
        sql += f" AND seq >= {p} AND seq <= {p}"
        params += seq_range
    try:
        cursor.execute(sql + " ORDER BY seq", params)
        while chunk := cursor.fetchmany(batch):
            yield chunk
    finally:
        cursor.close()


def _stream_ids(conn: Connection) -> list[str]:
    """Every stream named by an event, a writer or a checkpoint. The events' streams are
    found by skipping from one to the next along the (stream, seq) index: one lookup per
    stream, where ``GROUP BY`` would read all its entries (a tenth of a second per
    million events, before any worker could start)."""
    found = conn.execute(
        text(
            "WITH RECURSIVE s(stream) AS ("
            "SELECT MIN(stream) FROM audit_events UNION ALL "
            "SELECT (SELECT MIN(e.stream) FROM audit_events e WHERE e.stream > s.stream) "
            "FROM s WHERE s.stream IS NOT NULL) "
            "SELECT stream FROM s WHERE stream IS NOT NULL "
            "UNION SELECT id FROM audit_streams UNION SELECT stream FROM audit_checkpoints"
        )
    )
    return sorted(row[0] for row in found)


Row = tuple[int, int, int, str, str, str, str, str | None, str, str | None, str, str, str]
#: seq, hash, ts_us, key_id, signature, root, kind
Checkpoint = tuple[int, str, int, str, str, str | None, str]
Hasher = Callable[[str, ChainFields], str]


@dataclass
class _Chunk:
    """What one seq range found; its first row's link is checked when stitching."""

    count: int = 0
    first_seq: int | None = None
    first_prev: str = ""
    first_id: int | None = None
    last_seq: int | None = None
    last_hash: str = ""
    first_ts: int = 0
    last_ts: int = 0
    problems: list[Problem] = field(default_factory=list)
    seen: dict[int, str] = field(default_factory=dict)


def _scan_range(
    url: str,
    stream: str,
    lo: int,
    hi: int,
    anchors: frozenset[int],
    batch: int,
    chain: str,
    key: bytes | None,
) -> _Chunk:
    """Verify rows lo..hi of a stream in a worker process."""
    chain_key = ChainKey(key) if key is not None else None
    hasher = hasher_for(chain, chain_key)
    assert hasher is not None
    with _worker_engine(url).connect() as conn:
        rows = _raw_rows(conn, stream, batch, (lo, hi))
        return _scan(stream, rows, anchors, None, hasher, _key_of(chain, chain_key))


#: A worker process's engine, kept from one range to the next: a new PostgreSQL
#: connection per range cost ~30 ms of wall time, a tenth of a range's reading.
_ENGINES: dict[str, Any] = {}


def _worker_engine(url: str) -> Any:
    engine = _ENGINES.get(url)
    if engine is None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import StaticPool

        # one connection, held until the pool's processes exit with it
        engine = _ENGINES[url] = create_engine(url, poolclass=StaticPool)
    return engine


def _scan(
    stream: str,
    batches: Iterable[Any],
    anchors: frozenset[int],
    on_progress: Callable[[int], None] | None,
    hasher: Hasher | None,
    chain_key: ChainKey | None = None,
) -> _Chunk:
    """Check the rows of one seq range: links, gaps, and each row's recomputed hash.

    The hash body is the compact JSON array of the chained fields; here it is written
    directly with the C string encoder (``encode_basestring``, as the canonical encoder
    uses), and the keyed chain's HMAC from its precomputed pads, so a row costs a few
    C calls. A row whose fast hash does not match is recomputed with the reference
    ``hasher`` before it is reported: the fast path can only ever be slower to accept,
    never accept what the reference rejects (the MAC must match either way).
    """
    chunk = _Chunk()
    ts_us = 0
    problems = chunk.problems
    expected_prev = ""
    expected_seq: int | None = None
    quote = encode_basestring
    qs = quote(stream)
    keyed = chain_key is not None and hasher is not None
    if keyed:
        assert chain_key is not None
        idents = chain_key._idents
        ident = chain_key.ident
        inner_copy, outer_copy = chain_key._inner.copy, chain_key._outer.copy
    plain = hasher is chain_hash
    count = 0
    for batch in cast(Iterable[list[Row]], batches):
        for row in batch:
            (
                row_id,
                seq,
                ts_us,
                actor,
                action,
                resource,
                outcome,
                request_id,
                details,
                cdigest,
                flags,
                prev,
                hash_,
            ) = row
            if expected_seq is None:
                chunk.first_seq, chunk.first_prev, chunk.first_id = seq, prev, row_id
                chunk.first_ts = ts_us
            elif seq != expected_seq:
                problems.append(_gap(stream, expected_seq, seq, row_id))
            elif prev != expected_prev:
                problems.append(_broken(stream, seq, row_id))
            if hasher is not None:
                try:
                    if keyed:
                        a = idents.get(actor) or ident(actor)
                        r = idents.get(resource) or ident(resource)
                        body = (
                            f'[{qs},{seq:d},{ts_us:d},"{a}",{quote(action)},"{r}",{quote(outcome)},'
                            f"{'null' if request_id is None else quote(request_id)},"
                            f"{quote(details)},"
                            f"{'null' if cdigest is None else quote(cdigest)},{quote(flags)}]"
                        )
                        h = inner_copy()
                        h.update(f"{prev}\n{body}".encode())
                        o = outer_copy()
                        o.update(h.digest())
                        fast = o.hexdigest()
                    elif plain:
                        body = (
                            f"[{qs},{seq:d},{ts_us:d},{quote(actor)},{quote(action)},"
                            f"{quote(resource)},{quote(outcome)},"
                            f"{'null' if request_id is None else quote(request_id)},"
                            f"{quote(details)},"
                            f"{'null' if cdigest is None else quote(cdigest)},{quote(flags)}]"
                        )
                        fast = sha256(f"{prev}\n{body}".encode()).hexdigest()
                    else:
                        fast = ""
                except (TypeError, ValueError):  # a value of an unexpected type: the reference
                    fast = ""
                if fast != hash_ and not _reference_matches(hasher, stream, row):
                    problems.append(
                        Problem(
                            stream,
                            seq,
                            row_id,
                            "edited",
                            "the row's content does not match its hash: it was edited",
                        )
                    )
            if seq in anchors:
                chunk.seen[seq] = hash_
            expected_prev = hash_
            expected_seq = seq + 1
            count += 1
            if on_progress is not None and count % 10_000 == 0:
                on_progress(10_000)
    chunk.count = count
    if on_progress is not None:
        on_progress(count % 10_000)
    chunk.last_seq = None if expected_seq is None else expected_seq - 1
    chunk.last_hash = expected_prev
    chunk.last_ts = ts_us
    return chunk


def _key_of(chain: str, key: ChainKey | None) -> ChainKey | None:
    """The chain key when the stream is keyed (its rows are MACed with it)."""
    return key if chain == CHAIN_HMAC else None


def _reference_matches(hasher: Hasher, stream: str, row: Row) -> bool:
    """The row's hash recomputed the reference way (the canonical JSON encoder)."""
    try:
        fields = ChainFields(stream, *row[1:11])
        return bool(hasher(row[11], fields) == row[12])
    except (TypeError, ValueError, AttributeError):
        return False


def _gap(stream: str, expected: int, found: int, row_id: int | None) -> Problem:
    message = f"seq {expected} is missing (the next row is seq {found}): rows were deleted"
    return Problem(stream, expected, row_id, "missing_rows", message)


def _broken(stream: str, seq: int, row_id: int | None) -> Problem:
    message = "prev_hash does not match the previous row's hash: rows were reordered or inserted"
    return Problem(stream, seq, row_id, "broken_link", message)


def _stitch(
    stream: str,
    chunks: list[_Chunk],
    checkpoints: list[Checkpoint],
    trusted: dict[str, Ed25519PublicKey],
    sr: StreamReport,
    chain: str,
    anchors: list[SignedCheckpoint],
    start: Checkpoint | None = None,
) -> list[Problem]:
    """Join the chunks of a stream and check its checkpoints and anchors; ``start`` is
    the signed checkpoint a partial verification picks the chain up from."""
    problems: list[Problem] = []
    valid: dict[int, Checkpoint] = {}
    bad: list[Problem] = []
    for cp in checkpoints:
        problem = _check_signature(stream, cp, trusted, chain)
        if problem is None:
            valid[cp[0]] = cp
        else:
            bad.append(problem)
    seals = [cp for cp in valid.values() if cp[6] == "seal"]
    sealed = max(seals, default=None, key=lambda cp: cp[0])
    sr.sealed_seq = sealed[0] if sealed is not None else 0
    seen: dict[int, str] = {}
    expected_seq: int | None = None
    expected_prev = ""
    first_ts = last_ts = 0
    for chunk in chunks:
        if chunk.first_seq is None or chunk.last_seq is None:
            continue
        seq = chunk.first_seq
        if expected_seq is None:
            sr.first_seq = seq
            first_ts = chunk.first_ts
            if start is not None:  # a partial verification: from a signed checkpoint
                if seq != start[0] + 1:
                    problems.append(_gap(stream, start[0] + 1, seq, chunk.first_id))
                elif chunk.first_prev != start[1]:
                    problems.append(_broken(stream, seq, chunk.first_id))
                problems.extend(chunk.problems)
                seen.update(chunk.seen)
                sr.events += chunk.count
                expected_seq, expected_prev = chunk.last_seq + 1, chunk.last_hash
                last_ts = chunk.last_ts
                continue
            # A v2 checkpoint (with a root) lets the rows before it go only as a seal;
            # ledgers signed before anchoring kept the older rule (any checkpoint).
            before = valid.get(seq - 1)
            pruned_ok = before is not None and (before[5] is None or before[6] == "seal")
            if seq == 1 and chunk.first_prev != genesis(stream):
                problems.append(
                    Problem(
                        stream,
                        seq,
                        chunk.first_id,
                        "broken_link",
                        "the first row does not start from the genesis",
                    )
                )
            elif seq != 1 and not (
                pruned_ok and before is not None and before[1] == chunk.first_prev
            ):
                problems.append(
                    Problem(
                        stream,
                        seq,
                        chunk.first_id,
                        "missing_rows",
                        f"the chain starts at seq {seq}: rows 1..{seq - 1} were deleted "
                        "and no signed retention seal vouches for their removal",
                    )
                )
        elif seq != expected_seq:
            problems.append(_gap(stream, expected_seq, seq, chunk.first_id))
        elif chunk.first_prev != expected_prev:
            problems.append(_broken(stream, seq, chunk.first_id))
        problems.extend(chunk.problems)
        seen.update(chunk.seen)
        sr.events += chunk.count
        expected_seq, expected_prev = chunk.last_seq + 1, chunk.last_hash
        last_ts = chunk.last_ts
    sr.last_seq = None if expected_seq is None else expected_seq - 1
    signed_start = start is not None or any(cp[0] == 0 for cp in checkpoints)
    if sr.events and not signed_start and sr.sealed_seq == 0:
        problems.append(
            Problem(
                stream,
                None,
                None,
                "unsigned_stream",
                "no signed checkpoint vouches for the start of this stream: it was forged whole "
                "or its checkpoints were deleted",
            )
        )
    problems.extend(bad)
    covered: Checkpoint | None = None
    for seq, cp in sorted(valid.items()):
        problem = _check_rows(stream, cp, seen, sr)
        if problem is not None:
            problems.append(problem)
        elif seq > 0:
            covered = cp
    finals = [cp[0] for cp in valid.values() if cp[6] == "final"]
    if finals and sr.last_seq is not None and sr.last_seq > max(finals):
        problems.append(_appended(stream, max(finals), sr.last_seq))
    problems.extend(_check_anchors(stream, anchors, trusted, valid, seen, sr))
    for anchor in anchors:
        if (
            anchor.verifies(trusted)
            and (covered is None or anchor.seq > covered[0])
            and sr.last_seq is not None
            and anchor.seq <= sr.last_seq
            and seen.get(anchor.seq) == anchor.hash
        ):
            covered = (anchor.seq, anchor.hash, anchor.ts_us, "", "", anchor.root, anchor.kind)
    sr.covered_seq = covered[0] if covered is not None else 0
    if sr.last_seq is not None and sr.last_seq > sr.covered_seq:
        sr.uncovered_events = sr.last_seq - max(sr.covered_seq, (sr.first_seq or 1) - 1)
        since = covered[2] if covered is not None else first_ts
        sr.uncovered_us = max(0, last_ts - since)
    return problems


def _check_signature(
    stream: str, cp: Checkpoint, trusted: dict[str, Ed25519PublicKey], chain: str
) -> Problem | None:
    seq, hash_, ts_us, key, signature, root, kind = cp
    public = trusted.get(key)
    if public is None:
        return Problem(
            stream,
            seq,
            None,
            "untrusted_checkpoint",
            f"checkpoint signed by unknown key {key}: pass its public key",
        )
    signed = verify_signature(
        public, stream, seq, hash_, ts_us, signature, root=root, chain=chain, kind=kind
    )
    if not signed or (seq == 0 and hash_ != genesis(stream)):
        return Problem(
            stream,
            seq,
            None,
            "bad_signature",
            "the checkpoint's signature does not verify: it (or its stream's chain format) "
            "was forged or edited",
        )
    return None


def _check_rows(
    stream: str, cp: Checkpoint, seen: dict[int, str], sr: StreamReport
) -> Problem | None:
    """A signed checkpoint's rows must be there, with the hash it signed."""
    seq, hash_ = cp[0], cp[1]
    if seq == 0 or seq < sr.sealed_seq:
        return None  # the signed start, or a checkpoint over rows retention removed
    if seq == sr.sealed_seq and (sr.first_seq is None or sr.first_seq > seq):
        return None  # the seal itself, its rows removed
    if sr.last_seq is None or sr.last_seq < seq:
        end = "has no rows" if sr.last_seq is None else f"ends at seq {sr.last_seq}"
        return Problem(
            stream,
            seq,
            None,
            "truncated",
            f"a checkpoint vouches for seq {seq} but the chain {end}: the tail was deleted",
        )
    if seq in seen and seen[seq] != hash_:
        return Problem(
            stream,
            seq,
            None,
            "rewritten",
            "the row at this checkpoint has another hash than the one signed: "
            "history was rewritten",
        )
    if seq not in seen and sr.first_seq is not None and seq >= sr.first_seq:
        return Problem(
            stream, seq, None, "missing_rows", "the row this checkpoint vouches for is missing"
        )
    return None


def _appended(stream: str, final: int, last: int) -> Problem:
    return Problem(
        stream,
        final + 1,
        None,
        "appended",
        f"the stream's final checkpoint closed it at seq {final} but rows run to seq {last}: "
        "rows were appended after the writer stopped",
    )


def finals_in(valid: dict[int, Checkpoint], seq: int) -> bool:
    """Whether the database still holds the final checkpoint at ``seq`` (then the
    appended rows are reported once, from it)."""
    cp = valid.get(seq)
    return cp is not None and cp[6] == "final"


def _check_anchors(
    stream: str,
    anchors: list[SignedCheckpoint],
    trusted: dict[str, Ed25519PublicKey],
    valid: dict[int, Checkpoint],
    seen: dict[int, str],
    sr: StreamReport,
) -> list[Problem]:
    """Each anchored checkpoint against the database: one problem per anchor at most."""
    problems = []
    for anchor in anchors:
        ok = anchor.verifies(trusted)
        if ok is None:
            problems.append(
                Problem(
                    stream,
                    anchor.seq,
                    None,
                    "untrusted_anchor",
                    f"anchor signed by unknown key {anchor.key_id}: pass its public key",
                )
            )
            continue
        if not ok:
            problems.append(
                Problem(
                    stream,
                    anchor.seq,
                    None,
                    "bad_anchor",
                    "an anchor file's signature does not verify: it was forged or edited",
                )
            )
            continue
        seq = anchor.seq
        problem: Problem | None = None
        if seq == 0 or (seq < sr.sealed_seq) or (seq == sr.sealed_seq and seq in valid):
            problem = None  # the start (checked as unsigned_stream), or removed by retention
        elif sr.last_seq is None:
            problem = Problem(
                stream,
                seq,
                None,
                "missing_stream",
                f"an anchored checkpoint vouches for {seq} events of this stream but the "
                "database holds none of them: the stream's events were deleted",
            )
        elif seq > sr.last_seq:
            problem = Problem(
                stream,
                seq,
                None,
                "truncated",
                f"an anchored checkpoint vouches for seq {seq} but the chain ends at seq "
                f"{sr.last_seq}: the tail was deleted",
            )
        elif seq in seen and seen[seq] != anchor.hash:
            problem = Problem(
                stream,
                seq,
                None,
                "rewritten",
                "the row at this anchored checkpoint has another hash than the one published: "
                "history was rewritten",
            )
        elif seq not in seen and seq >= (sr.first_seq or 1):
            problem = Problem(
                stream,
                seq,
                None,
                "missing_rows",
                "the row this anchored checkpoint vouches for is missing",
            )
        elif anchor.kind == "final" and sr.last_seq > seq and not (finals_in(valid, seq)):
            problem = _appended(stream, seq, sr.last_seq)
        elif valid.get(seq, (None, None))[1] != anchor.hash:
            problem = Problem(
                stream,
                seq,
                None,
                "checkpoint_deleted",
                "an anchored checkpoint is no longer in the database: it was deleted",
            )
        if problem is not None:
            problems.append(problem)
            if problem.kind == "missing_stream":
                break  # once for the stream
    return problems


@dataclass(frozen=True)
class RecentReport:
    """A bounded check: the newest ``per_stream`` rows of each stream (the dashboard's
    button). Links, hashes and the signed checkpoints that fall in the range are checked;
    the whole history is ``verify_ledger``'s (``bastion audit verify``)."""

    per_stream: int
    streams: int
    events: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_recent(
    db: Database,
    trusted_keys: dict[str, Ed25519PublicKey],
    *,
    chain_key: ChainKey | None,
    per_stream: int,
    batch: int = 5_000,
) -> RecentReport:
    problems: list[Problem] = []
    events = 0
    with db.engine.connect() as conn:
        registered = {
            str(r[0]): str(r[1]) for r in conn.execute(select(AuditStream.id, AuditStream.chain))
        }
        streams = _stream_ids(conn)
        for stream in streams:
            hi = conn.execute(
                text("SELECT MAX(seq) FROM audit_events WHERE stream = :s"), {"s": stream}
            ).scalar()
            if hi is None:
                continue
            lo = max(1, int(hi) - per_stream + 1)
            chain = registered.get(stream, CHAIN_SHA256)
            hasher = hasher_for(chain, chain_key)
            if hasher is None:
                problems.append(
                    Problem(
                        stream, None, None, "no_chain_key", f"the stream is chained with {chain}"
                    )
                )
                continue
            checkpoints = {
                int(seq): (str(hash_), str(key_id), str(signature), root, int(ts_us), str(kind))
                for seq, hash_, key_id, signature, root, ts_us, kind in conn.execute(
                    select(
                        AuditCheckpoint.seq,
                        AuditCheckpoint.hash,
                        AuditCheckpoint.key_id,
                        AuditCheckpoint.signature,
                        AuditCheckpoint.root,
                        AuditCheckpoint.ts_us,
                        AuditCheckpoint.kind,
                    ).where(
                        AuditCheckpoint.stream == stream,
                        AuditCheckpoint.seq >= lo,
                        AuditCheckpoint.seq <= int(hi),
                    )
                )
            }
            chunk = _scan(
                stream,
                _raw_rows(conn, stream, batch, (lo, int(hi))),
                frozenset(checkpoints),
                None,
                hasher,
            )
            events += chunk.count
            problems.extend(chunk.problems)
            if chunk.first_seq is not None and chunk.first_seq > 1:
                before = conn.execute(
                    text("SELECT hash FROM audit_events WHERE stream = :s AND seq = :q"),
                    {"s": stream, "q": chunk.first_seq - 1},
                ).scalar()
                if before is not None and before != chunk.first_prev:
                    problems.append(_broken(stream, chunk.first_seq, chunk.first_id))
            for seq, (hash_, key_id, signature, root, ts_us, kind) in sorted(checkpoints.items()):
                if chunk.seen.get(seq) not in (None, hash_):
                    problems.append(
                        Problem(
                            stream, seq, None, "rewritten", "the row differs from its checkpoint"
                        )
                    )
                cp: Checkpoint = (seq, hash_, ts_us, key_id, signature, root, kind)
                found = _check_signature(stream, cp, trusted_keys, chain)
                if found is not None:
                    problems.append(found)
    return RecentReport(per_stream, len(streams), events, problems)
