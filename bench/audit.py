"""Audit ledger: appends under 64 concurrent callers, verification speed, filtered queries.

    uv run python bench/audit.py [--events 1000000] [--runs 3] [--no-pg]

Three figures from issue 2, on SQLite (a WAL file on local disk) and on PostgreSQL
(``--pg-url``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; skipped
with a message when unreachable). Every timed run is a fresh process; wall and CPU time
(user + system of that process's threads and of the processes it forks, not the
PostgreSQL server's; the 1-minute load average before each run is recorded) are
reported side by side, medians over ``--runs`` runs, the variants alternated.

Appends: a fresh database per run (a new SQLite file, a new PostgreSQL schema), one
real :class:`LedgerWriter` with a signer (checkpoint every 10,000 events), and 64
callers each appending in a loop: 64 threads calling ``append`` and 64 asyncio tasks
awaiting ``append_async``. Group commit (``batch_max=1024``, the default) is compared
with group commit effectively off (``batch_max=1``, fewer events per run because each
event is one transaction). Every run's ledger is verified afterwards (untimed).

Verification and queries run on a ledger of ``--events`` events, built once per
backend by generating rows with the real hashing functions (``chain_hash``,
``genesis``, ``canonical_json``, the ``Digester`` and a real ``Signer`` for a
checkpoint every 10,000 events per stream) and bulk-inserting them into the migrated
schema (SQLite: ``executemany`` in 50,000-row transactions; PostgreSQL: ``COPY``),
then checked once with ``verify_ledger`` before anything is timed. Four streams (as
from four writer processes) interleave in time over 30 days: 50 actors (Zipf-skewed),
10 actions, outcomes 90 % success / 7 % failure / 3 % refused, details like
``{"model", "tokens", "cost_usd", "latency_ms"}``. PostgreSQL gets ``ANALYZE`` after
the load (autovacuum would do the same); SQLite gets none, as Bastion runs none.

Queries: ``EventRepository.page(filter, limit=100)`` and then the second page through
its cursor, for several filter shapes with random parameters, latency per call.

The ``rights`` section (issue 19; ``--sections rights`` runs it alone and updates only
its part of the results) builds a keyed, anchored ledger with encrypted content and
times verification against the anchors beside verification without them, and the
erasure of one subject; see ``run_rights``.

Writes ``bench/results/audit.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _machine import machine as machine_info

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "audit.json"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LEDGER_SCHEMA = "bench_audit"
APPEND_SCHEMA = "bench_audit_append"
DIGEST_KEY = b"bench-digest-key-0123456789abcdef"

AIMS = {"appends_per_s": 5_000, "verify_events_per_s": 200_000, "query_p95_ms": 50.0}

# --- the synthetic ledger ----------------------------------------------------------

ACTORS = [f"user{i:02d}@corp.example" for i in range(50)]
ACTOR_WEIGHTS = [1 / (i + 1) ** 0.8 for i in range(50)]
ACTIONS = [
    "gateway.chat",
    "gateway.embedding",
    "privacy.flag",
    "budget.exceeded",
    "policy.reload",
    "key.create",
    "key.revoke",
    "model.register",
    "model.promote",
    "audit.export",
]
ACTION_WEIGHTS = [70, 12, 6, 3, 1, 2, 1, 2, 1, 2]
MODELS = ["gpt-4.1-mini", "gpt-4.1", "local", "claude-sonnet", "mistral-small"]
OUTCOMES = ["success", "failure", "refused"]
OUTCOME_WEIGHTS = [90, 7, 3]
FLAGS = ["[]"] * 18 + ['["pii.email"]', '["pii.email","pii.phone"]']
STREAMS = 4
CHECKPOINT_EVERY = 10_000
SPAN_DAYS = 30


def _resource(rng: random.Random, action: str, model: str) -> str:
    if action.startswith(("gateway.", "privacy.", "budget.")):
        return f"model:{model}"
    if action.startswith("key."):
        return f"key:bk_{rng.getrandbits(24):06x}"
    if action.startswith("model."):
        return (
            f"registry:{rng.choice(['fraud', 'churn', 'credit', 'triage'])}/v{rng.randint(1, 40)}"
        )
    if action == "policy.reload":
        return "policy:policy.yaml"
    return "audit:events"


def generate_rows(
    n: int, end_us: int, seed: int, signer: Any
) -> tuple[list[str], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(streams, event rows in id order, checkpoint rows), hashed as the writer does."""
    from bastion.audit import Digester
    from bastion.audit.events import ChainFields, canonical_json, chain_hash, genesis

    rng = random.Random(seed)
    digester = Digester(DIGEST_KEY)
    streams = [f"{rng.getrandbits(128):032x}" for _ in range(STREAMS)]
    heads = [genesis(s) for s in streams]
    seqs = [0] * STREAMS
    start_us = end_us - SPAN_DAYS * 86_400 * 1_000_000
    step = (end_us - start_us) / n
    actors = rng.choices(ACTORS, ACTOR_WEIGHTS, k=n)
    actions = rng.choices(ACTIONS, ACTION_WEIGHTS, k=n)
    outcomes = rng.choices(OUTCOMES, OUTCOME_WEIGHTS, k=n)
    rows: list[tuple[Any, ...]] = []
    # each writer signs its stream's start (seq 0, the genesis hash) with its first group
    checkpoints: list[tuple[Any, ...]] = [
        (
            stream,
            0,
            genesis(stream),
            start_us,
            signer.key_id,
            signer.sign(stream, 0, genesis(stream), start_us),
        )
        for stream in streams
    ]
    for i in range(n):
        k = rng.randrange(STREAMS)
        stream = streams[k]
        seqs[k] += 1
        seq = seqs[k]
        ts_us = start_us + int(i * step)
        action, outcome = actions[i], outcomes[i]
        model = rng.choice(MODELS)
        tokens = rng.randint(20, 8_000)
        details = canonical_json(
            {
                "model": model,
                "tokens": tokens,
                "cost_usd": round(tokens * 0.0000016, 6),
                "latency_ms": rng.randint(40, 9_000),
            }
        )
        flags = rng.choice(FLAGS)
        request_id = f"{rng.getrandbits(128):032x}"
        content_digest = None
        if action == "gateway.chat":
            content_digest = digester.digest({"prompt": f"p{i}", "response": f"r{i}"})
        resource = _resource(rng, action, model)
        actor = actors[i]
        prev = heads[k]
        row_hash = chain_hash(
            prev,
            ChainFields(
                stream=stream,
                seq=seq,
                ts_us=ts_us,
                actor=actor,
                action=action,
                resource=resource,
                outcome=outcome,
                request_id=request_id,
                details=details,
                content_digest=content_digest,
                flags=flags,
            ),
        )
        heads[k] = row_hash
        rows.append(
            (
                stream,
                seq,
                ts_us,
                actor,
                action,
                resource,
                outcome,
                request_id,
                details,
                content_digest,
                flags,
                prev,
                row_hash,
            )
        )
        if seq % CHECKPOINT_EVERY == 0:
            sig = signer.sign(stream, seq, row_hash, ts_us)
            checkpoints.append((stream, seq, row_hash, ts_us, signer.key_id, sig))
    for k, stream in enumerate(streams):  # the final checkpoint each writer writes on close
        if seqs[k] % CHECKPOINT_EVERY:
            last = next(r for r in reversed(rows) if r[0] == stream)
            sig = signer.sign(stream, last[1], last[12], last[2])
            checkpoints.append((stream, last[1], last[12], last[2], signer.key_id, sig))
    return streams, rows, checkpoints


EVENT_COLUMNS = (
    "stream, seq, ts_us, actor, action, resource, outcome, request_id, details, "
    "content_digest, flags, prev_hash, hash"
)
CHECKPOINT_COLUMNS = "stream, seq, hash, ts_us, key_id, signature"


# --- databases -----------------------------------------------------------------------


def pg_url_with_schema(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def pg_admin(base: str, statements: Sequence[str]) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for sql in statements:
                conn.execute(text(sql))
    finally:
        engine.dispose()


def pg_reachable(base: str) -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(base, connect_args={"connect_timeout": 5})
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    print(f"PostgreSQL {version} at {base}")
    return None


def pg_version(base: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(base)
    with engine.connect() as conn:
        version = str(conn.execute(text("SHOW server_version")).scalar())
    engine.dispose()
    return version


def fresh_database(target: dict[str, Any]) -> Any:
    """A migrated, empty database for ``target`` (a new file or a recreated schema)."""
    from bastion.db import create_database, upgrade

    if target["backend"] == "sqlite":
        path = Path(target["path"])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        schema = target["schema"]
        pg_admin(
            target["base"], [f"DROP SCHEMA IF EXISTS {schema} CASCADE", f"CREATE SCHEMA {schema}"]
        )
        url = pg_url_with_schema(target["base"], schema)
    db = create_database(url)
    upgrade(db.engine)
    return db


def open_database(target: dict[str, Any]) -> Any:
    from bastion.db import create_database

    if target["backend"] == "sqlite":
        return create_database(f"sqlite:///{target['path']}")
    return create_database(pg_url_with_schema(target["base"], target["schema"]))


# --- workers (each runs in a fresh process) --------------------------------------------


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its reaped children: the
    verifier forks worker processes, whose time ``time.process_time`` would miss."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def _event(rng: random.Random, i: int) -> Any:
    from bastion.audit import EventIn

    action = rng.choices(ACTIONS, ACTION_WEIGHTS)[0]
    model = rng.choice(MODELS)
    tokens = rng.randint(20, 8_000)
    return EventIn(
        actor=rng.choices(ACTORS, ACTOR_WEIGHTS)[0],
        action=action,
        resource=_resource(rng, action, model),
        outcome=rng.choices(OUTCOMES, OUTCOME_WEIGHTS)[0],
        details={
            "model": model,
            "tokens": tokens,
            "cost_usd": round(tokens * 0.0000016, 6),
            "latency_ms": rng.randint(40, 9_000),
        },
        request_id=f"{rng.getrandbits(128):032x}",
        content={"prompt": f"p{i}", "response": f"r{i}"} if action == "gateway.chat" else None,
    )


def worker_append(cfg: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from bastion.audit import Digester, LedgerWriter, load_or_create_signer, verify_ledger
    from bastion.audit.models import AuditEvent

    callers, per_caller = cfg["callers"], cfg["per_caller"]
    signer = load_or_create_signer(Path(cfg["key_path"]))
    db = fresh_database(cfg["target"])
    rng = random.Random(cfg["seed"])
    events = [[_event(rng, c * per_caller + i) for i in range(per_caller)] for c in range(callers)]
    writer = LedgerWriter(
        db,
        Digester(DIGEST_KEY),
        signer,
        label="bench",
        batch_max=cfg["batch_max"],
        checkpoint_every=CHECKPOINT_EVERY,
    )
    writer.start()
    latencies: list[list[float]] = [[] for _ in range(callers)]

    if cfg["mode"] == "threads":
        barrier = threading.Barrier(callers + 1)

        def call(c: int) -> None:
            lat = latencies[c]
            barrier.wait()
            for ev in events[c]:
                t = time.perf_counter()
                writer.append(ev)
                lat.append(time.perf_counter() - t)

        threads = [threading.Thread(target=call, args=(c,)) for c in range(callers)]
        for th in threads:
            th.start()
        barrier.wait()
        wall0, cpu0 = time.perf_counter(), _cpu()
        for th in threads:
            th.join()
        wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    else:

        async def task(c: int) -> None:
            lat = latencies[c]
            for ev in events[c]:
                t = time.perf_counter()
                await writer.append_async(ev)
                lat.append(time.perf_counter() - t)

        async def run_all() -> tuple[float, float]:
            wall0, cpu0 = time.perf_counter(), _cpu()
            await asyncio.gather(*(task(c) for c in range(callers)))
            return time.perf_counter() - wall0, _cpu() - cpu0

        wall, cpu = asyncio.run(run_all())
    groups = writer.groups_committed
    writer.close()
    n = callers * per_caller
    with db.session() as session:
        stored = session.scalar(select(func.count()).select_from(AuditEvent))
    report = verify_ledger(db, {signer.key_id: signer.public})
    db.dispose()
    flat = [x for lat in latencies for x in lat]
    return {
        "events": n,
        "stored": stored,
        "verified_ok": report.ok,
        "wall_s": wall,
        "cpu_s": cpu,
        "appends_per_s": n / wall,
        "groups": groups,
        "mean_group": n / groups if groups else None,
        "latency_p50_ms": _pct(flat, 50) * 1e3,
        "latency_p99_ms": _pct(flat, 99) * 1e3,
    }


def worker_build(cfg: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import text

    from bastion.audit import load_or_create_signer

    target = cfg["target"]
    signer = load_or_create_signer(Path(cfg["key_path"]))
    wall0, cpu0 = time.perf_counter(), _cpu()
    db = fresh_database(target)
    end_us = time.time_ns() // 1000
    streams, rows, checkpoints = generate_rows(cfg["events"], end_us, cfg["seed"], signer)
    gen_wall = time.perf_counter() - wall0
    created = datetime.now(UTC)
    stream_rows = [(s, created, "bench-host", 1000 + i, "server") for i, s in enumerate(streams)]
    raw = db.engine.raw_connection()
    try:
        if target["backend"] == "sqlite":
            cur = raw.cursor()
            ph = ",".join("?" * 13)
            for start in range(0, len(rows), 50_000):
                cur.execute("BEGIN")
                cur.executemany(
                    f"INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ({ph})",
                    rows[start : start + 50_000],
                )
                cur.execute("COMMIT")
            cur.execute("BEGIN")
            cur.executemany(
                "INSERT INTO audit_streams (id, created_at, host, pid, label) VALUES (?,?,?,?,?)",
                [
                    (s, c.strftime("%Y-%m-%d %H:%M:%S.%f"), h, p, lb)
                    for s, c, h, p, lb in stream_rows
                ],
            )
            cur.executemany(
                f"INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?,?,?,?,?,?)",
                checkpoints,
            )
            cur.execute("COMMIT")
            method = "sqlite3 executemany, 50,000-row transactions, indexes in place"
        else:
            conn = raw.driver_connection
            assert conn is not None
            with conn.cursor() as cur:
                with cur.copy(f"COPY audit_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.executemany(
                    "INSERT INTO audit_streams (id, created_at, host, pid, label) "
                    "VALUES (%s,%s,%s,%s,%s)",
                    stream_rows,
                )
                cur.executemany(
                    f"INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) "
                    "VALUES (%s,%s,%s,%s,%s,%s)",
                    checkpoints,
                )
            conn.commit()
            method = "psycopg COPY in one transaction, indexes in place, then ANALYZE"
    finally:
        raw.close()
    if target["backend"] != "sqlite":
        with db.engine.connect() as c:
            c.execute(text("ANALYZE"))
            c.commit()
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    db.dispose()
    return {
        "events": len(rows),
        "streams": len(streams),
        "checkpoints": len(checkpoints),
        "method": f"generated with chain_hash/genesis/canonical_json/Digester/Signer; {method}",
        "generate_wall_s": gen_wall,
        "wall_s": wall,
        "cpu_s": cpu,
        "end_us": end_us,
    }


def worker_verify(cfg: dict[str, Any]) -> dict[str, Any]:
    from bastion.audit import load_or_create_signer, verify_ledger

    signer = load_or_create_signer(Path(cfg["key_path"]))
    db = open_database(cfg["target"])
    wall0, cpu0 = time.perf_counter(), _cpu()
    report = verify_ledger(db, {signer.key_id: signer.public})
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    db.dispose()
    return {
        "ok": report.ok,
        "first_problem": str(report.first_problem) if report.first_problem else None,
        "events": report.events,
        "checkpoints": sum(s.checkpoints for s in report.streams),
        "wall_s": wall,
        "cpu_s": cpu,
        "events_per_s": report.events / wall,
    }


def query_shapes(end_us: int) -> dict[str, Callable[[random.Random], Any]]:
    from bastion.audit import EventFilter

    end = datetime.fromtimestamp(end_us / 1e6, UTC)

    def day(rng: random.Random) -> Any:
        start = end - timedelta(days=rng.randint(2, SPAN_DAYS - 2))
        return EventFilter(since=start, until=start + timedelta(days=1))

    return {
        "action": lambda rng: EventFilter(action=rng.choice(ACTIONS)),
        "actor + since 7 days": lambda rng: EventFilter(
            actor=rng.choice(ACTORS), since=end - timedelta(days=7)
        ),
        "outcome": lambda rng: EventFilter(outcome=rng.choice(OUTCOMES[1:])),
        "actor + outcome=refused": lambda rng: EventFilter(
            actor=rng.choice(ACTORS), outcome="refused"
        ),
        "one day (since + until)": day,
    }


def worker_query(cfg: dict[str, Any]) -> dict[str, Any]:
    from bastion.audit import EventRepository

    db = open_database(cfg["target"])
    repo = EventRepository(db)
    shapes = query_shapes(cfg["end_us"])
    rng = random.Random(cfg["seed"])
    samples: dict[str, dict[str, list[float]]] = {
        name: {"page1": [], "page2": [], "rows": []} for name in shapes
    }
    n = cfg["queries"]
    warmup = 5
    cpu0 = _cpu()
    wall0 = time.perf_counter()
    for i in range(n + warmup):
        for name, make in shapes.items():
            f = make(rng)
            t = time.perf_counter()
            page = repo.page(f, limit=100)
            t1 = time.perf_counter() - t
            t2 = None
            if page.next_cursor is not None:
                t = time.perf_counter()
                repo.page(f, limit=100, cursor=page.next_cursor)
                t2 = time.perf_counter() - t
            if i >= warmup:
                samples[name]["page1"].append(t1 * 1e3)
                if t2 is not None:
                    samples[name]["page2"].append(t2 * 1e3)
                samples[name]["rows"].append(len(page.events))
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    db.dispose()
    out: dict[str, Any] = {"wall_s": wall, "cpu_s": cpu, "shapes": {}}
    for name, s in samples.items():
        out["shapes"][name] = {
            "queries": len(s["page1"]),
            "page1_p50_ms": _pct(s["page1"], 50),
            "page1_p95_ms": _pct(s["page1"], 95),
            "page1_max_ms": max(s["page1"]),
            "page2_count": len(s["page2"]),
            "page2_p50_ms": _pct(s["page2"], 50),
            "page2_p95_ms": _pct(s["page2"], 95),
            "page2_max_ms": max(s["page2"], default=float("nan")),
            "mean_rows": statistics.fmean(s["rows"]),
        }
    return out


# --- anchoring and data-subject rights (issue 19, the ledger half) ------------------------
#
# A keyed ledger (``hmac-sha256`` chain, Merkle root in every checkpoint, a final
# checkpoint per stream, every checkpoint published as an anchor file) of ``--events``
# events with per-subject encrypted content, built once per backend. Timed, each in a
# fresh process: ``verify_ledger`` with the chain key and the anchors, beside the same
# verification without anchors (the peer: what `bastion audit verify` did before
# anchoring, on the same rows); and the erasure of one subject (``SubjectService.erase``:
# content and key destroyed, identifiers pseudonymised, two ledger events) among them,
# a different subject each run, the ledger verified against its anchors after each.

RIGHTS_AIMS = {"anchored_verify_events_per_s": 200_000, "erase_one_subject_s": 1.0}
CHAIN_KEY = b"bench-chain-key-0123456789abcdef"
CONTENT_KEK = bytes(range(32))
#: Mid-ranked actors (about 1 % of the events each): the subjects erased, one per run.
ERASED = [ACTORS[8], ACTORS[9], ACTORS[10], ACTORS[11], ACTORS[12]]


def generate_keyed(
    n: int, end_us: int, seed: int, signer: Any, anchors: Path, *, names_in_rows: bool = False
) -> tuple[list[str], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(streams, event rows, checkpoint rows, content rows), as the keyed writer writes
    them (a person as ``erased:<digest>``, the name in ``audit_identities``; with
    ``names_in_rows``, as it wrote them before: the name in the row); every checkpoint
    also written to ``anchors``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from bastion.audit import ChainKey, Digester
    from bastion.audit.anchors import SignedCheckpoint, write_anchor
    from bastion.audit.events import CHAIN_HMAC, ChainFields, canonical_json, genesis
    from bastion.audit.merkle import EMPTY_ROOT, Frontier
    from bastion.audit.vault import PREFIX

    key = ChainKey(CHAIN_KEY)
    rng = random.Random(seed)
    digester = Digester(DIGEST_KEY)
    streams = [f"{rng.getrandbits(128):032x}" for _ in range(STREAMS)]
    heads = [genesis(s) for s in streams]
    frontiers = [Frontier() for _ in streams]
    seqs = [0] * STREAMS
    start_us = end_us - SPAN_DAYS * 86_400 * 1_000_000
    step = (end_us - start_us) / n
    actors = rng.choices(ACTORS, ACTOR_WEIGHTS, k=n)
    actions = rng.choices(ACTIONS, ACTION_WEIGHTS, k=n)
    outcomes = rng.choices(OUTCOMES, OUTCOME_WEIGHTS, k=n)
    subject_keys = {a: AESGCM.generate_key(256) for a in ACTORS}
    stored = {a: key.erased(f"user:{a}") for a in ACTORS}
    rows: list[tuple[Any, ...]] = []
    contents: list[tuple[Any, ...]] = []
    checkpoints: list[tuple[Any, ...]] = []

    def checkpoint(stream: str, seq: int, h: str, ts: int, root: str, kind: str) -> None:
        sig = signer.sign(stream, seq, h, ts, root=root, chain=CHAIN_HMAC, kind=kind)
        checkpoints.append((stream, seq, h, ts, signer.key_id, sig, root, kind))
        write_anchor(
            anchors,
            SignedCheckpoint(stream, seq, h, ts, signer.key_id, sig, root, CHAIN_HMAC, kind),
        )

    for stream in streams:
        checkpoint(stream, 0, genesis(stream), start_us, EMPTY_ROOT, "checkpoint")
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    for i in range(n):
        k = rng.randrange(STREAMS)
        stream = streams[k]
        seqs[k] += 1
        seq = seqs[k]
        ts_us = start_us + int(i * step)
        action, outcome, name = actions[i], outcomes[i], actors[i]
        model = rng.choice(MODELS)
        tokens = rng.randint(20, 8_000)
        details = canonical_json(
            {"model": model, "tokens": tokens, "cost_usd": round(tokens * 0.0000016, 6)}
        )
        content_digest = None
        if action == "gateway.chat":
            content = {"prompt": f"p{i}", "response": f"r{i}"}
            content_digest = digester.digest(content)
            if rng.random() < 0.1 or name in ERASED:
                subject = key.digest_of(name)  # the vault keys content by the user's digest
                for field, body in content.items():
                    nonce = os.urandom(12)
                    aad = f"{stream}:{seq}:{field}".encode()
                    sealed = AESGCM(subject_keys[name]).encrypt(nonce, body.encode(), aad)
                    text = PREFIX + base64.b64encode(nonce + sealed).decode()
                    contents.append((stream, seq, field, subject, text, created))
        fields = ChainFields(
            stream=stream,
            seq=seq,
            ts_us=ts_us,
            actor=f"user:{name}" if names_in_rows else stored[name],
            action=action,
            resource=_resource(rng, action, model),
            outcome=outcome,
            request_id=f"{rng.getrandbits(128):032x}",
            details=details,
            content_digest=content_digest,
            flags=rng.choice(FLAGS),
        )
        prev = heads[k]
        row_hash = key.chain_hash(prev, fields)
        heads[k] = row_hash
        frontiers[k].append(row_hash)
        rows.append((*fields, prev, row_hash))
        if seq % CHECKPOINT_EVERY == 0:
            checkpoint(stream, seq, row_hash, ts_us, frontiers[k].root(), "checkpoint")
    for k, stream in enumerate(streams):  # each writer's final checkpoint
        last = next(r for r in reversed(rows) if r[0] == stream)
        if seqs[k] % CHECKPOINT_EVERY == 0:
            checkpoints[:] = [c for c in checkpoints if (c[0], c[1]) != (stream, last[1])]
        checkpoint(stream, last[1], last[12], last[2], frontiers[k].root(), "final")
    return streams, rows, checkpoints, contents, subject_keys  # type: ignore[return-value]


def worker_build_keyed(cfg: dict[str, Any]) -> dict[str, Any]:
    from bastion.audit import ChainKey, load_or_create_signer
    from bastion.audit.vault import ContentVault

    target = cfg["target"]
    signer = load_or_create_signer(Path(cfg["key_path"]))
    anchors = Path(cfg["anchors"])
    shutil.rmtree(anchors, ignore_errors=True)
    wall0 = time.perf_counter()
    db = fresh_database(target)
    end_us = time.time_ns() // 1000
    streams, rows, checkpoints, contents, subject_keys = generate_keyed(  # type: ignore[misc]
        cfg["events"],
        end_us,
        cfg["seed"],
        signer,
        anchors,
        names_in_rows=cfg.get("names_in_rows", False),
    )
    created = datetime.now(UTC)
    stream_rows = [
        (s, created, "bench-host", 1000 + i, "server", "hmac-sha256") for i, s in enumerate(streams)
    ]
    cp_cols = "stream, seq, hash, ts_us, key_id, signature, root, kind"
    content_cols = "stream, seq, field, subject, body, created_at"
    raw = db.engine.raw_connection()
    try:
        if target["backend"] == "sqlite":
            cur = raw.cursor()
            for start in range(0, len(rows), 50_000):
                cur.execute("BEGIN")
                cur.executemany(
                    f"INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ({','.join('?' * 13)})",
                    rows[start : start + 50_000],
                )
                cur.execute("COMMIT")
            cur.execute("BEGIN")
            cur.executemany(
                "INSERT INTO audit_streams (id, created_at, host, pid, label, chain) "
                "VALUES (?,?,?,?,?,?)",
                [(s, c.strftime("%Y-%m-%d %H:%M:%S.%f"), *rest) for s, c, *rest in stream_rows],
            )
            cur.executemany(
                f"INSERT INTO audit_checkpoints ({cp_cols}) VALUES (?,?,?,?,?,?,?,?)", checkpoints
            )
            cur.executemany(
                f"INSERT INTO audit_content ({content_cols}) VALUES (?,?,?,?,?,?)", contents
            )
            cur.execute("COMMIT")
        else:
            conn = raw.driver_connection
            assert conn is not None
            with conn.cursor() as cur:
                with cur.copy(f"COPY audit_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.executemany(
                    "INSERT INTO audit_streams (id, created_at, host, pid, label, chain) "
                    "VALUES (%s,%s,%s,%s,%s,%s)",
                    stream_rows,
                )
                cur.executemany(
                    f"INSERT INTO audit_checkpoints ({cp_cols}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                    checkpoints,
                )
                with cur.copy(f"COPY audit_content ({content_cols}) FROM STDIN") as copy:
                    for row in contents:
                        copy.write_row(row)
            conn.commit()
    finally:
        raw.close()
    key = ChainKey(CHAIN_KEY)
    vault = ContentVault(db, CONTENT_KEK, key.digest_of)
    from sqlalchemy import insert

    from bastion.audit.models import AuditIdentity, AuditSubjectKey

    with db.engine.begin() as c:
        if not cfg.get("names_in_rows", False):
            first_us = min(r[2] for r in rows)
            c.execute(
                insert(AuditIdentity),
                [
                    {
                        "digest": key.digest_of(f"user:{a}"),
                        "name": f"user:{a}",
                        "since_us": first_us,
                    }
                    for a in ACTORS
                ],
            )
        c.execute(
            insert(AuditSubjectKey),
            [
                {
                    "subject": key.digest_of(name),
                    "wrapped": vault._wrap(key.digest_of(name), k),
                    "created_at": created,
                }
                for name, k in subject_keys.items()
            ],
        )
        if target["backend"] != "sqlite":
            c.exec_driver_sql("ANALYZE")
    db.dispose()
    return {
        "events": len(rows),
        "checkpoints": len(checkpoints),
        "content_rows": len(contents),
        "anchors": len(list(anchors.glob("*/*.json"))),
        "wall_s": time.perf_counter() - wall0,
    }


def worker_verify_keyed(cfg: dict[str, Any]) -> dict[str, Any]:
    from bastion.audit import ChainKey, load_or_create_signer, verify_ledger
    from bastion.audit.anchors import load_anchors

    signer = load_or_create_signer(Path(cfg["key_path"]))
    db = open_database(cfg["target"])
    wall0, cpu0 = time.perf_counter(), _cpu()
    anchors = load_anchors(Path(cfg["anchors"])) if cfg["with_anchors"] else None
    report = verify_ledger(
        db, {signer.key_id: signer.public}, chain_key=ChainKey(CHAIN_KEY), anchors=anchors
    )
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    db.dispose()
    return {
        "ok": report.ok,
        "first_problem": str(report.first_problem) if report.first_problem else None,
        "events": report.events,
        "anchors": report.anchors,
        "uncovered_events": report.uncovered_events,
        "wall_s": wall,
        "cpu_s": cpu,
        "events_per_s": report.events / wall,
    }


def worker_erase(cfg: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import func, or_, select

    from bastion.audit import ChainKey, Digester, LedgerWriter, load_or_create_signer, verify_ledger
    from bastion.audit.anchors import AnchorPublisher, load_anchors
    from bastion.audit.models import AuditEvent
    from bastion.audit.vault import ContentVault
    from bastion.subjects.service import SubjectService

    signer = load_or_create_signer(Path(cfg["key_path"]))
    db = open_database(cfg["target"])
    key = ChainKey(CHAIN_KEY)
    vault = ContentVault(db, CONTENT_KEK, key.digest_of)
    anchors = Path(cfg["anchors"])
    ledger = LedgerWriter(
        db,
        Digester(DIGEST_KEY),
        signer,
        chain_key=key,
        publisher=AnchorPublisher(anchors),
        vault=vault,
    )
    ledger.start()
    subjects = SubjectService(db, ledger, key, vault)
    subjects._context(cfg["user"])  # imports and warms what erase uses, untimed
    wall0, cpu0 = time.perf_counter(), _cpu()
    done = subjects.erase(
        cfg["user"], reason="bench", requested_by="the data subject", actor="user:dpo"
    )
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    # The physical cleanup (deleting the rows the erasure left unreadable), apart.
    clean0, clean_cpu0 = time.perf_counter(), _cpu()
    cleaned = subjects.clean_up(done, actor="user:dpo")
    clean_wall, clean_cpu = time.perf_counter() - clean0, _cpu() - clean_cpu0
    ledger.close()
    with db.engine.connect() as conn:  # no row may still name the person
        actor = f"user:{cfg['user']}"
        naming = conn.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(or_(AuditEvent.actor == actor, AuditEvent.resource == actor))
        ).scalar_one()
    report = verify_ledger(
        db, {signer.key_id: signer.public}, chain_key=key, anchors=load_anchors(anchors)
    )
    db.dispose()
    return {
        "user": cfg["user"],
        "removed": done.removed["ledger"],
        "wall_s": wall,
        "cpu_s": cpu,
        "cleanup": cleaned.get("ledger", {}),
        "cleanup_wall_s": clean_wall,
        "cleanup_cpu_s": clean_cpu,
        "rows_still_naming": naming,
        "verified_after": report.ok,
        "first_problem": str(report.first_problem) if report.first_problem else None,
        "events_after": report.events,
    }


def build_once(kind: str, cfg: dict[str, Any], keep: Path | None, name: str) -> dict[str, Any]:
    """Run a build worker, or, under ``--keep``, reuse what an earlier run built there
    (its build figures are read back from ``<keep>/<name>.json``)."""
    record = keep / f"{name}.json" if keep is not None else None
    if record is not None and record.exists():
        print(f"  reusing {name} from {keep}")
        return dict(json.loads(record.read_text(encoding="utf-8"))) | {"reused": True}
    out = run_worker(kind, cfg)
    if record is not None:
        record.write_text(json.dumps(out), encoding="utf-8")
    return out


def run_rights(
    backends: dict[str, dict[str, Any]],
    events: int,
    runs: int,
    tmp: Path,
    key_path: str,
    *,
    keep: Path | None = None,
    parts: frozenset[str] = frozenset({"verify", "erasure"}),
) -> dict[str, Any]:
    out: dict[str, Any] = {"aims": RIGHTS_AIMS, "build": {}, "verify": {}, "erasure": {}}
    for backend, targets in backends.items():
        target = dict(targets["ledger"])
        if backend == "sqlite":
            target["path"] = str(tmp / "keyed.db")
        else:
            target["schema"] = LEDGER_SCHEMA + "_keyed"
        anchors = str(tmp / f"anchors-{backend}")
        base = {"target": target, "key_path": key_path, "anchors": anchors}
        print(f"building a keyed, anchored ledger of {events:,} events on {backend} …")
        out["build"][backend] = build_once(
            "build_keyed", base | {"events": events, "seed": 19}, keep, f"keyed-{backend}-{events}"
        )
        if "verify" not in parts:
            continue
        variants: dict[str, list[dict[str, Any]]] = {"with anchors": [], "without anchors": []}
        for _ in range(runs):
            for name in variants:  # alternated
                variants[name].append(
                    run_worker("verify_keyed", base | {"with_anchors": name == "with anchors"})
                )
        out["verify"][backend] = {}
        for name, rs in variants.items():
            out["verify"][backend][name] = {
                "events_per_s": _median(rs, "events_per_s"),
                "wall_s": _median(rs, "wall_s"),
                "cpu_s": _median(rs, "cpu_s"),
                "all_ok": all(r["ok"] for r in rs),
                "runs": rs,
            }
        v = out["verify"][backend]
        v["anchored_vs_unanchored"] = (
            v["with anchors"]["events_per_s"] / v["without anchors"]["events_per_s"]
        )
        if "erasure" not in parts:
            continue
        erasures = [
            run_worker("erase", base | {"user": ERASED[r % len(ERASED)]}) for r in range(runs)
        ]
        out["erasure"][backend] = {
            "wall_s": _median(erasures, "wall_s"),
            "cpu_s": _median(erasures, "cpu_s"),
            "all_verified_after": all(e["verified_after"] for e in erasures),
            "runs": erasures,
        }
    return out


def render_rights(rights: dict[str, Any]) -> None:
    print("\nanchored verification (keyed chain, Merkle roots, anchors) and erasure")
    print(
        f"{'backend':<11} {'with anchors ev/s':>18} {'wall s':>7} {'cpu s':>6} {'load':>5} "
        f"{'without ev/s':>13} {'ratio':>6} {'erase 1 subject s':>18} {'verified after':>15}"
    )
    for backend in rights["build"]:
        v = rights["verify"].get(backend)
        e = rights["erasure"].get(backend)
        if v is not None:
            w = v["with anchors"]
            load = _median(w["runs"], "loadavg_1m_before")
            verified = (
                f"{w['events_per_s']:>18,.0f} {w['wall_s']:>7.2f} {w['cpu_s']:>6.2f} {load:>5.1f} "
                f"{v['without anchors']['events_per_s']:>13,.0f} "
                f"{v['anchored_vs_unanchored']:>6.2f}"
            )
        else:
            verified = f"{'(not run)':>18} {'':>7} {'':>6} {'':>5} {'':>13} {'':>6}"
        erased = (
            f"{e['wall_s']:>18.3f} {e['all_verified_after']!s:>15}"
            if e is not None
            else f"{'(not run)':>18} {'':>15}"
        )
        print(f"{backend:<11} {verified} {erased}")
    print(f"aims: {rights['aims']}")


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "append": worker_append,
    "build": worker_build,
    "verify": worker_verify,
    "query": worker_query,
    "build_keyed": worker_build_keyed,
    "verify_keyed": worker_verify_keyed,
    "erase": worker_erase,
}


def run_worker(kind: str, cfg: dict[str, Any]) -> dict[str, Any]:
    load = os.getloadavg()[0]
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1_200,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise RuntimeError(f"{kind} worker failed (exit {proc.returncode})")
    out = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    out["loadavg_1m_before"] = load
    return out


# --- orchestration ------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def machine() -> dict[str, Any]:
    import sqlite3

    info = machine_info(sources=("src/bastion/audit",), dirty_key="audit_sources_dirty")
    return {**info, "sqlite": sqlite3.sqlite_version}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="ledger size for verify/query"
    )
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--per-caller", type=int, default=500, help="appends per caller, grouped")
    parser.add_argument(
        "--per-caller-single", type=int, default=40, help="appends per caller at batch_max=1"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100, help="per filter shape and run")
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON")
    parser.add_argument(
        "--sections",
        default="core,rights",
        help="core (appends, verify, queries) and/or rights (anchored verify, erasure); "
        "rights alone updates only its part of the results file",
    )
    parser.add_argument(
        "--reports",
        action="store_true",
        help="only the compliance-report figures (issue 19), in bench/results/audit_reports.json",
    )
    parser.add_argument("--report-events", type=int, default=1_000_000)
    parser.add_argument(
        "--keep",
        type=Path,
        help="build the 1 M-event ledgers in this directory (and PostgreSQL schemas) once and "
        "reuse them on later runs with the same --keep; the erasure part changes the keyed "
        "ledger, so reuse it with --rights-parts verify",
    )
    parser.add_argument(
        "--rights-parts",
        default="verify,erasure",
        help="which parts of the rights section to run: verify and/or erasure; a part not "
        "run keeps its figures from the results file",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("cfg", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.cfg))))
        return 0
    if args.reports:
        return reports_main(args)

    started = time.perf_counter()
    keep: Path | None = args.keep.resolve() if args.keep is not None else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    tmp = keep or Path(tempfile.mkdtemp(prefix="bastion-bench-audit-"))
    key_path = str(tmp / "signing.pem")
    backends: dict[str, dict[str, Any]] = {}
    backends["sqlite"] = {"append": {"backend": "sqlite", "path": str(tmp / "append.db")}}
    backends["sqlite"]["ledger"] = {"backend": "sqlite", "path": str(tmp / "ledger.db")}
    skipped: dict[str, str] = {}
    if args.no_pg:
        skipped["postgresql"] = "--no-pg given"
    else:
        reason = pg_reachable(args.pg_url)
        if reason is None:
            backends["postgresql"] = {
                "append": {"backend": "postgresql", "base": args.pg_url, "schema": APPEND_SCHEMA},
                "ledger": {"backend": "postgresql", "base": args.pg_url, "schema": LEDGER_SCHEMA},
            }
        else:
            skipped["postgresql"] = f"unreachable at {args.pg_url}: {reason}"
            print(f"skipping PostgreSQL: {skipped['postgresql']}")

    info = machine()
    if "postgresql" in backends:
        info["postgresql"] = pg_version(args.pg_url)
    results: dict[str, Any] = {
        "machine": info,
        "command": "uv run python bench/audit.py " + " ".join(sys.argv[1:]),
        "sizes": {
            "ledger_events": args.events,
            "callers": args.callers,
            "appends_per_caller_grouped": args.per_caller,
            "appends_per_caller_batch_max_1": args.per_caller_single,
            "runs": args.runs,
            "queries_per_shape_per_run": args.queries,
            "page_limit": 100,
        },
        "aims": AIMS,
        "skipped": skipped,
        "cpu_time_note": "user+system CPU of the worker process (all threads) and of the "
        "processes it forked (verify_ledger's pool); excludes the PostgreSQL server's CPU",
        "appends": {},
        "build": {},
        "verify": {},
        "queries": {},
    }
    sections = set(args.sections.split(","))
    if sections == {"rights"}:
        parts = frozenset(args.rights_parts.split(","))
        try:
            rights = run_rights(
                backends, args.events, args.runs, tmp, key_path, keep=keep, parts=parts
            )
        finally:
            if keep is None:
                shutil.rmtree(tmp, ignore_errors=True)
                if "postgresql" in backends:
                    pg_admin(args.pg_url, [f"DROP SCHEMA IF EXISTS {LEDGER_SCHEMA}_keyed CASCADE"])
        rights["machine"] = info
        rights["command"] = results["command"]
        rights["skipped"] = skipped
        rights["total_wall_s"] = time.perf_counter() - started
        render_rights(rights)
        if not args.no_write:
            previous = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
            for part in {"verify", "erasure"} - parts:  # not run: its earlier figures stay
                rights[part] = previous.get("rights", {}).get(part, {})
            previous["rights"] = rights
            RESULTS.write_text(json.dumps(previous, indent=2) + "\n", encoding="utf-8")
            print(f"wrote the rights section of {RESULTS.relative_to(ROOT)}")
        return 0
    try:
        # Appends: variants alternated within each round, a fresh database each run.
        variants = [
            (backend, mode, batch_max)
            for backend in backends
            for batch_max in (1024, 1)
            for mode in ("threads", "async")
        ]
        runs: dict[str, list[dict[str, Any]]] = {}
        for r in range(args.runs):
            for backend, mode, batch_max in variants:
                name = f"{backend} {mode} batch_max={batch_max}"
                per = args.per_caller if batch_max > 1 else args.per_caller_single
                cfg = {
                    "target": backends[backend]["append"],
                    "mode": mode,
                    "batch_max": batch_max,
                    "callers": args.callers,
                    "per_caller": per,
                    "seed": r,
                    "key_path": key_path,
                }
                out = run_worker("append", cfg)
                if not (out["verified_ok"] and out["stored"] == out["events"]):
                    raise RuntimeError(f"{name}: ledger after appends is wrong: {out}")
                runs.setdefault(name, []).append(out)
                print(
                    f"append {name} run {r + 1}: {out['appends_per_s']:,.0f}/s "
                    f"(wall {out['wall_s']:.2f} s, cpu {out['cpu_s']:.2f} s, "
                    f"mean group {out['mean_group']:.1f})",
                    flush=True,
                )
        for (backend, mode, batch_max), (name, vruns) in zip(variants, runs.items(), strict=True):
            results["appends"][name] = {
                "backend": backend,
                "mode": mode,
                "batch_max": batch_max,
                "events": vruns[0]["events"],
                "appends_per_s": _median(vruns, "appends_per_s"),
                "wall_s": _median(vruns, "wall_s"),
                "cpu_s": _median(vruns, "cpu_s"),
                "mean_group": _median(vruns, "mean_group"),
                "latency_p50_ms": _median(vruns, "latency_p50_ms"),
                "latency_p99_ms": _median(vruns, "latency_p99_ms"),
                "loadavg_1m_before": _median(vruns, "loadavg_1m_before"),
                "runs": vruns,
            }

        # The big ledger, once per backend, checked once before anything is timed.
        for backend, targets in backends.items():
            build = run_worker(
                "build",
                {
                    "target": targets["ledger"],
                    "events": args.events,
                    "seed": 7,
                    "key_path": key_path,
                },
            )
            print(
                f"built {backend} ledger: {build['events']:,} events in {build['wall_s']:.1f} s "
                f"({build['method']})",
                flush=True,
            )
            check = run_worker("verify", {"target": targets["ledger"], "key_path": key_path})
            if not check["ok"] or check["events"] != args.events:
                raise RuntimeError(f"{backend}: the generated ledger does not verify: {check}")
            build["initial_verify"] = check
            results["build"][backend] = build

        vruns_by: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
        qruns_by: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
        for r in range(args.runs):
            for backend, targets in backends.items():
                out = run_worker("verify", {"target": targets["ledger"], "key_path": key_path})
                vruns_by[backend].append(out)
                print(
                    f"verify {backend} run {r + 1}: {out['events_per_s']:,.0f} events/s "
                    f"(wall {out['wall_s']:.2f} s, cpu {out['cpu_s']:.2f} s)",
                    flush=True,
                )
            for backend, targets in backends.items():
                qcfg = {
                    "target": targets["ledger"],
                    "end_us": results["build"][backend]["end_us"],
                    "queries": args.queries,
                    "seed": 100 + r,
                }
                out = run_worker("query", qcfg)
                qruns_by[backend].append(out)
                worst = max(s["page1_p95_ms"] for s in out["shapes"].values())
                print(f"query {backend} run {r + 1}: worst page-1 p95 {worst:.1f} ms", flush=True)
        for backend in backends:
            vr = vruns_by[backend]
            results["verify"][backend] = {
                "events": vr[0]["events"],
                "events_per_s": _median(vr, "events_per_s"),
                "wall_s": _median(vr, "wall_s"),
                "cpu_s": _median(vr, "cpu_s"),
                "loadavg_1m_before": _median(vr, "loadavg_1m_before"),
                "runs": vr,
            }
            qr = qruns_by[backend]
            shapes: dict[str, Any] = {}
            for shape in qr[0]["shapes"]:
                per_run = [q["shapes"][shape] for q in qr]
                shapes[shape] = {
                    key: statistics.median(p[key] for p in per_run)
                    for key in per_run[0]
                    if key not in ("queries", "page2_count")
                }
                shapes[shape]["queries"] = sum(p["queries"] for p in per_run)
                shapes[shape]["page2_count"] = sum(p["page2_count"] for p in per_run)
            results["queries"][backend] = {
                "shapes": shapes,
                "wall_s": _median(qr, "wall_s"),
                "cpu_s": _median(qr, "cpu_s"),
                "runs": qr,
            }
        if "rights" in sections:
            results["rights"] = run_rights(
                backends, args.events, args.runs, tmp, key_path, keep=keep
            )
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
        if "postgresql" in backends:
            pg_admin(
                args.pg_url,
                [
                    f"DROP SCHEMA IF EXISTS {LEDGER_SCHEMA} CASCADE",
                    f"DROP SCHEMA IF EXISTS {APPEND_SCHEMA} CASCADE",
                ]
                + (
                    [f"DROP SCHEMA IF EXISTS {LEDGER_SCHEMA}_keyed CASCADE"] if keep is None else []
                ),
            )
    results["total_wall_s"] = time.perf_counter() - started
    end_commit = machine()["git_commit"]
    if end_commit != info["git_commit"]:
        results["machine"]["git_commit_at_end"] = end_commit
        print(f"note: HEAD moved during the run ({info['git_commit'][:8]} -> {end_commit[:8]})")
    render(results)
    if "rights" in results:
        render_rights(results["rights"])
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def render(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, shutil.get_terminal_size().columns))
    sizes = results["sizes"]
    t = Table(
        title=f"Ledger appends, {sizes['callers']} concurrent callers "
        f"(median of {sizes['runs']} fresh runs; aim ≥ {AIMS['appends_per_s']:,}/s on SQLite)"
    )
    for col in (
        "backend",
        "mode",
        "batch_max",
        "events",
        "appends/s",
        "wall s",
        "cpu s",
        "mean group",
        "p50 ms",
        "p99 ms",
        "load",
    ):
        t.add_column(col, justify="right")
    for a in results["appends"].values():
        t.add_row(
            a["backend"],
            a["mode"],
            str(a["batch_max"]),
            f"{a['events']:,}",
            f"{a['appends_per_s']:,.0f}",
            f"{a['wall_s']:.2f}",
            f"{a['cpu_s']:.2f}",
            f"{a['mean_group']:.1f}",
            f"{a['latency_p50_ms']:.1f}",
            f"{a['latency_p99_ms']:.1f}",
            f"{a['loadavg_1m_before']:.1f}",
        )
    console.print(t)
    t = Table(
        title=f"verify_ledger on {sizes['ledger_events']:,} events "
        f"(median of {sizes['runs']}; aim ≥ {AIMS['verify_events_per_s']:,} events/s)"
    )
    for col in ("backend", "events/s", "wall s", "cpu s", "load", "build s", "build method"):
        t.add_column(col, justify="right")
    for backend, v in results["verify"].items():
        b = results["build"][backend]
        t.add_row(
            backend,
            f"{v['events_per_s']:,.0f}",
            f"{v['wall_s']:.2f}",
            f"{v['cpu_s']:.2f}",
            f"{v['loadavg_1m_before']:.1f}",
            f"{b['wall_s']:.1f}",
            b["method"].split("; ", 1)[1],
        )
    console.print(t)
    t = Table(
        title=f"EventRepository.page(limit=100) on {sizes['ledger_events']:,} events "
        f"(ms; medians of per-run percentiles; aim p95 < {AIMS['query_p95_ms']:.0f} ms)"
    )
    for col in ("backend", "filter", "p1 p50", "p1 p95", "p2 p50", "p2 p95", "rows"):
        t.add_column(col, justify="right")
    for backend, q in results["queries"].items():
        for shape, s in q["shapes"].items():
            t.add_row(
                backend,
                shape,
                f"{s['page1_p50_ms']:.2f}",
                f"{s['page1_p95_ms']:.2f}",
                f"{s['page2_p50_ms']:.2f}",
                f"{s['page2_p95_ms']:.2f}",
                f"{s['mean_rows']:.0f}",
            )
    console.print(t)
    for backend, reason in results["skipped"].items():
        console.print(f"skipped {backend}: {reason}")
    console.print(f"total {results['total_wall_s']:.0f} s")


# --- compliance reports (issue 19: evidence) ---------------------------------------------
#
#     uv run python bench/audit.py --reports [--report-events 1000000] [--runs 3] [--no-pg]
#
# A quarter (2026-01-01..2026-03-31) of a busy gateway: ``--report-events`` ledger events
# in four streams, hashed by the real chain functions (``ChainFields``/``chain_hash``),
# a signed checkpoint every 10,000 events per stream, actions as Bastion writes them
# (``llm.chat`` with flags and refusals, key, policy, model promotion, feedback,
# incidents). Timed in fresh processes: the whole report (``EvidenceService.generate``,
# EU AI Act, OSCAL JSON: one scan of the period, chain verification, checkpoints, render),
# and beside it in the same run its two parts: the scan alone and ``verify_ledger``
# alone (the peer: a report can never be cheaper than verifying the chain it cites).
# Writes ``bench/results/audit_reports.json`` (a file of its own, so that the ledger's
# figures in ``audit.json`` and these are rerun independently).

REPORT_RESULTS = ROOT / "bench" / "results" / "audit_reports.json"
REPORT_AIM_S = 10.0
QUARTER_START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER_END = datetime(2026, 4, 1, tzinfo=UTC)
REPORT_ACTIONS = [
    ("llm.chat", 820),
    ("llm.embeddings", 100),
    ("response.flag", 20),
    ("feedback.add", 15),
    ("key.create", 5),
    ("key.revoke", 2),
    ("policy.reload", 1),
    ("model.register", 3),
    ("model.evidence", 3),
    ("model.promotion.request", 3),
    ("model.promotion.approve", 3),
    ("model.alias.move", 3),
    ("model.rollback", 1),
    ("incident.open", 1),
    ("audit.erase", 1),
    ("response.check", 1),
    ("access.check", 1),
]
REPORT_FLAGS = ["[]"] * 16 + [
    '["pii:EMAIL_ADDRESS"]',
    '["pii:PHONE_NUMBER","pii:PERSON"]',
    '["pii_leak:EMAIL_ADDRESS"]',
    '["slow"]',
]


def generate_quarter(
    n: int, seed: int, signer: Any
) -> tuple[list[str], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    from bastion.audit.events import ChainFields, canonical_json, chain_hash, genesis

    rng = random.Random(seed)
    streams = [f"{rng.getrandbits(128):032x}" for _ in range(STREAMS)]
    heads = [genesis(s) for s in streams]
    seqs = [0] * STREAMS
    start_us = int(QUARTER_START.timestamp() * 1_000_000)
    step = (int(QUARTER_END.timestamp() * 1_000_000) - start_us) / n
    names = [a for a, _ in REPORT_ACTIONS]
    actions = rng.choices(names, [w for _, w in REPORT_ACTIONS], k=n)
    actors = rng.choices(ACTORS, ACTOR_WEIGHTS, k=n)
    rows: list[tuple[Any, ...]] = []
    # each writer signs its stream's start (seq 0, the genesis hash) with its first group
    checkpoints: list[tuple[Any, ...]] = [
        (s, 0, genesis(s), start_us, signer.key_id, signer.sign(s, 0, genesis(s), start_us))
        for s in streams
    ]
    for i in range(n):
        k = rng.randrange(STREAMS)
        stream = streams[k]
        seqs[k] += 1
        seq = seqs[k]
        ts_us = start_us + int(i * step)
        action = actions[i]
        outcome, flags = "success", "[]"
        if action.startswith("llm."):
            model = rng.choice(MODELS)
            outcome = rng.choices(OUTCOMES, OUTCOME_WEIGHTS)[0]
            flags = rng.choice(REPORT_FLAGS)
            body: dict[str, Any] = {
                "key": f"bk_{rng.randrange(40):04x}",
                "requested_model": model,
                "latency_ms": rng.randint(40, 9_000),
                "status": 200 if outcome == "success" else 429,
            }
            if outcome == "refused":
                body["error_code"] = rng.choice(["budget_exceeded", "rate_limit_exceeded"])
            resource = f"model:{model}"
        else:
            body = {"n": i}
            resource = f"{action.split('.')[0]}:{rng.randrange(100)}"
        fields = ChainFields(
            stream=stream,
            seq=seq,
            ts_us=ts_us,
            actor=f"user:{actors[i]}",
            action=action,
            resource=resource,
            outcome=outcome,
            request_id=f"{rng.getrandbits(64):016x}",
            details=canonical_json(body),
            content_digest=None,
            flags=flags,
        )
        row_hash = chain_hash(heads[k], fields)
        rows.append((*fields, heads[k], row_hash))
        heads[k] = row_hash
        if seq % CHECKPOINT_EVERY == 0:
            checkpoints.append(
                (
                    stream,
                    seq,
                    row_hash,
                    ts_us,
                    signer.key_id,
                    signer.sign(stream, seq, row_hash, ts_us),
                )
            )
    return streams, rows, checkpoints


def worker_report_build(cfg: dict[str, Any]) -> dict[str, Any]:
    from bastion.audit import load_or_create_signer

    target = cfg["target"]
    signer = load_or_create_signer(Path(cfg["key_path"]))
    wall0 = time.perf_counter()
    db = fresh_database(target)
    streams, rows, checkpoints = generate_quarter(cfg["events"], cfg["seed"], signer)
    created = datetime.now(UTC)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if target["backend"] == "sqlite":
            ph, cph, sph = ",".join("?" * 13), ",".join("?" * 6), ",".join("?" * 5)
            stream_rows = [
                (s, created.strftime("%Y-%m-%d %H:%M:%S.%f"), "bench", 1, "server") for s in streams
            ]
        else:
            ph, cph, sph = ",".join(["%s"] * 13), ",".join(["%s"] * 6), ",".join(["%s"] * 5)
            stream_rows = [(s, created, "bench", 1, "server") for s in streams]
        for first in range(0, len(rows), 50_000):
            cur.executemany(
                f"INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ({ph})",
                rows[first : first + 50_000],
            )
            raw.commit()
        cur.executemany(
            f"INSERT INTO audit_streams (id, created_at, host, pid, label) VALUES ({sph})",
            stream_rows,
        )
        cur.executemany(
            f"INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES ({cph})", checkpoints
        )
        raw.commit()
    finally:
        raw.close()
    if target["backend"] != "sqlite":
        from sqlalchemy import text

        with db.engine.connect() as c:
            c.execute(text("ANALYZE"))
            c.commit()
    db.dispose()
    return {
        "events": len(rows),
        "checkpoints": len(checkpoints),
        "wall_s": time.perf_counter() - wall0,
    }


def worker_report_time(cfg: dict[str, Any]) -> dict[str, Any]:
    from bastion.audit import load_or_create_signer, verify_ledger
    from bastion.evidence.mapping import get_framework
    from bastion.evidence.report import parse_period
    from bastion.evidence.scan import scan_period
    from bastion.evidence.service import EvidenceService

    signer = load_or_create_signer(Path(cfg["key_path"]))
    trusted = {signer.key_id: signer.public}
    db = open_database(cfg["target"])
    period = "2026-01-01..2026-03-31"
    wall0, cpu0 = time.perf_counter(), _cpu()
    out: dict[str, Any] = {}
    if cfg["part"] == "report":
        done = EvidenceService(db, trusted).generate("eu-ai-act", period, "json", actor="bench")
        out = {
            "bytes": len(done.content),
            "chain_ok": done.body["proofs"]["chain"]["ok"],
            "events_in_period": done.body["summary"]["events_in_period"],
            "machine_evidence_share": done.body["summary"]["machine_evidence_share"],
        }
    elif cfg["part"] == "scan":
        fw = get_framework("eu-ai-act").framework
        p = parse_period(period)
        scan = scan_period(db, [s for c in fw.controls for s in c.evidence], p.start, p.end)
        out = {"events_in_period": scan.events}
    else:
        report = verify_ledger(db, trusted)
        out = {"chain_ok": report.ok, "events": report.events}
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    db.dispose()
    return out | {"wall_s": wall, "cpu_s": cpu}


WORKERS["report_build"] = worker_report_build
WORKERS["report_time"] = worker_report_time


def reports_main(args: argparse.Namespace) -> int:
    keep: Path | None = args.keep.resolve() if args.keep is not None else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    tmp = keep or Path(tempfile.mkdtemp(prefix="bastion-bench-reports-"))
    key_path = str(tmp / "signing.pem")
    targets: dict[str, dict[str, Any]] = {
        "sqlite": {"backend": "sqlite", "path": str(tmp / "quarter.db")}
    }
    skipped: dict[str, str] = {}
    if args.no_pg:
        skipped["postgresql"] = "--no-pg given"
    else:
        reason = pg_reachable(args.pg_url)
        if reason is None:
            targets["postgresql"] = {
                "backend": "postgresql",
                "base": args.pg_url,
                "schema": "bench_reports",
            }
        else:
            skipped["postgresql"] = f"unreachable at {args.pg_url}: {reason}"
    results: dict[str, Any] = {
        "machine": machine(),
        "command": "uv run python bench/audit.py " + " ".join(sys.argv[1:]),
        "sizes": {
            "events": args.report_events,
            "period": "2026-01-01..2026-03-31",
            "streams": STREAMS,
            "runs": args.runs,
        },
        "aim_report_s": REPORT_AIM_S,
        "skipped": skipped,
        "note": "report = EvidenceService.generate(eu-ai-act, OSCAL JSON): one scan of the "
        "period, run while worker processes verify the period's part of the chain (here the "
        "whole ledger), + checkpoints + render; scan and verify are its two parts timed "
        "alone in the same run (verify is the peer)",
        "build": {},
        "timings": {},
    }
    try:
        for backend, target in targets.items():
            print(f"building a quarter of {args.report_events:,} events on {backend}…")
            results["build"][backend] = build_once(
                "report_build",
                {"target": target, "key_path": key_path, "events": args.report_events, "seed": 19},
                keep,
                f"quarter-{backend}-{args.report_events}",
            )
            runs: dict[str, list[dict[str, Any]]] = {"report": [], "scan": [], "verify": []}
            for _ in range(args.runs):
                for part in runs:  # alternated, each in a fresh process
                    runs[part].append(
                        run_worker(
                            "report_time", {"target": target, "key_path": key_path, "part": part}
                        )
                    )
            results["timings"][backend] = {
                part: {
                    "wall_s": _median(r, "wall_s"),
                    "cpu_s": _median(r, "cpu_s"),
                    "runs": r,
                }
                for part, r in runs.items()
            }
            t = results["timings"][backend]
            t["report_over_verify"] = t["report"]["wall_s"] / t["verify"]["wall_s"]
            t["events_per_s"] = args.report_events / t["report"]["wall_s"]
            t["meets_aim"] = t["report"]["wall_s"] < REPORT_AIM_S
    finally:
        if keep is None:
            if "postgresql" in targets:
                pg_admin(args.pg_url, ["DROP SCHEMA IF EXISTS bench_reports CASCADE"])
            shutil.rmtree(tmp, ignore_errors=True)
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Compliance report over a quarter of {args.report_events:,} events "
        f"(median of {args.runs}; aim < {REPORT_AIM_S:.0f} s)"
    )
    for col in (
        "backend",
        "report s",
        "cpu s",
        "scan s",
        "verify s (peer)",
        "report/verify",
        "events/s",
        "load",
        "aim",
    ):
        table.add_column(col, justify="right" if col != "backend" else "left")
    for backend, t in results["timings"].items():
        table.add_row(
            backend,
            f"{t['report']['wall_s']:.2f}",
            f"{t['report']['cpu_s']:.2f}",
            f"{t['scan']['wall_s']:.2f}",
            f"{t['verify']['wall_s']:.2f}",
            f"{t['report_over_verify']:.2f}x",
            f"{t['events_per_s']:,.0f}",
            f"{_median(t['report']['runs'], 'loadavg_1m_before'):.1f}",
            "met" if t["meets_aim"] else "MISSED",
        )
    Console(width=140).print(table)
    for backend, reason in skipped.items():
        print(f"skipped {backend}: {reason}")
    if not args.no_write:
        REPORT_RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {REPORT_RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
