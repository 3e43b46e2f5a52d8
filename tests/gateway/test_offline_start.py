"""A new user's first hour, offline: the README's examples with the starter policy and the
demo's analyst key, through ``bastion serve`` on loopback and the official ``openai`` SDK,
with no ``OPENAI_API_KEY`` (so ``gpt-4.1-mini`` falls back to ``local``, and says so)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from .serving import BASTION, Server, serve_env

README = Path(__file__).resolve().parents[2] / "README.md"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BASTION, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("offline")
    env = {k: v for k, v in serve_env(home).items() if k != "OPENAI_API_KEY"}
    assert run(env, "db", "upgrade").returncode == 0
    seeded = run(env, "demo", "seed", "--no-models", "--no-documents")
    assert seeded.returncode == 0, seeded.stderr
    keys = dict(re.findall(r"demo key for (\w+) \(\w+\): (bst_\S+)", seeded.stdout))
    server = Server(home, env, home / "server.log")
    server.start()
    try:
        yield {"url": server.url, "keys": keys, "env": env, "log": home / "server.log"}
    finally:
        server.stop()


def client(offline: dict[str, Any], who: str = "ana") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=offline["url"] + "/v1", api_key=offline["keys"][who], max_retries=0
    )


def readme_blocks() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Govern LLM calls", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_examples_run_as_written_with_the_analysts_key(
    offline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 2, "the README's chat and embeddings/tools examples"
    code = "\n".join(blocks)
    code = code.replace("http://127.0.0.1:8000/v1", offline["url"] + "/v1")
    code = code.replace('api_key="bst_..."', f'api_key="{offline["keys"]["ana"]}"')
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        if isinstance(namespace.get("client"), openai.OpenAI):
            namespace["client"].close()
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("local ") and "Bastion records every call" in printed[0]
    assert printed[1] == "2 256"  # embeddings: ana's role may use local-embed
    assert printed[2] == 'get_weather {"city": "Paris"}'
    assert printed[3] == "Paris: 18 C and light rain."


def test_start_up_and_status_say_that_gpt_falls_back_to_local(offline: dict[str, Any]) -> None:
    log = offline["log"].read_text(encoding="utf-8")
    assert "gpt-4.1-mini is answered by local: OPENAI_API_KEY is not set" in log
    status = run(offline["env"], "status", "--format", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    models = {m["name"]: m for m in report["models"]}
    assert models["gpt-4.1-mini"]["state"] == "fallback"
    assert models["gpt-4.1-mini"]["answered_by"] == "local"
    assert models["local"]["state"] == "ready"
    providers = {p["name"]: p for p in report["providers"]}
    assert providers["openai"]["state"] == "missing_key"
    assert report["database"]["schema"] == "current"
    assert report["counters"]["backend"] == "in-process"
    assert report["api_keys"]["active"] == 4  # the demo's ana, ada, gus and ida
    assert report["policy"]["valid"] is True
    text = run(offline["env"], "status")
    assert text.returncode == 0 and "local (fallback)" in text.stdout
    # And the call itself: asked for gpt-4.1-mini, answered by local.
    with client(offline) as sdk:
        answer = sdk.chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "Say hello."}]
        )
    assert answer.model == "local"


def test_a_tool_call_and_its_result_over_two_turns_streamed(offline: dict[str, Any]) -> None:
    with client(offline) as sdk:
        two_turns(sdk)


def two_turns(sdk: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": 'What is the weather in "Oslo" right now?'}]
    stream = sdk.chat.completions.create(
        model="local",
        messages=messages,
        tools=[WEATHER],
        stream=True,
    )
    call_id, name, arguments, finish = "", "", "", None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            call_id = delta.id or call_id
            name = (delta.function.name if delta.function else None) or name
            arguments += (delta.function.arguments if delta.function else None) or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "tool_calls"
    assert name == "get_weather" and json.loads(arguments) == {"city": "Oslo"}
    whole = sdk.chat.completions.create(model="local", messages=messages, tools=[WEATHER])
    assert whole.choices[0].message.tool_calls is not None
    assert whole.choices[0].message.tool_calls[0].id == call_id  # deterministic
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "Oslo: -3 C, clear sky."},
    ]
    second = sdk.chat.completions.create(
        model="local",
        messages=messages,
        tools=[WEATHER],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in second if c.choices)
    assert text == "Oslo: -3 C, clear sky."
    # A question that asks for no tool is answered in text, tools or not.
    plain = sdk.chat.completions.create(
        model="local",
        messages=[
            {
                "role": "user",
                "content": "Context: Keys expire after 90 days.\nQuestion: When do keys expire?",
            }
        ],
        tools=[WEATHER],
    )
    assert plain.choices[0].finish_reason == "stop"
    assert plain.choices[0].message.content == "Keys expire after 90 days."
