"""Deny-listed terms and patterns: a compliance flag, or a refused request.

All entries compile into one alternation, so a text is scanned once however long the
list. Flags name the entry (its ``name``, term or pattern), never the matched text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.privacy.config import DenylistEntry
from bastion.privacy.errors import DenylistBlocked


@dataclass(frozen=True, slots=True)
class DenyHit:
    label: str
    action: str
    start: int
    end: int


def _flagged(entry: DenylistEntry) -> str:
    return entry.regex() if entry.case_sensitive else f"(?i:{entry.regex()})"


class Denylist:
    def __init__(self, entries: Sequence[DenylistEntry]) -> None:
        self.entries = tuple(entries)
        self._pattern: re.Pattern[str] | None = None
        if self.entries:
            self._pattern = re.compile(
                "|".join(f"(?P<e{i}>{_flagged(e)})" for i, e in enumerate(self.entries))
            )

    def scan(self, text: str) -> list[DenyHit]:
        if self._pattern is None:
            return []
        hits = []
        for m in self._pattern.finditer(text):
            entry = self.entries[int(m.lastgroup[1:])] if m.lastgroup else None
            if entry is not None:
                hits.append(DenyHit(entry.label, entry.action, m.start(), m.end()))
        return hits

    def check_flags(self, text: str) -> list[str]:
        """Flags for ``text``, never raising (for answers, which are flagged, not refused)."""
        return sorted({f"denylist:{hit.label}" for hit in self.scan(text)})

    def check(self, text: str) -> list[str]:
        """Flags for ``text``; raises DenylistBlocked if a blocking entry matches."""
        hits = self.scan(text)
        for hit in hits:
            if hit.action == "block":
                raise DenylistBlocked(
                    f"the request matches the deny-list entry {hit.label!r}, which the policy "
                    "blocks; remove it and retry",
                    entry=hit.label,
                )
        return sorted({f"denylist:{hit.label}" for hit in hits})
