"""The governance policy file's schema.

One YAML document (``version: 1``); its sections are the fields of :class:`Policy`.
Unknown keys are errors (a typo must not silently disable a rule). A domain's section
is owned by that domain's ``config`` module (``privacy`` and ``denylist`` by
:mod:`bastion.privacy.config`, ``monitoring`` by :mod:`bastion.monitoring.config`, and
so on for the other sections; ``mcp`` and the ``tools`` allow-lists of roles, teams,
users and keys by :mod:`bastion.toolgate.config`).
Cross-references (a model's provider, fallbacks, role model lists) are checked by
:func:`bastion.policy.loader.check_references` so that each error keeps its location.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from bastion.auth.permissions import DEFAULT_ROLE_PERMISSIONS, Permission
from bastion.delivery.config import DeliveryPolicy
from bastion.documents.config import DocumentsPolicy
from bastion.evidence.config import EvidencePolicy
from bastion.monitoring.config import MonitoringPolicy
from bastion.privacy.config import DenylistEntry, PrivacyPolicy
from bastion.rag.config import AnswersPolicy
from bastion.registry.config import RegistryPolicy
from bastion.serving.config import ServingPolicy
from bastion.toolgate.config import McpPolicy

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/+-]+$")]

BUILTIN_PROVIDERS = frozenset({"local"})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(Strict):
    kind: Literal["openai", "azure", "anthropic", "local"]
    base_url: HttpUrl | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout_s: PositiveFloat = 30.0
    connect_timeout_s: PositiveFloat = 5.0
    first_token_timeout_s: PositiveFloat | None = None
    stall_timeout_s: PositiveFloat | None = None
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    #: Failed calls in a row (each counted once, whatever its retries) that open the
    #: breaker of each of the provider's deployments, and how long it stays open before
    #: one probe call is let through (docs/gateway.md, "Circuit breakers").
    breaker_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    breaker_reset_s: PositiveFloat = 30.0
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    #: Which field carries the output cap upstream. ``max_completion_tokens`` is what
    #: OpenAI and Azure want (their reasoning models refuse ``max_tokens``); other
    #: OpenAI-compatible servers mostly read ``max_tokens``. Default: by kind and host.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None


class Price(Strict):
    input_per_1m: NonNegativeFloat
    output_per_1m: NonNegativeFloat
    #: Prompt tokens read from the provider's prompt cache (default: the input price).
    cached_input_per_1m: NonNegativeFloat | None = None
    #: Prompt tokens written to the provider's prompt cache (Anthropic charges extra;
    #: default: the input price).
    cache_write_per_1m: NonNegativeFloat | None = None


class ModelConfig(Strict):
    provider: str
    upstream_model: str | None = None
    price: Price | None = None
    context_window: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    fallbacks: list[str] = Field(default_factory=list)
    kind: Literal["chat", "embedding"] = "chat"
    #: What one image in a prompt may cost, in prompt tokens, for the worst-case
    #: reservation (high-detail images: up to ~1,600 on Claude and GPT-4o; GPT-4o-mini
    #: bills ~37,000).
    image_tokens: PositiveInt = 1600


class Limits(Strict):
    requests_per_minute: PositiveInt | None = None
    tokens_per_minute: PositiveInt | None = None


class Budget(Strict):
    usd: PositiveFloat
    per: Literal["day", "week", "month"]


class RoleConfig(Strict):
    models: list[str] = Field(default_factory=list)
    max_tokens_per_request: PositiveInt | None = None
    permissions: list[Permission] | None = None
    description: str | None = None
    #: MCP tools, prompts and resources the role may use (bastion.toolgate.config).
    tools: list[str] = Field(default_factory=list)


class TeamConfig(Strict):
    models: list[str] | None = None
    budgets: list[Budget] = Field(default_factory=list)
    limits: Limits | None = None
    max_tokens_per_request: PositiveInt | None = None
    tools: list[str] | None = None


class KeyRestrictions(Strict):
    """Narrowing stored with one API key (``bastion keys create --models … --rpm …``)."""

    models: list[str] | None = None
    max_tokens_per_request: PositiveInt | None = None
    limits: Limits | None = None
    budgets: list[Budget] = Field(default_factory=list)
    tools: list[str] | None = None


class UserConfig(Strict):
    models: list[str] | None = None
    budgets: list[Budget] = Field(default_factory=list)
    limits: Limits | None = None
    tools: list[str] | None = None


class Defaults(Strict):
    limits: Limits = Limits(requests_per_minute=60, tokens_per_minute=100_000)
    budgets: list[Budget] = Field(default_factory=list)
    on_counter_error: Literal["refuse", "allow"] = "refuse"


class AuditConfig(Strict):
    store_content: bool = False


class Retention(Strict):
    content_days: PositiveInt | None = None
    # Ledger events older than this go under a signed retention seal
    # (bastion.audit.retention); below six months Policy.notices() warns (EU AI Act Art. 19).
    events_days: PositiveInt | None = None


class Policy(Strict):
    version: Literal[1]
    providers: dict[Name, ProviderConfig] = Field(default_factory=dict)
    models: dict[Name, ModelConfig] = Field(default_factory=dict)
    roles: dict[Name, RoleConfig] = Field(default_factory=dict)
    teams: dict[Name, TeamConfig] = Field(default_factory=dict)
    users: dict[Name, UserConfig] = Field(default_factory=dict)
    defaults: Defaults = Defaults()
    privacy: PrivacyPolicy = PrivacyPolicy()
    denylist: list[DenylistEntry] = Field(default_factory=list)
    audit: AuditConfig = AuditConfig()
    retention: Retention = Retention()
    monitoring: MonitoringPolicy = MonitoringPolicy()
    registry: RegistryPolicy = RegistryPolicy()
    serving: ServingPolicy = ServingPolicy()
    delivery: DeliveryPolicy = DeliveryPolicy()
    evidence: EvidencePolicy = EvidencePolicy()
    documents: DocumentsPolicy = DocumentsPolicy()
    answers: AnswersPolicy = AnswersPolicy()
    mcp: McpPolicy = McpPolicy()

    def notices(self) -> list[str]:
        """Settings the file holds that have no effect (yet): say so rather than pretend."""
        notes = []
        days = self.retention.events_days
        if days is not None and days < 183:
            notes.append(
                f"retention.events_days is {days}: the EU AI Act (Art. 19) asks providers and "
                "deployers of high-risk AI systems to keep automatically generated logs for at "
                "least six months (183 days)"
            )
        return notes

    def role_names(self) -> set[str]:
        return set(DEFAULT_ROLE_PERMISSIONS) | set(self.roles)

    def models_for_role(self, role: str) -> list[str]:
        """The configured models a role may use (its patterns expanded)."""
        config = self.roles.get(role)
        if config is None:
            return []
        return [name for name in self.models if matches_any(name, config.models)]


def matches_any(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
