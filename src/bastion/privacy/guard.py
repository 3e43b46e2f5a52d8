"""The privacy guard: what the gateway calls on every prompt and every answer.

    guard = PrivacyGuard(policy.privacy, policy.denylist, keys=PrivacyKeys(...))
    vault = guard.vault(conversation_id)          # None: one request
    masked = guard.protect_chat(body, vault)      # raises PrivacyError subclasses
    ... send masked.body upstream ...
    answer = guard.check_response(raw_text, vault)        # non-streamed text
    restorer = guard.stream_restorer(vault)               # streamed chunks

Fail closed: if detection itself raises, ``protect_*`` raise :class:`DetectionFailed`
(``on_error: block``) or replace the text it could not check with ``[REDACTED]``
(``on_error: redact``); unchecked text is never returned.

Flags are strings safe for the audit ledger: they name entity types and deny-list
entries (``pii:EMAIL_ADDRESS``, ``denylist:SSN``, ``pii_leak:PHONE_NUMBER``), never values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bastion.privacy.chat import ChatStreamRestorer, map_request_texts, restore_response
from bastion.privacy.config import DenylistEntry, OperatorSpec, PrivacyPolicy
from bastion.privacy.denylist import Denylist
from bastion.privacy.engine import Analyzer
from bastion.privacy.entities import Span
from bastion.privacy.errors import DetectionFailed, LeakBlocked, PrivacyBlocked, PrivacyError
from bastion.privacy.leaks import Leak, LeakScanner, redact_leaks
from bastion.privacy.operators import Operators, PrivacyKeys
from bastion.privacy.recognizers import Recognizer
from bastion.privacy.restore import Restored, restore
from bastion.privacy.vault import Vault, VaultStore

T = TypeVar("T")
UNCHECKED = "[REDACTED]"


@dataclass
class Protected(Generic[T]):
    """A masked prompt (``str``) or request body (``dict``) and what was found in it."""

    value: T
    #: Findings per entity type (counts only, never values).
    counts: dict[str, int] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    @property
    def body(self) -> T:
        return self.value


@dataclass
class ResponseCheck:
    """The answer as the user should see it, and what the scan found."""

    text: str
    leaks: list[Leak] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


class PrivacyGuard:
    def __init__(
        self,
        policy: PrivacyPolicy | None = None,
        denylist: Sequence[DenylistEntry] = (),
        *,
        keys: PrivacyKeys | None = None,
        vaults: VaultStore | None = None,
        analyzer: Analyzer | None = None,
        ner: Recognizer | None = None,
    ) -> None:
        self.policy = policy or PrivacyPolicy()
        p = self.policy
        if ner is None and p.ner is not None:
            from bastion.privacy.ner import load_ner

            ner = load_ner(p.ner)
        extra = (ner,) if ner is not None else ()
        self.analyzer = analyzer or Analyzer.from_policy(p, extra_recognizers=extra)
        # The name (and place) lists load now, once per process, not on the first request.
        self.analyzer.warm()
        response_entities = p.response.entities
        if response_entities is None or frozenset(response_entities) == self.analyzer.entities:
            self.response_analyzer = self.analyzer
        else:
            self.response_analyzer = Analyzer.from_policy(p, response_entities, extra)
            self.response_analyzer.warm()
        self.operators = Operators(
            {t: p.prompt.operator_for(t) for t in p.prompt.operators},
            OperatorSpec(type=p.prompt.default_operator),
            keys or PrivacyKeys(),
        )
        self.denylist = Denylist(denylist)
        self.vaults = vaults or VaultStore(ttl_seconds=p.vault_ttl_seconds)
        self.scanner = LeakScanner(self.response_analyzer)

    # --- prompts ----------------------------------------------------------------

    def vault(self, conversation_id: str | None = None) -> Vault:
        return self.vaults.get(conversation_id)

    def analyze(self, text: str) -> list[Span]:
        """The analyzer's findings; any failure of it becomes DetectionFailed."""
        try:
            return self.analyzer.analyze(text)
        except PrivacyError:
            raise
        except Exception as exc:
            raise DetectionFailed(
                "personal-data detection failed, so the request was not forwarded; "
                "retry, and report it if it persists",
                cause=type(exc).__name__,
            ) from exc

    def protect_text(self, text: str, vault: Vault) -> Protected[str]:
        """One prompt text, masked (or checked) per the policy."""
        counts: Counter[str] = Counter()
        flags: set[str] = set(self.denylist.check(text))
        masked = self._protect(text, vault, counts, flags)
        return Protected(masked, dict(counts), _flags(counts, flags))

    def protect_chat(self, body: Mapping[str, Any], vault: Vault) -> Protected[dict[str, Any]]:
        """Every text of a chat request masked: messages, parts, tool calls, tool results."""
        counts: Counter[str] = Counter()
        flags: set[str] = set()

        def fn(text: str) -> str:
            flags.update(self.denylist.check(text))
            return self._protect(text, vault, counts, flags)

        masked = map_request_texts(body, fn)
        return Protected(masked, dict(counts), _flags(counts, flags))

    def _protect(self, text: str, vault: Vault, counts: Counter[str], flags: set[str]) -> str:
        action = self.policy.prompt.action
        if action == "off" or not text:
            return text
        try:
            spans = self.analyze(text)
        except DetectionFailed:
            if self.policy.on_error == "block":
                raise
            flags.add("privacy_error")
            return UNCHECKED
        counts.update(s.entity_type for s in spans)
        if not spans or action == "flag":
            return text
        if action == "block":
            types = ", ".join(sorted({s.entity_type for s in spans}))
            raise PrivacyBlocked(
                f"the request contains personal data ({types}) and the privacy policy blocks "
                "such requests; remove it and retry",
                entity_types=sorted({s.entity_type for s in spans}),
            )
        return self.operators.apply(text, spans, vault)

    # --- answers ----------------------------------------------------------------

    def check_response(self, text: str, vault: Vault) -> ResponseCheck:
        """Scan the model's raw answer for leaks, then restore placeholders.

        Raises LeakBlocked when the policy says ``block`` and something leaked.
        """
        rp = self.policy.response
        leaks: list[Leak] = []
        flags: set[str] = set()
        if rp.action != "off":
            try:
                leaks = self.scanner.scan(text, vault)
            except PrivacyError:
                raise
            except Exception as exc:
                raise DetectionFailed(
                    "scanning the answer for personal data failed, so it was not returned",
                    cause=type(exc).__name__,
                ) from exc
            flags.update(f"pii_leak:{leak.entity_type}" for leak in leaks)
            if leaks and rp.action == "block":
                raise LeakBlocked(
                    "the model's answer contained personal data and the privacy policy blocks "
                    "such answers",
                    entity_types=sorted({leak.entity_type for leak in leaks}),
                )
            if leaks and rp.action == "redact":
                text = redact_leaks(text, leaks)
        flags.update(self.denylist.check_flags(text))
        restored = restore(text, vault) if rp.restore else Restored(text)
        if restored.invented:
            flags.add("invented_placeholder")
        return ResponseCheck(restored.text, leaks, restored.invented, sorted(flags))

    def restore_text(self, text: str, vault: Vault) -> Restored:
        return restore(text, vault)

    def restore_chat(
        self, body: Mapping[str, Any], vault: Vault
    ) -> tuple[dict[str, Any], list[str]]:
        """A non-streamed chat completion with placeholders restored; and invented ones."""
        return restore_response(body, vault)

    def stream_restorer(self, vault: Vault) -> ChatStreamRestorer:
        return ChatStreamRestorer(vault)


def _flags(counts: Counter[str], flags: set[str]) -> list[str]:
    return sorted(flags | {f"pii:{t}" for t in counts})
