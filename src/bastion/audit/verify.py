"""Recompute every chain and name the first broken link.

For each stream: rows must run seq 1, 2, 3 … (a gap means rows were deleted), each
row's ``prev_hash`` must be the previous row's ``hash`` (else rows were reordered or
inserted), and each row's ``hash`` must match its recomputed value (else it was
edited). Each checkpoint's signature must verify with a trusted key, the row it names
must carry the hash it vouches for, and the chain must reach it (else the tail was
truncated). A stream may start after seq 1 only where a checkpoint anchors its first
row (retention pruned the prefix).

A large stream is cut into seq ranges verified in parallel processes (hashing is
CPU-bound and the GIL would serialise threads); each range reports its first and last
links and the ranges are stitched together, so the result is the same as one pass.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select, text

from bastion.audit.events import ChainFields, chain_hash, genesis
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


def verify_ledger(
    db: Database,
    trusted_keys: dict[str, Ed25519PublicKey],
    *,
    on_progress: Callable[[int], None] | None = None,
    batch: int = 20_000,
    workers: int | None = None,
    parallel_threshold: int = 200_000,
) -> VerifyReport:
    """Verify every stream. ``workers`` processes share streams longer than
    ``parallel_threshold`` rows (default: one per core, at most four)."""
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    report = VerifyReport()
    with db.engine.connect() as conn:
        streams = _stream_ids(conn)
        registered = set(conn.scalars(select(AuditStream.id)))
        for stream in streams:
            checkpoints = [
                cast(Checkpoint, tuple(row))
                for row in conn.execute(
                    select(
                        AuditCheckpoint.seq,
                        AuditCheckpoint.hash,
                        AuditCheckpoint.ts_us,
                        AuditCheckpoint.key_id,
                        AuditCheckpoint.signature,
                    )
                    .where(AuditCheckpoint.stream == stream)
                    .order_by(AuditCheckpoint.seq)
                )
            ]
            sr = StreamReport(stream, checkpoints=len(checkpoints))
            report.streams.append(sr)
            if stream not in registered:
                report.problems.append(
                    Problem(
                        stream,
                        None,
                        None,
                        "unregistered_stream",
                        "events name a stream no writer registered",
                    )
                )
            anchors = frozenset(cp[0] for cp in checkpoints)
            lo, hi, count = conn.execute(
                text("SELECT MIN(seq), MAX(seq), COUNT(*) FROM audit_events WHERE stream = :s"),
                {"s": stream},
            ).one()
            in_memory = db.is_sqlite and db.engine.url.database in (None, "", ":memory:")
            if workers > 1 and count >= parallel_threshold and not in_memory:
                ranges = _ranges(int(lo), int(hi), workers * 4)
                url = db.engine.url.render_as_string(hide_password=False)
                # fork: workers start in milliseconds with everything imported; the
                # parent's connections are not used by them (each opens its own engine).
                methods = multiprocessing.get_all_start_methods()
                context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
                with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                    chunks = []
                    for chunk in pool.map(
                        _scan_range,
                        *zip(
                            *[(url, stream, a, b, anchors, batch) for a, b in ranges], strict=True
                        ),
                    ):
                        chunks.append(chunk)
                        if on_progress is not None:
                            on_progress(chunk.count)
            else:
                chunk = _scan(stream, _raw_rows(conn, stream, batch, None), anchors, on_progress)
                chunks = [chunk]
            report.problems.extend(_stitch(stream, chunks, checkpoints, trusted_keys, sr))
    return report


def _ranges(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    step = max(1, -(-(hi - lo + 1) // parts))
    return [(a, min(a + step - 1, hi)) for a in range(lo, hi + 1, step)]


_SELECT = (
    "SELECT id, seq, ts_us, actor, action, resource, outcome, request_id, details, "
    "content_digest, flags, prev_hash, hash FROM audit_events WHERE stream = {p}"
)


def _raw_rows(
    conn: Connection, stream: str, batch: int, seq_range: tuple[int, int] | None
) -> Iterator[tuple[Any, ...]]:
    """Rows as plain tuples straight from the driver: verification is bound by per-row
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
            yield from chunk
    finally:
        cursor.close()


def _stream_ids(conn: Connection) -> list[str]:
    found = conn.execute(
        text(
            "SELECT stream FROM audit_events GROUP BY stream "
            "UNION SELECT id FROM audit_streams UNION SELECT stream FROM audit_checkpoints"
        )
    )
    return sorted(row[0] for row in found)


Row = tuple[int, int, int, str, str, str, str, str | None, str, str | None, str, str, str]
Checkpoint = tuple[int, str, int, str, str]


@dataclass
class _Chunk:
    """What one seq range found; its first row's link is checked when stitching."""

    count: int = 0
    first_seq: int | None = None
    first_prev: str = ""
    first_id: int | None = None
    last_seq: int | None = None
    last_hash: str = ""
    problems: list[Problem] = field(default_factory=list)
    seen: dict[int, str] = field(default_factory=dict)


def _scan_range(
    url: str, stream: str, lo: int, hi: int, anchors: frozenset[int], batch: int
) -> _Chunk:
    """Verify rows lo..hi of a stream in a worker process."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return _scan(stream, _raw_rows(conn, stream, batch, (lo, hi)), anchors, None)
    finally:
        engine.dispose()


def _scan(
    stream: str,
    rows: Iterable[Any],
    anchors: frozenset[int],
    on_progress: Callable[[int], None] | None,
) -> _Chunk:
    chunk = _Chunk()
    problems = chunk.problems
    expected_prev = ""
    expected_seq: int | None = None
    for row in cast(Iterable[Row], rows):
        row_id, seq, ts_us, actor, action, resource, outcome, request_id = row[:8]
        details, cdigest, flags, prev, hash_ = row[8:]
        if expected_seq is None:
            chunk.first_seq, chunk.first_prev, chunk.first_id = seq, prev, row_id
        elif seq != expected_seq:
            problems.append(_gap(stream, expected_seq, seq, row_id))
        elif prev != expected_prev:
            problems.append(_broken(stream, seq, row_id))
        fields = ChainFields(
            stream=stream,
            seq=seq,
            ts_us=ts_us,
            actor=actor,
            action=action,
            resource=resource,
            outcome=outcome,
            request_id=request_id,
            details=details,
            content_digest=cdigest,
            flags=flags,
        )
        recomputed = chain_hash(prev, fields)
        if recomputed != hash_:
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
        chunk.count += 1
        if on_progress is not None and chunk.count % 10_000 == 0:
            on_progress(10_000)
    if on_progress is not None:
        on_progress(chunk.count % 10_000)
    chunk.last_seq = None if expected_seq is None else expected_seq - 1
    chunk.last_hash = expected_prev
    return chunk


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
) -> list[Problem]:
    problems: list[Problem] = []
    anchors = {cp[0]: cp[1] for cp in checkpoints}
    seen: dict[int, str] = {}
    expected_seq: int | None = None
    expected_prev = ""
    for chunk in chunks:
        if chunk.first_seq is None or chunk.last_seq is None:
            continue
        seq = chunk.first_seq
        if expected_seq is None:
            sr.first_seq = seq
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
            elif seq != 1 and anchors.get(seq - 1) != chunk.first_prev:
                problems.append(
                    Problem(
                        stream,
                        seq,
                        chunk.first_id,
                        "missing_rows",
                        f"the chain starts at seq {seq}: rows 1..{seq - 1} were deleted "
                        "and no checkpoint anchors the remainder",
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
    sr.last_seq = None if expected_seq is None else expected_seq - 1
    if sr.events and not any(cp[0] == 0 for cp in checkpoints):
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
    for cp in checkpoints:
        problem = _check_checkpoint(stream, cp, trusted, seen, sr)
        if problem is not None:
            problems.append(problem)
    return problems


def _check_checkpoint(
    stream: str,
    cp: Checkpoint,
    trusted: dict[str, Ed25519PublicKey],
    seen: dict[int, str],
    sr: StreamReport,
) -> Problem | None:
    seq, hash_, ts_us, key, signature = cp
    public = trusted.get(key)
    if public is None:
        return Problem(
            stream,
            seq,
            None,
            "untrusted_checkpoint",
            f"checkpoint signed by unknown key {key}: pass its public key",
        )
    if not verify_signature(public, stream, seq, hash_, ts_us, signature) or (
        seq == 0 and hash_ != genesis(stream)
    ):
        return Problem(
            stream,
            seq,
            None,
            "bad_signature",
            "the checkpoint's signature does not verify: it was forged or edited",
        )
    if seq == 0:  # the signed start of the stream
        return None
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
