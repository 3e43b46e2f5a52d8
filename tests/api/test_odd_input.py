"""Odd input is never a 500, and what the privacy guard cannot read is never sent.

``POST /v1/chat/completions`` and ``/v1/embeddings`` (streamed or not, an upstream model
on the fake upstream or the in-process ``local`` one) answer a malformed body with a
400 whose code is stable (``invalid_json`` / ``invalid_request``) and whose ``param``
names the field; the upstream is not called, and the ledger gets exactly one event,
``refused``, and still verifies. Then hypothesis throws arbitrary JSON and mutated
valid requests at both routes. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bastion.audit import EventFilter
from bastion.testing import FakeUpstream

POLICY = """\
version: 1
providers:
  fake: {{kind: openai, base_url: "{base}/v1", timeout_s: 2, max_retries: 0,
          breaker_failures: 1000}}
models:
  ok: {{provider: fake, upstream_model: ok, context_window: 100000}}
  embed: {{provider: fake, upstream_model: ok, kind: embedding}}
  local: {{provider: local}}
  local-embed: {{provider: local, kind: embedding}}
roles:
  admin: {{models: ["*"]}}
defaults:
  limits: {{requests_per_minute: 1000000, tokens_per_minute: 100000000000}}
privacy:
  prompt: {{action: mask}}
audit: {{store_content: true}}
"""


@pytest.fixture
def settings(home: Path, database_url: str, upstream: FakeUpstream):  # type: ignore[no-untyped-def]
    from bastion.settings import Settings

    (home / "policy.yaml").write_text(POLICY.format(base=upstream.base_url.rstrip("/")))
    return Settings(home=home, database_url=database_url, policy_reload_interval_s=60)


@pytest.fixture
def http(app: Any) -> Iterator[TestClient]:
    # Sync, so hypothesis can drive it; entered, so every request runs on one event loop
    # and the lifespan closes the upstream connections at the end.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def llm_events(runtime: Any) -> list[Any]:
    page = runtime.audit.page(EventFilter(), limit=10_000, order="asc")
    return [e for e in page.events if e.action.startswith("llm.")]


def ledger_verifies(runtime: Any) -> bool:
    return bool(runtime.audit.verify({runtime.signer.key_id: runtime.signer.public}).ok)


def chat(content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "ok", "messages": [{"role": "user", "content": content}], **extra}


def raw(value: Any) -> bytes:
    return json.dumps(value).encode()  # ASCII: lone surrogates as \\ud800 escapes


DEEP_2000 = b'{"model":"ok","messages":[{"role":"user","content":"hi"}],"x":' + (
    b"[" * 2000 + b"]" * 2000 + b"}"
)
DEEP_100K = b'{"model":"ok","messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}"

# (body, code, param): every one a 400 before anything leaves Bastion.
CHAT_CASES = {
    "lone surrogate": (raw(chat("\ud800")), "invalid_json", None),
    "lone surrogate in a key": (b'{"model":"ok","messages":[],"\\udfff":1}', "invalid_json", None),
    "2,000 levels": (DEEP_2000, "invalid_json", None),
    "100,000 levels": (DEEP_100K, "invalid_json", None),
    "NUL in content": (raw(chat("jane\x00@example.com")), "invalid_json", None),
    "a number past a double": (
        b'{"model":"ok","messages":[{"role":"user","content":"x"}],"temperature":1e400}',
        "invalid_json",
        None,
    ),
    "tool_calls a string": (
        raw(
            {
                "model": "ok",
                "messages": [
                    {"role": "assistant", "content": "x", "tool_calls": "junk"},
                    {"role": "user", "content": "hi"},
                ],
            }
        ),
        "invalid_request",
        "messages[0].tool_calls",
    ),
    "tool_calls of numbers": (
        raw({"model": "ok", "messages": [{"role": "assistant", "tool_calls": [1]}]}),
        "invalid_request",
        "messages[0].tool_calls[0]",
    ),
    "tool call arguments an object": (
        raw(
            {
                "model": "ok",
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c1", "function": {"name": "f", "arguments": {"to": "jane"}}}
                        ],
                    }
                ],
            }
        ),
        "invalid_request",
        "messages[0].tool_calls[0].function.arguments",
    ),
    "junk content parts": (
        raw(chat([1, "x", {"type": "nope"}])),
        "invalid_request",
        "messages[0].content[0]",
    ),
    "a string part": (raw(chat(["jane@example.com"])), "invalid_request", "messages[0].content[0]"),
    "an unknown part type": (
        raw(chat([{"type": "nope", "text": "jane@example.com"}])),
        "invalid_request",
        "messages[0].content[0].type",
    ),
    "text that is an object": (
        raw(chat([{"type": "text", "text": {"email": "jane@example.com"}}])),
        "invalid_request",
        "messages[0].content[0].text",
    ),
    "text beside a text part": (
        raw(chat([{"type": "text", "text": "hi", "note": "jane@example.com"}])),
        "invalid_request",
        "messages[0].content[0].note",
    ),
    "text in an unknown message field": (
        raw({"model": "ok", "messages": [{"role": "user", "content": "hi", "memo": ["x"]}]}),
        "invalid_request",
        "messages[0].memo",
    ),
}


@pytest.mark.parametrize("case", list(CHAT_CASES))
def test_malformed_chat_is_a_400_recorded_once_and_never_sent(
    case: str, http: TestClient, key_for: Any, upstream: FakeUpstream, runtime: Any
) -> None:
    body, code, param = CHAT_CASES[case]
    headers = {"Authorization": f"Bearer {key_for('admin')}", "Content-Type": "application/json"}
    variants = [body]
    if body.startswith(b'{"model":"ok"') or body.startswith(b'{"model": "ok"'):
        local = body.replace(b'"ok"', b'"local"', 1)
        variants += [local, body[:-1] + b',"stream":true}', local[:-1] + b',"stream":true}']
    for sent in variants:
        before = len(llm_events(runtime))
        response = http.post("/v1/chat/completions", content=sent, headers=headers)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["param"] == param, error
        assert error["request_id"] == response.headers["x-request-id"]
        if param:
            assert param in error["message"]  # the message names the field too
        events = llm_events(runtime)[before:]
        assert [(e.action, e.outcome) for e in events] == [("llm.chat", "refused")]
        assert events[0].details["error_code"] == code
        assert events[0].request_id == response.headers["x-request-id"]
    assert upstream.requests == []  # nothing reached a provider
    assert ledger_verifies(runtime)


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b'{"model":"embed","input":"\\ud800"}', "invalid_json", None),
        (b'{"model":"embed","input":' + b"[" * 3000 + b"]" * 3000 + b"}", "invalid_json", None),
        (
            raw({"model": "embed", "input": [{"text": "jane@example.com"}]}),
            "invalid_request",
            "input",
        ),
        (raw({"model": "embed", "input": "a\x00b"}), "invalid_json", None),
        (raw({"model": "embed", "input": ["a", True]}), "invalid_request", "input"),  # found
        (raw({"model": "embed", "input": ["a", 1]}), "invalid_request", "input"),
        (raw({"model": "embed", "input": [2**40]}), "invalid_request", "input"),
    ],
)
@pytest.mark.parametrize("model", ["embed", "local-embed"])
def test_malformed_embeddings_are_a_400_recorded_once(
    body: bytes,
    code: str,
    param: str | None,
    model: str,
    http: TestClient,
    key_for: Any,
    upstream: FakeUpstream,
    runtime: Any,
) -> None:
    headers = {"Authorization": f"Bearer {key_for('admin')}", "Content-Type": "application/json"}
    response = http.post(
        "/v1/embeddings", content=body.replace(b'"embed"', f'"{model}"'.encode()), headers=headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == param
    assert [(e.action, e.outcome) for e in llm_events(runtime)] == [("llm.embeddings", "refused")]
    assert upstream.requests == []
    assert ledger_verifies(runtime)


def test_what_the_guard_reads_is_still_served_and_masked(
    http: TestClient, key_for: Any, upstream: FakeUpstream, runtime: Any
) -> None:
    """The refusals above are not a refusal of everything: text parts, images, tool
    calls and refusal parts go out, each text masked."""
    body = {
        "model": "ok",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Mail jane.doe@example.com", "cache_control": None},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "Not to jane.doe@example.com"}],
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "send", "arguments": '{"to": "jane.doe@example.com"}'},
                    }
                ],
                "refusal": None,
                "annotations": [],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
        ],
    }
    headers = {"Authorization": f"Bearer {key_for('admin')}"}
    response = http.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    [sent] = upstream.requests
    assert "jane.doe@example.com" not in json.dumps(sent.body)
    assert sent.body["messages"][2]["content"][0]["refusal"] == "Not to <EMAIL_1>"
    assert [e.outcome for e in llm_events(runtime)] == ["success"]


# --- hypothesis --------------------------------------------------------------------------

ODD_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\ud800", "\udfff", "a\x00b", "\x00", "jane@example.com", "", "\u2028"]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=16,
)
RAW_ODDITIES = st.sampled_from(
    [b"1e400", b"-1e400", b"NaN", b"Infinity", b"[" * 500 + b"]" * 500, b'"\\ud800"', b"{", b""]
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """A valid request with one node replaced, nested deeper, or deleted; sometimes a
    node replaced by raw text no JSON writer makes (``1e400``, ``NaN``, deep arrays)."""
    doc = json.loads(json.dumps(base))
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    how = draw(st.sampled_from(["replace", "nest", "delete", "raw"]))
    if how == "delete" and isinstance(parent, dict):
        del parent[key]
    elif how == "nest":
        parent[key] = draw(st.sampled_from([[parent[key]], {"x": parent[key]}]))
    elif how == "raw":
        marker = "\u0001RAW\u0001"
        parent[key] = marker
        return raw(doc).replace(json.dumps(marker).encode(), draw(RAW_ODDITIES))
    else:
        parent[key] = draw(JSON_VALUES)
    return raw(doc)


def valid_chat(model: str, stream: bool) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Mail jane@example.com"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
        "max_tokens": 16,
        "stream": stream,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }


VALID = {
    "/v1/chat/completions": st.builds(valid_chat, st.sampled_from(["ok", "local"]), st.booleans()),
    "/v1/embeddings": st.builds(
        lambda model, value: {"model": model, "input": value},
        st.sampled_from(["embed", "local-embed"]),
        st.sampled_from(["hello jane@example.com", ["a", "b"], [[1, 2, 3]]]),
    ),
}
#: Arbitrary JSON, mutated valid requests, and (so that success is reached too) valid ones.
BODIES = {
    route: st.one_of(JSON_VALUES.map(raw), valid.flatmap(mutated), valid.map(raw))
    for route, valid in VALID.items()
}


@pytest.mark.slow
@pytest.mark.parametrize("route", list(BODIES))
def test_arbitrary_bodies_are_never_a_server_error(
    route: str, http: TestClient, key_for: Any, upstream: FakeUpstream, runtime: Any
) -> None:
    headers = {"Authorization": f"Bearer {key_for('admin')}", "Content-Type": "application/json"}
    seen: dict[int, int] = {}

    @hypothesis.settings(
        max_examples=200,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=BODIES[route])
    def call(body: bytes) -> None:
        before, sent_before = len(llm_events(runtime)), len(upstream.requests)
        response = http.post(route, content=body, headers=headers)
        assert response.status_code < 500, (body[:300], response.text[:500])
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        events = llm_events(runtime)[before:]
        assert len(events) == 1, (body[:300], response.text[:300])  # one call, one event
        if response.status_code == 400:
            error = response.json()["error"]
            assert error["code"] and error["message"]
            if error["code"] in ("invalid_json", "invalid_request"):
                why = (body[:300], response.text[:300])
                assert events[0].outcome == "refused", why
                assert len(upstream.requests) == sent_before, why  # before any provider

    call()
    assert seen.get(400, 0) > 0 and seen.get(200, 0) > 0, seen  # both kinds were reached
    assert ledger_verifies(runtime)
