"""Cutting a parsed document into chunks that keep its structure.

A chunk never spans two landmarks (a heading, an article, a page): each landmark starts
a new chunk, so a citation's location is exact. Inside a section, text is packed up
to ``max_chars`` and cut at the best boundary before the limit (a blank line, a line
end, a numbered paragraph, a sentence end, a space, in that order); consecutive chunks
of a section overlap by about ``overlap`` characters, starting at a sentence or word
boundary, so a passage cut in two is still found whole in one of them.

Each chunk's location is the landmarks in force at its start (``p. 4 › Art. 17``),
and, where the chunk starts inside a numbered paragraph ("2. The controller …"), that
paragraph's number (``Art. 17(2)``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from bastion.documents.parsing import Landmark, Parsed

_KIND_ORDER = ("document", "page", "heading", "article")
_PARAGRAPH = re.compile(r"(?:^|(?<=\s))(\d{1,3})\.\s+(?=[A-Z(])")
_BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"\s+(?=\d{1,3}\.\s+[A-Z(])"),  # before a numbered paragraph
    re.compile(r"(?<=[.!?;:])\s+"),
    re.compile(r"\s+"),
)


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    start: int
    end: int
    location: str
    text: str


def chunk(doc: Parsed, max_chars: int = 1200, overlap: int = 150) -> list[Chunk]:
    text = doc.text
    marks = sorted(doc.landmarks, key=lambda m: m.offset)
    cuts = sorted({0, *(m.offset for m in marks if 0 < m.offset < len(text)), len(text)})
    chunks: list[Chunk] = []
    for begin, end in itertools.pairwise(cuts):
        in_force = _in_force(marks, begin)
        for start, stop in _pack(text, begin, end, max_chars, overlap):
            piece = text[start:stop]
            if not piece.strip():
                continue
            location = _location(in_force, text, begin, start) or doc.name
            chunks.append(Chunk(len(chunks), start, stop, location, piece))
    return chunks


def _in_force(marks: list[Landmark], offset: int) -> dict[str, str]:
    found: dict[str, str] = {}
    for mark in marks:
        if mark.offset > offset:
            break
        found[mark.kind] = mark.location
        if mark.kind == "heading":  # a new heading ends the article before it
            found.pop("article", None)
    return found


def _location(in_force: dict[str, str], text: str, section: int, start: int) -> str:
    parts = [in_force[k] for k in _KIND_ORDER if k in in_force]
    # Inline "Art. 17" from a JSONL row and its numbered paragraphs.
    if parts and "Art." in parts[-1]:
        # Paragraphs are numbered 1, 2, 3 …: a number out of that sequence ("Article 17.
        # The …") is a reference, not a paragraph.
        current = 0
        for m in _PARAGRAPH.finditer(text, section, start + 8):
            if m.start() > start:
                break
            if int(m.group(1)) == current + 1:
                current += 1
        if current:
            parts[-1] = f"{parts[-1]}({current})"
    return " › ".join(parts)


def _pack(text: str, begin: int, end: int, max_chars: int, overlap: int) -> list[tuple[int, int]]:
    # Leading and trailing whitespace is not part of any chunk.
    while begin < end and text[begin].isspace():
        begin += 1
    while end > begin and text[end - 1].isspace():
        end -= 1
    spans: list[tuple[int, int]] = []
    start = begin
    while start < end:
        if end - start <= max_chars:
            spans.append((start, end))
            break
        stop = _cut(text, start, start + max_chars)
        spans.append((start, stop))
        nxt = _resume(text, max(start + 1, stop - overlap), stop) if overlap else stop
        while nxt < end and text[nxt].isspace():
            nxt += 1
        start = nxt if nxt > start else stop
    return spans


def _cut(text: str, start: int, limit: int) -> int:
    """The best boundary in the second half of [start, limit)."""
    floor = start + (limit - start) // 2
    window = text[floor:limit]
    for pattern in _BOUNDARIES:
        last = None
        for m in pattern.finditer(window):
            last = m
        if last is not None:
            return floor + last.start() if last.start() > 0 else floor + last.end()
    return limit


def _resume(text: str, lower: int, stop: int) -> int:
    """Where the overlap starts: the first sentence (else word) start in [lower, stop)."""
    window = text[lower:stop]
    for pattern in _BOUNDARIES[3:]:
        m = pattern.search(window)
        if m is not None and m.end() < len(window):
            return lower + m.end()
    return stop
