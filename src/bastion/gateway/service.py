"""The gateway's data path: one call from admission to audit (DESIGN.md, steps 1–11).

:class:`Gateway` is plain Python; the HTTP routes in ``bastion.api.routes.gateway``
only parse, call it and render. Authentication (step 1) has happened before it is called.
The stages every governed call shares (admit, settle, record, observe, and the
shielded failure path) are in ``lifecycle.py``; what comes back is billed and checked
in ``answers.py``; one attempt is sent by ``dispatch.py``; a streamed answer is relayed
by ``streams.py``; a call's record is in ``calls.py``.

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
import logging
import secrets
import uuid
from typing import Any

from pydantic import SecretStr

from bastion.auth.principal import Principal
from bastion.errors import BastionError, InvalidInput
from bastion.gateway.access import Access, resolve_access
from bastion.gateway.answers import account_embedding, finish_completion, mask_inputs
from bastion.gateway.breaker import CircuitBreaker, Health, State
from bastion.gateway.calls import Call, Reply
from bastion.gateway.counters import Counters
from bastion.gateway.dispatch import Dispatcher
from bastion.gateway.errors import (
    ContextLengthExceeded,
    ModelNotAllowed,
    ModelNotFound,
    RequestTooLarge,
    UpstreamFailure,
)
from bastion.gateway.health import HealthReport, publish, report, set_state
from bastion.gateway.lifecycle import Lifecycle
from bastion.gateway.pricing import worst_case_usd
from bastion.gateway.providers.base import JSON, Target
from bastion.gateway.requests import ChatRequest, parse_chat, parse_embeddings, read_json
from bastion.gateway.resilience import Resilience
from bastion.gateway.streams import OpenedStream, StreamRelay
from bastion.gateway.tokens import count_inputs, count_prompt, count_text
from bastion.gateway.upstream import Transport
from bastion.policy.loader import PolicyError, PolicyIssue
from bastion.policy.schema import ModelConfig, Policy
from bastion.privacy import PrivacyGuard, PrivacyKeys
from bastion.privacy.errors import PrivacyError
from bastion.runtime import Runtime
from bastion.settings import secret_from_env

log = logging.getLogger("bastion.gateway")

DEFAULT_MAX_TOKENS = 4096


class Gateway:
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
        self.transport = transport or Transport()
        self.dispatcher = Dispatcher(self.transport)
        self.health = Health(on_change=self._breaker_changed)
        self.resilience = Resilience(self.health, max_wait_s=self.settings.gateway_max_retry_wait_s)
        self.lifecycle = Lifecycle(counters, runtime.ledger, runtime.metrics)
        self.relay = StreamRelay(self.lifecycle)
        self.privacy_keys = privacy_keys or PrivacyKeys()
        self._guard: tuple[Policy, PrivacyGuard] | None = None
        self._keys: tuple[Policy, dict[str, SecretStr | None]] | None = None
        self._process_key = secrets.token_bytes(32)  # only without configured privacy keys
        runtime.policy.checks.append(self.check_policy)

    @property
    def counters(self) -> Counters:
        """The limit and budget counters the call lifecycle admits against."""
        return self.lifecycle.counters

    @counters.setter
    def counters(self, counters: Counters) -> None:
        self.lifecycle.counters = counters

    async def aclose(self) -> None:
        await self.lifecycle.aclose()
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
            api_key = self._provider_keys(policy).get(cfg.provider)
            if api_key is None:
                return UpstreamFailure(
                    "auth",
                    f"the provider {cfg.provider!r} has no API key "
                    f"(environment variable {provider_cfg.api_key_env} is not set)",
                )
        return Target(name, cfg.upstream_model or name, cfg.provider, provider_cfg, api_key)

    def _provider_keys(self, policy: Policy) -> dict[str, SecretStr | None]:
        """Each provider's key, read from the environment once per policy (at start and
        on every reload), not on every call."""
        cached = self._keys
        if cached is not None and cached[0] is policy:
            return cached[1]
        keys = {
            name: secret_from_env(cfg.api_key_env) if cfg.api_key_env else None
            for name, cfg in policy.providers.items()
        }
        self._keys = (policy, keys)
        return keys

    # --- chat ---------------------------------------------------------------------

    async def chat(
        self,
        principal: Principal,
        body: Any,
        *,
        conversation_id: str | None = None,
        links: dict[str, str] | None = None,
    ) -> Reply:
        call = Call(principal, "chat")
        if links:
            call.links = dict(links)
        policy = self.policy
        async with self.lifecycle.governed(call, policy):
            if isinstance(body, bytes | bytearray):
                body = read_json(body)  # a refusal here is recorded like any other
            request = parse_chat(body)
            call.requested_model = request.model
            call.stream = request.stream
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
            await self.lifecycle.admit(
                call, policy, access, max(prompts.values()) + max_tokens * request.n, worst
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
                loop = asyncio.get_running_loop()
                started = loop.time()
                (stream, first), target = await self.resilience.run(
                    targets,
                    lambda t, left: self.dispatcher.open_stream(t, sent, left),
                    call.trail,
                    self._deadline(),
                )
                call.ttft_s = loop.time() - started
                call.served_model, call.provider = target.model, target.provider
                opened = OpenedStream(call, request, stream, first, target, guard, vault, policy)
                return Reply(None, self.lifecycle.headers(call), self.relay.body(opened))
            completion, target = await self.resilience.run(
                targets,
                lambda t, left: self.dispatcher.complete(t, sent, left),
                call.trail,
                self._deadline(),
            )
            call.served_model, call.provider = target.model, target.provider
            answer = finish_completion(completion, call, guard, vault, policy)
            await self.lifecycle.finish(call, policy)
            return Reply(answer, self.lifecycle.headers(call))

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

    # --- embeddings ---------------------------------------------------------------------

    async def embeddings(self, principal: Principal, body: Any) -> Reply:
        call = Call(principal, "embeddings")
        policy = self.policy
        async with self.lifecycle.governed(call, policy):
            if isinstance(body, bytes | bytearray):
                body = read_json(body)
            request = parse_embeddings(body)
            call.requested_model = request.model
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
            await self.lifecycle.admit(call, policy, access, tokens, worst)
            guard = self.guard(policy)
            vault = guard.vault(None)
            sent = dict(body)
            sent["input"] = mask_inputs(guard, vault, request.input, call)
            call.sent = sent
            targets = [self._target(policy, m) for m in chain]
            answer, target = await self.resilience.run(
                targets,
                lambda t, left: self.dispatcher.embed(t, sent, left),
                call.trail,
                self._deadline(),
            )
            call.served_model, call.provider = target.model, target.provider
            answer = dict(answer)
            answer["model"] = target.model
            account_embedding(call, answer, policy)
            await self.lifecycle.finish(call, policy)
            return Reply(answer, self.lifecycle.headers(call))

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


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def derive_key(secret: bytes, label: str) -> bytes:
    return hmac.new(secret, label.encode(), hashlib.sha256).digest()
