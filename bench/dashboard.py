"""Dashboard pages' server time on a SQLite ledger of 1 M and 10 M gateway events.

    uv run python bench/dashboard.py [--sizes 1000000,10000000] [--requests 20]

For each size, a ledger is built once into ``bench/.cache/dashboard-<size>.db`` (git-
ignored, reused by later runs): the migrated schema, then ``<size>`` gateway call events
over 90 days (the seeded generator of :mod:`bastion.testing.usage`: 6 teams, 5 models,
every outcome, streams with a time to first token) bulk-inserted with ``executemany``
in 100,000-row transactions. The rows have the ledger's shape but placeholder hashes:
going through the ledger's own append path (hash chain, group commit) would take hours
at 10 M, and a page's timing does not depend on the chain being valid. The usage
refresher then folds them into the rollups (its time is recorded once, at build).

Timed, in one process per size: every dashboard page on this branch and the usage API,
as in-process ASGI requests (httpx over ``ASGITransport``) with a signed-in session (an
admin key exchanged at ``/ui/login``), ``--requests`` times each after two warm-ups;
p50 / p95 of the wall time. Pages that live on other branches (Models, Monitoring) are
not here to time. Beside them, "the naive way": the Overview's figures for the same
30 days computed from the raw ledger (one pass over the events with ``json_extract``,
exact percentiles in Python), ``--naive-runs`` times, and the ratio naive / rollups.

Writes ``bench/results/dashboard.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from _machine import machine  # noqa: E402

# bench/ holds mcp.py, which would shadow the mcp package the app imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results" / "dashboard.json"
DAYS = 90
PERIOD_DAYS = 30
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
COLUMNS = (
    "stream",
    "seq",
    "ts_us",
    "actor",
    "action",
    "resource",
    "outcome",
    "request_id",
    "details",
    "content_digest",
    "flags",
    "prev_hash",
    "hash",
)


def build(size: int) -> tuple[Path, dict[str, Any]]:
    """The cached ledger of ``size`` events with its rollups refreshed; built if absent."""
    from bastion.db import create_database, upgrade
    from bastion.testing.usage import row_of, synthetic_calls
    from bastion.usage.refresh import Refresher

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"dashboard-{size}.db"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())
    for stale in (path, meta_path):
        stale.unlink(missing_ok=True)
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    first_day = last_day - timedelta(days=DAYS - 1)
    db = create_database(f"sqlite:///{path}")
    upgrade(db.engine)
    db.dispose()
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    insert = (
        f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    batch: list[tuple[Any, ...]] = []
    calls = synthetic_calls(size, seed=22, start_day=(first_day - date(1970, 1, 1)).days, days=DAYS)
    for seq, call in enumerate(calls, 1):
        row = row_of(call, stream="bench", seq=seq)
        batch.append(tuple(row[c] for c in COLUMNS))
        if len(batch) == 100_000:
            with conn:
                conn.executemany(insert, batch)
            batch.clear()
            print(f"  built {seq:,} / {size:,} events", file=sys.stderr, end="\r")
    if batch:
        with conn:
            conn.executemany(insert, batch)
    conn.close()
    built_s = time.perf_counter() - started
    print(f"  built {size:,} events in {built_s:.0f} s", file=sys.stderr)
    db = create_database(f"sqlite:///{path}")
    started = time.perf_counter()
    folded = Refresher(db, batch=50_000, lag_s=0).refresh()
    refresh_s = time.perf_counter() - started
    with db.engine.connect() as c:
        rollup_rows = c.exec_driver_sql("SELECT count(*) FROM usage_daily").scalar()
    db.dispose()
    print(f"  refreshed {folded:,} events in {refresh_s:.0f} s", file=sys.stderr)
    meta = {
        "events": size,
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "build_s": round(built_s, 1),
        "refresh_s": round(refresh_s, 1),
        "refresh_events_per_s": round(folded / refresh_s),
        "rollup_rows": rollup_rows,
        "db_bytes": path.stat().st_size,
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return path, meta


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


async def time_pages(path: Path, meta: dict[str, Any], requests: int) -> dict[str, Any]:
    import httpx

    from bastion.app import create_app
    from bastion.auth.principal import SYSTEM
    from bastion.policy import write_starter_policy
    from bastion.runtime import open_runtime
    from bastion.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    write_starter_policy(home / "policy.yaml")
    settings = Settings(home=home, database_url=f"sqlite:///{path}", log_level="WARNING")
    runtime = open_runtime(settings)
    app = create_app(settings, runtime=runtime)
    key = runtime.keys.create(SYSTEM, user="bench", role="admin", team="risk").secret
    end = date.fromisoformat(meta["last_day"])
    start = end - timedelta(days=PERIOD_DAYS - 1)
    period = f"start={start}&end={end}"
    pages = {
        "ui: overview (by team)": f"/ui/overview?{period}&group_by=team",
        "ui: overview (by team, model)": f"/ui/overview?{period}&group_by=team,model",
        "ui: gateway (health)": "/ui/gateway",
        "ui: gateway calls": "/ui/gateway/calls",
        "ui: audit": "/ui/audit",
        "ui: keys & policy": "/ui/admin",
        "ui: documents": "/ui/documents",
        "ui: evidence (frameworks, clocks)": "/ui/evidence",
        "api: /api/usage (team, model)": f"/api/usage?{period}&group_by=team,model",
        "api: /api/usage/budgets": "/api/usage/budgets",
        "api: /api/alerts": "/api/alerts",
    }
    out: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            form = await client.get("/ui/login")
            token = CSRF.search(form.text)
            assert token, "the sign-in page has no CSRF token"
            signed = await client.post(
                "/ui/login", data={"api_key": key, "next": "/ui", "csrf_token": token.group(1)}
            )
            assert signed.status_code == 303, signed.text[:300]
            headers = {"Authorization": f"Bearer {key}"}
            for name, url in pages.items():
                first = await client.get(url, headers=headers)
                if first.status_code == 404:
                    continue  # a page of another branch
                assert first.status_code == 200, f"{url}: {first.status_code} {first.text[:300]}"
                await client.get(url, headers=headers)
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    response = await client.get(url, headers=headers)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert response.status_code == 200
                out[name] = {
                    "p50_ms": round(statistics.median(times), 2),
                    "p95_ms": round(pct(times, 0.95), 2),
                    "requests": requests,
                    "bytes": len(first.content),
                }
                print(f"  {name}: p50 {out[name]['p50_ms']} ms", file=sys.stderr)
    finally:
        await app.state.gateway.aclose()
        runtime.close()
        shutil.rmtree(home, ignore_errors=True)
    return out


def naive_overview(path: Path, start: date, end: date) -> dict[str, Any]:
    """The Overview's figures from the raw ledger: one pass, json_extract per event."""
    first_us = int(datetime.combine(start, datetime.min.time(), UTC).timestamp() * 1e6)
    end_us = int(datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC).timestamp())
    end_us *= 1_000_000
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    cursor = conn.execute(
        "SELECT ts_us / 86400000000, coalesce(json_extract(details, '$.team'), ''), "
        "coalesce(json_extract(details, '$.served_model'), "
        "json_extract(details, '$.requested_model'), 'unknown'), outcome, "
        "json_extract(details, '$.latency_ms'), json_extract(details, '$.tokens.prompt'), "
        "json_extract(details, '$.tokens.completion'), json_extract(details, '$.cost_usd') "
        "FROM audit_events WHERE ts_us >= ? AND ts_us < ? AND action LIKE 'llm.%'",
        (first_us, end_us),
    )
    sums: dict[tuple[int, str, str], list[float]] = {}
    latencies: dict[tuple[int, str], array[float]] = {}
    while rows := cursor.fetchmany(10_000):
        for day, team, model, outcome, latency, prompt, completion, cost in rows:
            s = sums.setdefault((day, team, model), [0, 0, 0, 0, 0.0])
            s[0] += 1
            s[1] += outcome in ("failure", "error")
            s[2] += prompt or 0
            s[3] += completion or 0
            s[4] += cost or 0.0
            if outcome != "refused":
                latencies.setdefault((day, team), array("d")).append(latency or 0.0)
    conn.close()
    p95 = {k: pct(v, 0.95) for k, v in latencies.items()}
    return {"groups": len(sums), "p95s": len(p95), "requests": sum(s[0] for s in sums.values())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="ledger sizes, comma-separated")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument(
        "--naive-runs", type=int, default=3, help="runs of the raw-ledger way (1 above 5 M)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    results: dict[str, Any] = {"machine": machine(sources=("src/bastion",)), "sizes": {}}
    for size in sizes:
        print(f"== {size:,} events", file=sys.stderr)
        path, meta = build(size)
        pages = asyncio.run(time_pages(path, meta, args.requests))
        end = date.fromisoformat(meta["last_day"])
        start = end - timedelta(days=PERIOD_DAYS - 1)
        naive_times = []
        runs = args.naive_runs if size <= 5_000_000 else 1
        for _ in range(runs):
            t0 = time.perf_counter()
            found = naive_overview(path, start, end)
            naive_times.append((time.perf_counter() - t0) * 1000)
        naive_ms = statistics.median(naive_times)
        overview_ms = pages["ui: overview (by team)"]["p50_ms"]
        results["sizes"][str(size)] = {
            "ledger": meta,
            "pages": pages,
            "naive_overview": {
                "median_ms": round(naive_ms, 1),
                "runs": runs,
                "events_read": found["requests"],
            },
            "naive_over_rollups": round(naive_ms / overview_ms, 1),
        }
        print(
            f"  naive overview: {naive_ms:.0f} ms ({naive_ms / overview_ms:.0f}x)", file=sys.stderr
        )
        results["sizes"][str(size)]["load_average_1m"] = round(os.getloadavg()[0], 1)
        if not args.no_write:  # after each size, beside the sizes of earlier runs
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            merged = {**results, "sizes": {**earlier.get("sizes", {}), **results["sizes"]}}
            RESULTS.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    show(results)
    return 0


def show(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, shutil.get_terminal_size().columns))
    for size, r in results["sizes"].items():
        ledger = r["ledger"]
        table = Table(
            title=f"Dashboard server time, SQLite ledger of {int(size):,} gateway events "
            f"({ledger['rollup_rows']:,} rollup rows; refresh {ledger['refresh_s']} s, "
            f"{ledger['refresh_events_per_s']:,} events/s)"
        )
        for col in ("page", "p50 ms", "p95 ms", "aim (p95)"):
            table.add_column(col, justify="left" if col == "page" else "right")
        aim = 200 if int(size) <= 1_000_000 else 1000
        for name, t in r["pages"].items():
            mark = "ok" if t["p95_ms"] < aim else "over"
            table.add_row(name, f"{t['p50_ms']:.1f}", f"{t['p95_ms']:.1f}", f"< {aim} {mark}")
        naive = r["naive_overview"]
        table.add_row(
            "naive: overview figures from the raw ledger",
            f"{naive['median_ms']:.0f}",
            "",
            f"{r['naive_over_rollups']}x the rollups",
        )
        console.print(table)


if __name__ == "__main__":
    raise SystemExit(main())
