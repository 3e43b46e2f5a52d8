"""The official ``openai`` SDK, sync and async, against ``bastion serve`` on loopback in
front of the fake upstream, also on loopback: what an application developer does."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .policy import write_policy
from .serving import Server, admin_key, serve_env

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, fake_upstream) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("served")
    write_policy(home / "policy.yaml", fake_upstream.base_url, store_content=True)
    env = serve_env(home)
    key = admin_key(env)
    server = Server(home, env, home / "server.log")
    server.start()
    try:
        yield {"url": server.url, "key": key, "home": home, "server": server}
    finally:
        server.stop()


def test_sync_sdk_chat_stream_tools_embeddings_models(served, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=served["url"] + "/v1", api_key=served["key"], max_retries=0)
    answer = client.chat.completions.create(
        model="ok",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": f"Reach {EMAIL}"}]},
        ],
    )
    assert EMAIL in (answer.choices[0].message.content or "")
    assert answer.usage is not None and answer.usage.total_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="ok",
            messages=[{"role": "user", "content": f"Call {PHONE}"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert PHONE in text
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}},
                    "required": ["q"],
                },
            },
        }
    ]
    called = client.chat.completions.create(
        model="ok",
        messages=[{"role": "user", "content": "look it up"}],
        tools=tools,
        tool_choice="required",  # type: ignore[arg-type]
    )
    assert called.choices[0].finish_reason == "tool_calls"
    follow = client.chat.completions.create(
        model="ok",
        messages=[
            {"role": "user", "content": "look it up"},
            called.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {
                "role": "tool",
                "tool_call_id": called.choices[0].message.tool_calls[0].id,  # type: ignore[index]
                "content": "found",
            },
        ],
    )
    assert follow.choices[0].message.content
    vectors = client.embeddings.create(model="embed", input=["a", "b", "c"])
    assert [d.index for d in vectors.data] == [0, 1, 2]
    assert "ok" in {m.id for m in client.models.list()}
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="busy", messages=[{"role": "user", "content": "x"}])


def test_async_sdk_streams_concurrently(served) -> None:  # type: ignore[no-untyped-def]
    async def main() -> list[str]:
        client = openai.AsyncOpenAI(
            base_url=served["url"] + "/v1", api_key=served["key"], max_retries=0
        )

        async def one(i: int) -> str:
            stream = await client.chat.completions.create(
                model="ok", messages=[{"role": "user", "content": f"number {i}"}], stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        try:
            return await asyncio.gather(*(one(i) for i in range(20)))
        finally:
            await client.close()

    texts = asyncio.run(main())
    assert all(f"number {i}" in t for i, t in enumerate(texts))


def test_a_client_that_leaves_mid_stream_is_billed_for_what_was_generated(served) -> None:  # type: ignore[no-untyped-def]
    home = served["home"]
    # The stall model sends three chunks, then nothing: read them, then hang up.
    with httpx.stream(
        "POST",
        served["url"] + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {served['key']}"},
        json={
            "model": "stall",
            "stream": True,
            "messages": [{"role": "user", "content": "one two three four"}],
        },
        timeout=10,
    ) as response:
        for n, _line in enumerate(response.iter_lines()):
            if n >= 2:
                break
    deadline = time.monotonic() + 10
    while True:
        row = _last_event(home, "llm.chat")
        if row is not None and row["details"].get("error_code") in (
            "client_disconnected",
            "upstream_stalled",
        ):
            break
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
    assert row["details"]["tokens"]["completion"] > 0


def _last_event(home: Path, action: str) -> dict[str, Any] | None:
    with sqlite3.connect(home / "bastion.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT * FROM audit_events WHERE action = ? ORDER BY id DESC LIMIT 1", (action,)
        ).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["details"] = (
        json.loads(out["details"]) if isinstance(out["details"], str) else out["details"]
    )
    return out


def test_personal_data_appears_in_no_log_table_or_metric(served, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    """Known personal data through every gateway endpoint; then search everything."""
    url, key, home = served["url"], served["key"], served["home"]
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    secrets = [EMAIL, PHONE, CARD, "Jane Doe"]
    prompt = f"My name is Jane Doe, mail {EMAIL}, phone {PHONE}, card {CARD}."
    client.chat.completions.create(model="ok", messages=[{"role": "user", "content": prompt}])
    list(
        client.chat.completions.create(
            model="ok", stream=True, messages=[{"role": "user", "content": prompt}]
        )
    )
    client.chat.completions.create(model="local", messages=[{"role": "user", "content": prompt}])
    client.embeddings.create(model="embed", input=prompt)
    client.embeddings.create(model="local-embed", input=[prompt])
    with pytest.raises(openai.APIError):
        client.chat.completions.create(
            model="down", messages=[{"role": "user", "content": prompt}], max_tokens=10**9
        )
    # What left for the upstream was masked.
    for request in fake_upstream.requests:
        for secret in secrets:
            assert secret not in json.dumps(request.body), (secret, request.path)
    metrics = httpx.get(url + "/metrics").text
    served["server"].stop()  # flush the log and the database
    try:
        log = (home / "server.log").read_text()
        paths = {json.loads(line).get("path") for line in log.splitlines() if line.startswith("{")}
        assert {"/v1/chat/completions", "/v1/embeddings"} <= paths  # the calls were logged
        with sqlite3.connect(home / "bastion.db") as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            dump = "\n".join(str(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"'))
        for secret in secrets:
            digits = "".join(ch for ch in secret if ch.isdigit())
            for haystack, where in ((log, "log"), (metrics, "metrics"), (dump, "database")):
                assert secret not in haystack, (secret, where)
                if len(digits) >= 8:
                    assert digits not in haystack.replace(" ", ""), (secret, where)
    finally:
        served["server"].start()


def test_the_readme_example_runs_as_written(served, capsys) -> None:  # type: ignore[no-untyped-def]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Govern LLM calls", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("http://127.0.0.1:8000/v1", served["url"] + "/v1")
    code = code.replace('api_key="bst_..."', f'api_key="{served["key"]}"')
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("local ")
    assert "Bastion records every call" in printed
