"""Scan a model's answer for personal data before the user (or a log) sees it.

Two kinds of leak, both looked for in the raw answer, before placeholders are restored:

- a value from the conversation's vault written out in clear, in whatever form: numbers
  are compared as digits only (``+44 20 7946 0958`` is ``442079460958``), IBANs
  without their spaces or hyphens, e-mails and names case-folded, as whole words;
  this catches data that reached the model unmasked (a tool result, an earlier turn
  under another policy) and partial masks the model undid;
- any personal data the analyzer finds that is not a placeholder: a phone number the
  model recalled or made up is still a phone number to whoever reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bastion.privacy.engine import Analyzer
from bastion.privacy.entities import IBAN_CODE, NUMERIC_ENTITIES, Span, normalise
from bastion.privacy.vault import Vault

_DIGIT_RUN = re.compile(r"\d(?:[\s\-./()]{0,2}\d)*")
_NOT_DIGIT = re.compile(r"\D")
_MIN_DIGITS = 6
#: Where an IBAN may be written: country, check digits, then the account with or
#: without groups of spaces or hyphens (compared without them, upper-cased).
_IBAN_RUN = re.compile(r"[A-Za-z]{2}[0-9]{2}(?:[ \-]?[A-Za-z0-9]){11,30}")
_IBAN_GAPS = re.compile(r"[ \-]")


@dataclass(frozen=True, slots=True)
class Leak:
    entity_type: str
    start: int
    end: int
    #: "vault": a value the conversation masked; "detected": found by the analyzer.
    source: str


class LeakScanner:
    def __init__(self, analyzer: Analyzer | None) -> None:
        self.analyzer = analyzer

    def scan(self, text: str, vault: Vault | None = None) -> list[Leak]:
        leaks = self._vault_leaks(text, vault) if vault is not None else []
        if self.analyzer is not None:
            taken = [(leak.start, leak.end) for leak in leaks]
            for span in self.analyzer.analyze(text):
                if all(span.end <= s or span.start >= e for s, e in taken):
                    leaks.append(Leak(span.entity_type, span.start, span.end, "detected"))
        leaks.sort(key=lambda leak: leak.start)
        return leaks

    def _vault_leaks(self, text: str, vault: Vault) -> list[Leak]:
        numeric: dict[str, str] = {}
        ibans: dict[str, str] = {}
        textual: dict[str, str] = {}
        for _, entity_type, value in vault.entries():
            key = normalise(entity_type, value)
            if entity_type in NUMERIC_ENTITIES and key.isdigit():
                if len(key) >= _MIN_DIGITS:
                    numeric[key] = entity_type
            elif entity_type == IBAN_CODE:
                ibans[key] = entity_type
            elif key:
                textual[key] = entity_type
        leaks: list[Leak] = []
        if numeric:
            for m in _DIGIT_RUN.finditer(text):
                digits = _NOT_DIGIT.sub("", m.group())
                for key, entity_type in numeric.items():
                    if key in digits:
                        leaks.append(Leak(entity_type, m.start(), m.end(), "vault"))
                        break
        if ibans:
            for m in _IBAN_RUN.finditer(text):
                compact = _IBAN_GAPS.sub("", m.group()).upper()
                for key, entity_type in ibans.items():
                    if key in compact:
                        leaks.append(Leak(entity_type, m.start(), m.end(), "vault"))
                        break
        if textual:
            folded = text.casefold()
            # casefold() keeps offsets for the scripts names and e-mails use here; where
            # it does not (ß -> ss), the finding still counts, with approximate offsets.
            for key, entity_type in textual.items():
                for start in _whole_words(folded, key):
                    leaks.append(Leak(entity_type, start, start + len(key), "vault"))
        return leaks


def _whole_words(text: str, key: str) -> Iterator[int]:
    """Where ``key`` occurs in ``text`` with no word character (``\\w``: a letter, a
    digit or ``_``) just before or after it, left to right, not overlapping. A plain
    search: a pattern per vault value would be compiled for every conversation."""
    at = text.find(key)
    while at >= 0:
        end = at + len(key)
        before = at > 0 and _word_char(text[at - 1])
        after = end < len(text) and _word_char(text[end])
        if not before and not after:
            yield at
            at = text.find(key, end)
        else:
            at = text.find(key, at + 1)


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def redact_leaks(text: str, leaks: list[Leak], replacement: str = "[REDACTED]") -> str:
    parts: list[str] = []
    pos = 0
    for leak in sorted(leaks, key=lambda x: x.start):
        if leak.start < pos:
            continue
        parts.append(text[pos : leak.start])
        parts.append(replacement)
        pos = leak.end
    parts.append(text[pos:])
    return "".join(parts)


def spans_to_leaks(spans: list[Span]) -> list[Leak]:
    return [Leak(s.entity_type, s.start, s.end, "detected") for s in spans]
