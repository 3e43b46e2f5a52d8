"""Sentences with their offsets, content words, numbers, quotes and names.

Written here rather than taken from a library: the grounding check needs character
offsets into the passages, legal text's numbering ("Art. 17", "1. This Regulation",
"; (b)") handled as such, and determinism across platforms with no model download —
NLTK's Punkt and spaCy's sentencizer give none of these together without data files.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import NamedTuple

_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "neither",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "shall",
        "may",
        "must",
        "might",
        "per",
        "via",
        "within",
        "without",
        "upon",
        "thereof",
        "therein",
        "whereby",
        "whether",
        "where",
    ]
)
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:\s?%)?(?![\w])")
_QUOTE = re.compile(
    r'"([^"\n]{3,100})"|“([^“”\n]{3,100})”|«([^«»\n]{3,100})»|(?<!\w)[\'‘]([^\'‘’\n]{3,100})[\'’](?!\w)'
)
_CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,;–-]\s*\d{1,3})*)\]")
#: Words before a period that do not end a sentence.
_ABBREVIATIONS = frozenset(
    [
        "art",
        "arts",
        "no",
        "nos",
        "p",
        "pp",
        "para",
        "paras",
        "e.g",
        "i.e",
        "cf",
        "etc",
        "mr",
        "mrs",
        "ms",
        "dr",
        "vol",
        "ch",
        "sec",
        "seq",
        "ibid",
        "reg",
        "dir",
        "v",
        "vs",
        "approx",
        "fig",
        "eg",
        "ie",
    ]
)
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*|;(?=\s+\([a-z0-9]{1,4}\)\s)|\n\s*\n|\n")


def stem(word: str) -> str:
    for suffix, replacement in (
        ("ational", "ate"),
        ("ies", "y"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
        ("ly", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + replacement
    return word


def terms(text: str) -> list[str]:
    """Content words: lowercased, stopwords out, lightly stemmed."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1]


#: Words that deny what follows them ("shall not apply", "no person", "never").
_NEGATIONS = frozenset(
    ["not", "no", "never", "nor", "neither", "cannot", "none", "nothing", "nobody", "nowhere"]
)
#: How many words after a negation its scope reaches to find the word it denies.
_NEGATION_REACH = 4


def _root(word: str) -> str:
    """An inflection-free form for matching one word across two sentences ("applies",
    "applied", "apply" → "apply"; "processes", "processing" → "process")."""
    for suffix, replacement in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    if word.endswith("es") and word[-3:-2] in ("s", "x", "z", "h") and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


class Polarity(NamedTuple):
    negated: frozenset[str]  # content words said negatively
    plain: frozenset[str]  # content words said plainly
    negations: int  # how many negations the text holds


def polarity(text: str) -> Polarity:
    """The content words of ``text`` (inflections removed) said negatively — the first
    content word within a few words after "not", "no", "never", a "n't" … — and those
    said plainly; a word said both ways is in both sets. A capitalised "No" inside a
    sentence is a numbering ("Regulation (EC) No 45/2001"), and numbers are skipped in
    a negation's reach ("not below 13 years" denies "years")."""
    words = _WORD.findall(text)
    negated: set[str] = set()
    plain: set[str] = set()
    reach = 0
    negations = 0
    for i, said in enumerate(words):
        word = said.lower()
        if word in _NEGATIONS or word.endswith(("n't", "n’t")):
            numbering = (said == "No" and i > 0) or (
                i + 1 < len(words) and words[i + 1][:1].isdigit()
            )
            if not numbering:
                reach = _NEGATION_REACH
                negations += 1
                continue
        if word in _STOPWORDS or len(word) <= 1 or word[:1].isdigit():
            reach = max(0, reach - 1)
            continue
        if reach:
            negated.add(_root(word))
            reach = 0
        else:
            plain.add(_root(word))
    return Polarity(frozenset(negated), frozenset(plain), negations)


def numbers(text: str) -> set[str]:
    """The numbers a text states ("2016/679" gives 2016 and 679; "4 %" gives 4%)."""
    return {m.group(0).replace(" ", "").replace(",", "") for m in _NUMBER.finditer(text)}


def quotes(text: str) -> list[str]:
    return [" ".join(next(g for g in m.groups() if g).split()) for m in _QUOTE.finditer(text)]


def names(text: str) -> set[str]:
    """Capitalised words that are not the first word of the text: proper names, defined
    terms ("Commission", "Member States"), acronyms (GDPR, DORA)."""
    found: set[str] = set()
    words = list(_WORD.finditer(text))
    for i, match in enumerate(words):
        word = match.group(0)
        if i == 0 or not word[0].isupper():
            continue
        before = text[: match.start()].rstrip()
        if before.endswith((".", "!", "?", ":", "(", "\n")) or before == "":
            continue  # the start of a sentence or an item, not a name
        if word.lower() in _STOPWORDS:
            continue
        found.add(word.lower())
    return found


def citations(text: str) -> list[int]:
    """Passage numbers cited with ``[n]``, ``[n, m]`` or ``[n-m]``, in order, once each."""
    cited: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            bounds = re.split(r"\s*[–-]\s*", part)
            lo, hi = int(bounds[0]), int(bounds[-1])
            for n in range(lo, min(hi, lo + 50) + 1):
                if n not in cited:
                    cited.append(n)
    return cited


def strip_citations(text: str) -> str:
    return " ".join(_CITATION.sub(" ", text).split())


@dataclass(frozen=True)
class Span:
    text: str
    start: int
    end: int


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    mark = match.group(0)
    if mark.startswith("\n") or mark.startswith(";"):
        return True
    rest = text[match.end() :]
    # citation markers right after the period belong to this sentence: not here
    nxt = rest.lstrip()
    if not nxt:
        return True
    if rest[:1] not in (" ", "\t", "\n", "\r"):
        return False  # "2016/679." inside a token, "e.g.x"
    if not (nxt[0].isupper() or nxt[0] in "\"'“‘(["):
        return False
    word = re.search(r"([\w.]+)$", text[: match.start()])
    token = word.group(1).lower() if word else ""
    if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
        return False
    return not (token.isdigit() and len(token) <= 3 and mark == ".")  # "1. This ..."


_PARAGRAPH = re.compile(r"(?<=\s)(\(?\d{1,3}[.)]|\([a-z]{1,4}\))\s+(?=[A-Z(])")


def sentences(text: str) -> list[Span]:
    """The sentences of ``text`` with their offsets; paragraph numbers ("2. Where ...")
    start a sentence, citation markers after a full stop stay with it."""
    cuts = {0, len(text)}
    for match in _SENTENCE_END.finditer(text):
        if _is_boundary(text, match):
            end = match.end()
            tail = re.match(r"(\s*\[\d[\d\s,;–-]*\])+[.!?]?", text[end:])
            cuts.add(end + (tail.end() if tail else 0))
    for match in _PARAGRAPH.finditer(text):
        cuts.add(match.start())
    spans: list[Span] = []
    ordered = sorted(cuts)
    for start, end in itertools.pairwise(ordered):
        piece = text[start:end]
        stripped = piece.strip()
        if not stripped:
            continue
        lead = len(piece) - len(piece.lstrip())
        s = start + lead
        spans.append(Span(stripped, s, s + len(stripped)))
    return _merge_fragments(text, spans)


def _merge_fragments(text: str, spans: list[Span]) -> list[Span]:
    """A fragment of under three words (a number, a heading word) joins the next one."""
    merged: list[Span] = []
    pending: Span | None = None
    for span in spans:
        if pending is not None:
            span = Span(text[pending.start : span.end], pending.start, span.end)
            pending = None
        if len(_WORD.findall(strip_citations(span.text))) < 3 and span is not spans[-1]:
            pending = span
            continue
        merged.append(span)
    if pending is not None:
        if merged:
            last = merged.pop()
            merged.append(Span(text[last.start : pending.end], last.start, pending.end))
        else:
            merged.append(pending)
    return merged
