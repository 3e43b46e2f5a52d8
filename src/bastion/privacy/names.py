"""PERSON recognition with no model download: capitalisation, context cues, name lists.

No maintained package recognises names offline without a model, so the rules are ours;
the data is not. Given and family names come from Faker's per-locale person providers
(86 locales, about 31,000 given and 30,000 family names), and the common English words
that demote a lone capitalised word ("White", "May") from Faker's English word list.
Both load on first use (about half a second), never at import.

A candidate is a run of capitalised tokens (with initials such as ``J.`` and particles
such as ``van``/``de`` inside). It scores by how many of its tokens are known names, by a
cue before it (a title such as ``Dr.``; phrases such as "my name is", "dear", "by") and by
whether it merely starts a sentence. Lower-case names are found only after a strong cue
("my name is john smith"). Users who need better should switch on the NER backend.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from bastion.privacy import entities as E
from bastion.privacy.entities import Span

# Words that may be names: capitalised (any script with case), or ASCII-lower-case
# excluded up front so that the Python loop sees only a few tokens per sentence.
_CAP_TOKEN = re.compile(r"(?![a-z])[^\W\d_][^\W\d_]*(?:['’\-][^\W\d_]+)*\.?")
_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_STRONG_CUE = re.compile(
    r"(?i)(?<!\w)(?:my name is|name is|name's|names are|named|called|dear|signed|sincerely|"
    r"regards|patient|client|customer|employee|attn|attention|cc|i am|i'm|this is|"
    r"name\s*:)[\s,:.\-]*$"
)
_NAME_CUE_LOWER = re.compile(
    r"(?i)(?<!\w)(?:my name is|name is|name's|named|i am|i'm|this is)\s+"
    r"([^\W\d_]+)(?:\s+([^\W\d_]+))?"
)
_WEAK_CUE = re.compile(
    r"(?i)(?<!\w)(?:by|with|from|hi|hello|hey|thanks|thank|to|and|or|contact|ask|asked|tell|"
    r"told|meet|met|call|email|wrote|says|said|for|visit|visited|married|son|daughter|wife|"
    r"husband|friend|mother|father|brother|sister|colleague|manager|boss)[\s,]+$"
)
_SENTENCE_END = re.compile(r"[.!?\n:;][\s\"'“‘(\[]*$")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


TITLES = _words(
    "mr mrs ms miss mx dr doctor prof professor sir dame lady lord madam madame mme mlle "
    "herr frau monsieur señor senor señora senora sra sr srta don doña rev reverend fr "
    "father sister brother captain capt col colonel sgt sergeant officer judge president "
    "senator sen rep gov governor mayor uncle aunt auntie grandma grandpa mister"
)
PARTICLES = _words(
    "van von der den de da das do dos del della di du le la bin ibn al el ter ten y st"
)
# Sentence-opening words that also cue a name: "Contact Jane Doe", "Ask Bob".
_OPENERS = _words(
    "contact ask call email message ping tell meet cc by with from hi hello hey thanks visit dear"
)
# Capitalised words that start sentences or name things but are not names.
COMMON = _words(
    "i a an the this that these those it its he she they we you my your his her our their "
    "me him them us what which who whom whose when where why how yes no not please thanks "
    "hello hi hey dear ok okay and or but if then so because as at by for from in into of "
    "on to with without about after before over under between during through can could "
    "would should will shall may might must do does did have has had is are was were be "
    "been being am there here all any some each every both either neither one two three "
    "monday tuesday wednesday thursday friday saturday sunday january february march april "
    "june july august september october november december today tomorrow yesterday inc ltd "
    "llc plc corp co company group bank university college school hospital street st road "
    "rd avenue ave lane drive boulevard blvd square city county state republic north south "
    "east west new old great united kingdom america american english mr mrs ms dr prof sir "
    "god lord jesus christ internet email phone"
)


@dataclass(frozen=True, slots=True)
class NameLists:
    given: frozenset[str]
    family: frozenset[str]
    common: frozenset[str]


@cache
def faker_name_lists() -> NameLists:
    """Given and family names of every Faker locale, case-folded; loaded once."""
    import faker.providers.lorem.en_US as lorem_en
    import faker.providers.person as person

    given: set[str] = set()
    family: set[str] = set()
    for info in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{info.name}").Provider
        for attr, value in vars(provider).items():
            if not isinstance(value, tuple | list | dict):
                continue
            if attr.startswith("first_names"):
                given.update(str(v).casefold() for v in value)
            elif attr.startswith("last_names"):
                family.update(str(v).casefold() for v in value)
    common = frozenset(w.casefold() for w in lorem_en.Provider.word_list) | COMMON
    return NameLists(frozenset(given), frozenset(family), common)


@dataclass(slots=True)
class _Tok:
    start: int
    end: int
    word: str  # without a trailing full stop
    key: str  # case-folded

    @property
    def initial(self) -> bool:
        return len(self.word) == 1 and self.word.isupper()


class PersonRecognizer:
    name = "person"
    entities = frozenset({E.PERSON})

    def __init__(self, lists: NameLists | None = None) -> None:
        self._lists = lists

    @property
    def lists(self) -> NameLists:
        if self._lists is None:
            self._lists = faker_name_lists()
        return self._lists

    def find(self, text: str) -> Iterator[Span]:
        lists = self.lists
        run: list[_Tok] = []
        for m in _CAP_TOKEN.finditer(text):
            raw = m.group()
            if not raw[0].isupper():
                continue
            word = raw[:-1] if raw[-1] == "." else raw
            tok = _Tok(m.start(), m.start() + len(word), word, word.casefold())
            if run and _joins(run[-1], text[run[-1].end : tok.start]):
                run.append(tok)
                continue
            if run:
                span = self._score_run(text, run, lists)
                if span is not None:
                    yield span
            run = [tok]
        if run:
            span = self._score_run(text, run, lists)
            if span is not None:
                yield span
        yield from self._after_cue(text, lists)

    # A lower-case name after a strong cue: "my name is john smith".
    def _after_cue(self, text: str, lists: NameLists) -> Iterator[Span]:
        if "name" not in text and " i" not in text.casefold():
            return
        for m in _NAME_CUE_LOWER.finditer(text):
            first = m.group(1)
            if not first.islower() or first.casefold() not in lists.given:
                continue
            end = m.end(1)
            last = m.group(2)
            if last is not None and last.islower() and last.casefold() in lists.family:
                end = m.end(2)
            yield Span(E.PERSON, m.start(1), end, 0.6, text[m.start(1) : end], self.name)

    def _score_run(self, text: str, run: list[_Tok], lists: NameLists) -> Span | None:
        given, family = lists.given, lists.family
        if len(run) == 1:
            # The common case, kept cheap: one capitalised word.
            tok = run[0]
            key = tok.key
            if key in COMMON or key in TITLES or tok.initial:
                return None
            if key not in given and key not in family:
                if tok.word.isupper() or not _strong_cue(text, tok.start):
                    return None
                return self._span(text, tok.start, tok.end, 0.55)
            score = 0.25 if key in lists.common else 0.45
            cue = (
                0.4 if _strong_cue(text, tok.start) else 0.2 if _weak_cue(text, tok.start) else 0.0
            )
            if not cue and _starts_sentence(text, tok.start):
                score -= 0.15
            return self._span(text, tok.start, tok.end, score + cue)

        cue = 0.0
        # Titles open a name and are not part of it: "Dr. Ahtisaari".
        while run and run[0].key in TITLES:
            cue = 0.4
            run = run[1:]
        while run and run[0].key in lists.common and run[0].key not in given:
            if run[0].key == "dear":
                cue = 0.4
            run = run[1:]
        # A sentence's first word is capitalised anyway: it counts only as a known name.
        if (
            len(run) > 1
            and run[0].key not in given
            and run[0].key not in family
            and _starts_sentence(text, run[0].start)
        ):
            if not cue and run[0].key in _OPENERS:
                cue = 0.2
            run = run[1:]
        while run and run[-1].key in COMMON:
            run = run[:-1]
        if not run or len(run) > 4:
            return None
        names = [t for t in run if not t.initial]
        if not names:
            return None
        known = 0
        for t in names:
            if t.key in COMMON:
                return None
            if t.key in given or t.key in family:
                known += 1
            elif len(t.word) > 1 and t.word.isupper():
                return None
        start, end = run[0].start, run[-1].end
        if not cue:
            cue = 0.4 if _strong_cue(text, start) else 0.2 if _weak_cue(text, start) else 0.0
        if len(names) == 1:
            # A title or a dropped opener left one word: score it as a lone word.
            lone = 0.15 if not known else 0.25 if names[0].key in lists.common else 0.45
            return self._span(text, start, end, lone + cue)
        common = sum(t.key in lists.common for t in names)
        score = 0.35 + (0.3 if names[0].key in given else 0.0)
        score += 0.15 if known >= 2 else 0.1 * known
        return self._span(text, start, end, score - 0.1 * common + cue)

    def _span(self, text: str, start: int, end: int, score: float) -> Span | None:
        if score <= 0.0:
            return None
        return Span(E.PERSON, start, end, round(min(1.0, score), 3), text[start:end], self.name)


def _joins(prev: _Tok, gap: str) -> bool:
    if gap == " ":
        return True
    if gap == ". ":
        return prev.initial or prev.key in TITLES
    # "Ludwig van Beethoven", "Maria de la Cruz"
    inner = gap.strip().split(" ")
    return (
        gap[0] == " " and gap[-1] == " " and len(inner) <= 2 and all(w in PARTICLES for w in inner)
    )


def _strong_cue(text: str, start: int) -> bool:
    return _STRONG_CUE.search(text, max(0, start - 32), start) is not None


def _weak_cue(text: str, start: int) -> bool:
    return _WEAK_CUE.search(text, max(0, start - 16), start) is not None


def _starts_sentence(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in " \t\"'“‘([":
        i -= 1
    return i < 0 or text[i] in ".!?\n:;"
