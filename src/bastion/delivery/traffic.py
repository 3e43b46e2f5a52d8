"""The rollout controller's side of serving's :class:`~bastion.serving.routing.TrafficPlan`.

A request's route key (a user, a header, else the request id) is hashed with the
rollout's id into one of 10,000 buckets; the candidate takes the buckets below its
weight. The hash is stable, so one user stays on one version for the whole rollout,
and as the weight grows the users already on the candidate stay there.

The active rollouts are read in one query and kept for ``ttl_s`` (a second by
default): the hot path never waits on the database more than once a second, and a
rollback or an abort reaches every replica within that time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bastion.db import Database
from bastion.delivery.repository import DeliveryRepository
from bastion.serving.routing import Route, Routing

BUCKETS = 10_000


def bucket(salt: str, route_key: str) -> int:
    """A stable bucket in [0, 10000) for ``route_key`` (BLAKE2b, not Python's salted hash)."""
    digest = hashlib.blake2b(f"{salt}\x00{route_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True)
class Plan:
    """What one model's active rollout does to its traffic now."""

    rollout_id: str
    kind: str
    candidate: int
    baseline: int
    weight: int  # percent

    def route(self, route_key: str) -> Routing:
        production = Route(self.baseline, "production", "production")
        chosen = bucket(self.rollout_id, route_key) < self.weight * (BUCKETS // 100)
        if self.kind == "shadow":
            shadows = (Route(self.candidate, "shadow", None),) if chosen else ()
            return Routing(production, shadows)
        if self.kind == "ab":
            if chosen:
                return Routing(Route(self.candidate, "b", None))
            return Routing(Route(self.baseline, "a", "production"))
        return Routing(Route(self.candidate, "canary", None) if chosen else production)


def plans(db: Database) -> dict[str, Plan]:
    """The traffic plan of every model with a rollout that sends it traffic."""
    with db.session() as session:
        rows = DeliveryRepository(session).active()
        return {
            r.model: Plan(r.id, r.kind, r.candidate_version, r.baseline_version, r.weight)
            for r in rows
            if r.state in ("running", "holding", "paused", "passed") and r.weight > 0
        }


class RolloutTraffic:
    """A :class:`~bastion.serving.routing.TrafficPlan` over the rollouts table."""

    def __init__(
        self, db: Database, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.clock = clock
        self._plans: dict[str, Plan] = {}
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def refresh(self) -> None:
        fresh = plans(self.db)
        with self._lock:
            self._plans, self._read_at = fresh, self.clock()

    def plan(self, model: str) -> Plan | None:
        if self.clock() - self._read_at >= self.ttl_s:
            self.refresh()
        return self._plans.get(model)

    def route(self, model: str, route_key: str) -> Routing | None:
        plan = self.plan(model)
        return None if plan is None else plan.route(route_key)
