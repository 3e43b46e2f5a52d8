"""One governed call's life: admission, settlement, evidence, observation.

Every kind of call Bastion governs — a chat completion (whole or streamed), an
embedding, and later a tool call, a retrieval step or a prediction — goes through the
same stages around its own work:

1. **admit**: the caller's rate limits and budgets reserve room for the worst case;
2. (the call's own work: protect the input, run it with resilience, check the output);
3. **finish**: settle the reservation with what was spent, record one ledger event,
   observe metrics — or, when anything raised (a refusal, an upstream failure, a
   cancelled client, a bug), **fail**: settle or release, record, observe, shielded
   from cancellation so the reservation and the evidence are never lost.

:class:`Lifecycle` holds these stages once; :meth:`Lifecycle.governed` wraps a call's
work so the failure path cannot be forgotten, and a stream calls :meth:`finish` or
:meth:`fail` itself when its last byte has gone out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from bastion import jsonio
from bastion.audit import EventIn, Ledger
from bastion.errors import BastionError
from bastion.gateway.access import Access
from bastion.gateway.calls import Call
from bastion.gateway.counters import Admission, Counters, Reservation
from bastion.gateway.errors import (
    BudgetExceeded,
    CountersUnavailable,
    RateLimited,
    UpstreamFailure,
)
from bastion.observability import Metrics
from bastion.policy.schema import Policy
from bastion.privacy.errors import PrivacyError

log = logging.getLogger("bastion.gateway")

#: How long a settlement Redis could not take is retried (the reservation's grace).
SETTLE_RETRY_FOR_S = 3600.0


class Lifecycle:
    """The stages every governed call shares, over the counters, the ledger and metrics."""

    def __init__(self, counters: Counters, ledger: Ledger, metrics: Metrics) -> None:
        self.counters = counters
        self.ledger = ledger
        self.metrics = metrics
        self._deferred: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        if self._deferred:  # settlements still owed get a last chance
            await asyncio.wait(set(self._deferred), timeout=5)

    # --- the whole call ---------------------------------------------------------------

    @asynccontextmanager
    async def governed(self, call: Call, policy: Policy) -> AsyncIterator[Call]:
        """Run a call's work; whatever escapes it ends the call through :meth:`fail`."""
        try:
            yield call
        except BaseException as exc:
            with anyio.CancelScope(shield=True):  # settle and record even when cancelled
                await self.fail(call, exc, policy)
            raise

    async def finish(self, call: Call, policy: Policy) -> None:
        """A served call: settle what it spent, record it, observe it."""
        await self.settle(call)
        await self.record(call, policy)
        self.observe(call)
        call.done = True

    async def fail(self, call: Call, exc: BaseException, policy: Policy) -> None:
        """A call that did not complete: refused, failed, cancelled or broken by a bug."""
        if call.done:
            return
        call.done = True
        if isinstance(exc, BastionError):
            call.status = exc.status
            call.error_code = exc.code
            refused = not call.trail.attempts and not isinstance(exc, UpstreamFailure)
            call.outcome = "refused" if refused else "failure"
            if isinstance(exc, PrivacyError):
                call.decisions["privacy"] = exc.code
                call.flags.update(getattr(exc, "flags", ()) or ())
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
            call.outcome = "cancelled"
            call.status = 499
            call.error_code = "client_disconnected"
        else:
            call.outcome = "error"
            call.status = 500
            call.error_code = "internal_error"
        await self.settle(call)
        try:
            await self.record(call, policy)
        except Exception:  # the original error is what the caller must see
            log.exception("could not record a failed call in the ledger")
        self.observe(call)

    # --- admission ----------------------------------------------------------------------

    async def admit(
        self, call: Call, policy: Policy, access: Access, tokens: int, cost: float
    ) -> None:
        """Reserve room for the call's worst case; raises when a limit or budget says no."""
        admission = Admission(access.rate_limits, access.budgets, tokens, cost)
        call.reserved_usd = cost
        metrics = self.metrics
        try:
            reservation = await self.counters.admit(admission)
        except RateLimited as exc:
            call.decisions["limits"] = "refused"
            metrics.llm_rate_limited.labels(
                exc.details.get("scope_kind", "unknown"), exc.details.get("metric", "unknown")
            ).inc()
            raise
        except BudgetExceeded as exc:
            call.decisions["limits"] = "admitted"
            call.decisions["budget"] = "refused"
            metrics.llm_budget_refused.labels(
                exc.details.get("scope_kind", "unknown"), exc.details.get("per", "unknown")
            ).inc()
            raise
        except CountersUnavailable:
            if policy.defaults.on_counter_error == "refuse":
                call.decisions["limits"] = "counters_unavailable"
                raise
            call.decisions["limits"] = "unchecked"
            call.flags.add("counters_unavailable")
            metrics.llm_counter_errors.labels("admit").inc()
            return
        call.decisions["limits"] = "admitted"
        call.decisions["budget"] = "reserved"
        call.limit_states = list(reservation.limits)
        call.reservation = reservation

    # --- settlement ---------------------------------------------------------------------

    async def settle(self, call: Call) -> None:
        """Charge what the call spent against its reservation (or release it); once."""
        reservation, call.reservation = call.reservation, None
        if reservation is None:
            return
        charge = call.outcome in ("success", "cancelled") or bool(call.completion_tokens)
        if charge and call.cost_usd > call.reserved_usd + 1e-9:
            # The upstream counted more than the estimate (its own tokenizer, images,
            # hidden tool prompts): the budget can be passed by the difference.
            call.flags.add("reservation_exceeded")
            self.metrics.llm_reservation_exceeded.labels(call.model_label).inc()
        try:
            await self._settle_now(reservation, call, charge)
        except CountersUnavailable:
            # Spent money must reach the counters: retried in the background until
            # Redis answers (the reservation keeps the room until then).
            call.flags.add("settle_deferred")
            log.error(
                "settling a call's cost failed; retrying in the background",
                extra={"model": call.model_label},
            )
            self.metrics.llm_counter_errors.labels("settle").inc()
            self._defer(reservation, call, charge)

    async def _settle_now(self, reservation: Reservation, call: Call, charge: bool) -> None:
        if charge:
            await self.counters.settle(
                reservation,
                tokens=call.prompt_tokens + call.completion_tokens,
                cost_usd=call.cost_usd,
            )
        else:
            await self.counters.release(reservation)

    def _defer(self, reservation: Reservation, call: Call, charge: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._settle_later(reservation, call, charge))
        self._deferred.add(task)
        task.add_done_callback(self._deferred.discard)

    async def _settle_later(self, reservation: Reservation, call: Call, charge: bool) -> None:
        """Settle until the counters answer; a settlement is idempotent, so a retry after
        a lost reply does no harm. Gives up when the reservation can no longer be settled."""
        deadline = time.monotonic() + SETTLE_RETRY_FOR_S
        wait = 0.5
        while time.monotonic() < deadline:
            await asyncio.sleep(wait)
            try:
                await self._settle_now(reservation, call, charge)
            except CountersUnavailable:
                wait = min(wait * 2, 30.0)
                continue
            log.info("a deferred settlement went through", extra={"model": call.model_label})
            return
        log.error("a deferred settlement was given up", extra={"model": call.model_label})

    # --- evidence -------------------------------------------------------------------------

    async def record(self, call: Call, policy: Policy) -> None:
        """The call's one ledger event, committed before the caller gets its answer."""
        await self.ledger.append_async(ledger_event(call, policy))

    def observe(self, call: Call) -> None:
        m = self.metrics
        model = call.model_label
        m.llm_requests.labels(call.endpoint, model, call.outcome).inc()
        if call.prompt_tokens and call.outcome != "refused":
            m.llm_tokens.labels(model, "input").inc(call.prompt_tokens)
        if call.completion_tokens:
            m.llm_tokens.labels(model, "output").inc(call.completion_tokens)
        if call.cost_usd:
            m.llm_cost.labels(model).inc(call.cost_usd)
        m.llm_duration.labels(call.endpoint, model).observe(call.elapsed_s())
        m.llm_overhead.labels(call.endpoint).observe(call.overhead_s())
        if call.trail.upstream_s and call.provider:
            m.llm_upstream_duration.labels(call.provider).observe(call.trail.upstream_s)
        if call.ttft_s is not None:
            m.llm_ttft.labels(model).observe(call.ttft_s)
        for attempt in call.trail.attempts:
            m.llm_attempts.labels(attempt.provider, attempt.outcome).inc()
        self.observe_genai(call)

    def observe_genai(self, call: Call) -> None:
        """The call under the OpenTelemetry GenAI conventions' metric names."""
        m = self.metrics
        requested = (call.requested_model or "unknown") if call.model_known else "unknown"
        labels = (
            call.endpoint,
            call.provider or "none",
            requested,
            call.served_model if call.served_model and call.model_known else requested,
        )
        error = "" if call.outcome == "success" else (call.error_code or call.outcome)
        m.genai_duration.labels(*labels, error).observe(call.elapsed_s())
        if call.prompt_tokens and call.outcome != "refused":
            m.genai_tokens.labels(*labels, "input").observe(call.prompt_tokens)
        if call.completion_tokens:
            m.genai_tokens.labels(*labels, "output").observe(call.completion_tokens)
        if call.ttft_s is not None:
            m.genai_ttfc.labels(*labels).observe(call.ttft_s)

    # --- what the caller is told ------------------------------------------------------------

    def headers(self, call: Call) -> dict[str, str]:
        headers = limits_headers(call)
        if call.stream:
            # A stream's headers go out before its cost is known: what was reserved is
            # said instead; the settled cost is in the ledger event.
            headers["x-bastion-reserved-usd"] = f"{call.reserved_usd:.8f}"
        else:
            headers["x-bastion-cost-usd"] = f"{call.cost_usd:.8f}"
        headers["x-bastion-overhead-ms"] = f"{call.overhead_s() * 1000:.3f}"
        if call.served_model:
            headers["x-bastion-model"] = call.served_model
        return headers


def limits_headers(call: Call) -> dict[str, str]:
    headers: dict[str, str] = {}
    # The tightest limit of each metric, as OpenAI names them.
    for metric in ("requests", "tokens"):
        states = [s for s in call.limit_states if s.limit.metric == metric]
        if not states:
            continue
        tight = min(states, key=lambda s: s.remaining)
        headers[f"x-ratelimit-limit-{metric}"] = str(tight.limit.per_minute)
        headers[f"x-ratelimit-remaining-{metric}"] = str(max(0, tight.remaining))
        headers[f"x-ratelimit-reset-{metric}"] = f"{tight.reset_s:.3f}s"
    return headers


def ledger_event(call: Call, policy: Policy) -> EventIn:
    """A call's ledger event: who, what, the decisions taken, what it cost; never raw
    personal data (the prompt that is stored is the masked one, and only when asked)."""
    p = call.principal
    details: dict[str, Any] = {
        "endpoint": call.endpoint,
        "key": p.key_prefix,
        "team": p.team,
        "role": p.role,
        "requested_model": call.requested_model if call.model_known else None,
        "served_model": call.served_model,
        "provider": call.provider,
        "stream": call.stream,
        "status": call.status,
        "attempts": [a.as_dict() for a in call.trail.attempts],
        "decisions": call.decisions,
        "tokens": {
            "prompt": call.prompt_tokens,
            "completion": call.completion_tokens,
            "source": call.usage_source,
        },
        "cost_usd": round(call.cost_usd, 9),
        "reserved_usd": round(call.reserved_usd, 9),
        "latency_ms": round(call.elapsed_s() * 1000, 3),
        "upstream_ms": round(call.trail.upstream_s * 1000, 3),
        "overhead_ms": round(call.overhead_s() * 1000, 3),
    }
    if call.ttft_s is not None:
        details["ttft_ms"] = round(call.ttft_s * 1000, 3)
    if call.finish_reason:
        details["finish_reason"] = call.finish_reason
    if call.error_code:
        details["error_code"] = call.error_code
    if call.links:
        details["links"] = call.links
    if p.source:
        details["source"] = p.source  # a keyed digest of the caller's network, never the address
    content = None
    if call.sent is not None:
        # What crossed the boundary: the masked prompt and the raw answer.
        content = {"prompt": jsonio.dumps(call.sent, sort_keys=True).decode()}
        if call.answer_text:
            content["response"] = call.answer_text
    return EventIn(
        actor=p.actor,
        action=call.action,
        resource=call.resource,
        outcome=call.outcome,
        details=details,
        flags=tuple(sorted(call.flags)),
        content=content,
        store_content=policy.audit.store_content,
        subject=p.user,
    )
