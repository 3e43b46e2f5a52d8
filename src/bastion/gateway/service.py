"""The gateway's data path: one call from admission to audit (DESIGN.md, steps 1–11).

:class:`Gateway` is plain Python; the HTTP routes in ``bastion.api.routes.gateway``
only parse, call it and render. Authentication (step 1) has happened before it is called.
A streamed answer's relay is in ``streams.py`` (a base class of Gateway), a call's
record in ``calls.py``.

Every call — served, refused or failed — ends in exactly one ledger event, committed
before the response completes (for a stream: before ``[DONE]``, or before the error
event that ends it). A reservation taken at admission is always settled or released,
also when the client goes away mid-stream (the accounting runs shielded from
cancellation).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any

import anyio

from bastion import jsonio
from bastion.audit import EventIn
from bastion.auth.principal import Principal
from bastion.errors import BastionError, InvalidInput
from bastion.gateway.access import Access, resolve_access
from bastion.gateway.breaker import CircuitBreaker, Health, State
from bastion.gateway.calls import Call, Reply
from bastion.gateway.counters import Admission, Counters, Reservation
from bastion.gateway.errors import (
    BudgetExceeded,
    ContextLengthExceeded,
    CountersUnavailable,
    ModelNotAllowed,
    ModelNotFound,
    RateLimited,
    RequestTooLarge,
    UpstreamFailure,
)
from bastion.gateway.health import HealthReport, publish, report, set_state
from bastion.gateway.pricing import cost_usd, worst_case_usd
from bastion.gateway.providers import registry
from bastion.gateway.providers.base import JSON, InProcessProvider, Provider, Target
from bastion.gateway.requests import ChatRequest, parse_chat, parse_embeddings
from bastion.gateway.resilience import BREAKER_KINDS, Resilience
from bastion.gateway.streams import Streams
from bastion.gateway.tokens import count_inputs, count_prompt, count_text
from bastion.gateway.upstream import (
    Transport,
)
from bastion.policy.loader import PolicyError, PolicyIssue
from bastion.policy.schema import ModelConfig, Policy
from bastion.privacy import PrivacyGuard, PrivacyKeys, Vault
from bastion.privacy.chat import map_json_strings
from bastion.privacy.errors import PrivacyError
from bastion.runtime import Runtime
from bastion.settings import secret_from_env

log = logging.getLogger("bastion.gateway")

DEFAULT_MAX_TOKENS = 4096
#: How long a settlement Redis could not take is retried (the reservation's grace).
SETTLE_RETRY_FOR_S = 3600.0


class Gateway(Streams):
    def __init__(
        self,
        runtime: Runtime,
        counters: Counters,
        *,
        transport: Transport | None = None,
        privacy_keys: PrivacyKeys | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.counters = counters
        self.transport = transport or Transport()
        self.health = Health(on_change=self._breaker_changed)
        self.resilience = Resilience(self.health, max_wait_s=self.settings.gateway_max_retry_wait_s)
        self.privacy_keys = privacy_keys or PrivacyKeys()
        self._guard: tuple[Policy, PrivacyGuard] | None = None
        self._deferred: set[asyncio.Task[None]] = set()
        self._process_key = secrets.token_bytes(32)  # only without configured privacy keys
        runtime.policy.checks.append(self.check_policy)

    async def aclose(self) -> None:
        if self._deferred:  # settlements still owed get a last chance
            await asyncio.wait(set(self._deferred), timeout=5)
        await self.transport.aclose()
        await self.counters.aclose()

    def warm(self) -> None:
        """Load what the first call would otherwise load (name lists, the tokenizer),
        so no caller pays for it. Run at startup, before the server takes requests."""
        guard = self.guard(self.policy)
        guard.analyze("Write to Jane Doe at jane@example.com or +1 415 555 0132.")
        count_text("warm")

    # --- policy -----------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self.runtime.policy.policy

    def guard(self, policy: Policy) -> PrivacyGuard:
        cached = self._guard
        if cached is not None and cached[0] is policy:  # the object, not id(): ids get reused
            return cached[1]
        vaults = cached[1].vaults if cached is not None else None
        guard = PrivacyGuard(policy.privacy, policy.denylist, keys=self.privacy_keys, vaults=vaults)
        self._guard = (policy, guard)
        return guard

    def check_policy(self, policy: Policy) -> None:
        """A reloaded policy's guard, built before the policy is swapped in: a policy
        whose privacy section cannot run here (an NER backend that is not installed) is
        rejected, and the old one stays in force, rather than failing every call."""
        try:
            self.guard(policy)
        except PrivacyError as exc:
            raise PolicyError(
                [PolicyIssue(str(self.runtime.policy.path), None, None, "privacy", exc.message)]
            ) from exc

    def models_for(self, principal: Principal) -> list[tuple[str, ModelConfig]]:
        policy = self.policy
        access = resolve_access(policy, principal)
        return [(name, cfg) for name, cfg in policy.models.items() if access.allows(name)]

    def _model(
        self, policy: Policy, access: Access, name: str, kind: str, call: Call
    ) -> ModelConfig:
        cfg = policy.models.get(name)
        if cfg is None:
            raise ModelNotFound(f"the model {name!r} does not exist", param="model")
        call.model_known = True
        team = call.principal.team
        if team and team not in policy.teams:
            call.decisions["model"] = "denied"
            raise ModelNotAllowed(
                f"your key's team {team!r} is not in the policy, so it may use no model; "
                "ask an admin to declare the team or to give you a key without it",
                param="model",
            )
        if not access.allows(name):
            call.decisions["model"] = "denied"
            raise ModelNotAllowed(
                f"your key may not use the model {name!r}; GET /v1/models lists the ones it may",
                param="model",
            )
        if cfg.kind != kind:
            raise InvalidInput(
                f"the model {name!r} is a {cfg.kind} model; use the "
                f"{'embeddings' if cfg.kind == 'embedding' else 'chat completions'} endpoint",
                param="model",
                code="model_kind_mismatch",
            )
        call.decisions["model"] = "allowed"
        return cfg

    def _chain(self, policy: Policy, access: Access, name: str, kind: str) -> list[str]:
        chain = [name]
        for fallback in policy.models[name].fallbacks:
            cfg = policy.models.get(fallback)
            if cfg and cfg.kind == kind and access.allows(fallback) and fallback not in chain:
                chain.append(fallback)
        return chain

    def _target(self, policy: Policy, name: str) -> Target | UpstreamFailure:
        cfg = policy.models[name]
        provider_cfg = policy.providers.get(cfg.provider)
        if provider_cfg is None:  # the built-in local provider
            from bastion.policy.schema import ProviderConfig

            provider_cfg = ProviderConfig(kind="local")
        api_key = None
        if provider_cfg.api_key_env:
            api_key = secret_from_env(provider_cfg.api_key_env)
            if api_key is None:
                return UpstreamFailure(
                    "auth",
                    f"the provider {cfg.provider!r} has no API key "
                    f"(environment variable {provider_cfg.api_key_env} is not set)",
                )
        return Target(name, cfg.upstream_model or name, cfg.provider, provider_cfg, api_key)

    # --- admission ----------------------------------------------------------------

    async def _admit(
        self, policy: Policy, access: Access, tokens: int, cost: float, call: Call
    ) -> Reservation | None:
        admission = Admission(access.rate_limits, access.budgets, tokens, cost)
        call.reserved_usd = cost
        metrics = self.runtime.metrics
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
            return None
        call.decisions["limits"] = "admitted"
        call.decisions["budget"] = "reserved"
        call.limit_states = list(reservation.limits)
        return reservation

    async def _settle(self, reservation: Reservation | None, call: Call) -> None:
        if reservation is None:
            return
        charge = call.outcome in ("success", "cancelled") or bool(call.completion_tokens)
        if charge and call.cost_usd > call.reserved_usd + 1e-9:
            # The upstream counted more than the estimate (its own tokenizer, images,
            # hidden tool prompts): the budget can be passed by the difference.
            call.flags.add("reservation_exceeded")
            self.runtime.metrics.llm_reservation_exceeded.labels(call.model_label).inc()
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
            self.runtime.metrics.llm_counter_errors.labels("settle").inc()
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

    def _limits_headers(self, call: Call) -> dict[str, str]:
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

    def _headers(self, call: Call) -> dict[str, str]:
        headers = self._limits_headers(call)
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

    # --- chat ---------------------------------------------------------------------

    async def chat(
        self, principal: Principal, body: Any, *, conversation_id: str | None = None
    ) -> Reply:
        call = Call(principal, "chat")
        reservation: Reservation | None = None
        try:
            request = parse_chat(body)
            call.requested_model = request.model
            call.stream = request.stream
            policy = self.policy
            access = resolve_access(policy, principal)
            self._model(policy, access, request.model, "chat", call)
            text_tokens, images = count_prompt(request.messages, request.tools)
            chain, max_tokens = self._plan(
                policy,
                access,
                request,
                self._chain(policy, access, request.model, "chat"),
                text_tokens,
                images,
                call,
            )
            prompts = {m: text_tokens + images * policy.models[m].image_tokens for m in chain}
            call.prompt_tokens = prompts[chain[0]]
            worst = max(
                worst_case_usd(policy.models[m], prompts[m], max_tokens) * request.n for m in chain
            )
            reservation = await self._admit(
                policy, access, max(prompts.values()) + max_tokens * request.n, worst, call
            )
            guard = self.guard(policy)
            # A conversation's vault belongs to its user: another caller naming the same
            # conversation id must not get that user's values restored into its answers.
            vault = guard.vault(
                None if conversation_id is None else f"{principal.user}\x00{conversation_id}"
            )
            protected = guard.protect_chat(body, vault)
            call.flags.update(protected.flags)
            call.decisions["privacy"] = (
                {"masked": sum(protected.counts.values())} if protected.counts else "clean"
            )
            sent = protected.body
            if request.max_tokens is None:
                # Never let an upstream generate more than the reservation covers.
                sent["max_tokens"] = max_tokens
            self._pseudonymise(sent)
            call.sent = sent
            targets = [self._target(policy, m) for m in chain]
            if request.stream:
                call.trail.defer_verdict = True  # a stream is judged when it ends
                return await self._chat_stream(
                    call, request, sent, targets, guard, vault, reservation, policy
                )
            completion, target = await self.resilience.run(
                targets,
                lambda t, left: self._complete(t, sent, left),
                call.trail,
                self._deadline(),
            )
            call.served_model, call.provider = target.model, target.provider
            answer = self._finish_completion(completion, call, guard, vault, policy)
            await self._settle(reservation, call)
            reservation = None
            await self._audit(call, policy)
            self._observe(call)
            return Reply(answer, self._headers(call))
        except BaseException as exc:
            with anyio.CancelScope(shield=True):  # settle and record even when cancelled
                await self._fail(call, exc, reservation)
            raise

    def _pseudonymise(self, sent: JSON) -> None:
        """Who the caller's end user is, and participant names, leave only as keyed
        digests: stable (the provider can still tell users apart) but not personal data
        (OpenAI's ``user``; Anthropic's ``metadata.user_id`` must not be either)."""
        if isinstance(sent.get("user"), str):
            sent["user"] = self._digest("user", sent["user"])
        for message in sent.get("messages") or []:
            if isinstance(message, dict) and isinstance(message.get("name"), str):
                message["name"] = self._digest("name", message["name"])

    def _digest(self, kind: str, value: str) -> str:
        key = self.privacy_keys.hmac_key or self._process_key
        mac = hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256)
        return f"{kind}_{mac.hexdigest()[:20]}"

    def _plan(
        self,
        policy: Policy,
        access: Access,
        request: ChatRequest,
        chain: list[str],
        text_tokens: int,
        images: int,
        call: Call,
    ) -> tuple[list[str], int]:
        """The models of the chain this request fits, and the output cap sent to them.

        A prompt too long for the requested model goes to the first fallback whose
        window holds it (declare a larger model there); only when none does is the call
        refused. The cap is the caller's, else the largest the first fitting model, the
        caller's limits and the reservation allow.
        """
        first_error: BastionError | None = None
        cap: int | None = request.max_tokens
        fitting: list[str] = []
        for name in chain:
            cfg = policy.models[name]
            prompt = text_tokens + images * cfg.image_tokens
            try:
                chosen = self._max_tokens(request, cfg, access, prompt, cap)
            except (ContextLengthExceeded, RequestTooLarge) as exc:
                first_error = first_error or exc
                continue
            cap = chosen if cap is None else cap
            fitting.append(name)
        if not fitting or cap is None:
            assert first_error is not None
            raise first_error
        if fitting[0] != chain[0]:
            call.decisions["context"] = f"routed to {fitting[0]}"
        return fitting, cap

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.settings.gateway_request_timeout_s

    def _max_tokens(
        self,
        request: ChatRequest,
        model: ModelConfig,
        access: Access,
        prompt_tokens: int,
        asked: int | None,
    ) -> int:
        cap = access.max_tokens_per_request
        field_name = request.max_tokens_field
        if asked is not None and cap is not None and asked > cap:
            raise RequestTooLarge(
                f"{field_name}={asked} is more than your limit of {cap} tokens per request",
                param=field_name,
            )
        if asked is not None and model.max_output_tokens and asked > model.max_output_tokens:
            raise RequestTooLarge(
                f"{field_name}={asked} is more than the model's {model.max_output_tokens} "
                "output tokens",
                param=field_name,
            )
        window = model.context_window
        if window is not None and prompt_tokens >= window:
            raise ContextLengthExceeded(
                f"the prompt is {prompt_tokens} tokens; the model's context window is {window}",
                param="messages",
            )
        if asked is None:
            defaults = [d for d in (cap, model.max_output_tokens) if d]
            asked = min(defaults) if defaults else DEFAULT_MAX_TOKENS
            if window is not None:
                asked = min(asked, window - prompt_tokens)
            # A token limit below the default must not refuse every call without a cap.
            per_minute = [
                r.per_minute - prompt_tokens for r in access.rate_limits if r.metric == "tokens"
            ]
            if per_minute and 0 < min(per_minute) < asked:
                asked = min(per_minute)
        if window is not None and prompt_tokens + asked > window:
            raise ContextLengthExceeded(
                f"the prompt ({prompt_tokens} tokens) plus {field_name}={asked} exceeds the "
                f"model's context window of {window} tokens",
                param="messages",
            )
        return asked

    def _provider(self, target: Target) -> Provider | InProcessProvider:
        return registry.get(target.config.kind)

    async def _complete(self, target: Target, body: JSON, left: float) -> JSON:
        provider = self._provider(target)
        if isinstance(provider, InProcessProvider):
            return await provider.complete(target, {**body, "model": target.upstream_model})
        request = provider.chat_request(target, body, stream=False)
        data = await self.transport.post_json(
            provider, target, request, min(left, target.config.timeout_s)
        )
        return provider.chat_response(target, data)

    def _finish_completion(
        self, completion: JSON, call: Call, guard: PrivacyGuard, vault: Vault, policy: Policy
    ) -> JSON:
        # The completion was parsed for this call alone: changed in place, never shared.
        completion["model"] = call.served_model
        messages: list[JSON] = []
        texts = []
        for choice in completion.get("choices") or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            call.finish_reason = choice.get("finish_reason") or call.finish_reason
            messages.append(message)
            if isinstance(message.get("content"), str):
                texts.append(message["content"])
            for tool_call in message.get("tool_calls") or []:
                texts.append(str((tool_call.get("function") or {}).get("arguments", "")))
        call.answer_text = "\n".join(texts)
        usage = completion.get("usage")
        # Accounted before any check: the upstream has been paid whatever happens next.
        self._account(call, usage if isinstance(usage, dict) else None, policy)

        def check(text: str) -> str:
            checked = guard.check_response(text, vault)
            call.flags.update(checked.flags)
            return checked.text

        for message in messages:
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = check(content)
            for tool_call in message.get("tool_calls") or []:
                function = tool_call.get("function") if isinstance(tool_call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    # Arguments are checked like content (flag, redact or block), value by
                    # value so that a redaction keeps them JSON.
                    raw = function["arguments"]
                    checked_raw = map_json_strings(raw, check)
                    if json.loads(checked_raw) != _loads_or(raw):
                        function["arguments"] = checked_raw
        restored, invented = guard.restore_chat(completion, vault)
        if invented:
            call.flags.add("invented_placeholder")
        if call.finish_reason == "length":
            call.flags.add("truncated_by_max_tokens")
        return restored

    def _account(self, call: Call, usage: Mapping[str, Any] | None, policy: Policy) -> None:
        if usage and isinstance(usage.get("completion_tokens"), int):
            call.usage_source = "upstream"
            if isinstance(usage.get("prompt_tokens"), int):
                call.prompt_tokens = usage["prompt_tokens"]
            call.completion_tokens = usage["completion_tokens"]
        else:
            call.usage_source = "counted"
            call.completion_tokens = count_text(call.answer_text)
        details = usage.get("prompt_tokens_details") if usage else None
        cached = written = 0
        if isinstance(details, Mapping):
            cached = _count(details.get("cached_tokens"))
            written = _count(details.get("cache_write_tokens"))
        model = policy.models.get(call.served_model or "")
        if model is not None:
            call.cost_usd = cost_usd(
                model,
                call.prompt_tokens,
                call.completion_tokens,
                cached_tokens=cached,
                cache_write_tokens=written,
            )

    # --- embeddings ---------------------------------------------------------------------

    async def embeddings(self, principal: Principal, body: Any) -> Reply:
        call = Call(principal, "embeddings")
        reservation: Reservation | None = None
        try:
            request = parse_embeddings(body)
            call.requested_model = request.model
            policy = self.policy
            access = resolve_access(policy, principal)
            model = self._model(policy, access, request.model, "embedding", call)
            tokens = count_inputs(request.input)
            call.prompt_tokens = tokens
            if (
                model.context_window is not None
                and isinstance(request.input, str)
                and tokens > model.context_window
            ):
                raise ContextLengthExceeded(
                    f"the input is {tokens} tokens; the model accepts {model.context_window}",
                    param="input",
                )
            chain = self._chain(policy, access, request.model, "embedding")
            worst = max(worst_case_usd(policy.models[m], tokens, 0) for m in chain)
            reservation = await self._admit(policy, access, tokens, worst, call)
            guard = self.guard(policy)
            vault = guard.vault(None)
            sent = dict(body)
            sent["input"] = _mask_inputs(guard, vault, request.input, call)
            call.sent = sent
            targets = [self._target(policy, m) for m in chain]
            answer, target = await self.resilience.run(
                targets, lambda t, left: self._embed(t, sent, left), call.trail, self._deadline()
            )
            call.served_model, call.provider = target.model, target.provider
            answer = dict(answer)
            answer["model"] = target.model
            usage = answer.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                call.prompt_tokens = usage["prompt_tokens"]
                call.usage_source = "upstream"
            else:
                call.usage_source = "counted"
            served = policy.models[target.model]
            call.cost_usd = cost_usd(served, call.prompt_tokens, 0)
            await self._settle(reservation, call)
            reservation = None
            await self._audit(call, policy)
            self._observe(call)
            return Reply(answer, self._headers(call))
        except BaseException as exc:
            with anyio.CancelScope(shield=True):  # settle and record even when cancelled
                await self._fail(call, exc, reservation)
            raise

    async def _embed(self, target: Target, body: JSON, left: float) -> JSON:
        provider = self._provider(target)
        if isinstance(provider, InProcessProvider):
            return await provider.embed(target, {**body, "model": target.upstream_model})
        request = provider.embeddings_request(target, body)
        data = await self.transport.post_json(
            provider, target, request, min(left, target.config.timeout_s)
        )
        return provider.embeddings_response(target, data)

    # --- the end of every call -------------------------------------------------------------

    async def _fail(self, call: Call, exc: BaseException, reservation: Reservation | None) -> None:
        if call.done:
            return
        call.done = True
        if isinstance(exc, UpstreamFailure):
            call.trail.failed = exc.kind
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
        policy = self.policy
        await self._settle(reservation, call)
        try:
            await self._audit(call, policy)
        except Exception:  # the original error is what the caller must see
            log.exception("could not record a failed call in the ledger")
        self._observe(call)

    async def _audit(self, call: Call, policy: Policy) -> None:
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
        content = None
        if call.sent is not None:
            # What crossed the boundary: the masked prompt and the raw answer.
            content = {"prompt": jsonio.dumps(call.sent, sort_keys=True).decode()}
            if call.answer_text:
                content["response"] = call.answer_text
        resource = f"model:{call.requested_model}" if call.model_known else "model:unknown"
        event = EventIn(
            actor=p.actor,
            action=f"llm.{call.endpoint}",
            resource=resource,
            outcome=call.outcome,
            details=details,
            flags=tuple(sorted(call.flags)),
            content=content,
            store_content=policy.audit.store_content,
            subject=p.user,
        )
        await self.runtime.ledger.append_async(event)

    def _observe(self, call: Call) -> None:
        """Metrics, and a stream's verdict on its deployment: run once, as a call ends."""
        owed = call.trail.owed
        if owed is not None:
            call.trail.owed = None
            if call.outcome == "success":
                owed.verdict(ok=True, fault=None)
            elif call.trail.failed in BREAKER_KINDS:  # broke off mid-stream
                owed.verdict(ok=False, fault=call.trail.failed)
            else:  # the client left, or Bastion's own step failed
                owed.abandon()
        m = self.runtime.metrics
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

    def _breaker_changed(self, breaker: CircuitBreaker, state: State) -> None:
        set_state(self.runtime.metrics, breaker.labels, state)

    def health_report(self) -> HealthReport:
        """Every deployment's breaker (and each provider's); also sets their gauges."""
        found = report(self.health, self.policy)
        publish(self.runtime.metrics, found)
        return found

    async def publish_budgets(self) -> None:
        """Set the remaining-budget gauge for every team budget in the policy."""
        from bastion.gateway.counters import BudgetLimit

        policy = self.policy
        limits = [
            BudgetLimit(f"team:{team}", b.usd, b.per)
            for team, cfg in policy.teams.items()
            for b in cfg.budgets
        ]
        if not limits:
            return
        states = await self.counters.budget_states(limits)
        for state in states:
            team = state.budget.scope.removeprefix("team:")
            self.runtime.metrics.llm_budget_remaining.labels(team, state.budget.per).set(
                state.remaining_usd
            )


def _mask_inputs(guard: PrivacyGuard, vault: Vault, value: Any, call: Call) -> Any:
    if isinstance(value, str):
        protected = guard.protect_text(value, vault)
        call.flags.update(protected.flags)
        return protected.value
    if isinstance(value, list):
        return [_mask_inputs(guard, vault, v, call) if isinstance(v, str) else v for v in value]
    return value


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _loads_or(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def derive_key(secret: bytes, label: str) -> bytes:
    return hmac.new(secret, label.encode(), hashlib.sha256).digest()
