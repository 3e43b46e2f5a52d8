"""The ledger: group commit, verification, and every kind of tampering caught."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import json
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.audit import Digester, EventIn, LedgerUnavailable, LedgerWriter, verify_ledger
from bastion.audit.events import ChainFields, chain_hash
from bastion.audit.signing import Signer, load_or_create_signer
from bastion.db import Database, create_database, upgrade

pytestmark = pytest.mark.anyio


@pytest.fixture
def db(database_url: str) -> Database:
    database = create_database(database_url)
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return load_or_create_signer(tmp_path / "signing.pem")


def make_writer(db: Database, signer: Signer | None, **kw: int) -> LedgerWriter:
    writer = LedgerWriter(db, Digester(b"k" * 32), signer, **kw)  # type: ignore[arg-type]
    writer.start()
    return writer


def event(i: int, **kw: object) -> EventIn:
    return EventIn(
        actor=f"user:u{i % 3}",
        action="llm.call" if i % 2 else "key.create",
        resource=f"model:m{i % 4}",
        outcome="success",
        details={"i": i, "cost_usd": 0.001 * i, "note": "é ✓"},
        **kw,  # type: ignore[arg-type]
    )


def fill(db: Database, signer: Signer, n: int = 30, checkpoint_every: int = 10) -> str:
    writer = make_writer(db, signer, checkpoint_every=checkpoint_every)
    for i in range(n):
        writer.append(event(i))
    writer.close()  # final checkpoint at the tail
    return writer.stream


def trusted(signer: Signer) -> dict[str, object]:
    return {signer.key_id: signer.public}


def test_concurrent_appends_form_one_unbroken_chain(db: Database, signer: Signer) -> None:
    writer = make_writer(db, signer, checkpoint_every=100)
    with cf.ThreadPoolExecutor(64) as pool:
        receipts = list(pool.map(lambda i: writer.append(event(i)), range(600)))
    writer.close()
    assert sorted(r.seq for r in receipts) == list(range(1, 601))
    assert writer.groups_committed < 600, "appends under concurrency must share commits"
    report = verify_ledger(db, trusted(signer))  # type: ignore[arg-type]
    assert report.ok, report.problems
    assert report.events == 600
    assert report.streams[0].checkpoints >= 1


async def test_async_append_returns_after_commit(db: Database, signer: Signer) -> None:
    writer = make_writer(db, signer)
    receipt = await writer.append_async(event(1))
    with db.engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": receipt.seq}
        ).scalar()
    writer.close()
    assert stored == receipt.hash


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    database = create_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(database.engine)
    yield database
    database.dispose()


async def test_async_appends_on_sqlite_commit_on_the_loop_and_chain_with_the_thread(
    sqlite_db: Database, signer: Signer
) -> None:
    writer = make_writer(sqlite_db, signer)
    writer.append(event(0))  # the thread registers the stream (and signs its start)
    receipts = [await writer.append_async(event(i)) for i in range(1, 21)]
    receipts += await asyncio.gather(*(writer.append_async(event(i)) for i in range(21, 41)))
    writer.append(event(41))  # the thread carries on from the loop's head
    writer.close()
    assert [r.seq for r in receipts] == list(range(2, 42))
    assert writer.groups_inline >= 20  # twenty single appends, then one turn's group
    report = verify_ledger(sqlite_db, trusted(signer))  # type: ignore[arg-type]
    assert report.ok, report.problems
    assert report.events == 42


async def test_a_loop_never_waits_for_sqlites_write_lock(
    sqlite_db: Database, signer: Signer, tmp_path: Path
) -> None:
    writer = make_writer(sqlite_db, signer)
    await writer.append_async(event(0))
    # What "never waits" means to SQLite: the loop's connection gives up at once on a
    # taken write lock, and leaves WAL checkpoints (a disk sync) to the thread.
    cursor = writer._inline_conn.cursor()
    assert cursor.execute("PRAGMA busy_timeout").fetchone() == (0,)
    assert cursor.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    cursor.close()
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, say
    inline_before = writer.groups_inline
    pending = asyncio.ensure_future(writer.append_async(event(1)))
    await asyncio.sleep(0.2)  # the loop has handed the group over; the thread tries
    assert not pending.done()  # the thread waits for the lock instead
    other.execute("COMMIT")
    other.close()
    receipt = await asyncio.wait_for(pending, 10)
    assert receipt.seq == 2
    assert writer.groups_inline == inline_before
    writer.close()
    assert verify_ledger(sqlite_db, trusted(signer)).ok  # type: ignore[arg-type]


async def test_a_failed_loop_commit_goes_to_the_thread_and_the_loop_carries_on(
    sqlite_db: Database, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = make_writer(sqlite_db, signer)
    writer.append(event(0))
    await writer.append_async(event(1))
    inline = writer.groups_inline
    run = writer._events.run
    failed: list[object] = []

    def disk_error_once(conn: object, rows: list[dict[str, object]]) -> None:
        if conn is writer._inline_conn and not failed:
            failed.append(conn)
            raise sqlite3.OperationalError("disk I/O error")
        run(conn, rows)

    monkeypatch.setattr(writer._events, "run", disk_error_once)
    receipt = await writer.append_async(event(2))
    assert receipt.seq == 3 and failed  # the caller never saw the loop's failure
    assert writer.groups_inline == inline  # the thread committed it
    # The thread opens the loop a new connection when it gets to it; on a busy machine
    # that can take a while, so wait for it (bounded) rather than for a number of appends.
    deadline = time.monotonic() + 30
    i = 3
    while writer.groups_inline == inline and time.monotonic() < deadline:
        await writer.append_async(event(i))
        i += 1
        await asyncio.sleep(0.005)
    assert writer.groups_inline > inline
    assert writer._inline_conn is not failed[0]
    writer.close()
    assert verify_ledger(sqlite_db, trusted(signer)).ok  # type: ignore[arg-type]


async def test_a_large_turn_goes_to_the_thread(sqlite_db: Database, signer: Signer) -> None:
    from bastion.audit.writer import INLINE_MAX

    writer = make_writer(sqlite_db, signer)
    writer.append(event(0))
    inline = writer.groups_inline
    receipts = await asyncio.gather(*(writer.append_async(event(i)) for i in range(INLINE_MAX + 1)))
    assert sorted(r.seq for r in receipts) == list(range(2, INLINE_MAX + 3))
    assert writer.groups_inline == inline  # hashing that many is not done on the loop
    writer.close()
    assert verify_ledger(sqlite_db, trusted(signer)).ok  # type: ignore[arg-type]


async def test_loop_commits_keep_the_wal_checkpointed(
    sqlite_db: Database, signer: Signer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.audit import writer as writer_module

    monkeypatch.setattr(writer_module, "WAL_CHECKPOINT_EVERY", 10)
    writer = make_writer(sqlite_db, signer)
    writer.append(event(0))
    for i in range(1, 200):
        await writer.append_async(event(i))
        if i % 10 == 0:
            # The loop asks the thread for a checkpoint every 10 commits; on a busy
            # machine the thread may not get the CPU during a tight burst, so give it
            # the chance (bounded) that a server's idle moments give it.
            for _ in range(5000):  # at most ~5 s
                if writer._queue.empty():
                    break
                await asyncio.sleep(0.001)
    assert writer.groups_inline >= 150
    wal = tmp_path / "ledger.db-wal"
    # Without the thread's checkpoints these 200 commits leave a WAL of about 6.5 MB
    # (measured); each checkpoint lets the next commit start the WAL over.
    assert wal.stat().st_size < 2_000_000
    writer.close()
    assert verify_ledger(sqlite_db, trusted(signer)).ok  # type: ignore[arg-type]


async def test_an_async_append_the_writer_closes_under_is_refused_not_left_waiting(
    db: Database, signer: Signer
) -> None:
    writer = make_writer(db, signer)
    append = asyncio.ensure_future(writer.append_async(event(1)))
    await asyncio.sleep(0)  # appended; its turn's group is handed over after this
    writer.close()
    with pytest.raises(LedgerUnavailable, match="shutting down"):
        await asyncio.wait_for(append, 5)


def test_two_writers_keep_separate_chains(db: Database, signer: Signer) -> None:
    a, b = make_writer(db, signer), make_writer(db, signer)
    for i in range(20):
        (a if i % 2 else b).append(event(i))
    a.close()
    b.close()
    report = verify_ledger(db, trusted(signer))  # type: ignore[arg-type]
    assert report.ok, report.problems
    assert sorted(s.events for s in report.streams) == [10, 10]


def test_content_is_digested_and_erasable_without_breaking_the_chain(
    db: Database, signer: Signer
) -> None:
    from bastion.audit import EventRepository

    writer = make_writer(db, signer)
    secret_prompt = "my card is 4111 1111 1111 1111"
    receipt = writer.append(
        event(1, content={"prompt": secret_prompt}, store_content=True, subject="user:alice")
    )
    writer.append(event(2, content={"prompt": "not stored"}, store_content=False))
    writer.close()
    with db.engine.connect() as conn:
        chained = " ".join(
            str(v) for row in conn.execute(sa.text("SELECT * FROM audit_events")) for v in row
        )
    assert secret_prompt not in chained and "not stored" not in chained
    repo = EventRepository(db)
    assert repo.content_for(receipt.stream, receipt.seq) == {"prompt": secret_prompt}
    assert repo.erase_subject("user:alice") == 1
    assert repo.content_for(receipt.stream, receipt.seq) == {}
    assert verify_ledger(db, trusted(signer)).ok  # type: ignore[arg-type]


def test_unserialisable_details_fail_only_that_append(db: Database, signer: Signer) -> None:
    writer = make_writer(db, signer)
    bad = EventIn(actor="a", action="x", resource="r", outcome="success", details={"x": object()})
    with pytest.raises(ValueError, match="JSON"):
        writer.append(bad)
    writer.append(event(1))
    writer.close()
    assert verify_ledger(db, trusted(signer)).ok  # type: ignore[arg-type]


def test_database_gone_mid_append_loses_nothing_silently(tmp_path: Path, signer: Signer) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'gone.db'}")
    upgrade(db.engine)
    writer = make_writer(db, signer)
    writer.append(event(1))
    with db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    with pytest.raises(LedgerUnavailable):
        writer.append(event(2))
    with db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    writer.append(event(3))  # the chain continues from the last committed row
    writer.close()
    report = verify_ledger(db, trusted(signer))  # type: ignore[arg-type]
    assert report.ok, report.problems
    assert report.events == 2
    db.dispose()


# -- tampering ---------------------------------------------------------------------


def run(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def first_problem(db: Database, signer: Signer) -> tuple[str, int | None]:
    report = verify_ledger(db, trusted(signer))  # type: ignore[arg-type]
    assert not report.ok, "tampering went unnoticed"
    problem = report.first_problem
    assert problem is not None
    return problem.kind, problem.seq


def test_untouched_ledger_verifies(db: Database, signer: Signer) -> None:
    fill(db, signer)
    assert verify_ledger(db, trusted(signer)).ok  # type: ignore[arg-type]


def test_edited_field_is_caught(db: Database, signer: Signer) -> None:
    fill(db, signer)
    run(db, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 7")
    assert first_problem(db, signer) == ("edited", 7)


def test_edited_details_are_caught(db: Database, signer: Signer) -> None:
    fill(db, signer)
    run(
        db,
        "UPDATE audit_events SET details = :d WHERE seq = 12",
        d=json.dumps({"i": 12, "cost_usd": 0}),
    )
    assert first_problem(db, signer) == ("edited", 12)


def test_deleted_row_is_caught(db: Database, signer: Signer) -> None:
    fill(db, signer)
    run(db, "DELETE FROM audit_events WHERE seq = 7")
    assert first_problem(db, signer) == ("missing_rows", 7)


def test_deleted_first_rows_are_caught(db: Database, signer: Signer) -> None:
    fill(db, signer)
    run(db, "DELETE FROM audit_events WHERE seq <= 3")
    assert first_problem(db, signer) == ("missing_rows", 4)


def test_reordered_rows_are_caught(db: Database, signer: Signer) -> None:
    fill(db, signer)
    run(db, "UPDATE audit_events SET seq = -1 WHERE seq = 5")
    run(db, "UPDATE audit_events SET seq = 5 WHERE seq = 6")
    run(db, "UPDATE audit_events SET seq = 6 WHERE seq = -1")
    kind, seq = first_problem(db, signer)
    assert seq == 5 and kind in {"edited", "broken_link"}


def test_naively_forged_row_is_caught(db: Database, signer: Signer) -> None:
    stream = fill(db, signer)
    run(
        db,
        "INSERT INTO audit_events (stream, seq, ts_us, actor, action, resource, outcome, request_id, "
        "details, content_digest, flags, prev_hash, hash) VALUES (:s, 31, 1, 'user:mallory', 'key.create', "
        "'key:x', 'success', NULL, '{}', NULL, '[]', :p, :h)",
        s=stream,
        p="0" * 64,
        h="1" * 64,
    )
    assert first_problem(db, signer) == ("broken_link", 31)


def test_forged_row_with_recomputed_chain_is_caught_by_the_signed_checkpoint(
    db: Database, signer: Signer
) -> None:
    stream = fill(db, signer, n=30, checkpoint_every=10)
    # Mallory inserts a row at seq 15 and re-chains everything after it: every link and
    # hash is consistent again, but the signed checkpoints no longer match.
    with db.engine.begin() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT * FROM audit_events WHERE stream = :s AND seq >= 15 ORDER BY seq DESC"
                ),
                {"s": stream},
            )
            .mappings()
            .all()
        )
        for row in rows:
            conn.execute(
                sa.text("UPDATE audit_events SET seq = seq + 1 WHERE id = :id"), {"id": row["id"]}
            )
        prev = conn.execute(
            sa.text("SELECT hash FROM audit_events WHERE stream = :s AND seq = 14"), {"s": stream}
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO audit_events (stream, seq, ts_us, actor, action, resource, outcome, request_id, "
                "details, content_digest, flags, prev_hash, hash) VALUES (:s, 15, 1, 'user:mallory', "
                "'key.create', 'key:x', 'success', NULL, '{}', NULL, '[]', :p, '')"
            ),
            {"s": stream, "p": prev},
        )
        chain = (
            conn.execute(
                sa.text("SELECT * FROM audit_events WHERE stream = :s AND seq >= 15 ORDER BY seq"),
                {"s": stream},
            )
            .mappings()
            .all()
        )
        for row in chain:
            h = chain_hash(prev, ChainFields(**{k: row[k] for k in ChainFields._fields}))
            conn.execute(
                sa.text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :id"),
                {"p": prev, "h": h, "id": row["id"]},
            )
            prev = h
    kind, seq = first_problem(db, signer)
    assert (kind, seq) == ("rewritten", 20)


def test_truncated_tail_after_checkpoint_is_caught(db: Database, signer: Signer) -> None:
    fill(db, signer, n=30, checkpoint_every=10)
    run(db, "DELETE FROM audit_events WHERE seq > 25")
    report = verify_ledger(db, trusted(signer))  # type: ignore[arg-type]
    assert [(p.kind, p.seq) for p in report.problems] == [("truncated", 30)]


def test_forged_checkpoint_signature_is_caught(db: Database, signer: Signer) -> None:
    fill(db, signer)
    run(db, "UPDATE audit_checkpoints SET seq = 29 WHERE seq = 30")
    assert first_problem(db, signer) == ("bad_signature", 29)


def test_checkpoint_signed_by_an_unknown_key_is_not_trusted(
    db: Database, signer: Signer, tmp_path: Path
) -> None:
    fill(db, signer)
    other = load_or_create_signer(tmp_path / "other.pem")
    report = verify_ledger(db, {other.key_id: other.public})
    assert {p.kind for p in report.problems} == {"untrusted_checkpoint"}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.text(max_size=20), st.sampled_from(["success", "failure", "refused"]), st.integers()
        ),
        min_size=1,
        max_size=15,
    ),
    st.data(),
)
def test_any_single_edit_of_any_row_is_caught(tmp_path: Path, entries, data) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"h{abs(hash(str(entries)))}.db"
    path.unlink(missing_ok=True)
    db = create_database(f"sqlite:///{path}")
    upgrade(db.engine)
    signer = load_or_create_signer(tmp_path / "s.pem")
    writer = make_writer(db, signer)
    for actor, outcome, n in entries:
        writer.append(
            EventIn(actor=actor, action="a", resource="r", outcome=outcome, details={"n": n})
        )
    writer.close()
    assert verify_ledger(db, trusted(signer)).ok  # type: ignore[arg-type]
    seq = data.draw(st.integers(1, len(entries)))
    column = data.draw(
        st.sampled_from(["actor", "outcome", "details", "ts_us", "flags", "resource"])
    )
    with db.engine.begin() as conn:
        old = conn.execute(
            sa.text(f"SELECT {column} FROM audit_events WHERE seq = :s"), {"s": seq}
        ).scalar()
        new = old + 1 if isinstance(old, int) else (str(old) + "x")
        conn.execute(
            sa.text(f"UPDATE audit_events SET {column} = :v WHERE seq = :s"), {"v": new, "s": seq}
        )
    report = verify_ledger(db, trusted(signer))  # type: ignore[arg-type]
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.seq) == ("edited", seq)
    db.dispose()


# -- parallel verification: ranges verified in worker processes, then stitched ------


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (None, None),
        ("DELETE FROM audit_events WHERE seq = 9", ("missing_rows", 9)),
        ("UPDATE audit_events SET prev_hash = :h WHERE seq = 17", ("broken_link", 17)),
    ],
    ids=["clean", "delete-at-a-range-edge", "relinked-at-a-range-edge"],
)
@pytest.mark.slow
def test_parallel_verification_finds_what_one_pass_finds(
    tmp_path: Path, signer: Signer, tamper: str | None, expected: tuple[str, int] | None
) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'p.db'}")
    upgrade(db.engine)
    fill(db, signer, n=30, checkpoint_every=10)
    if tamper:
        run(db, tamper, h="f" * 64)
    one = verify_ledger(db, trusted(signer), workers=1)  # type: ignore[arg-type]
    many = verify_ledger(db, trusted(signer), workers=2, parallel_threshold=1)  # type: ignore[arg-type]
    db.dispose()
    assert [(p.kind, p.seq) for p in many.problems] == [(p.kind, p.seq) for p in one.problems]
    assert many.events == one.events
    first = many.first_problem
    assert ((first.kind, first.seq) if first else None) == expected


@pytest.mark.slow
def test_a_verification_started_in_workers_ends_as_one_pass_while_the_caller_reads(
    tmp_path: Path, signer: Signer
) -> None:
    # A report hands the chain to the workers, scans the ledger itself, then collects:
    # the caller's own reading in between must not change what the workers find.
    from bastion.audit.verify import start_verification

    db = create_database(f"sqlite:///{tmp_path / 'p.db'}")
    upgrade(db.engine)
    fill(db, signer, n=30, checkpoint_every=10)
    run(db, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 12")
    pending = start_verification(db, trusted(signer), workers=2, parallel_threshold=1)  # type: ignore[arg-type]
    with db.engine.connect() as conn:
        read = conn.execute(sa.text("SELECT COUNT(*) FROM audit_events")).scalar_one()
    many = pending.result()
    one = verify_ledger(db, trusted(signer), workers=1)  # type: ignore[arg-type]
    db.dispose()
    assert read == 30
    assert [str(p) for p in many.problems] == [str(p) for p in one.problems]
    assert (many.first_problem.kind, many.first_problem.seq) == ("edited", 12)  # type: ignore[union-attr]


def test_a_stream_forged_whole_is_caught(db: Database, signer: Signer) -> None:
    from bastion.audit.events import genesis

    fill(db, signer, n=5)
    forged = "f" * 32
    run(
        db,
        "INSERT INTO audit_streams (id, created_at, host, pid, label) VALUES (:s, CURRENT_TIMESTAMP, 'h', 1, 'server')",
        s=forged,
    )
    prev = genesis(forged)
    h = chain_hash(
        prev,
        ChainFields(
            stream=forged,
            seq=1,
            ts_us=1,
            actor="user:mallory",
            action="key.create",
            resource="key:x",
            outcome="success",
            request_id=None,
            details='{"role":"admin"}',
            content_digest=None,
            flags="[]",
        ),
    )
    run(
        db,
        "INSERT INTO audit_events (stream, seq, ts_us, actor, action, resource, outcome, request_id, details, "
        "content_digest, flags, prev_hash, hash) VALUES (:s, 1, 1, 'user:mallory', 'key.create', 'key:x', "
        "'success', NULL, '{\"role\":\"admin\"}', NULL, '[]', :p, :h)",
        s=forged,
        p=prev,
        h=h,
    )
    report = verify_ledger(db, trusted(signer))  # type: ignore[arg-type]
    assert [(p.stream, p.kind) for p in report.problems] == [(forged, "unsigned_stream")]


def test_a_poisoned_event_fails_alone_and_the_writer_carries_on(
    db: Database, signer: Signer
) -> None:
    writer = make_writer(db, signer)
    poisoned = EventIn(
        actor="a", action="x", resource="r", outcome="success", content={"prompt": b"bytes"}
    )  # type: ignore[dict-item]
    with pytest.raises((ValueError, LedgerUnavailable)):
        writer.append(poisoned, timeout=10)
    assert writer.append(event(1), timeout=10).seq == 1
    writer.close()
    assert verify_ledger(db, trusted(signer)).ok  # type: ignore[arg-type]


def test_appends_after_close_are_refused_not_left_waiting(db: Database, signer: Signer) -> None:
    writer = make_writer(db, signer)
    writer.append(event(1))
    writer.close()
    with pytest.raises(LedgerUnavailable):
        writer.append(event(2), timeout=5)


def test_failure_text_never_carries_row_values(tmp_path: Path, signer: Signer) -> None:
    db = create_database(f"sqlite:///{tmp_path / 'gone.db'}")
    upgrade(db.engine)
    writer = make_writer(db, signer)
    writer.append(event(0))
    with db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events RENAME TO away"))
    with pytest.raises(LedgerUnavailable):
        writer.append(
            EventIn(
                actor="user:alice@example.com",
                action="a",
                resource="r",
                outcome="success",
                details={"ssn": "123-45-6789"},
            )
        )
    assert writer.last_error is not None
    assert "alice" not in writer.last_error and "123-45" not in writer.last_error
    writer.close()
    db.dispose()


@given(st.lists(st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1), st.none()), max_size=12))
def test_the_fast_hash_encoder_writes_exactly_what_json_dumps_writes(fields: list[object]) -> None:
    from bastion.audit.events import _compact

    assert _compact(fields) == json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def test_the_chain_hash_format_is_pinned() -> None:
    """A ledger written by an earlier release must still verify: the hashed bytes never change."""
    fields = ChainFields(
        stream="s" * 32,
        seq=7,
        ts_us=1_700_000_000_000_000,
        actor="user:é",
        action="chat",
        resource="model:x",
        outcome="success",
        request_id="req-1",
        details='{"a":1}',
        content_digest=None,
        flags='["pii"]',
    )
    assert chain_hash("p" * 64, fields) == (
        "540bcc4df7d35d8fe04b8876b3595df32bcb173679b4ad532e8a76d20317b7b0"
    )


_text = st.text(max_size=40)  # any code point: quotes, backslashes, controls, non-ASCII


@settings(max_examples=200, deadline=None)
@given(
    actor=_text,
    action=_text,
    resource=_text,
    outcome=_text,
    request_id=st.none() | _text,
    details=_text,
    digest=st.none() | _text,
    flags=_text,
    seq=st.integers(1, 2**53),
    ts_us=st.integers(0, 2**62),
    keyed=st.booleans(),
)
def test_verification_fast_path_agrees_with_the_reference_hash(
    actor: str,
    action: str,
    resource: str,
    outcome: str,
    request_id: str | None,
    details: str,
    digest: str | None,
    flags: str,
    seq: int,
    ts_us: int,
    keyed: bool,
) -> None:
    """The verifier writes each row's hash body itself (for speed); for any field values
    it must accept exactly the rows the reference encoder accepts."""
    from bastion.audit.events import ChainKey
    from bastion.audit.verify import _scan

    key = ChainKey(b"k" * 32)
    hasher = key.chain_hash if keyed else chain_hash
    fields = ChainFields(
        stream="s1",
        seq=seq,
        ts_us=ts_us,
        actor=actor,
        action=action,
        resource=resource,
        outcome=outcome,
        request_id=request_id,
        details=details,
        content_digest=digest,
        flags=flags,
    )
    prev = "p" * 64
    good = (7, *fields[1:], prev, hasher(prev, fields))
    chunk = _scan("s1", [[good]], frozenset(), None, hasher, key if keyed else None)
    assert chunk.problems == [] and chunk.count == 1
    edited = (7, *fields[1:4], action + "x", *fields[5:], prev, good[-1])
    chunk = _scan("s1", [[edited]], frozenset(), None, hasher, key if keyed else None)
    assert [p.kind for p in chunk.problems] == ["edited"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    streams=st.lists(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x17F), min_size=1, max_size=12),
        max_size=8,
        unique=True,
    ),
    rows_each=st.integers(1, 3),
)
def test_every_stream_with_events_is_found_by_skipping_along_the_index(
    db: Database, streams: list[str], rows_each: int
) -> None:
    # The verifier finds the events' streams by jumping from one to the next along
    # (stream, seq) instead of reading every entry: it must find exactly the same set.
    from bastion.audit.verify import _stream_ids

    with db.engine.connect() as conn, conn.begin() as tx:
        for stream in streams:
            for seq in range(1, rows_each + 1):
                conn.execute(
                    sa.text(
                        "INSERT INTO audit_events (stream, seq, ts_us, actor, action, resource, "
                        "outcome, details, flags, prev_hash, hash) VALUES "
                        "(:s, :q, 1, 'a', 'x', 'r', 'success', '{}', '[]', 'p', 'h')"
                    ),
                    {"s": stream, "q": seq},
                )
        found = _stream_ids(conn)
        tx.rollback()
    assert found == sorted(set(streams))
