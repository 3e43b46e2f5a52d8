"""The seam between serving and progressive delivery: which version answers a request.

The prediction service asks a :class:`TrafficPlan` (the rollout controller's, in
:mod:`bastion.delivery`) for a :class:`Routing` by model name and route key; ``None``
means "no rollout in force: serve the alias the caller asked for". The route key is the
``user`` / ``X-Bastion-Route-Key`` header, else the request id, so one user stays on one
version across calls.

A shadow route is scored after the answer is sent, logged with arm ``"shadow"``, and
never returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: The arms a prediction can be logged under (``predictions.arm``).
ARMS = ("production", "canary", "shadow", "a", "b", "pinned")


@dataclass(frozen=True)
class Route:
    version: int
    arm: str  # "production" | "canary" | "a" | "b" | "pinned"
    alias: str | None


@dataclass(frozen=True)
class Routing:
    primary: Route
    shadows: tuple[Route, ...] = ()


class TrafficPlan(Protocol):
    def route(self, model: str, route_key: str) -> Routing | None:
        """The routing for one request; None → plain alias."""
        ...


class NoTraffic:
    """The default plan: no rollout, every request goes to the alias asked for."""

    def route(self, model: str, route_key: str) -> Routing | None:
        return None
