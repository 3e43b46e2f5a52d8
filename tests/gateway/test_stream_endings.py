"""Every successful stream ends with exactly one ``data: [DONE]`` (issue #23, item 3).

Whatever the upstream's event stream looks like — CRLF or CR line ends, keep-alive
comments, JSON over several ``data:`` lines, ``[DONE]`` twice or never, no finish
reason, its bytes cut anywhere — the client gets the same answer as from a plain
stream, and one ``[DONE]`` after it. A stream with neither a finish reason nor
``[DONE]`` may have been cut anywhere: it ends with an error event and no ``[DONE]``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from bastion.gateway.upstream import SSELines
from bastion.testing.quirks import QUIRKS

from .policy import write_policy

pytestmark = pytest.mark.anyio

EOLS = ("", "crlf", "cr")
FLAGS = ("keepalive", "tight", "multiline", "double-done", "no-finish", "no-done")
assert set(QUIRKS) == {"crlf", "cr"} | set(FLAGS) - {"no-done"}


def upstream_name(eol: str, flags: frozenset[str], split: bool) -> str:
    parts = [eol, *sorted(flags), "split:7" if split else ""]
    return "+".join(p for p in parts if p) or "ok"


#: Every combination, as the policy's model q/<upstream name>.
COMBOS = [
    upstream_name(eol, frozenset(flags), split)
    for eol in EOLS
    for n in range(len(FLAGS) + 1)
    for flags in itertools.combinations(FLAGS, n)
    for split in (False, True)
]


def model_for(name: str) -> str:
    return "q/" + name


@pytest.fixture
def response_action() -> str:
    return "flag"


@pytest.fixture
def settings(home: Path, database_url: str, upstream, response_action: str):  # type: ignore[no-untyped-def]
    from bastion.settings import Settings

    path = write_policy(home / "policy.yaml", upstream.base_url, response_action=response_action)
    extra = "".join(
        f'  {model_for(name)}: {{provider: fake, upstream_model: "{name}"}}\n' for name in COMBOS
    )
    path.write_text(path.read_text().replace("models:\n", "models:\n" + extra, 1))
    return Settings(home=home, database_url=database_url, policy_reload_interval_s=60)


@dataclass
class Seen:
    status: int
    text: str
    done: int  # data: [DONE] events
    last: str  # the last event's data
    error: str | None


@pytest.fixture
async def raw(app, key_for) -> AsyncIterator[Callable[..., Any]]:  # type: ignore[no-untyped-def]
    """``await raw(model, prompt)`` -> what a client reading the SSE bytes itself sees."""
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://bastion.test",
        headers={"Authorization": f"Bearer {key_for('admin')}"},
        timeout=30,
    )

    async def call(model: str, prompt: str) -> Seen:
        response = await http.post(
            "/v1/chat/completions",
            json={
                "model": model,
                "stream": True,
                "messages": [{"role": "user", "content": prompt}],
            },
        )
        datas = [
            line[len("data: ") :] for line in response.text.split("\n") if line.startswith("data: ")
        ]
        text, error = "", None
        for data in datas:
            if data == "[DONE]":
                continue
            event = json.loads(data)
            if "error" in event:
                error = event["error"]["code"]
            for choice in event.get("choices") or []:
                text += choice["delta"].get("content") or ""
        return Seen(response.status_code, text, datas.count("[DONE]"), datas[-1], error)

    yield call
    await http.aclose()
    await app.state.gateway.aclose()


PROMPTS = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(lambda s: s.strip())


@examples(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    eol=st.sampled_from(EOLS),
    flags=st.frozensets(st.sampled_from(FLAGS)),
    prompt=PROMPTS,
    email=st.booleans(),
)
async def test_any_upstream_stream_reaches_the_client_ending_in_one_done(
    raw: Callable[..., Any], eol: str, flags: frozenset[str], prompt: str, email: bool
) -> None:
    if email:  # masked on the way out, restored on the way back, across the cuts
        prompt = f"{prompt} write to jane.doe@example.com"
    plain = await raw("ok", prompt)
    assert plain.status == 200 and plain.done == 1 and plain.last == "[DONE]"

    seen = await raw(model_for(upstream_name(eol, flags, split=True)), prompt)
    assert seen.status == 200
    if {"no-done", "no-finish"} <= flags:
        # Nothing says this stream was whole: the client is told, and gets no [DONE].
        assert seen.done == 0
        assert seen.error == "upstream_malformed_response"
        return
    assert seen.error is None
    assert seen.text == plain.text
    assert seen.done == 1
    assert seen.last == "[DONE]"


@pytest.mark.parametrize("response_action", ["flag", "redact"])
@pytest.mark.parametrize(
    "name",
    [
        "crlf+keepalive",
        "cr+multiline+tight",
        "double-done",
        "no-finish",
        "no-done",
        "crlf+double-done+no-finish+split:7",
    ],
)
async def test_the_sdk_reads_the_same_answer_through_any_stream(  # type: ignore[no-untyped-def]
    app, key_for, runtime, name: str, response_action: str
) -> None:
    from bastion.audit import EventFilter

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=30)
    client = openai.AsyncOpenAI(
        base_url="http://bastion.test/v1",
        api_key=key_for("admin"),
        http_client=http,
        max_retries=0,
    )
    messages: Any = [{"role": "user", "content": "Mail jane.doe@example.com: the plan"}]
    texts, finishes = [], []
    for model in ("ok", model_for(name)):
        stream = await client.chat.completions.create(model=model, messages=messages, stream=True)
        text, finish = "", None
        async for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        texts.append(text)
        finishes.append(finish)
    await http.aclose()
    await app.state.gateway.aclose()

    assert "jane.doe@example.com" in texts[0]
    assert texts[1] == texts[0]
    assert finishes == ["stop", "stop"]
    [*_, event] = runtime.audit.page(EventFilter(action="llm.chat"), limit=10, order="asc").events
    assert event.outcome == "success"
    if "no-finish" in name:
        assert "upstream_missing_finish" in event.flags
    if name == "no-done":
        assert "upstream_missing_done" in event.flags


@examples(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(st.characters(exclude_characters="\r\n"), max_size=12), max_size=8),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    final_eol=st.booleans(),
)
def test_lines_are_the_same_however_the_bytes_are_cut(
    lines: list[str], eol: str, cuts: list[int], final_eol: bool
) -> None:
    data = eol.join(lines).encode() + (eol.encode() if final_eol and lines else b"")
    points = sorted({c % (len(data) + 1) for c in cuts})
    decoder, got = SSELines(), []
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        got += decoder.feed(data[a:b])
    got += decoder.end()
    expected = list(lines)
    if lines and not final_eol and expected[-1] == "":
        expected.pop()  # an empty last line without its ending is no line at all
    assert got == expected
