"""Which providers can answer now, and which models are answered by a fallback instead.

A provider whose policy names an ``api_key_env`` that is not set cannot be called: the
gateway then tries the model's fallbacks, so ``gpt-4.1-mini`` in the starter policy is
answered by ``local`` when ``OPENAI_API_KEY`` is missing. That is what an operator must
be told at start-up and by ``bastion status``, not only in a response header. Nothing
here calls a provider; "ready" means configured, not reachable.

Plain functions over the policy; the environment is read by the caller (``has_env``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bastion.policy.schema import BUILTIN_PROVIDERS, Policy

ProviderState = Literal["ready", "missing_key"]
ModelState = Literal["ready", "fallback", "unavailable"]


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    kind: str
    state: ProviderState
    base_url: str | None
    key_env: str | None  # the variable's name, never its value

    @property
    def detail(self) -> str:
        if self.state == "missing_key":
            return f"{self.key_env} is not set"
        if self.kind == "local":
            return "built in, offline"
        return f"key from {self.key_env}" if self.key_env else "no key needed"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"detail": self.detail}


@dataclass(frozen=True)
class ModelStatus:
    name: str
    kind: str
    provider: str
    state: ModelState
    answered_by: str | None  # the model that answers: itself, a fallback, or none
    reason: str  # why not itself ("" when ready)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def provider_statuses(policy: Policy, has_env: Callable[[str], bool]) -> list[ProviderStatus]:
    """Every provider the policy declares, and the built-in ``local`` when a model uses it."""
    out = [
        ProviderStatus(
            name=name,
            kind=cfg.kind,
            state="missing_key" if cfg.api_key_env and not has_env(cfg.api_key_env) else "ready",
            base_url=str(cfg.base_url) if cfg.base_url else None,
            key_env=cfg.api_key_env,
        )
        for name, cfg in sorted(policy.providers.items())
    ]
    used = {m.provider for m in policy.models.values()}
    for name in sorted((BUILTIN_PROVIDERS & used) - set(policy.providers)):
        out.append(ProviderStatus(name, "local", "ready", None, None))
    return out


def model_statuses(policy: Policy, has_env: Callable[[str], bool]) -> list[ModelStatus]:
    """Every model, with the model that answers it now (itself or its first ready
    fallback of the same kind, as the gateway would try them)."""
    ready = {p.name: p for p in provider_statuses(policy, has_env)}

    def is_ready(model: str) -> bool:
        provider = ready.get(policy.models[model].provider)
        return provider is not None and provider.state == "ready"

    out = []
    for name, cfg in sorted(policy.models.items()):
        if is_ready(name):
            out.append(ModelStatus(name, cfg.kind, cfg.provider, "ready", name, ""))
            continue
        provider = ready.get(cfg.provider)
        why = provider.detail if provider is not None else f"no provider {cfg.provider!r}"
        fallback = next(
            (
                f
                for f in cfg.fallbacks
                if f in policy.models and policy.models[f].kind == cfg.kind and is_ready(f)
            ),
            None,
        )
        if fallback is not None:
            out.append(
                ModelStatus(
                    name,
                    cfg.kind,
                    cfg.provider,
                    "fallback",
                    fallback,
                    why,
                )
            )
        else:
            out.append(
                ModelStatus(
                    name,
                    cfg.kind,
                    cfg.provider,
                    "unavailable",
                    None,
                    f"{why}; no fallback is ready, so calls fail",
                )
            )
    return out
