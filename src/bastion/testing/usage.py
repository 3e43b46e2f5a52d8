"""Seeded gateway calls for usage tests and the dashboard benchmark.

:func:`synthetic_calls` draws calls over many days, teams, models and outcomes;
:func:`event_of` turns one into the ledger event the gateway would write
(:func:`bastion.gateway.lifecycle.ledger_event`'s shape), and :func:`row_of` into an
``audit_events`` row for a bulk insert (a benchmark's ledger of millions: its chain is
not valid, which timing pages does not need).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bastion.audit.events import EventIn

DAY_US = 86_400_000_000
OUTCOMES = ("success", "success", "success", "success", "success", "success", "refused")
RARE_OUTCOMES = ("failure", "cancelled", "error")


@dataclass(frozen=True)
class SyntheticCall:
    ts_us: int
    team: str | None
    model: str
    outcome: str
    stream: bool
    prompt: int
    completion: int
    cost_usd: float
    latency_ms: float
    ttft_ms: float | None

    @property
    def day(self) -> int:
        return self.ts_us // DAY_US


def synthetic_calls(
    n: int,
    *,
    seed: int = 0,
    start_day: int,
    days: int,
    teams: int = 6,
    models: int = 5,
) -> Iterator[SyntheticCall]:
    """``n`` calls spread over ``days`` days from ``start_day`` (days since 1970),
    in time order; about one in ten without a team, a few in every outcome."""
    rng = random.Random(seed)
    team_names = [f"team-{i}" for i in range(teams)] + [None]
    team_weights = [float(teams - i) for i in range(teams)] + [teams / 10]
    model_names = [f"model-{i}" for i in range(models)]
    prices = [(0.5 + i, 1.5 + 2 * i) for i in range(models)]
    span = days * DAY_US
    first = start_day * DAY_US
    step = span / max(n, 1)
    for i in range(n):
        ts = first + int(i * step + rng.random() * step)
        team = rng.choices(team_names, team_weights)[0]
        m = rng.randrange(models)
        outcome = rng.choice(OUTCOMES) if rng.random() > 0.04 else rng.choice(RARE_OUTCOMES)
        stream = rng.random() < 0.4
        served = outcome not in ("refused", "error")
        prompt = int(rng.lognormvariate(5.5, 0.8)) if outcome != "refused" else 0
        completion = int(rng.lognormvariate(5, 1)) if served else 0
        price_in, price_out = prices[m]
        cost = (prompt * price_in + completion * price_out) / 1e6 if served else 0.0
        latency = rng.lognormvariate(6.5, 0.9) if served else rng.lognormvariate(0, 1)
        ttft = latency * rng.uniform(0.05, 0.5) if stream and served else None
        yield SyntheticCall(
            min(ts, first + span - 1),
            team,
            model_names[m],
            outcome,
            stream,
            prompt,
            completion,
            round(cost, 9),
            round(latency, 3),
            None if ttft is None else round(ttft, 3),
        )


def details_of(call: SyntheticCall) -> dict[str, Any]:
    served = call.outcome not in ("refused", "error")
    details: dict[str, Any] = {
        "endpoint": "chat",
        "key": "bst_synth",
        "team": call.team,
        "role": "analyst",
        "requested_model": call.model,
        "served_model": call.model if served else None,
        "provider": "fake" if served else None,
        "stream": call.stream,
        "status": {"success": 200, "refused": 429, "failure": 502, "cancelled": 499}.get(
            call.outcome, 500
        ),
        "attempts": [],
        "decisions": {"limits": "admitted"},
        "tokens": {"prompt": call.prompt, "completion": call.completion, "source": "upstream"},
        "cost_usd": call.cost_usd,
        "reserved_usd": call.cost_usd,
        "latency_ms": call.latency_ms,
        "upstream_ms": call.latency_ms * 0.9,
        "overhead_ms": 0.4,
    }
    if call.ttft_ms is not None:
        details["ttft_ms"] = call.ttft_ms
    return details


def event_of(call: SyntheticCall, user: str = "synth-user") -> EventIn:
    return EventIn(
        actor=f"user:{user}",
        action="llm.chat",
        resource=f"model:{call.model}",
        outcome=call.outcome,
        details=details_of(call),
        subject=user,
    )


def row_of(call: SyntheticCall, *, stream: str, seq: int) -> dict[str, Any]:
    """An ``audit_events`` row with this call's event (placeholder hashes)."""
    return {
        "stream": stream,
        "seq": seq,
        "ts_us": call.ts_us,
        "actor": "user:synth-user",
        "action": "llm.chat",
        "resource": f"model:{call.model}",
        "outcome": call.outcome,
        "request_id": None,
        "details": json.dumps(details_of(call), separators=(",", ":"), sort_keys=True),
        "content_digest": None,
        "flags": "[]",
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
    }
