"""Circuit breakers per deployment, driven through the retry loop with a fake clock:
what counts (one verdict per call, only the upstream's faults), what opens (a
deployment, or a provider only across several deployments), and how it recovers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bastion.gateway.breaker import PROVIDER_SPREAD, CircuitBreaker, Health
from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import Target
from bastion.gateway.resilience import Resilience, Trail
from bastion.policy.schema import ProviderConfig

pytestmark = pytest.mark.anyio

FAILURES = 3
COOL_DOWN = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(**extra: Any) -> ProviderConfig:
    fields: dict[str, Any] = {
        "kind": "openai",
        "base_url": "http://up.test/v1",
        "max_retries": 2,
        "breaker_failures": FAILURES,
        "breaker_reset_s": COOL_DOWN,
    }
    return ProviderConfig(**(fields | extra))


def target(model: str, upstream: str | None = None, provider: str = "up") -> Target:
    return Target(model, upstream or model, provider, config(), None)


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(clock=clock)


@pytest.fixture
def resilience(health: Health) -> Resilience:
    return Resilience(health, max_wait_s=60, sleep=no_sleep, rng=lambda: 0.0)


Op = Callable[[Target, float], Awaitable[str]]


def failing(kind: str, **extra: Any) -> tuple[Op, list[str]]:
    """An op that fails every attempt with ``kind``; and the list of models it was called on."""
    calls: list[str] = []

    async def op(t: Target, _left: float) -> str:
        calls.append(t.model)
        raise UpstreamFailure(kind, f"fake {kind}", **extra)  # type: ignore[arg-type]

    return op, calls


async def answered(t: Target, _left: float) -> str:
    return f"answer from {t.model}"


async def call(resilience: Resilience, targets: list[Target], op: Op) -> str | UpstreamFailure:
    deadline = asyncio.get_running_loop().time() + 60
    try:
        result, _ = await resilience.run(list(targets), op, Trail(), deadline)
    except UpstreamFailure as failure:
        return failure
    return result


async def test_n_failed_calls_open_the_breaker_whatever_their_retries(
    resilience: Resilience, health: Health
) -> None:
    down = target("down")
    op, attempts = failing("server_error")
    for _ in range(FAILURES - 1):
        assert isinstance(await call(resilience, [down], op), UpstreamFailure)
    breaker = health.deployment(down).breaker
    assert len(attempts) == 3 * (FAILURES - 1)  # every call made its three attempts ...
    assert breaker.state == "closed"  # ... yet counts once
    assert breaker.view().failures == FAILURES - 1
    await call(resilience, [down], op)
    assert breaker.state == "open"
    refused = await call(resilience, [down], op)
    assert isinstance(refused, UpstreamFailure) and refused.code == "circuit_open"
    assert len(attempts) == 3 * FAILURES  # not called while open
    assert refused.retry_after == pytest.approx(COOL_DOWN)


@pytest.mark.parametrize(
    "kind",
    [
        "context_length_exceeded",
        "content_policy",
        "bad_request",
        "auth",
        "not_found",
        "rate_limited",
    ],
)
async def test_errors_the_caller_caused_and_quotas_never_count(
    resilience: Resilience, health: Health, kind: str
) -> None:
    strict = target("strict")
    op, _ = failing(kind, upstream_status=400)
    for _ in range(FAILURES * 3):
        assert isinstance(await call(resilience, [strict], op), UpstreamFailure)
    view = health.deployment(strict).breaker.view()
    assert (view.state, view.failures) == ("closed", 0)


async def test_one_deployment_open_leaves_the_providers_others_and_its_fallback_served(
    resilience: Resilience, health: Health
) -> None:
    down, healthy, backup = target("down", "503"), target("healthy"), target("backup")
    op, attempts = failing("server_error")
    for _ in range(FAILURES):
        await call(resilience, [down], op)
    assert health.deployment(down).breaker.state == "open"

    async def only_down_fails(t: Target, left: float) -> str:
        if t is down:
            return await op(t, left)
        return await answered(t, left)

    assert await call(resilience, [healthy], only_down_fails) == "answer from healthy"
    before = len(attempts)
    # The fallback, on the same provider, answers at once: the open deployment is skipped.
    assert await call(resilience, [down, backup], only_down_fails) == "answer from backup"
    assert len(attempts) == before
    assert health.deployment(healthy).provider.state == "closed"


async def test_models_sharing_an_upstream_model_share_its_deployment(health: Health) -> None:
    assert health.deployment(target("a", "gpt-x")) is health.deployment(target("b", "gpt-x"))
    assert health.deployment(target("a", "gpt-x")) is not health.deployment(target("a", "gpt-y"))
    other_key = Target("a", "gpt-x", "up", config(api_key_env="SECOND_KEY"), None)
    assert health.deployment(other_key) is not health.deployment(target("a", "gpt-x"))


async def test_half_open_lets_one_probe_through_and_its_success_closes(
    resilience: Resilience, health: Health, clock: Clock
) -> None:
    flappy = target("flappy")
    op, _ = failing("server_error")
    for _ in range(FAILURES):
        await call(resilience, [flappy], op)
    breaker = health.deployment(flappy).breaker
    clock.now += COOL_DOWN - 0.01
    assert breaker.admit() is None  # still cooling down
    clock.now += 0.01  # the fault has ended by now; one cool-down after the breaker opened:
    assert breaker.state == "half_open"
    probe = health.deployment(flappy).admit("flappy")
    assert not isinstance(probe, UpstreamFailure) and probe.how == "probe"
    assert isinstance(health.deployment(flappy).admit("flappy"), UpstreamFailure)  # one at a time
    probe.provider_verdict(reached=True, unreachable=False)
    probe.verdict(ok=True, fault=None)
    assert breaker.state == "closed"
    assert await call(resilience, [flappy], answered) == "answer from flappy"


async def test_a_failed_probe_opens_it_for_another_cool_down(
    resilience: Resilience, health: Health, clock: Clock
) -> None:
    flappy = target("flappy")
    op, attempts = failing("timeout")
    for _ in range(FAILURES):
        await call(resilience, [flappy], op)
    clock.now += COOL_DOWN
    before = len(attempts)
    failure = await call(resilience, [flappy], op)  # the probe, which fails
    assert isinstance(failure, UpstreamFailure) and failure.kind == "timeout"
    assert len(attempts) == before + 3
    assert health.deployment(flappy).breaker.state == "open"
    clock.now += COOL_DOWN / 2
    refused = await call(resilience, [flappy], op)
    assert isinstance(refused, UpstreamFailure) and refused.code == "circuit_open"


async def test_a_probe_ended_by_a_callers_error_frees_the_slot(
    resilience: Resilience, health: Health, clock: Clock
) -> None:
    flappy = target("flappy")
    op, _ = failing("server_error")
    for _ in range(FAILURES):
        await call(resilience, [flappy], op)
    clock.now += COOL_DOWN
    strict, _ = failing("content_policy", upstream_status=400)
    assert isinstance(await call(resilience, [flappy], strict), UpstreamFailure)
    assert health.deployment(flappy).breaker.state == "half_open"
    assert await call(resilience, [flappy], answered) == "answer from flappy"  # the next probe
    assert health.deployment(flappy).breaker.state == "closed"


async def test_connection_failures_on_one_deployment_never_shut_the_provider(
    resilience: Resilience, health: Health
) -> None:
    reset = target("reset")
    op, _ = failing("connect", connection=True)
    for _ in range(FAILURES * 3):
        await call(resilience, [reset], op)
    provider = health.deployment(reset).provider
    assert provider.state == "closed"
    assert health.deployment(reset).breaker.state == "open"
    assert await call(resilience, [target("other")], answered) == "answer from other"


async def test_connection_failures_across_deployments_shut_the_provider(
    resilience: Resilience, health: Health, clock: Clock
) -> None:
    assert PROVIDER_SPREAD == 2
    refused_op, _ = failing("connect", connection=True)
    await call(resilience, [target("a")], refused_op)
    await call(resilience, [target("b")], refused_op)
    provider = health.deployment(target("a")).provider
    assert provider.state == "closed"  # two failures of three
    await call(resilience, [target("a")], refused_op)
    assert provider.state == "open"
    assert provider.view().failing_deployments == 2
    # A model no call has tried yet is refused at once: the host is down.
    never_tried, calls = failing("server_error")
    refused = await call(resilience, [target("c")], never_tried)
    assert isinstance(refused, UpstreamFailure) and refused.code == "circuit_open"
    assert "provider 'up'" in refused.message and calls == []
    # ... but a fallback at another provider is served.
    elsewhere = target("local", provider="other")
    assert await call(resilience, [target("c"), elsewhere], answered) == "answer from local"
    clock.now += COOL_DOWN
    assert await call(resilience, [target("c")], answered) == "answer from c"  # the probe
    assert provider.state == "closed"


async def test_any_answer_from_the_host_ends_a_run_of_connection_failures(
    resilience: Resilience, health: Health
) -> None:
    refused_op, _ = failing("connect", connection=True)
    server_error, _ = failing("server_error", upstream_status=503)
    for _ in range(FAILURES):
        await call(resilience, [target("a")], refused_op)
        await call(resilience, [target("b")], server_error)  # a 503 is an answer
        await call(resilience, [target("c")], refused_op)
    assert health.deployment(target("a")).provider.state == "closed"


async def test_a_cancelled_probe_frees_its_slot(
    resilience: Resilience, health: Health, clock: Clock
) -> None:
    flappy = target("flappy")
    op, _ = failing("server_error")
    for _ in range(FAILURES):
        await call(resilience, [flappy], op)
    clock.now += COOL_DOWN
    started = asyncio.Event()

    async def hangs(_t: Target, _left: float) -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    task = asyncio.ensure_future(call(resilience, [flappy], hangs))
    await started.wait()
    assert isinstance(await call(resilience, [flappy], answered), UpstreamFailure)  # probing
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await call(resilience, [flappy], answered) == "answer from flappy"


def test_a_lost_probe_frees_the_slot_after_a_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_s=COOL_DOWN, clock=clock)
    breaker.record_failure("server_error")
    clock.now += COOL_DOWN
    assert breaker.admit() == "probe"
    assert breaker.admit() is None
    clock.now += COOL_DOWN  # the probe never reported back
    assert breaker.admit() == "probe"


def test_a_reloaded_threshold_applies_and_the_state_is_kept(health: Health) -> None:
    first = target("m")
    deployment = health.deployment(first)
    deployment.breaker.record_failure("server_error")
    stricter = Target("m", "m", "up", config(breaker_failures=2), None)
    assert health.deployment(stricter) is deployment
    deployment.breaker.record_failure("server_error")
    assert deployment.breaker.state == "open"


def test_state_changes_are_told_with_what_the_breaker_guards(clock: Clock) -> None:
    seen: list[tuple[tuple[str, ...], str]] = []
    health = Health(clock=clock, on_change=lambda b, state: seen.append((b.labels, state)))
    breaker = health.deployment(target("m", "gpt-x")).breaker
    for _ in range(FAILURES):
        breaker.record_failure("server_error")
    clock.now += COOL_DOWN
    assert breaker.admit() == "probe"
    breaker.record_success()
    assert seen == [
        (("up", "gpt-x"), "open"),
        (("up", "gpt-x"), "half_open"),
        (("up", "gpt-x"), "closed"),
    ]
