"""Health per deployment: a circuit breaker for each, and one per provider.

A *deployment* is what fails on its own: one upstream model of one provider, reached
with one key — ``(provider, upstream model, key)``. Each has a breaker, so a model that
answers 503 shuts itself out, not the healthy models and fallbacks behind the same base
URL. The provider has one more breaker, for what takes every deployment down at once
(its host refusing connections, DNS, TLS, a reset before any byte); it opens only when
such failures come from at least :data:`PROVIDER_SPREAD` of its deployments.

Each breaker is closed, open or half-open. Closed: calls go through; ``failures``
failed *calls* in a row open it (a call is one verdict however many attempts it made
on the deployment: ``breaker_failures: 5`` means five calls that each failed every
attempt there, which the caller saw as errors unless a fallback answered). Open: calls
are refused at once (the gateway serves fallbacks) until ``reset_s`` has passed.
Half-open: one call at a time is let through as a probe; its success closes the
breaker, its failure opens it for another ``reset_s``. A probe that never reports back
(its caller vanished) frees the slot after ``reset_s``, so a lost probe cannot keep the
breaker shut.

The verdict on a deployment is given by :class:`Ticket`, once per call: a success, a
failure (only the upstream's own faults: 5xx, timeouts, broken connections and streams,
malformed answers), or nothing (what the caller caused — context length, content
policy, a bad request, 401/403/404 — and 429s, one model's quota, say nothing about
the deployment's health). On the hot path (a closed breaker) a call costs a dict
lookup and two attribute reads; every change of state is made under the breaker's lock,
which is never held across an await.

Written here rather than taken from pybreaker or aiobreaker: both wrap a call in their
own call path and count every exception, while the gateway counts only the upstream's
faults, once per call, and probes while serving fallbacks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bastion.gateway.errors import UpstreamFailure

if TYPE_CHECKING:
    from bastion.gateway.providers.base import Target
    from bastion.policy.schema import ProviderConfig

State = Literal["closed", "open", "half_open"]
STATES: tuple[State, ...] = ("closed", "open", "half_open")
#: A call let through: ``"pass"`` (closed) or ``"probe"`` (half-open: the one trial).
Pass = Literal["pass", "probe"]
#: How many of a provider's deployments must fail to connect before the whole provider
#: is shut out: one deployment's connection errors are that deployment's.
PROVIDER_SPREAD = 2


@dataclass(frozen=True)
class BreakerView:
    """A breaker's state as an operator sees it (times in Unix seconds)."""

    state: State
    failures: int  # failed calls in a row
    threshold: int
    cool_down_s: float
    last_failure: str | None
    last_failure_at: float | None
    opened_at: float | None
    next_probe_at: float | None  # when the next probe may go (None: closed)
    probing: bool
    failing_deployments: int = 0  # providers: deployments in the current failure run


@dataclass(eq=False)
class CircuitBreaker:
    failures: int = 5
    reset_s: float = 30.0
    #: Distinct sources (deployments) the failures must come from before it opens.
    min_sources: int = 1
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    #: Told of every change of state (under the breaker's lock: it must not call back).
    on_change: Callable[[CircuitBreaker, State], None] | None = field(default=None, repr=False)
    #: What the breaker guards, for metrics: ``(provider,)`` or ``(provider, deployment)``.
    labels: tuple[str, ...] = ()
    _state: State = "closed"
    _streak: int = 0
    _sources: set[str] = field(default_factory=set, repr=False)
    _opened_at: float = 0.0
    _probing: bool = False
    _probe_at: float = 0.0
    _last_failure: str | None = None
    _last_failure_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> State:
        with self._lock:
            return self._current()

    def _set(self, state: State) -> None:
        if state != self._state:
            self._state = state
            if self.on_change is not None:
                self.on_change(self, state)

    def _current(self) -> State:
        now = self.clock()
        if self._state == "open" and now - self._opened_at >= self.reset_s:
            self._set("half_open")
            self._probing = False
        elif self._state == "half_open" and self._probing and now - self._probe_at >= self.reset_s:
            self._probing = False  # the probe was lost: let another one through
        return self._state

    def admit(self) -> Pass | None:
        """May a call go now? ``None``: no; else how it goes (half-open: one probe)."""
        if self._state == "closed":  # the hot path: one attribute read, no lock, no clock
            return "pass"
        with self._lock:
            if self._current() == "half_open" and not self._probing:
                self._probing = True
                self._probe_at = self.clock()
                return "probe"
            return None

    def allow(self) -> bool:
        return self.admit() is not None

    def record_success(self) -> None:
        if self._state == "closed" and not self._streak:  # the hot path: nothing to reset
            return
        with self._lock:
            self._set("closed")
            self._streak = 0
            self._sources.clear()
            self._probing = False

    def record_failure(self, kind: str | None = None, source: str = "") -> None:
        with self._lock:
            now = self.clock()
            self._streak += 1
            self._sources.add(source)
            self._last_failure, self._last_failure_at = kind, now
            state = self._current()
            opens = state == "half_open" or (
                state == "closed"
                and self._streak >= self.failures
                and len(self._sources) >= self.min_sources
            )
            if opens:
                self._set("open")
                self._opened_at = now
                self._probing = False

    def release(self, how: Pass | None = "probe") -> None:
        """The call ended with no verdict (the caller's own error, a 429, the client
        left): a probe's slot is freed for the next call."""
        if how == "probe":
            with self._lock:
                self._probing = False

    def retry_after(self) -> float:
        with self._lock:
            if self._current() != "open":
                return 0.0
            return max(0.0, self.reset_s - (self.clock() - self._opened_at))

    def configure(self, failures: int, reset_s: float) -> None:
        """New thresholds from a reloaded policy; the state is kept."""
        with self._lock:
            self.failures, self.reset_s = failures, reset_s

    def view(self) -> BreakerView:
        with self._lock:
            now, wall = self.clock(), time.time()
            state = self._current()

            def unix(moment: float | None) -> float | None:
                return None if moment is None else wall - (now - moment)

            next_probe: float | None = None
            if state == "open":
                next_probe = unix(self._opened_at + self.reset_s)
            elif state == "half_open":
                next_probe = unix(self._probe_at + self.reset_s if self._probing else now)
            return BreakerView(
                state=state,
                failures=self._streak,
                threshold=self.failures,
                cool_down_s=self.reset_s,
                last_failure=self._last_failure,
                last_failure_at=unix(self._last_failure_at),
                opened_at=unix(self._opened_at) if state != "closed" else None,
                next_probe_at=next_probe,
                probing=state == "half_open" and self._probing,
                failing_deployments=len(self._sources - {""}),
            )


@dataclass(frozen=True)
class DeploymentKey:
    provider: str
    upstream_model: str
    credential: str  # the environment variable holding the key ("" for none), never the key

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.upstream_model}"


@dataclass(eq=False)
class Deployment:
    key: DeploymentKey
    breaker: CircuitBreaker
    provider: CircuitBreaker

    def admit(self, model: str) -> Ticket | UpstreamFailure:
        """A ticket for one call, or the ``circuit_open`` failure that refuses it."""
        through = self.provider.admit()
        if through is None:
            return UpstreamFailure(
                "circuit_open",
                f"the provider {self.key.provider!r} cannot be reached (connections to "
                "several of its models failed); its circuit breaker is open",
                retry_after=self.provider.retry_after(),
            )
        how = self.breaker.admit()
        if how is None:
            self.provider.release(through)
            return UpstreamFailure(
                "circuit_open",
                f"the model {model!r} ({self.key.label}) is failing; its circuit breaker "
                "is open and other models of the provider are still served",
                retry_after=self.breaker.retry_after(),
            )
        return Ticket(self, how, through)


@dataclass(eq=False, slots=True)
class Ticket:
    """One call's pass through a deployment; the verdicts are given once each."""

    deployment: Deployment
    how: Pass
    provider_how: Pass

    def provider_verdict(self, *, reached: bool, unreachable: bool) -> None:
        """``reached``: some answer came from the host; ``unreachable``: only
        connection-level failures (refused, DNS, TLS, reset before any byte)."""
        provider = self.deployment.provider
        if reached:
            provider.record_success()
        elif unreachable:
            provider.record_failure("connect", source=self.deployment.key.label)
        else:
            provider.release(self.provider_how)

    def verdict(self, *, ok: bool, fault: str | None) -> None:
        """The call's verdict on the deployment: a success, a fault, or neither."""
        breaker = self.deployment.breaker
        if ok:
            breaker.record_success()
        elif fault is not None:
            breaker.record_failure(fault)
        else:
            breaker.release(self.how)

    def abandon(self) -> None:
        self.deployment.breaker.release(self.how)
        self.deployment.provider.release(self.provider_how)


class Health:
    """Every deployment's breaker, created on first use; and each provider's."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitBreaker, State], None] | None = None,
    ) -> None:
        self._clock = clock
        self._on_change = on_change
        self._deployments: dict[tuple[str, str, str], Deployment] = {}
        self._providers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def deployment(self, target: Target) -> Deployment:
        cfg = target.config
        found = self._deployments.get(
            (target.provider, target.upstream_model, cfg.api_key_env or "")
        )
        if found is None:
            return self._create(target)
        if (
            found.breaker.failures != cfg.breaker_failures
            or found.breaker.reset_s != cfg.breaker_reset_s
        ):
            found.breaker.configure(cfg.breaker_failures, cfg.breaker_reset_s)
            found.provider.configure(cfg.breaker_failures, cfg.breaker_reset_s)
        return found

    def _create(self, target: Target) -> Deployment:
        cfg = target.config
        key = DeploymentKey(target.provider, target.upstream_model, cfg.api_key_env or "")
        with self._lock:
            found = self._deployments.get((key.provider, key.upstream_model, key.credential))
            if found is not None:
                return found
            provider = self._providers.get(key.provider)
            if provider is None:
                provider = self._breaker(cfg, PROVIDER_SPREAD, (key.provider,))
                self._providers[key.provider] = provider
            made = Deployment(
                key, self._breaker(cfg, 1, (key.provider, key.upstream_model)), provider
            )
            self._deployments[(key.provider, key.upstream_model, key.credential)] = made
            return made

    def _breaker(
        self, cfg: ProviderConfig, sources: int, labels: tuple[str, ...]
    ) -> CircuitBreaker:
        return CircuitBreaker(
            failures=cfg.breaker_failures,
            reset_s=cfg.breaker_reset_s,
            min_sources=sources,
            clock=self._clock,
            on_change=self._on_change,
            labels=labels,
        )

    def deployments(self) -> Iterator[Deployment]:
        with self._lock:
            found = list(self._deployments.values())
        yield from found

    def providers(self) -> dict[str, CircuitBreaker]:
        with self._lock:
            return dict(self._providers)

    def find(self, provider: str, upstream_model: str, credential: str = "") -> Deployment | None:
        return self._deployments.get((provider, upstream_model, credential))
