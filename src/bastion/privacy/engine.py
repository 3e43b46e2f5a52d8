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

Every detector sees the text with pasted whitespace made plain (:func:`detection_text`):
the escapes ``\\n``, ``\\r``, ``\\t`` (and ``\\\\n``) that JSON, log lines and CSV cells
leave where line breaks were, non-breaking and other Unicode spaces, and zero-width
characters. Otherwise ``Phone:\\n9691 2587`` glues the context word's escape to the
number and neither the number nor its context is found. Findings are mapped back, so
spans (and what masking replaces) are always offsets in the original text.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from bastion.privacy import entities as E
from bastion.privacy.addresses import AddressRecognizer
from bastion.privacy.config import DEFAULT_PHONE_REGIONS, PrivacyPolicy
from bastion.privacy.entities import Span, plain_digits
from bastion.privacy.names import NameLists, NameRecognizer, PlaceLists
from bastion.privacy.phones import PhoneRecognizer
from bastion.privacy.recognizers import (
    CONTEXT,
    CONTEXT_AFTER,
    CONTEXT_AFTER_WORDS,
    CONTEXT_LABELS,
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
_DIGITS = tuple("0123456789")
#: How much of the line before :meth:`Analyzer.analyze_lines` reads as context.
_LOOK_BACK = 80

# --- pasted whitespace --------------------------------------------------------------

_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
#: A run of escaped line breaks and tabs, Unicode spaces other than " " and zero-width
#: characters (``\s`` would take real line breaks too, which every detector reads).
#: (It starts with a character class, which ``re`` scans for in C.)
_PASTED = re.compile(
    r"[\\\u00a0\u2000-\u200d\u202f\u205f\u3000\u2060\ufeff](?:(?<=\\)\\?[nrt]|(?<!\\))"
    r"(?:\\\\?[nrt]|[\u00a0\u2000-\u200d\u202f\u205f\u3000\u2060\ufeff])*"
)
_PASTED_CHARS = (
    "\u00a0",
    *(chr(c) for c in range(0x2000, 0x200E)),
    "\u202f",
    "\u205f",
    "\u2060",
    "\u3000",
    "\ufeff",
)
#: Characters inside e-mail addresses, numbers and codes: a zero-width character next
#: to one is dropped rather than read as a space ("jane\u200b.doe@x.org" is one address).
_JOINERS = frozenset("@.-_+/")


class OffsetMap:
    """Maps offsets in a detection text back to the original text.

    Breakpoints are pairs (offset in the detection text, offset in the original) where
    a run of pasted whitespace starts and where it ends; between them the texts agree
    character for character."""

    __slots__ = ("_clean", "_orig")

    def __init__(self, clean: list[int], orig: list[int]) -> None:
        self._clean = clean
        self._orig = orig

    def start(self, p: int) -> int:
        k = bisect_right(self._clean, p) - 1
        return self._orig[k] + (p - self._clean[k])

    def end(self, p: int) -> int:
        k = bisect_left(self._clean, p)
        if k < len(self._clean) and self._clean[k] == p:
            return self._orig[k]
        k -= 1
        return self._orig[k] + (p - self._clean[k])


def detection_text(text: str) -> tuple[str, OffsetMap | None]:
    """``text`` with pasted whitespace made plain, and the map back (None: unchanged).

    A run of escapes becomes what they stood for: a line break where it holds an
    escaped line break, else a tab. A run with Unicode spaces becomes one space. A run
    of zero-width characters only is dropped inside a word (before a small letter),
    between two digits, and after a character of an address or a number, so that a
    value split by one is whole again; elsewhere it is a space: after a label
    ("Phone:", "call") and before a capital, where a value starts more often than a
    word goes on ("IBAN" U+2060 "GB82 ...")."""
    if "\\" not in text:
        # The common case, cheaply: ``in`` answers at once for a character wider than
        # any in the text (a Latin-1 text cannot hold U+200B), else one memchr.
        if text.isascii():
            return text, None
        for c in _PASTED_CHARS:
            if c in text:
                break
        else:
            return text, None
    first = _PASTED.search(text)
    if first is None:
        return text, None
    pieces: list[str] = []
    clean_at, orig_at = [0], [0]
    done = 0  # original offset copied up to
    size = 0  # length of the detection text so far
    n = len(text)
    for m in _PASTED.finditer(text, first.start()):
        s, e = m.span()
        run = m.group()
        pieces.append(text[done:s])
        size += s - done
        if "\\" in run:
            replacement = "\n" if ("n" in run or "r" in run) else "\t"
        elif not _ZERO_WIDTH.issuperset(run):
            replacement = " "
        else:
            before = text[s - 1] if s else " "
            after = text[e] if e < n else " "
            joined = (
                # "jane.|doe@", "4111-|1111"; not a label's end: "Tel.|555" (| the character)
                (before in _JOINERS and (after.isalpha() or text[s - 2 : s - 1].isdigit()))
                or (after in _JOINERS and after != "+")
                or (before.isalpha() and after.isalpha() and not after.isupper())
                or (before.isdigit() and after.isdigit())
            )
            replacement = "" if joined else " "
        clean_at.append(size)
        orig_at.append(s)
        pieces.append(replacement)
        size += len(replacement)
        clean_at.append(size)
        orig_at.append(e)
        done = e
    pieces.append(text[done:])
    return "".join(pieces), OffsetMap(clean_at, orig_at)


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
        strict_validation: Iterable[str] = (),
    ) -> None:
        self.entities = frozenset(entities)
        #: Types whose values must pass their check (checksum, issued ranges); for the
        #: others a value of the exact shape near a context word is kept too.
        self.strict_validation = frozenset(strict_validation)
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
        self._context_labels = {
            t: frozenset(words) for t, words in CONTEXT_LABELS.items() if t in wanted
        }

    def _floor(self, *entity_types: str) -> float:
        """The lowest threshold among types that have no context words (whose scores
        nothing raises later), so recognizers can skip what would be dropped anyway."""
        if any(t in CONTEXT or t in CONTEXT_AFTER or t in CONTEXT_LABELS for t in entity_types):
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
            strict_validation=policy.strict_validation,
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
        strict = self.strict_validation
        original = text
        text, offsets = detection_text(text)
        found: list[Span] = []
        plain: bool | None = None  # whether the text's digits are all 0-9, once asked
        for recognizer in recognizers:
            # The digit-led detectors scan faster when told (entities.plain_digits).
            find_digits = getattr(recognizer, "find_digits", None)
            if find_digits is None:
                spans: Iterable[Span] = recognizer.find(text)
            else:
                if plain is None:
                    plain = plain_digits(text)
                spans = find_digits(text, plain)
            for span in spans:
                if span.entity_type not in wanted:
                    continue
                if strict and not span.valid and span.entity_type in strict:
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
                        span.entity_type,
                        span.start,
                        span.end,
                        score,
                        span.text,
                        span.recognizer,
                        span.valid,
                    )
                found.append(span)
        kept = resolve_overlaps(found)
        if offsets is None:
            return kept
        mapped = []
        for span in kept:
            start, end = offsets.start(span.start), offsets.end(span.end)
            mapped.append(
                Span(
                    span.entity_type,
                    start,
                    end,
                    span.score,
                    original[start:end],
                    span.recognizer,
                    span.valid,
                )
            )
        return mapped

    def analyze_lines(self, lines: Iterable[str]) -> Iterator[list[Span]]:
        """:meth:`analyze` for each line, offsets within that line; the end of the line
        before is read as context, as a label often stands on a line of its own
        ("Phone:" then the number)."""
        previous = ""
        for line in lines:
            if not previous:
                yield self.analyze(line)
            else:
                shift = len(previous) + 1
                yield [
                    s._replace(start=s.start - shift, end=s.end - shift)
                    for s in self.analyze(previous + "\n" + line)
                    if s.start >= shift
                ]
            if line.strip():
                previous = line[-_LOOK_BACK:]

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
        # A number between a context word and the finding is what the word labelled
        # ("Fax: 0783 171465 Ref 69910145"): the words before it do not count.
        cut = max(map(window.rfind, _DIGITS))
        if cut >= 0:
            window = window[cut + 1 :]
        words = [w.strip("'’-") for w in _WORDS.findall(window)[-self.context_window :]]
        if not single.isdisjoint(words):
            return True
        labels = self._context_labels.get(span.entity_type)
        if labels and words and words[-1] in labels and window.rstrip().endswith(":"):
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
