"""Tampering by someone with write access to the database, caught and named.

A ledger of 51 events (and a second stream of 10) is written with the keyed chain and
its checkpoints published to an anchor directory; each case below tampers with a copy
the way the issue lists, and ``verify_ledger`` with the anchors must report it under
the kind an auditor would look for. The attacker is assumed to know the hash algorithm
and, in the ``*_rechain`` cases, even the chain key: only the anchors stop them there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.audit import ChainKey, Digester, EventIn, LedgerWriter, verify_ledger
from bastion.audit.anchors import AnchorPublisher, load_anchors
from bastion.audit.events import CHAIN_SHA256, ChainFields, chain_hash
from bastion.audit.signing import Signer, load_or_create_signer
from bastion.db import Database, create_database, upgrade

KEY = ChainKey(b"chain-key-for-tests-0123456789ab")
KINDS = {
    "edited",
    "missing_rows",
    "broken_link",
    "rewritten",
    "truncated",
    "bad_signature",
    "untrusted_checkpoint",
    "unsigned_stream",
    "unregistered_stream",
    "missing_stream",
    "checkpoint_deleted",
    "appended",
    "no_chain_key",
    "bad_anchor",
    "untrusted_anchor",
}


@pytest.fixture
def db(database_url: str) -> Database:
    database = create_database(database_url)
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return load_or_create_signer(tmp_path / "signing.pem")


@dataclass
class Ledger:
    db: Database
    signer: Signer
    anchors: Path
    main: str
    other: str

    def verify(self, *, anchors: bool = True, key: ChainKey | None = KEY):  # type: ignore[no-untyped-def]
        return verify_ledger(
            self.db,
            {self.signer.key_id: self.signer.public},
            chain_key=key,
            anchors=load_anchors(self.anchors) if anchors else None,
        )

    def sql(self, statement: str, **params: object) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(sa.text(statement), params)

    def rows(self, conn: sa.Connection, from_seq: int) -> list[sa.RowMapping]:
        query = "SELECT * FROM audit_events WHERE stream = :s AND seq >= :q ORDER BY seq"
        return list(conn.execute(sa.text(query), {"s": self.main, "q": from_seq}).mappings())

    def rechain(
        self, from_seq: int, hasher: Callable[[str, ChainFields], str] = KEY.chain_hash
    ) -> None:
        """Recompute every hash from ``from_seq`` on, as a thorough attacker would."""
        with self.db.engine.begin() as conn:
            prev = conn.execute(
                sa.text("SELECT hash FROM audit_events WHERE stream = :s AND seq = :q"),
                {"s": self.main, "q": from_seq - 1},
            ).scalar_one()
            for row in self.rows(conn, from_seq):
                h = hasher(prev, ChainFields(**{k: row[k] for k in ChainFields._fields}))
                conn.execute(
                    sa.text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :id"),
                    {"p": prev, "h": h, "id": row["id"]},
                )
                prev = h

    def insert(self, seq: int, prev: str = "0" * 64, hash_: str = "1" * 64) -> None:
        self.sql(
            "INSERT INTO audit_events (stream, seq, ts_us, actor, action, resource, outcome, "
            "request_id, details, content_digest, flags, prev_hash, hash) VALUES (:s, :q, 1, "
            "'user:mallory', 'key.create', 'key:x', 'success', NULL, '{}', NULL, '[]', :p, :h)",
            s=self.main,
            q=seq,
            p=prev,
            h=hash_,
        )

    def shift_from(self, seq: int) -> None:
        with self.db.engine.begin() as conn:
            for row in reversed(self.rows(conn, seq)):
                conn.execute(
                    sa.text("UPDATE audit_events SET seq = seq + 1 WHERE id = :id"),
                    {"id": row["id"]},
                )


def write(db: Database, signer: Signer, anchors: Path, n: int) -> str:
    writer = LedgerWriter(
        db,
        Digester(b"d" * 32),
        signer,
        checkpoint_every=10,
        chain_key=KEY,
        publisher=AnchorPublisher(anchors),
    )
    writer.start()
    for i in range(n):
        writer.append(EventIn(f"user:u{i % 3}", "llm.call", f"model:m{i % 4}", "success", {"i": i}))
    writer.close()  # the final checkpoint, published too
    return writer.stream


@pytest.fixture
def ledger(db: Database, signer: Signer, tmp_path: Path) -> Ledger:
    anchors = tmp_path / "anchors"
    main = write(db, signer, anchors, 51)
    other = write(db, signer, anchors, 10)
    return Ledger(db, signer, anchors, main, other)


def edit_row(lg: Ledger) -> None:
    lg.sql("UPDATE audit_events SET outcome = 'failure' WHERE stream = :s AND seq = 7", s=lg.main)


def delete_middle_row(lg: Ledger) -> None:
    lg.sql("DELETE FROM audit_events WHERE stream = :s AND seq = 7", s=lg.main)


def reorder_rows(lg: Ledger) -> None:
    lg.sql("UPDATE audit_events SET seq = -1 WHERE stream = :s AND seq = 5", s=lg.main)
    lg.sql("UPDATE audit_events SET seq = 5 WHERE stream = :s AND seq = 6", s=lg.main)
    lg.sql("UPDATE audit_events SET seq = 6 WHERE stream = :s AND seq = -1", s=lg.main)


def naive_insert(lg: Ledger) -> None:
    lg.insert(52)


def insert_shifting_seqs(lg: Ledger) -> None:
    lg.shift_from(15)
    lg.insert(15)


def delete_first_rows(lg: Ledger) -> None:
    lg.sql("DELETE FROM audit_events WHERE stream = :s AND seq <= 10", s=lg.main)


def delete_genesis_checkpoint(lg: Ledger) -> None:
    lg.sql("DELETE FROM audit_checkpoints WHERE stream = :s AND seq = 0", s=lg.main)


def forge_checkpoint(lg: Ledger) -> None:
    lg.sql(
        "UPDATE audit_checkpoints SET hash = :h WHERE stream = :s AND seq = 20",
        h="2" * 64,
        s=lg.main,
    )


def delete_middle_checkpoint(lg: Ledger) -> None:
    lg.sql("DELETE FROM audit_checkpoints WHERE stream = :s AND seq = 20", s=lg.main)


def delete_last_rows(lg: Ledger) -> None:
    lg.sql("DELETE FROM audit_events WHERE stream = :s AND seq > 45", s=lg.main)


def delete_last_rows_and_checkpoints(lg: Ledger) -> None:
    lg.sql("DELETE FROM audit_events WHERE stream = :s AND seq > 45", s=lg.main)
    lg.sql("DELETE FROM audit_checkpoints WHERE stream = :s AND seq > 40", s=lg.main)


def edit_and_rechain(lg: Ledger) -> None:
    edit_row(lg)
    lg.rechain(7)


def insert_and_rechain(lg: Ledger) -> None:
    lg.shift_from(15)
    lg.insert(15)
    lg.rechain(15)


def append_and_rechain(lg: Ledger) -> None:
    for seq in range(52, 56):
        lg.insert(seq)
    lg.rechain(52)


def delete_stream_events(lg: Ledger) -> None:
    lg.sql("DELETE FROM audit_events WHERE stream = :s", s=lg.other)


def delete_whole_stream(lg: Ledger) -> None:
    for table, column in (("audit_events", "stream"), ("audit_checkpoints", "stream")):
        lg.sql(f"DELETE FROM {table} WHERE {column} = :s", s=lg.other)
    lg.sql("DELETE FROM audit_streams WHERE id = :s", s=lg.other)


def move_row_to_other_stream(lg: Ledger) -> None:
    lg.sql(
        "UPDATE audit_events SET stream = :o, seq = 11 WHERE stream = :s AND seq = 51",
        o=lg.other,
        s=lg.main,
    )


def downgrade_chain(lg: Ledger) -> None:
    # Declare the stream unkeyed and re-chain all of it with the public algorithm.
    lg.sql("UPDATE audit_streams SET chain = :c WHERE id = :s", c=CHAIN_SHA256, s=lg.main)
    with lg.db.engine.begin() as conn:
        prev = ""
        from bastion.audit.events import genesis

        prev = genesis(lg.main)
        for row in lg.rows(conn, 1):
            h = chain_hash(prev, ChainFields(**{k: row[k] for k in ChainFields._fields}))
            conn.execute(
                sa.text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE id = :id"),
                {"p": prev, "h": h, "id": row["id"]},
            )
            prev = h


TAMPERING: list[tuple[Callable[[Ledger], None], set[str]]] = [
    (edit_row, {"edited"}),
    (delete_middle_row, {"missing_rows"}),
    (reorder_rows, {"edited", "broken_link"}),
    (naive_insert, {"broken_link"}),
    (insert_shifting_seqs, {"edited", "broken_link"}),
    (delete_first_rows, {"missing_rows"}),
    (delete_genesis_checkpoint, {"unsigned_stream"}),
    (forge_checkpoint, {"bad_signature"}),
    (delete_middle_checkpoint, {"checkpoint_deleted"}),
    (delete_last_rows, {"truncated"}),
    (delete_last_rows_and_checkpoints, {"truncated"}),
    (edit_and_rechain, {"rewritten"}),
    (insert_and_rechain, {"rewritten"}),
    (append_and_rechain, {"appended"}),
    (delete_stream_events, {"missing_stream"}),
    (delete_whole_stream, {"missing_stream"}),
    (move_row_to_other_stream, {"edited", "broken_link"}),
    (downgrade_chain, {"bad_signature"}),
]


def test_the_untouched_ledger_verifies_against_its_anchors(ledger: Ledger) -> None:
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.events == 61 and report.anchors >= 8
    assert report.uncovered_events == 0


@pytest.mark.parametrize(("tamper", "named"), TAMPERING, ids=[fn.__name__ for fn, _ in TAMPERING])
def test_tampering_is_caught_and_named_with_anchors(
    ledger: Ledger, tamper: Callable[[Ledger], None], named: set[str]
) -> None:
    tamper(ledger)
    report = ledger.verify()
    kinds = {p.kind for p in report.problems}
    assert not report.ok, f"{tamper.__name__} went unnoticed"
    assert kinds & named, f"{tamper.__name__} reported as {kinds}, expected one of {named}"
    assert kinds <= KINDS


@pytest.mark.slow
@pytest.mark.parametrize(("tamper", "named"), TAMPERING, ids=[fn.__name__ for fn, _ in TAMPERING])
def test_parallel_verification_names_every_tampering_as_one_pass_does(
    ledger: Ledger, tamper: Callable[[Ledger], None], named: set[str]
) -> None:
    # Worker processes verify seq ranges of every stream from one pool; stitched, they
    # must say exactly what one pass says: same problems, same order, same words.
    tamper(ledger)

    def verify(workers: int):  # type: ignore[no-untyped-def]
        return verify_ledger(
            ledger.db,
            {ledger.signer.key_id: ledger.signer.public},
            chain_key=KEY,
            anchors=load_anchors(ledger.anchors),
            workers=workers,
            parallel_threshold=1,
        )

    one, many = verify(1), verify(2)
    assert [str(p) for p in many.problems] == [str(p) for p in one.problems]
    assert many.streams == one.streams
    assert {p.kind for p in many.problems} & named


# Without anchors the keyed chain still catches what needs recomputing hashes, as long
# as the attacker lacks the key; what only the anchors can show is listed apart.
ONLY_ANCHORS = {
    "delete_middle_checkpoint",
    "delete_whole_stream",
    "delete_last_rows_and_checkpoints",
}


@pytest.mark.parametrize(
    "tamper",
    [
        fn
        for fn, _ in TAMPERING
        if fn.__name__
        not in ONLY_ANCHORS | {"edit_and_rechain", "insert_and_rechain", "append_and_rechain"}
    ],
    ids=lambda fn: fn.__name__,
)
def test_without_anchors_the_database_alone_still_shows_it(
    ledger: Ledger, tamper: Callable[[Ledger], None]
) -> None:
    tamper(ledger)
    assert not ledger.verify(anchors=False).ok


def test_rechaining_without_the_key_is_caught_without_anchors(ledger: Ledger) -> None:
    edit_row(ledger)
    ledger.rechain(7, hasher=chain_hash)  # the public algorithm: the attacker lacks the key
    report = ledger.verify(anchors=False)
    assert report.first_problem is not None and report.first_problem.kind == "edited"


def test_a_keyed_stream_cannot_be_verified_without_the_key(ledger: Ledger) -> None:
    report = ledger.verify(anchors=False, key=None)
    assert {p.kind for p in report.problems} == {"no_chain_key"}


def test_events_no_checkpoint_covers_are_counted_in_events_and_time(
    db: Database, signer: Signer, tmp_path: Path
) -> None:
    writer = LedgerWriter(db, Digester(b"d" * 32), signer, checkpoint_every=10, chain_key=KEY)
    writer.start()
    try:
        for i in range(14):
            writer.append(EventIn("user:a", "llm.call", "model:m", "success", {"i": i}))
        report = verify_ledger(db, {signer.key_id: signer.public}, chain_key=KEY)
    finally:
        writer.close()
    assert report.ok
    assert report.uncovered_events == 4  # 11..14, after the checkpoint at 10
    assert report.uncovered_seconds >= 0


def test_checkpoints_reach_a_witness_and_a_refusing_witness_does_not_stop_the_ledger(
    db: Database, signer: Signer, tmp_path: Path
) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, object]] = []
    statuses = [503]  # the first POST is refused

    class Witness(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = statuses.pop(0) if statuses else 200
            if status == 200:
                received.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Witness)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/checkpoints"
    publisher = AnchorPublisher(tmp_path / "anchors", url)
    try:
        writer = LedgerWriter(
            db, Digester(b"d" * 32), signer, checkpoint_every=5, chain_key=KEY, publisher=publisher
        )
        writer.start()
        for i in range(12):
            writer.append(EventIn("user:a", "llm.call", "model:m", "success", {"i": i}))
        writer.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert publisher.last_error == "HTTPStatusError"  # the refusal was noted, not raised
    seqs = sorted(int(str(cp["seq"])) for cp in received)
    assert seqs[-1] == 12 and {cp["kind"] for cp in received} >= {"final"}
    files = load_anchors(tmp_path / "anchors")
    assert len(files) == len(received) + 1  # the directory got the one the witness refused
    report = verify_ledger(db, {signer.key_id: signer.public}, chain_key=KEY, anchors=files)
    assert report.ok, report.problems


@pytest.mark.parametrize("message", [b"", b"x", b"p" * 64 + b"\n[]", "é ✓".encode() * 50])
def test_the_chain_mac_is_standard_hmac_sha256(message: bytes) -> None:
    import hmac

    from bastion.audit.events import _compact

    mac_key = hmac.digest(KEY.key, b"bastion-audit-chain-mac:v1", "sha256")
    assert KEY.mac(message) == hmac.new(mac_key, message, "sha256").hexdigest()
    fields = ChainFields(
        stream="s",
        seq=1,
        ts_us=2,
        actor="user:a",
        action="x",
        resource="erased:abc",
        outcome="success",
        request_id=None,
        details="{}",
        content_digest=None,
        flags="[]",
    )
    body = _compact(fields._replace(actor=KEY.digest_of("user:a"), resource="abc"))
    expected = hmac.new(mac_key, f"prev\n{body}".encode(), "sha256").hexdigest()
    assert KEY.chain_hash("prev", fields) == expected


def checkpoint_ts(lg: Ledger, seq: int) -> int:
    with lg.db.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT ts_us FROM audit_checkpoints WHERE stream = :s AND seq = :q"),
                {"s": lg.main, "q": seq},
            ).scalar_one()
        )


def test_a_period_is_verified_from_the_checkpoint_before_it_to_the_one_after(
    ledger: Ledger,
) -> None:
    """Rows 21..30 of the main stream: picked up from checkpoint 20's signed hash, sealed
    by checkpoint 30; tampering outside that part is another period's business."""
    since, until = checkpoint_ts(ledger, 20) + 1, checkpoint_ts(ledger, 30)
    trusted = {ledger.signer.key_id: ledger.signer.public}

    def period():  # type: ignore[no-untyped-def]
        return verify_ledger(
            ledger.db,
            trusted,
            chain_key=KEY,
            anchors=load_anchors(ledger.anchors),
            since_us=since,
            until_us=until,
        )

    whole = ledger.verify()
    assert whole.ok
    part = period()
    assert part.ok
    main = next(s for s in part.streams if s.stream == ledger.main)
    assert (main.first_seq, main.last_seq, main.events) == (21, 30, 10)
    assert part.events < whole.events
    edit_row(ledger)  # row 7: before the period
    assert period().ok and not ledger.verify().ok
    ledger.sql(
        "UPDATE audit_events SET outcome = 'failure' WHERE stream = :s AND seq = 25", s=ledger.main
    )
    assert {(p.seq, p.kind) for p in period().problems} == {(25, "edited")}
    ledger.sql("DELETE FROM audit_events WHERE stream = :s AND seq = 21", s=ledger.main)
    assert ("missing_rows", 21) in {(p.kind, p.seq) for p in period().problems}
    ledger.sql("DELETE FROM audit_events WHERE stream = :s AND seq >= 28", s=ledger.main)
    assert "truncated" in {p.kind for p in period().problems}
