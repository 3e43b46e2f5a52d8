"""The policy file's ``privacy`` and ``denylist`` sections (the policy schema imports these).

Smallest useful policy::

    privacy:
      prompt: {action: mask, entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN,
                                        IBAN_CODE, IP_ADDRESS, PERSON]}
      response: {action: flag}
      on_error: block
    denylist:
      - {pattern: "\\bSSN\\b", action: flag}

``SECRET`` in an entity list (or as a key of ``operators`` or ``thresholds``) stands for
every ``SECRET_*`` type (credentials: cloud keys, tokens, private keys, passwords).

Everything else has a default: per-type operators and thresholds, an allow-list, phone
regions, the vault's time-to-live and an optional NER backend.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.privacy.entities import (
    DEFAULT_ENTITIES,
    KNOWN_ENTITIES,
    SECRET_ENTITIES,
    SECRET_GROUP,
)

OperatorName = Literal["placeholder", "redact", "partial", "hash", "encrypt", "block"]

#: Regions whose national phone formats are recognised when the policy names none:
#: the largest English-speaking and EU markets. International (+CC) numbers are
#: recognised from every region regardless.
DEFAULT_PHONE_REGIONS: tuple[str, ...] = (
    "US",
    "GB",
    "DE",
    "FR",
    "ES",
    "IT",
    "NL",
    "IN",
    "AU",
    "BR",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_entities(values: list[str]) -> list[str]:
    """The types named, ``SECRET`` standing for every ``SECRET_*`` type."""
    expanded = list(
        dict.fromkeys(t for v in values for t in (SECRET_ENTITIES if v == SECRET_GROUP else [v]))
    )
    unknown = sorted(set(expanded) - KNOWN_ENTITIES)
    if unknown:
        known = ", ".join(sorted(KNOWN_ENTITIES))
        raise ValueError(
            f"unknown entity type(s) {', '.join(unknown)}; known: {known} "
            f"({SECRET_GROUP} for every SECRET_* type)"
        )
    return expanded


_V = TypeVar("_V")


def _by_type(value: dict[str, _V]) -> dict[str, _V]:
    """A per-type setting with ``SECRET`` expanded; a type named on its own wins."""
    _check_entities(list(value))
    out: dict[str, _V] = {}
    for name, setting in value.items():
        if name == SECRET_GROUP:
            for t in SECRET_ENTITIES:
                out.setdefault(t, setting)
        else:
            out[name] = setting
    return out


class OperatorSpec(_Strict):
    """How one entity type is masked."""

    type: OperatorName = "placeholder"
    #: ``partial``: how many trailing letters or digits stay visible.
    keep_last: Annotated[int, Field(ge=0, le=8)] = 4
    #: ``partial``: the character that hides the rest.
    mask_char: Annotated[str, Field(min_length=1, max_length=1)] = "*"
    #: ``redact``: what replaces the value.
    replacement: str = "[REDACTED]"


class PromptPolicy(_Strict):
    #: ``mask``: replace findings per operator; ``flag``: forward as is, record the types;
    #: ``block``: refuse a prompt that holds any of the entities; ``off``: skip detection.
    action: Literal["mask", "flag", "block", "off"] = "mask"
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    #: Per-type operator; types not named use ``default_operator``.
    operators: dict[str, OperatorSpec | OperatorName] = Field(default_factory=dict)
    default_operator: OperatorName = "placeholder"

    _entities = field_validator("entities")(_check_entities)

    @field_validator("operators")
    @classmethod
    def _operator_types(
        cls, value: dict[str, OperatorSpec | OperatorName]
    ) -> dict[str, OperatorSpec | OperatorName]:
        return _by_type(value)

    def operator_for(self, entity_type: str) -> OperatorSpec:
        spec = self.operators.get(entity_type, self.default_operator)
        return OperatorSpec(type=spec) if isinstance(spec, str) else spec


class ResponsePolicy(_Strict):
    #: What a leak in the model's answer does: ``flag`` records it, ``redact`` replaces it,
    #: ``block`` refuses the answer, ``off`` skips the scan.
    action: Literal["flag", "redact", "block", "off"] = "flag"
    #: Put the originals back in place of the placeholders the model echoes.
    restore: bool = True
    #: Entity types to look for in answers beyond the vault's own values; None = the
    #: prompt's list.
    entities: list[str] | None = None

    @field_validator("entities")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_entities(value)


class NerPolicy(_Strict):
    """An optional model-based recognizer, for users who install one."""

    backend: Literal["presidio", "gliner"]
    #: spaCy model name (presidio) or a local path or hub id already cached (gliner).
    model: str = "en_core_web_lg"
    entities: list[str] = Field(default_factory=lambda: ["PERSON", "LOCATION"])
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5

    _entities = field_validator("entities")(_check_entities)


class PrivacyPolicy(_Strict):
    prompt: PromptPolicy = Field(default_factory=PromptPolicy)
    response: ResponsePolicy = Field(default_factory=ResponsePolicy)
    #: Detection that raises refuses the request (``block``) or replaces every text it
    #: could not check with a redaction (``redact``). Never forwards unchecked text.
    on_error: Literal["block", "redact"] = "block"
    #: Per-type minimum score; types not named use ``default_threshold``.
    thresholds: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)
    default_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    #: Values that are never personal data here (the company's support address).
    #: Compared case-insensitively, whole value.
    allow_list: list[str] = Field(default_factory=list)
    #: Regular expressions; a finding that one matches entirely is ignored.
    allow_patterns: list[str] = Field(default_factory=list)
    #: ISO 3166 regions whose national phone formats are recognised.
    phone_regions: list[str] = Field(default_factory=lambda: list(DEFAULT_PHONE_REGIONS))
    #: How many words before a finding are searched for its context words.
    context_window: Annotated[int, Field(ge=0, le=20)] = 5
    #: How long a conversation's vault lives after its last use.
    vault_ttl_seconds: Annotated[float, Field(gt=0)] = 3600.0
    ner: NerPolicy | None = None

    @field_validator("thresholds")
    @classmethod
    def _threshold_types(cls, value: dict[str, float]) -> dict[str, float]:
        return _by_type(value)

    @field_validator("allow_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"allow_patterns: {pattern!r} is not a valid regex: {exc}"
                ) from exc
        return value

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        import phonenumbers

        supported = phonenumbers.SUPPORTED_REGIONS
        bad = [r for r in value if r.upper() not in supported]
        if bad:
            raise ValueError(
                f"unknown phone region(s) {', '.join(bad)}; use ISO 3166 codes (GB, not UK)"
            )
        return [r.upper() for r in value]


class DenylistEntry(_Strict):
    """A term or pattern that flags or blocks a prompt (and a response)."""

    #: A regular expression (``\\bSSN\\b``).
    pattern: str | None = None
    #: A literal term, matched case-insensitively as a whole word.
    term: str | None = None
    action: Literal["flag", "block"] = "flag"
    #: The flag written to the audit event; defaults to the term or pattern.
    name: str | None = None
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> DenylistEntry:
        if (self.pattern is None) == (self.term is None):
            raise ValueError("a denylist entry needs exactly one of 'pattern' or 'term'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(
                    f"denylist pattern {self.pattern!r} is not a valid regex: {exc}"
                ) from exc
        return self

    @property
    def label(self) -> str:
        return self.name or self.term or self.pattern or ""

    def regex(self) -> str:
        if self.term is not None:
            return r"(?<!\w)" + re.escape(self.term) + r"(?!\w)"
        assert self.pattern is not None
        return self.pattern
