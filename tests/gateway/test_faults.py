"""Faults through one provider, as an application sees them through the official SDK.

Two tests a user would recognise:

- thirteen fault scenarios at once through one provider (one base URL), each on its own
  model, beside a healthy model and a healthy fallback on the same provider: the healthy
  model is served throughout, each scenario ends as the gateway docs say, the breakers
  of the faulty deployments open and no other, and ``GET /api/gateway/health``,
  ``bastion gateway health`` and ``/metrics`` say so;
- the upstream process killed while calls are in flight: the breaker opens after
  exactly ``breaker_failures`` failed calls, however many attempts those made.

Times are scaled down: a first token after 2 s against a 1 s first-token timeout stands
for 20 s against 10 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .serving import BASTION, Server, admin_key, serve_env

pytestmark = pytest.mark.anyio

FAULTS = """\
version: 1
providers:
  up:
    kind: openai
    base_url: "{base}/v1"
    timeout_s: 1
    connect_timeout_s: 1
    first_token_timeout_s: 1
    stall_timeout_s: 0.5
    max_retries: 1
    breaker_failures: 2
    breaker_reset_s: 2
models:
  healthy: {{provider: up, upstream_model: gpt-healthy}}
  backup: {{provider: up, upstream_model: gpt-backup}}
  s-429: {{provider: up, upstream_model: "429-retry-after:1", fallbacks: [backup]}}
  s-500-once: {{provider: up, upstream_model: 500-once, fallbacks: [backup]}}
  s-503: {{provider: up, upstream_model: "503", fallbacks: [backup]}}
  s-reset: {{provider: up, upstream_model: reset, fallbacks: [backup]}}
  s-context: {{provider: up, upstream_model: context-length, fallbacks: [backup]}}
  s-policy: {{provider: up, upstream_model: content-policy, fallbacks: [backup]}}
  s-cut: {{provider: up, upstream_model: "cut:3", fallbacks: [backup]}}
  s-stall: {{provider: up, upstream_model: "stall:3", fallbacks: [backup]}}
  s-malformed: {{provider: up, upstream_model: malformed, fallbacks: [backup]}}
  s-no-done: {{provider: up, upstream_model: no-done, fallbacks: [backup]}}
  s-slow-first: {{provider: up, upstream_model: "first-token-delay:2000", fallbacks: [backup]}}
  s-flap: {{provider: up, upstream_model: "flap:5", fallbacks: [backup]}}
  s-hang: {{provider: up, upstream_model: hang, fallbacks: [backup]}}
roles:
  admin: {{models: ["*"]}}
  analyst: {{models: ["*"]}}
  guest: {{models: [healthy]}}
defaults:
  limits: {{requests_per_minute: 100000, tokens_per_minute: 100000000}}
"""

#: The upstream models whose deployments must open (each failed both its calls), with
#: the kind of failure counted; every other deployment must stay closed.
OPENS = {
    "503": "server_error",
    "reset": "connect",
    "hang": "timeout",
    "cut:3": "connect",
    "stall:3": "stall",
    "malformed": "malformed",
    "first-token-delay:2000": "first_token_timeout",
    "flap:5": "server_error",
}
STAYS_CLOSED = {
    "gpt-healthy",
    "gpt-backup",
    "429-retry-after:1",
    "500-once",
    "context-length",
    "content-policy",
    "no-done",
}


def hello(text: str = "Say hello in five words please") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def ask(client: openai.AsyncOpenAI, model: str, *, stream: bool = False) -> tuple[str, str]:
    """(the model that served, the answer's text); raises what the SDK raises."""
    if not stream:
        answer = await client.chat.completions.create(model=model, messages=hello())
        return answer.model, answer.choices[0].message.content or ""
    chunks = await client.chat.completions.create(model=model, messages=hello(), stream=True)
    served, text = "", ""
    async for chunk in chunks:
        served = served or chunk.model
        text += "".join(c.delta.content or "" for c in chunk.choices)
    return served, text


async def outcome(client: openai.AsyncOpenAI, model: str, *, stream: bool = False) -> str:
    """What the caller got, as one word: ``served:<model>`` or ``error:<status>:<code>``."""
    try:
        served, text = await ask(client, model, stream=stream)
    except openai.APIStatusError as exc:
        return f"error:{exc.status_code}:{exc.code}"
    except openai.APIError as exc:  # an error event that ended a stream
        return f"error:stream:{exc.code}"
    assert text, f"{model} answered nothing"
    return f"served:{served}"


# --- thirteen faults at once ----------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, upstream) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    (home / "policy.yaml").write_text(FAULTS.format(base=upstream.base_url), encoding="utf-8")
    env = serve_env(home, BASTION_GATEWAY_MAX_RETRY_WAIT_S="2", BASTION_LOG_LEVEL="WARNING")
    key = admin_key(env)
    server = Server(home, env, home / "server.log")
    server.start()
    try:
        yield {"url": server.url, "key": key, "env": env}
    finally:
        server.stop()


async def health(url: str, key: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get("/api/gateway/health", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return {d["upstream_model"]: d for d in response.json()["deployments"]}


@pytest.mark.slow  # a server, and upstream timeouts waited out (about 20 s)
async def test_thirteen_faults_at_once_leave_the_healthy_model_and_the_fallback_served(
    served: dict[str, Any], upstream
) -> None:  # type: ignore[no-untyped-def]
    client = openai.AsyncOpenAI(
        base_url=served["url"] + "/v1", api_key=served["key"], max_retries=0, timeout=30
    )
    faults_done = asyncio.Event()
    healthy: list[str] = []

    async def healthy_throughout() -> None:
        n = 0
        while not faults_done.is_set():
            healthy.append(await outcome(client, "healthy", stream=n % 2 == 1))
            n += 1
            await asyncio.sleep(0.05)

    async def twice(model: str, *, stream: bool = False) -> list[str]:
        return [await outcome(client, model, stream=stream) for _ in range(2)]

    async def down_then_skipped() -> list[str]:
        # A third call right after the breaker opened goes straight to the fallback.
        return [*(await twice("s-503")), await outcome(client, "s-503")]

    scenarios: dict[str, Any] = {
        "s-429": twice("s-429"),
        "s-500-once": twice("s-500-once"),
        "s-503": down_then_skipped(),
        "s-reset": twice("s-reset"),
        "s-context": twice("s-context"),
        "s-policy": twice("s-policy"),
        "s-cut": twice("s-cut", stream=True),
        "s-stall": twice("s-stall", stream=True),
        "s-malformed": twice("s-malformed", stream=True),
        "s-no-done": twice("s-no-done", stream=True),
        "s-slow-first": twice("s-slow-first", stream=True),
        "s-flap": twice("s-flap"),
        "s-hang": twice("s-hang"),
    }
    assert len(scenarios) == 13
    background = asyncio.ensure_future(healthy_throughout())
    try:
        results = dict(zip(scenarios, await asyncio.gather(*scenarios.values()), strict=True))
    finally:
        faults_done.set()
        await background

    # Each scenario ends as docs/gateway.md says, on both of its calls.
    backup = "served:backup"
    expected = {
        "s-429": [backup] * 2,  # retried after Retry-After, then the fallback
        "s-500-once": ["served:s-500-once"] * 2,  # the retry answers
        "s-503": [backup] * 3,
        "s-reset": [backup] * 2,
        "s-context": [backup] * 2,  # not retried: routed to the fallback
        "s-policy": ["error:400:content_policy_violation"] * 2,  # never routed around
        "s-cut": ["error:stream:upstream_unavailable"] * 2,  # an explicit error event
        "s-stall": ["error:stream:upstream_stalled"] * 2,
        "s-malformed": ["error:stream:upstream_malformed_response"] * 2,
        "s-no-done": ["served:s-no-done"] * 2,  # finished, so complete
        "s-slow-first": [backup] * 2,  # nothing sent before the fallback answered
        "s-flap": [backup] * 2,
        "s-hang": [backup] * 2,
    }
    assert results == expected
    assert upstream.count("503") == 4  # 2 calls x 2 attempts; the third was not sent
    # The healthy model was served all along, by itself.
    assert len(healthy) >= 5
    assert set(healthy) == {"served:healthy"}

    # The faulty deployments opened, each after its two failed calls; no other did.
    states = await health(served["url"], served["key"])
    for model, kind in OPENS.items():
        row = states[model]
        assert row["state"] in ("open", "half_open"), (model, row)
        assert (row["failures"], row["last_failure"]) == (2, kind), (model, row)
    for model in STAYS_CLOSED:
        assert (states[model]["state"], states[model]["failures"]) == ("closed", 0), model
    assert states["503"]["models"] == ["s-503"]

    # The flapping upstream has recovered: it is served by itself again once its
    # breaker lets a probe through (within one cool-down).
    flap: list[str] = []
    while not flap or flap[-1] != "served:s-flap":
        assert len(flap) < 40, flap
        flap.append(await outcome(client, "s-flap"))
        await asyncio.sleep(0.25)
    assert set(flap) <= {"served:s-flap", backup}
    assert (await health(served["url"], served["key"]))["flap:5"]["state"] == "closed"

    # Right after the last fault, healthy calls succeed.
    assert await outcome(client, "healthy") == "served:healthy"
    assert await outcome(client, "backup", stream=True) == "served:backup"
    await client.close()

    await _the_states_are_visible(served, await health(served["url"], served["key"]))


def bastion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BASTION, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def _the_states_are_visible(served: dict[str, Any], states: dict[str, Any]) -> None:
    """The same states from the CLI (JSON and table) and as Prometheus gauges."""
    env = {**served["env"], "BASTION_URL": served["url"], "BASTION_API_KEY": served["key"]}
    done = await asyncio.to_thread(bastion, env, "gateway", "health", "--format", "json")
    assert done.returncode == 0, done.stderr
    shown = {d["upstream_model"]: d for d in json.loads(done.stdout)["deployments"]}
    assert shown.keys() == states.keys()
    # With no calls, a closed breaker stays closed and an open one never closes (it
    # may turn half-open meanwhile).
    assert {m for m, d in shown.items() if d["state"] == "closed"} == STAYS_CLOSED | {"flap:5"}
    assert [p["provider"] for p in json.loads(done.stdout)["providers"]] == ["up"]

    table = await asyncio.to_thread(
        bastion, {**env, "COLUMNS": "80"}, "gateway", "health", "--fail-on-open"
    )
    assert table.returncode == 1, table.stderr  # breakers are open
    assert "first-token-delay:2000" in table.stdout and "gpt-healthy" in table.stdout
    assert "next probe" in table.stdout
    # at 80 columns the key columns (deployment, state, models) stay whole
    assert max(len(line.rstrip()) for line in table.stdout.splitlines()) <= 80

    async with httpx.AsyncClient(base_url=served["url"], timeout=10) as http:
        metrics = (
            await http.get("/metrics", headers={"Authorization": f"Bearer {served['key']}"})
        ).text
    assert (
        'bastion_llm_deployment_state{deployment="gpt-healthy",provider="up",state="closed"} 1.0'
        in metrics
    )
    assert 'bastion_llm_deployment_failures{deployment="503",provider="up"} 2.0' in metrics
    assert 'bastion_llm_provider_state{provider="up",state="closed"} 1.0' in metrics


# --- the upstream killed while calls are in flight ----------------------------------------------

KILLED = """\
version: 1
providers:
  up:
    kind: openai
    base_url: "{base}/v1"
    timeout_s: 20
    max_retries: 2
    breaker_failures: {failures}
    breaker_reset_s: 60
models:
  m: {{provider: up, upstream_model: "delay:5000"}}
  a: {{provider: up, upstream_model: model-a}}
  b: {{provider: up, upstream_model: model-b}}
  c: {{provider: up, upstream_model: model-c, fallbacks: [local]}}
  local: {{provider: local}}
roles:
  admin: {{models: ["*"]}}
  analyst: {{models: ["*"]}}
  guest: {{models: [m]}}
defaults:
  limits: {{requests_per_minute: 100000, tokens_per_minute: 100000000}}
"""
BREAKER_FAILURES = 5
IN_FLIGHT = 3


@pytest.fixture
def doomed() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A fake upstream in a process of its own, for a test to kill."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.testing.upstream", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.fixture
def settings(home: Path, database_url: str, doomed):  # type: ignore[no-untyped-def]
    from bastion.settings import Settings

    _, url = doomed
    (home / "policy.yaml").write_text(
        KILLED.format(base=url, failures=BREAKER_FAILURES), encoding="utf-8"
    )
    return Settings(home=home, database_url=database_url, gateway_max_retry_wait_s=2.0)


@pytest.fixture
async def sdk(app, key_for) -> AsyncIterator[Callable[[], openai.AsyncOpenAI]]:  # type: ignore[no-untyped-def]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=60)
    key = key_for("admin")

    def make() -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url="http://bastion.test/v1", api_key=key, http_client=http, max_retries=0
        )

    yield make
    await http.aclose()
    await app.state.gateway.aclose()


async def test_the_breaker_opens_after_exactly_breaker_failures_calls_when_the_upstream_dies(
    sdk, doomed, app, key_for, runtime
) -> None:  # type: ignore[no-untyped-def]
    proc, url = doomed
    client = sdk()
    in_flight = [asyncio.ensure_future(outcome(client, "m")) for _ in range(IN_FLIGHT)]
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=5) as http:
        while len((await http.get(url + "/_control/requests")).json()) < IN_FLIGHT:
            assert time.monotonic() < deadline, "the calls never reached the upstream"
            await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    # Every call in flight fails as itself (each tried three times, counted once) ...
    first = await asyncio.gather(*in_flight)
    assert first == ["error:502:upstream_unavailable"] * IN_FLIGHT
    # ... and the breaker opens after exactly breaker_failures failed calls.
    after = [await outcome(client, "m") for _ in range(BREAKER_FAILURES - IN_FLIGHT + 3)]
    statuses = first + after
    assert (
        statuses
        == ["error:502:upstream_unavailable"] * BREAKER_FAILURES + ["error:503:circuit_open"] * 3
    )

    from bastion.audit import EventFilter

    events = runtime.audit.page(EventFilter(action="llm.chat"), limit=100, order="asc").events
    attempts = [[a["outcome"] for a in e.details["attempts"]] for e in events]
    assert sum(a == ["connect"] * 3 for a in attempts) == BREAKER_FAILURES
    assert attempts[-3:] == [["circuit_open"]] * 3

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b.test")
    response = await http.get(
        "/api/gateway/health", headers={"Authorization": f"Bearer {key_for('analyst')}"}
    )
    assert response.status_code == 200
    rows = {d["upstream_model"]: d for d in response.json()["deployments"]}
    row = rows["delay:5000"]
    assert (row["state"], row["failures"], row["threshold"]) == (
        "open",
        BREAKER_FAILURES,
        BREAKER_FAILURES,
    )
    assert row["last_failure"] == "connect" and 0 < row["next_probe_in_s"] <= 60
    assert rows["model-a"]["state"] == "closed"
    # Every failure was at the connection (the upstream was gone), but all at one
    # deployment: the provider stays closed, and its other models are still tried.
    provider = {p["provider"]: p for p in response.json()["providers"]}["up"]
    assert (provider["state"], provider["failures"], provider["failing_deployments"]) == (
        "closed",
        BREAKER_FAILURES,
        1,
    )
    guest = await http.get(
        "/api/gateway/health", headers={"Authorization": f"Bearer {key_for('guest')}"}
    )
    assert guest.status_code == 403
    await http.aclose()


async def test_a_dead_host_shuts_the_provider_once_several_of_its_deployments_fail(
    sdk, doomed, app, key_for
) -> None:  # type: ignore[no-untyped-def]
    proc, _ = doomed
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    client = sdk()
    # Refused connections at two deployments, five calls in all (breaker_failures) ...
    for model in ["a", "b", "a", "b", "a"]:
        assert await outcome(client, model) == "error:502:upstream_unavailable"
    # ... shut the whole provider: a model never tried goes straight to its fallback at
    # another provider, and one without a fallback is refused at once.
    assert await outcome(client, "c") == "served:local"
    assert await outcome(client, "m") == "error:503:circuit_open"
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b.test")
    response = await http.get(
        "/api/gateway/health", headers={"Authorization": f"Bearer {key_for('admin')}"}
    )
    await http.aclose()
    provider = {p["provider"]: p for p in response.json()["providers"]}["up"]
    assert (provider["state"], provider["failing_deployments"]) == ("open", 2)
    rows = {d["upstream_model"]: d for d in response.json()["deployments"]}
    assert {m: rows[m]["failures"] for m in ("model-a", "model-b", "model-c")} == {
        "model-a": 3,
        "model-b": 2,
        "model-c": 0,
    }
    assert {rows[m]["state"] for m in ("model-a", "model-b", "model-c")} == {"closed"}
