"""POST /query through the app: real retrieval, the gateway's local provider (and a
fake OpenAI-compatible upstream on loopback), the grounding check, the ledger."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

ERASURE = "When does the data subject have the right to obtain erasure of personal data?"


def _events(runtime: Any, action: str) -> list[Any]:
    from bastion.audit.repository import EventFilter

    page = runtime.audit.page(EventFilter(action=action), limit=100)
    return list(page.events)


async def test_a_real_question_is_answered_from_the_passages_with_citations(
    rag_client: Any, rag_key: Any, rag_runtime: Any
) -> None:
    headers = rag_key("analyst")
    r = await rag_client.post("/query", json={"question": ERASURE}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "[1]" in body["answer"] and "erasure" in body["answer"]
    assert body["citations"], body
    cited = {c["document"] for c in body["citations"]}
    assert "gdpr/art-17" in cited
    for c in body["citations"]:
        assert f"[{c['n']}]" in body["answer"]
        assert c["snippet"] and c["location"]
    grounding = body["grounding"]
    assert grounding["unsupported"] == [] and grounding["supported"]
    assert grounding["score"] == 1.0
    assert body["prompt"]["name"] == "query" and body["prompt"]["version"] >= 1
    assert body["model"] == "local" and body["tokens"]["prompt"] > 0
    # the same question, the same answer and citations (deterministic offline path)
    again = (await rag_client.post("/query", json={"question": ERASURE}, headers=headers)).json()
    assert (again["answer"], again["citations"]) == (body["answer"], body["citations"])
    assert again["run_id"] != body["run_id"]


async def test_one_ledger_event_per_query_linked_to_the_generation(
    rag_client: Any, rag_key: Any, rag_runtime: Any
) -> None:
    r = await rag_client.post("/query", json={"question": ERASURE}, headers=rag_key("analyst"))
    body = r.json()
    queries = [e for e in _events(rag_runtime, "rag.query") if e.details["run"] == body["run_id"]]
    assert len(queries) == 1
    event = queries[0]
    details = event.details
    assert event.outcome == "success" and event.request_id == body["request_id"]
    assert details["prompt"] == body["prompt"]
    assert details["chunks"] and all({"id", "score"} <= set(c) for c in details["chunks"])
    assert details["grounding"]["unsupported"] == []
    assert set(details["digests"]) == {"question", "answer", "passages"}
    assert ERASURE not in json.dumps(details)  # the question is digested, not kept
    chats = [
        e
        for e in _events(rag_runtime, "llm.chat")
        if e.details.get("links", {}).get("run") == body["run_id"]
    ]
    assert len(chats) == 1 and chats[0].request_id == body["request_id"]
    assert chats[0].details["links"]["prompt"] == "query@1"


async def test_nothing_relevant_is_refused_with_the_best_passages(
    rag_client: Any, rag_key: Any, rag_runtime: Any
) -> None:
    headers = rag_key("analyst")
    question = {"question": "Who won the football world cup in 2018?"}
    r = await rag_client.post("/query", json=question, headers=headers)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "not_grounded" and error["passages"]
    assert {"document", "location", "snippet", "score"} <= set(error["passages"][0])
    refused = [e for e in _events(rag_runtime, "rag.query") if e.outcome == "refused"]
    assert refused and refused[0].details["error_code"] == "not_grounded"
    # not grounded on request: it answers (and the check says what is unsupported)
    r = await rag_client.post("/query", json=question | {"grounded": False}, headers=headers)
    assert r.status_code == 200, r.text


async def test_a_collection_the_caller_may_not_read_is_never_searched(
    rag_client: Any, rag_key: Any
) -> None:
    guest = rag_key("guest")
    r = await rag_client.post(
        "/query",
        json={"question": "What is the falcon budget?", "collection": "secret"},
        headers=guest,
    )
    assert r.status_code == 403, r.text
    r = await rag_client.post(
        "/query",
        json={"question": "What is the falcon budget?", "grounded": False},
        headers=guest,
    )
    assert r.status_code == 200 and "42 million" not in r.text
    admin = rag_key("admin")
    r = await rag_client.post(
        "/query",
        json={"question": "What is the falcon budget?", "collection": "secret"},
        headers=admin,
    )
    assert r.status_code == 200 and "42 million" in r.json()["answer"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({}, 400, "question"),
        ({"question": ""}, 422, "question"),
        ({"question": 5}, 422, "question"),
        ({"question": "x" * 4001}, 422, "question"),
        ({"question": "ok", "top_k": 0}, 422, "top_k"),
        ({"question": "ok", "top_k": "5"}, 422, "top_k"),
        ({"question": "ok", "grounded": "yes"}, 422, "grounded"),
        ({"question": "ok", "collection": "../etc"}, 422, "collection"),
        ({"question": "ok", "surprise": 1}, 422, "surprise"),
        ([1, 2], 422, None),
    ],
)
async def test_malformed_bodies_get_a_coded_error_naming_the_field(
    rag_client: Any, rag_key: Any, body: Any, status: int, param: str | None
) -> None:
    r = await rag_client.post("/query", json=body, headers=rag_key("analyst"))
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"]
    if param is not None:
        assert param in (error["param"] or ""), error


async def test_a_body_that_is_not_json_is_a_400(rag_client: Any, rag_key: Any) -> None:
    headers = rag_key("analyst") | {"content-type": "application/json"}
    r = await rag_client.post("/query", content=b'{"question": ', headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("role", "route", "status"),
    [
        (None, "/query", 401),
        (None, "/research", 401),
        ("auditor", "/query", 403),
        ("guest", "/research", 403),
        ("guest", "/query", 200),
        ("analyst", "/research", 200),
    ],
)
async def test_permissions_per_route(
    rag_client: Any, rag_key: Any, role: str | None, route: str, status: int
) -> None:
    headers = rag_key(role) if role else {}
    payload = {"question": ERASURE} if route.endswith("query") else {"topic": "right to erasure"}
    r = await rag_client.post(route, json=payload, headers=headers)
    assert r.status_code == status, r.text


async def test_the_caller_budget_applies_to_the_generation(
    rag_client: Any, rag_key: Any, rag_runtime: Any
) -> None:
    policy = rag_runtime.policy.path.read_text().replace(
        "  risk: {}", "  risk: {budgets: [{usd: 0.0001, per: day}]}"
    )
    rag_runtime.policy.path.write_text(policy)
    rag_runtime.reload_policy("system", "test")
    r = await rag_client.post(
        "/query",
        json={"question": ERASURE, "model": "priced"},
        headers=rag_key("analyst", team="risk"),
    )
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded", r.text
    failed = [e for e in _events(rag_runtime, "rag.query") if e.outcome == "failure"]
    assert failed and failed[0].details["error_code"] == "budget_exceeded"


async def test_an_upstream_answer_that_strays_from_the_passages_is_flagged(
    rag_client: Any, rag_key: Any, rag_runtime: Any, upstream: Any
) -> None:
    """A real OpenAI-compatible upstream on loopback (it echoes the prompt back): the
    sentences it adds are not in the passages and are flagged, in the answer and the
    ledger."""
    policy = (
        rag_runtime.policy.path.read_text()
        .replace(
            "models:\n",
            f"providers:\n  fake: {{kind: openai, base_url: '{upstream.base_url}/v1', "
            "max_retries: 0}\nmodels:\n  echo: {provider: fake, upstream_model: ok}\n",
            1,
        )
        .replace("analyst: {models: [local,", "analyst: {models: [echo, local,")
    )
    rag_runtime.policy.path.write_text(policy)
    assert rag_runtime.reload_policy("system", "test").error is None
    r = await rag_client.post(
        "/query", json={"question": ERASURE, "model": "echo"}, headers=rag_key("analyst")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"].startswith("echo:")
    unsupported = body["grounding"]["unsupported"]
    # the passage text it echoes is supported; the prompt's scaffolding is not
    assert unsupported and body["grounding"]["supported"]
    assert any(u["sentence"].startswith("Context:") for u in unsupported)
    assert body["grounding"]["score"] < 1.0
    event = next(e for e in _events(rag_runtime, "rag.query") if e.details["run"] == body["run_id"])
    assert "unsupported_sentences" in event.flags
    assert event.details["grounding"]["unsupported"]
    sent = upstream.requests[-1].body
    assert "[1]" in sent["messages"][-1]["content"]  # the numbered passages went upstream
