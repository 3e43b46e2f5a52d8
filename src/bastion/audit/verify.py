"""Recompute every chain and name the first broken link.

For each stream: rows must run seq 1, 2, 3 … (a gap means rows were deleted), each
row's ``prev_hash`` must be the previous row's ``hash`` (else rows were reordered or
inserted), and each row's ``hash`` must match its recomputed value (else it was
edited). Each checkpoint's signature must verify with a trusted key, the row it names
must carry the hash it vouches for, and the chain must reach it (else the tail was
truncated). A stream may start after seq 1 only where a checkpoint anchors its first
row (retention pruned the prefix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select, text

from bastion.audit.events import chain_hash, genesis
from bastion.audit.models import AuditCheckpoint, AuditStream
from bastion.audit.signing import verify_signature
from bastion.db import Database

_ROWS = text(
    "SELECT id, seq, ts_us, actor, action, resource, outcome, request_id, details, "
    "content_digest, flags, prev_hash, hash FROM audit_events WHERE stream = :stream ORDER BY seq"
)


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
) -> VerifyReport:
    report = VerifyReport()
    with db.engine.connect() as conn:
        streams = _stream_ids(conn)
        registered = set(conn.scalars(select(AuditStream.id)))
        for stream in streams:
            checkpoints = list(
                conn.execute(
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
            )
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
            rows = conn.execution_options(yield_per=batch).execute(_ROWS, {"stream": stream})
            report.problems.extend(
                _verify_chain(stream, rows, checkpoints, trusted_keys, sr, on_progress)  # type: ignore[arg-type]
            )
    return report


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


def _verify_chain(
    stream: str,
    rows: Iterable[Any],
    checkpoints: list[Checkpoint],
    trusted: dict[str, Ed25519PublicKey],
    sr: StreamReport,
    on_progress: Callable[[int], None] | None,
) -> list[Problem]:
    problems: list[Problem] = []
    anchors = {cp[0]: cp[1] for cp in checkpoints}
    seen: dict[int, str] = {}
    expected_prev = ""
    expected_seq: int | None = None
    count = 0
    for raw in rows:
        row = cast(Row, tuple(raw))
        row_id, seq, ts_us, actor, action, resource, outcome, request_id = row[:8]
        details, cdigest, flags, prev, hash_ = row[8:]
        count += 1
        if expected_seq is None:
            sr.first_seq = seq
            if seq == 1 and prev != genesis(stream):
                problems.append(
                    Problem(
                        stream,
                        seq,
                        row_id,
                        "broken_link",
                        "the first row does not start from the stream's genesis",
                    )
                )
            elif seq != 1 and anchors.get(seq - 1) != prev:
                problems.append(
                    Problem(
                        stream,
                        seq,
                        row_id,
                        "missing_rows",
                        f"the chain starts at seq {seq}: rows 1..{seq - 1} were deleted "
                        "and no checkpoint anchors the remainder",
                    )
                )
        elif seq != expected_seq:
            problems.append(
                Problem(
                    stream,
                    expected_seq,
                    row_id,
                    "missing_rows",
                    f"seq {expected_seq} is missing (the next row is seq {seq}): rows were deleted",
                )
            )
        elif prev != expected_prev:
            problems.append(
                Problem(
                    stream,
                    seq,
                    row_id,
                    "broken_link",
                    "prev_hash does not match the previous row's hash: "
                    "rows were reordered or inserted",
                )
            )
        recomputed = chain_hash(
            prev,
            stream,
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
        )
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
            seen[seq] = hash_
        expected_prev = hash_
        expected_seq = seq + 1
        if on_progress is not None and count % 10_000 == 0:
            on_progress(10_000)
    if on_progress is not None:
        on_progress(count % 10_000)
    sr.events = count
    sr.last_seq = None if expected_seq is None else expected_seq - 1
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
    if not verify_signature(public, stream, seq, hash_, ts_us, signature):
        return Problem(
            stream,
            seq,
            None,
            "bad_signature",
            "the checkpoint's signature does not verify: it was forged or edited",
        )
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
