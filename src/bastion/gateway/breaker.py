"""A circuit breaker per upstream.

Closed: calls go through; ``failures`` consecutive failures open it. Open: calls are
refused at once (the gateway serves fallbacks) until ``reset_s`` has passed. Half-open:
one probe call at a time is let through; its success closes the breaker, its failure
opens it again for another ``reset_s``. A probe that never reports back (its caller
vanished) frees the slot after ``reset_s``, so a lost probe cannot keep the breaker
shut.

Written here rather than taken from pybreaker or aiobreaker: both wrap a call in their
own retry-free call path and count every exception, while the gateway needs to count
only the upstream's faults (not a caller's bad request) and to probe while serving
fallbacks — a few lines of state kept under one lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    failures: int = 5
    reset_s: float = 30.0
    clock: object = field(default=time.monotonic, repr=False)
    _state: State = "closed"
    _consecutive: int = 0
    _opened_at: float = 0.0
    _probing: bool = False
    _probe_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _now(self) -> float:
        return self.clock()  # type: ignore[operator,no-any-return]

    @property
    def state(self) -> State:
        with self._lock:
            return self._current()

    def _current(self) -> State:
        now = self._now()
        if self._state == "open" and now - self._opened_at >= self.reset_s:
            self._state = "half_open"
            self._probing = False
        elif self._state == "half_open" and self._probing and now - self._probe_at >= self.reset_s:
            self._probing = False  # the probe was lost: let another one through
        return self._state

    def allow(self) -> bool:
        """May a call go to this upstream now? (Half-open: one probe at a time.)"""
        with self._lock:
            state = self._current()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                self._probe_at = self._now()
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._state = "closed"
            self._consecutive = 0
            self._probing = False

    def release(self) -> None:
        """The call ended with no verdict on the upstream (the client left): free the probe."""
        with self._lock:
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            state = self._current()
            if state == "half_open" or self._consecutive >= self.failures:
                self._state = "open"
                self._opened_at = self._now()
                self._probing = False

    def retry_after(self) -> float:
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(0.0, self.reset_s - (self._now() - self._opened_at))


class Breakers:
    """One breaker per upstream (provider name), created on first use."""

    def __init__(self) -> None:
        self._by_name: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, name: str, failures: int, reset_s: float) -> CircuitBreaker:
        with self._lock:
            breaker = self._by_name.get(name)
            if breaker is None or (breaker.failures, breaker.reset_s) != (failures, reset_s):
                breaker = CircuitBreaker(failures=failures, reset_s=reset_s)
                self._by_name[name] = breaker
            return breaker

    def states(self) -> dict[str, State]:
        with self._lock:
            return {name: b.state for name, b in self._by_name.items()}
