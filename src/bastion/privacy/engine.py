"""The analyzer: every recognizer once over the text, then one resolution pass.

For each finding, in order: context words (whole words, within ``context_window`` words
before it, or a label among the first words after it) raise its score; the type's
threshold drops it or keeps it; the allow-list drops it; finally overlapping findings
are resolved by priority, then score, then length (an e-mail is not also a URL or a
name; an IP is not a phone).

Presidio's analyzer does the same job; this one differs where its issues point: no
model or suffix list is fetched, context words never match inside other words, phone
numbers cost one candidate pass instead of one pass per region, and overlaps are
resolved before results are returned.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence

from bastion.privacy import entities as E
from bastion.privacy.addresses import AddressRecognizer
from bastion.privacy.config import DEFAULT_PHONE_REGIONS, PrivacyPolicy
from bastion.privacy.entities import Span
from bastion.privacy.names import NameLists, NameRecognizer, PlaceLists
from bastion.privacy.phones import PhoneRecognizer
from bastion.privacy.recognizers import (
    CONTEXT,
    CONTEXT_AFTER,
    CONTEXT_AFTER_WORDS,
    EmailRecognizer,
    IbanRecognizer,
    NationalIdRecognizer,
    NumberRecognizer,
    Recognizer,
    UrlRecognizer,
)
from bastion.privacy.secrets import SecretRecognizer

_WORDS = re.compile(r"[\w'’#-]+")
CONTEXT_BOOST = 0.35


class Analyzer:
    """Finds personal data in text. Thread-safe: it holds no per-call state."""

    def __init__(
        self,
        entities: Iterable[str] = E.DEFAULT_ENTITIES,
        *,
        thresholds: Mapping[str, float] | None = None,
        default_threshold: float = 0.5,
        phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        allow_list: Iterable[str] = (),
        allow_patterns: Iterable[str] = (),
        context_window: int = 5,
        extra_recognizers: Iterable[Recognizer] = (),
        name_lists: NameLists | None = None,
        place_lists: PlaceLists | None = None,
    ) -> None:
        self.entities = frozenset(entities)
        self.thresholds = dict(thresholds or {})
        self.default_threshold = default_threshold
        self.allow_list = frozenset(v.casefold() for v in allow_list)
        patterns = list(allow_patterns)
        self.allow_pattern = (
            re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        )
        self.context_window = context_window
        wanted = self.entities
        built: list[Recognizer] = [
            EmailRecognizer(),
            IbanRecognizer(),
            NumberRecognizer(),
            UrlRecognizer(),
            PhoneRecognizer(phone_regions),
            NationalIdRecognizer(wanted),
            NameRecognizer(
                name_lists, place_lists, wanted, floor=self._floor(E.PERSON, E.LOCATION)
            ),
            AddressRecognizer(),
            SecretRecognizer(),
            *extra_recognizers,
        ]
        self.recognizers = tuple(r for r in built if r.entities & wanted)
        # A context word is one of the words before a finding; a phrase of several is
        # looked for in them joined by spaces.
        self._context = {
            t: (
                frozenset(w for w in words if " " not in w),
                tuple(" " + w + " " for w in words if " " in w),
            )
            for t, words in CONTEXT.items()
            if t in wanted
        }
        self._context_after = {
            t: frozenset(words) for t, words in CONTEXT_AFTER.items() if t in wanted
        }

    def _floor(self, *entity_types: str) -> float:
        """The lowest threshold among types that have no context words (whose scores
        nothing raises later), so recognizers can skip what would be dropped anyway."""
        if any(t in CONTEXT or t in CONTEXT_AFTER for t in entity_types):
            return 0.0
        return min(self.thresholds.get(t, self.default_threshold) for t in entity_types)

    @classmethod
    def from_policy(
        cls,
        policy: PrivacyPolicy,
        entities: Iterable[str] | None = None,
        extra_recognizers: Iterable[Recognizer] = (),
    ) -> Analyzer:
        return cls(
            policy.prompt.entities if entities is None else entities,
            thresholds=policy.thresholds,
            default_threshold=policy.default_threshold,
            phone_regions=policy.phone_regions,
            allow_list=policy.allow_list,
            allow_patterns=policy.allow_patterns,
            context_window=policy.context_window,
            extra_recognizers=extra_recognizers,
        )

    def warm(self) -> None:
        """Load lazy data (name and place lists) now rather than on the first request."""
        for r in self.recognizers:
            if isinstance(r, NameRecognizer):
                r.warm()

    def analyze(self, text: str, entities: Collection[str] | None = None) -> list[Span]:
        """Non-overlapping findings in ``text``, in order of position."""
        if entities is None:
            wanted = self.entities
            recognizers: Iterable[Recognizer] = self.recognizers
        else:
            wanted = self.entities & frozenset(entities)
            recognizers = [r for r in self.recognizers if r.entities & wanted]
        thresholds, default = self.thresholds, self.default_threshold
        allowing = bool(self.allow_list) or self.allow_pattern is not None
        found: list[Span] = []
        for recognizer in recognizers:
            for span in recognizer.find(text):
                if span.entity_type not in wanted:
                    continue
                score = span.score
                threshold = thresholds.get(span.entity_type, default)
                if score < threshold:
                    if self._has_context(text, span):
                        score = round(min(1.0, score + CONTEXT_BOOST), 3)
                    if score < threshold:
                        continue
                if allowing and self._allowed(span.text):
                    continue
                if score != span.score:
                    span = Span(
                        span.entity_type, span.start, span.end, score, span.text, span.recognizer
                    )
                found.append(span)
        return resolve_overlaps(found)

    def _has_context(self, text: str, span: Span) -> bool:
        if not self.context_window:
            return False
        labels = self._context_after.get(span.entity_type)
        if labels:
            after = text[span.end : span.end + 24].casefold()
            words = _WORDS.findall(after)[:CONTEXT_AFTER_WORDS]
            if any(w.strip("'’-") in labels for w in words):
                return True
        context = self._context.get(span.entity_type)
        if context is None:
            return False
        single, phrases = context
        window = text[max(0, span.start - 12 * self.context_window) : span.start].casefold()
        words = [w.strip("'’-") for w in _WORDS.findall(window)[-self.context_window :]]
        if not single.isdisjoint(words):
            return True
        if not phrases:
            return False
        joined = " " + " ".join(words) + " "
        return any(p in joined for p in phrases)

    def _allowed(self, value: str) -> bool:
        if not self.allow_list and self.allow_pattern is None:
            return False
        if value.casefold() in self.allow_list:
            return True
        return self.allow_pattern is not None and self.allow_pattern.fullmatch(value) is not None


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the best of each group of overlapping spans: priority, score, length."""
    if len(spans) < 2:
        return spans
    ranked = sorted(spans, key=_rank)
    kept: list[Span] = []
    for span in ranked:
        start, end = span.start, span.end
        for k in kept:
            if end > k.start and start < k.end:
                break
        else:
            kept.append(span)
    kept.sort(key=_position)
    return kept


def _rank(span: Span) -> tuple[int, float, int, int]:
    return (-E.priority(span.entity_type), -span.score, span.start - span.end, span.start)


def _position(span: Span) -> int:
    return span.start
