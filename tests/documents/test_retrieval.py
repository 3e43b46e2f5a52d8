"""Retrieval: a caller never gets passages from a collection it may not read; hybrid
retrieval fuses its halves by score (a convex combination, property-tested); the API answers with coded errors."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.auth.principal import cli_principal
from bastion.documents.errors import CollectionForbidden, CollectionNotFound
from bastion.documents.search import fuse
from bastion.documents.service import Upload
from bastion.errors import InvalidInput

from .conftest import POLICY, principal

pytestmark = pytest.mark.anyio
ADMIN = cli_principal("ops")

SECRET = b"# Merger\n\nThe merger with Northwind closes in March; the price is confidential.\n"
OPEN = b"# Canteen\n\nThe canteen opens at noon and serves the merger lunch on Fridays.\n"


async def seed(docs: Any) -> None:
    await docs.service.ingest("legal", [Upload("merger.md", SECRET)], ADMIN)
    await docs.service.ingest("public", [Upload("canteen.md", OPEN)], ADMIN)


@pytest.mark.parametrize(
    ("role", "team", "sees_legal"),
    [
        ("admin", None, True),
        ("analyst", "legal", True),
        ("analyst", "risk", False),  # the right role, the wrong team
        ("guest", "legal", False),  # the right team, the wrong role
    ],
)
async def test_a_caller_never_retrieves_from_a_collection_it_may_not_read(
    docs: Any, role: str, team: str | None, sees_legal: bool
) -> None:
    await seed(docs)
    who = principal(role, team)
    everywhere = await docs.retriever.search(None, "merger Northwind price", 10, who)
    assert {p.collection for p in everywhere} == ({"legal", "public"} if sees_legal else {"public"})
    assert ("legal" in docs.retriever.readable_collections(who)) is sees_legal
    if sees_legal:
        found = await docs.retriever.search("legal", "merger", 5, who)
        assert found and found[0].document == "merger.md"
        reading = await docs.retriever.read(found[0].chunk_id, who)
        assert "Northwind" in reading.text
    else:
        with pytest.raises(CollectionForbidden):
            await docs.retriever.search("legal", "merger", 5, who)
        legal_doc = docs.service.documents("legal", principal("admin"))[0]
        with pytest.raises(CollectionForbidden):
            await docs.retriever.read(legal_doc.id, who)


async def test_search_errors_are_coded(docs: Any) -> None:
    await seed(docs)
    with pytest.raises(CollectionNotFound):
        await docs.retriever.search("nowhere", "merger", 5, ADMIN)
    for query, top_k in (("", 5), ("   ", 5), ("x" * 5000, 5), ("merger", 0), ("merger", 101)):
        with pytest.raises(InvalidInput):
            await docs.retriever.search("public", query, top_k, ADMIN)


async def test_passages_point_into_their_document(docs: Any) -> None:
    await seed(docs)
    (best, *_) = await docs.retriever.search("public", "when does the canteen open", 3, ADMIN)
    whole = await docs.retriever.read(best.document_id, ADMIN)
    assert whole.kind == "document" and whole.text[best.start : best.end] == best.text
    assert best.location == "# Canteen" and best.ranks.keys() == {"bm25", "dense"}


def test_fusion_rewards_agreement() -> None:
    # 2 is near the top of both lists, 1 and 4 top one list each and far down the other.
    fused = fuse(
        {
            "bm25": [(1, 9.0), (2, 8.5), (3, 1.0)],
            "dense": [(4, 0.80), (2, 0.78), (5, 0.10)],
        }
    )
    assert fused[0][0] == 2
    assert fuse({}) == [] and fuse({"bm25": [], "dense": []}) == []


def test_fusion_keeps_how_far_apart_scores_are() -> None:
    # Rank fusion would tie 1 and 4; the scores say 1 wins bm25 by far, 4 dense barely.
    fused = fuse(
        {
            "bm25": [(1, 10.0), (4, 1.0), (9, 0.0)],
            "dense": [(4, 0.60), (1, 0.59), (9, 0.0)],
        }
    )
    assert [k for k, _ in fused][:2] == [1, 4]


_ranked = st.lists(
    st.tuples(st.integers(0, 40), st.floats(-50, 50, allow_nan=False)),
    max_size=30,
    unique_by=lambda t: t[0],
).map(lambda xs: sorted(xs, key=lambda t: -t[1]))


@given(bm25=_ranked, dense=_ranked)
def test_fusion_properties(bm25: list[tuple[int, float]], dense: list[tuple[int, float]]) -> None:
    fused = fuse({"bm25": bm25, "dense": dense})
    keys = [k for k, _ in fused]
    # every key once, nothing invented, scores within [0, 1] and best first
    assert sorted(keys) == sorted({k for k, _ in bm25} | {k for k, _ in dense})
    assert all(0.0 <= s <= 1.0 + 1e-9 for _, s in fused)
    assert [s for _, s in fused] == sorted((s for _, s in fused), reverse=True)
    # the order does not depend on which list is named first
    assert fuse({"dense": dense, "bm25": bm25}) == fused
    # one list alone keeps that list's order among distinct scores
    alone = [k for k, _ in fuse({"bm25": bm25})]
    by_score = {k: s for k, s in bm25}
    assert all(by_score[a] >= by_score[b] for a, b in itertools.pairwise(alone))
    # a key first in both lists is first in the fusion
    if bm25 and dense and bm25[0][0] == dense[0][0]:
        top = bm25[0][0]
        if all(s < bm25[0][1] for k, s in bm25[1:]) and all(s < dense[0][1] for k, s in dense[1:]):
            assert keys[0] == top


def test_an_exhaustive_lexical_list_is_scaled_from_zero() -> None:
    # Chunk 3 matches a query word (BM25 2.0, its last match) and is a near-top dense hit.
    # Scaled from its own lowest match, BM25 would give 3 the 0 of a chunk that matches no
    # word; the full list of matches is scaled from 0, what a non-match scores.
    lists = {"bm25": [(1, 10.0), (3, 2.0)], "dense": [(7, 0.60), (3, 0.58), (9, 0.30)]}
    assert [k for k, _ in fuse(lists)] == [1, 7, 3, 9]
    exhaustive = fuse(lists, floors={"bm25": 0.0})
    assert [k for k, _ in exhaustive] == [3, 1, 7, 9]
    assert dict(exhaustive)[3] == pytest.approx(0.5 * 0.2 + 0.5 * 0.28 / 0.30)


async def test_only_a_lexical_list_holding_every_match_gets_the_zero_floor(docs: Any) -> None:
    await seed(docs)
    # "merger" is in both documents: all of them fit in 50, one is cut at a depth of 1.
    every = await docs.retriever.candidates(["legal", "public"], "merger", 50, ADMIN)
    assert len(every.lists["bm25"]) == 2 and every.floors == {"bm25": 0.0}
    cut = await docs.retriever.candidates(["legal", "public"], "merger", 1, ADMIN)
    assert len(cut.lists["bm25"]) == 1 and cut.floors == {}
    assert every.lists.keys() == cut.lists.keys() == {"bm25", "dense"}


_scores = st.floats(allow_nan=False, allow_infinity=False)


def _ranking(keys: list[int], values: list[float]) -> list[tuple[int, float]]:
    return list(zip(keys, sorted(values, reverse=True), strict=False))


@given(
    keys=st.lists(st.integers(0, 60), min_size=1, max_size=30, unique=True),
    first=st.lists(_scores, min_size=30, max_size=30),
    second=st.lists(_scores, min_size=30, max_size=30),
    floor=st.none() | _scores,
)
def test_fusion_of_identical_rankings_keeps_their_order(
    keys: list[int], first: list[float], second: list[float], floor: float | None
) -> None:
    # The same chunks in the same order from both methods, on any two score scales.
    floors = {} if floor is None else {"bm25": floor}
    fused = fuse({"bm25": _ranking(keys, first), "dense": _ranking(keys, second)}, floors=floors)
    assert [k for k, _ in fused] == keys


@given(
    keys=st.lists(st.integers(0, 60), max_size=30, unique=True),
    values=st.lists(_scores, min_size=30, max_size=30),
    floor=st.none() | _scores,
)
def test_a_method_that_finds_nothing_does_not_reorder_the_other(
    keys: list[int], values: list[float], floor: float | None
) -> None:
    ranked = _ranking(keys, values)
    floors = {} if floor is None else {"bm25": floor, "dense": floor}
    for empty in ("dense", "bm25"):
        other = "bm25" if empty == "dense" else "dense"
        fused = fuse({other: ranked, empty: []}, floors=floors)
        assert [k for k, _ in fused] == keys
        assert fused == fuse({other: ranked}, floors=floors)


_any_score = st.floats(allow_nan=True, allow_infinity=True)
_wild = st.lists(st.tuples(st.integers(0, 40), _any_score), max_size=30, unique_by=lambda t: t[0])


@given(
    bm25=_wild,
    dense=_wild,
    floor=st.none() | _any_score,
    weight=st.floats(0, 10, allow_nan=False),
)
def test_fusion_is_deterministic_and_never_nan(
    bm25: list[tuple[int, float]],
    dense: list[tuple[int, float]],
    floor: float | None,
    weight: float,
) -> None:
    # Extreme, infinite and NaN input scores: every fused score is a number in [0, 1].
    floors = {} if floor is None else {"bm25": floor}
    weights = {"bm25": weight, "dense": 1.0}
    fused = fuse({"bm25": bm25, "dense": dense}, weights, floors=floors)
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 + 1e-9 for _, s in fused)
    assert fused == fuse({"dense": list(dense), "bm25": list(bm25)}, dict(weights), floors=floors)
    assert sorted(k for k, _ in fused) == sorted({k for k, _ in bm25} | {k for k, _ in dense})


async def test_api_upload_list_show_search_remove(
    docs_client: httpx.AsyncClient, docs_key: Any
) -> None:
    admin = docs_key("admin")
    up = await docs_client.post(
        "/api/collections/public/documents",
        params={"filename": "canteen.md"},
        content=OPEN,
        headers=admin,
    )
    assert up.status_code == 200, up.text
    assert up.json()["added"] == 1
    again = await docs_client.post(
        "/api/collections/public/documents",
        params={"filename": "canteen.md"},
        content=OPEN,
        headers=admin,
    )
    assert again.json()["unchanged"] == 1
    listed = await docs_client.get("/api/collections/public/documents", headers=admin)
    (doc,) = listed.json()
    shown = await docs_client.get(f"/api/documents/{doc['id']}", headers=admin)
    assert shown.json()["chunk_list"][0]["location"] == "# Canteen"
    hits = await docs_client.post(
        "/api/search", json={"query": "canteen noon", "top_k": 2}, headers=admin
    )
    assert hits.status_code == 200 and hits.json()[0]["document"] == "canteen.md"
    gone = await docs_client.delete(f"/api/documents/{doc['id']}", headers=admin)
    assert gone.status_code == 200
    assert (await docs_client.get(f"/api/documents/{doc['id']}", headers=admin)).status_code == 404


@pytest.mark.parametrize(
    ("filename", "body", "status", "code"),
    [
        ("a.exe", b"MZ", 415, "unsupported_format"),
        ("a.jsonl", b"{not json}\n", 422, "malformed_document"),
        ("a.pdf", b"not a pdf", 422, "malformed_document"),
        ("a.txt", b"\xff\xfe\xfa", 422, "malformed_document"),
        ("a.md", b"", 422, "empty_document"),
    ],
)
async def test_api_malformed_uploads_get_coded_errors(
    docs_client: httpx.AsyncClient,
    docs_key: Any,
    filename: str,
    body: bytes,
    status: int,
    code: str,
) -> None:
    response = await docs_client.post(
        "/api/collections/public/documents",
        params={"filename": filename},
        content=body,
        headers=docs_key("admin"),
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_api_refuses_what_the_policy_refuses(
    docs_client: httpx.AsyncClient, docs_key: Any
) -> None:
    admin, guest = docs_key("admin"), docs_key("guest", team="legal")
    analyst_risk = docs_key("analyst", team="risk")
    await docs_client.post(
        "/api/collections/legal/documents",
        params={"filename": "m.md"},
        content=SECRET,
        headers=admin,
    )
    denied = await docs_client.post(
        "/api/search", json={"query": "merger", "collection": "legal"}, headers=guest
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "collection_forbidden"
    write = await docs_client.post(
        "/api/collections/legal/documents",
        params={"filename": "x.md"},
        content=OPEN,
        headers=analyst_risk,
    )
    assert write.status_code == 403
    upload_as_guest = await docs_client.post(
        "/api/collections/public/documents",
        params={"filename": "x.md"},
        content=OPEN,
        headers=guest,
    )
    assert upload_as_guest.status_code == 403  # guests lack documents:write
    listing = await docs_client.get("/api/collections", headers=guest)
    assert "legal" not in [c["name"] for c in listing.json()]
    pii = await docs_client.post(
        "/api/collections/strict/documents",
        params={"filename": "p.txt"},
        content=b"Write to jane.roe@example.com",
        headers=admin,
    )
    assert pii.status_code == 422 and pii.json()["error"]["code"] == "personal_data_refused"


# --- hybrid against its halves, with the real sentence-embedding model -----------------


def known_answers() -> tuple[bytes, list[tuple[str, str]]]:
    """The shipped GDPR articles 1-45: each article's title should find that article."""
    import re

    from bastion.documents.demo import corpus_bytes

    rows = [json.loads(line) for line in corpus_bytes().decode().splitlines()]
    rows = [r for r in rows if r["regulation"] == "gdpr" and r["article"] <= 45]
    pairs = []
    for r in rows:
        m = re.search(r"\s(?=1\.\s)", r["text"])
        if m and m.start() < 200:
            pairs.append((r["text"][: m.start()], r["id"]))
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    return data, pairs


@pytest.mark.slow
async def test_hybrid_is_as_good_as_the_better_half_and_better_than_the_worse(
    docs_settings: Any,
) -> None:
    """On article titles the better single method differs from one regulation to the next
    (bench/retrieval.py): fusion must track the better one and never fall to the worse."""
    from bastion.documents.setup import build_documents
    from bastion.gateway.setup import build_gateway
    from bastion.runtime import open_runtime

    docs_settings.policy_path.write_text(
        POLICY.replace(
            "  hash-embed: {provider: local, kind: embedding}\n",
            "  hash-embed: {provider: local, kind: embedding, upstream_model: all-MiniLM-L6-v2}\n",
        )
    )
    rt = open_runtime(docs_settings)
    gateway = build_gateway(rt)
    try:
        docs = build_documents(rt, gateway)
        data, pairs = known_answers()
        assert len(pairs) >= 30
        await docs.service.ingest("raw", [Upload("gdpr.jsonl", data)], ADMIN)
        mrr: dict[str, float] = {}
        for method in ("hybrid", "bm25", "dense"):
            total = 0.0
            for title, target in pairs:
                found = await docs.retriever.search("raw", title, 30, ADMIN, method=method)
                ranked = list(dict.fromkeys(p.document for p in found))
                total += 1 / (ranked.index(target) + 1) if target in ranked else 0.0
            mrr[method] = total / len(pairs)
    finally:
        await gateway.aclose()
        rt.close()
    best, worst = max(mrr["bm25"], mrr["dense"]), min(mrr["bm25"], mrr["dense"])
    assert mrr["hybrid"] >= best - 0.02, mrr
    assert mrr["hybrid"] > worst, mrr
