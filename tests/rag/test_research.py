"""POST /research: the bounded loop, tool allow-lists and limits, budgets, the
ledger trail of every tool call, the risk check."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.agent.risk import classify

pytestmark = pytest.mark.anyio


def _events(runtime: Any, run_id: str) -> list[Any]:
    from bastion.audit.repository import EventFilter

    events = runtime.audit.page(EventFilter(), limit=500, order="asc").events
    return [
        e
        for e in events
        if e.details.get("run") == run_id or e.details.get("links", {}).get("run") == run_id
    ]


async def test_a_run_finds_cited_findings_and_records_every_tool_call(
    rag_client: Any, rag_key: Any, rag_runtime: Any
) -> None:
    topic = {"topic": "emotion recognition in the workplace"}
    headers = rag_key("analyst")
    r = await rag_client.post("/research", json=topic, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["tool"] for s in body["audit_trace"]] == ["risk_check", "search", "read", "summarize"]
    assert all(s["outcome"] == "success" for s in body["audit_trace"])
    assert body["stopped"] == "done"
    assert body["risk"]["ai_act_category"] == "prohibited"
    assert body["findings"] and all(f["sources"] for f in body["findings"])
    numbers = {s["n"] for s in body["sources"]}
    assert all(set(f["sources"]) <= numbers for f in body["findings"])
    assert any(f["supported"] for f in body["findings"])
    assert any("emotion" in f["claim"] for f in body["findings"])
    events = _events(rag_runtime, body["run_id"])
    actions = [e.action for e in events]
    assert actions.count("tool.search") == 1 and actions.count("tool.summarize") == 1
    assert actions.count("llm.chat") == 1 and actions.count("agent.research") == 1
    tool = next(e for e in events if e.action == "tool.search")
    assert tool.details["links"]["args"].startswith("sha256:")
    assert tool.details["links"]["result"].startswith("sha256:")
    assert tool.resource == "tool:search" and tool.details["latency_ms"] >= 0
    closing = next(e for e in events if e.action == "agent.research")
    assert closing.details["steps"] == 4 and closing.details["prompt"]["name"] == "research"
    # the same topic, the same findings
    again = (await rag_client.post("/research", json=topic, headers=headers)).json()
    assert again["findings"] == body["findings"]


async def test_a_tool_the_role_may_not_use_is_refused_and_recorded(
    rag_client: Any, rag_key: Any, rag_runtime: Any
) -> None:
    r = await rag_client.post(
        "/research", json={"topic": "right to erasure"}, headers=rag_key("intern")
    )
    assert r.status_code == 200, r.text
    trace = {s["tool"]: s for s in r.json()["audit_trace"]}
    assert trace["search"]["outcome"] == "success"
    assert trace["summarize"]["outcome"] == "refused"
    assert trace["summarize"]["error_code"] == "tool_not_allowed"
    events = _events(rag_runtime, r.json()["run_id"])
    refused = [e for e in events if e.action == "tool.summarize"]
    assert len(refused) == 1 and refused[0].outcome == "refused"
    assert refused[0].details["error_code"] == "tool_not_allowed"
    assert not [e for e in events if e.action == "llm.chat"]  # no generation happened
    closing = next(e for e in events if e.action == "agent.research")
    assert "tool_refused" in closing.flags


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([{"tool": "search", "args": {"top_k": 50}}], "tool_argument_refused"),
        ([{"tool": "read", "args": {"ref": "x", "max_chars": 10**6}}], "tool_argument_refused"),
        ([{"tool": "search", "args": {"query": 7}}], "tool_argument_refused"),
        (["regulations_search"], "tool_not_allowed"),  # registered for admins only
        (["shell"], "tool_not_allowed"),  # not registered at all
    ],
)
async def test_arguments_over_the_limits_and_unknown_tools_are_refused(
    rag_client: Any, rag_key: Any, steps: list[Any], code: str
) -> None:
    r = await rag_client.post(
        "/research", json={"topic": "fines", "steps": steps}, headers=rag_key("analyst")
    )
    assert r.status_code == 200, r.text
    (step,) = r.json()["audit_trace"]
    assert step["outcome"] == "refused" and step["error_code"] == code


async def test_a_tool_the_policy_registers_runs_for_its_roles(
    rag_client: Any, rag_key: Any
) -> None:
    r = await rag_client.post(
        "/research",
        json={"topic": "personal data breach notification", "steps": ["regulations_search"]},
        headers=rag_key("admin"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["audit_trace"][0]["outcome"] == "success"
    assert {s["collection"] for s in r.json()["sources"]} == {"regulations"}


async def test_the_run_stops_at_max_steps_and_at_its_budget(rag_client: Any, rag_key: Any) -> None:
    headers = rag_key("analyst")
    r = await rag_client.post("/research", json={"topic": "fines", "max_steps": 2}, headers=headers)
    assert r.json()["stopped"] == "max_steps" and len(r.json()["audit_trace"]) == 2
    r = await rag_client.post(
        "/research",
        json={
            "topic": "administrative fines",
            "model": "priced",
            "budget_usd": 0.000001,
            "steps": ["search", "summarize", "summarize", "search"],
        },
        headers=headers,
    )
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["stopped"] == "budget" and len(body["audit_trace"]) == 2
    assert body["cost_usd"] > 0.000001


@pytest.mark.parametrize(
    ("topic", "category"),
    [
        ("a social scoring system for citizens", "prohibited"),
        ("real-time remote biometric identification in public spaces", "prohibited"),
        ("CV screening to recruit engineers", "high"),
        ("credit scoring of loan applicants", "high"),
        ("a customer service chatbot", "limited"),
        ("spam filtering for e-mail", "minimal"),
    ],
)
def test_topics_are_classified_against_the_ai_act(topic: str, category: str) -> None:
    assert classify(topic)[0] == category


async def test_risk_check_reports_personal_data_and_deny_listed_terms_without_values(
    rag_client: Any, rag_key: Any, rag_runtime: Any
) -> None:
    r = await rag_client.post(
        "/research",
        json={"topic": "Project Falcon: mail jane.doe@example.com", "steps": ["risk_check"]},
        headers=rag_key("analyst"),
    )
    risk = r.json()["risk"]
    assert risk["personal_data"] == {"EMAIL_ADDRESS": 1}
    assert risk["denylist"] == ["falcon"]
    events = _events(rag_runtime, r.json()["run_id"])
    assert "jane.doe@example.com" not in str([e.details for e in events])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"topic": ""}, "topic"),
        ({"topic": "x", "max_steps": 0}, "max_steps"),
        ({"topic": "x", "budget_usd": -1}, "budget_usd"),
        ({"topic": "x", "steps": "search"}, "steps"),
        ({"topic": "x", "steps": [{"tool": "search", "args": "no"}]}, "steps"),
    ],
)
async def test_malformed_research_bodies_name_the_field(
    rag_client: Any, rag_key: Any, body: dict[str, Any], param: str
) -> None:
    r = await rag_client.post("/research", json=body, headers=rag_key("analyst"))
    assert r.status_code == 422, r.text
    assert param in r.json()["error"]["param"]


async def test_with_a_real_model_the_model_chooses_the_tools_until_the_bound(
    rag_client: Any, rag_key: Any, rag_runtime: Any, upstream: Any
) -> None:
    """An OpenAI-compatible upstream on loopback that always calls the first tool it is
    offered: every call is executed, recorded and bounded by max_steps."""
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
        "/research",
        json={"topic": "right to erasure", "model": "echo", "max_steps": 3},
        headers=rag_key("analyst"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stopped"] == "max_steps" and len(body["audit_trace"]) == 3
    assert {s["tool"] for s in body["audit_trace"]} == {"search"}
    offered = [t["function"]["name"] for t in upstream.requests[0].body["tools"]]
    assert "summarize" not in offered and "regulations_search" not in offered
    events = _events(rag_runtime, body["run_id"])
    assert sum(e.action == "llm.chat" for e in events) == 3
    assert sum(e.action == "tool.search" for e in events) == 3


async def test_the_callers_own_budget_stops_the_run(
    rag_client: Any, rag_key: Any, rag_runtime: Any
) -> None:
    policy = rag_runtime.policy.path.read_text().replace(
        "  risk: {}", "  risk: {budgets: [{usd: 0.0001, per: day}]}"
    )
    rag_runtime.policy.path.write_text(policy)
    assert rag_runtime.reload_policy("system", "test").error is None
    r = await rag_client.post(
        "/research",
        json={
            "topic": "administrative fines",
            "model": "priced",
            "steps": ["search", "summarize", "search"],
        },
        headers=rag_key("analyst", team="risk"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stopped"] == "caller_budget" and len(body["audit_trace"]) == 2
    assert body["audit_trace"][1]["error_code"] == "budget_exceeded"
    chats = [e for e in _events(rag_runtime, body["run_id"]) if e.action == "llm.chat"]
    assert len(chats) == 1 and chats[0].outcome == "refused"
