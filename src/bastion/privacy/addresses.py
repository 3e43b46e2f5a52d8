"""STREET_ADDRESS: street lines found from their house numbers, with no model.

No maintained package finds addresses in free text offline for more than a country or
two (``usaddress`` and ``pyap`` parse text already known to be an address, for the US,
Canada and the UK), so the rules are ours. A street line is a house number with a
street beside it, written in one of three ways:

- number first, the street type last: ``221B Baker Street``, ``2450 Crown St``;
- a street word first, the number last: ``Rue de Rivoli 12``, ``Via Roma 131``,
  ``Calle Mayor 5``;
- one compound word ending in a street type, then the number: ``Friedhofstrasse 33``,
  ``Koskikatu 25``, ``Drottninggatan 7``.

A unit after it (``Apt. 4``, ``Suite 300``, also on the next line) belongs to the same
address. One pass finds the numbers that could be house numbers (a number next to a
word); set look-ups on the words around each decide, and a pattern confirms only there.
Cities and countries on the lines after it are LOCATION findings of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bastion.privacy import entities as E
from bastion.privacy.entities import Span, word_set

#: Street types written after the street's name (English-speaking countries).
SUFFIXES = word_set(
    "Street St Road Rd Avenue Ave Av Lane Ln Drive Dr Boulevard Blvd Way Court Ct "
    "Place Pl Square Sq Terrace Ter Crescent Cres Close Highway Hwy Parkway Pkwy "
    "Circle Cir Trail Trl Row Walk Grove Gardens Gdns Park Plaza Alley Mews Rise Hill "
    "Green Loop Pike Expressway Freeway Quay Wharf Parade Esplanade Embankment Streets "
    "Squares Roads Lanes Avenues"
)
#: Street words written before the street's name (French, Italian, Spanish, Portuguese,
#: Polish, Greek in Latin script, ...).
PREFIXES = word_set(
    "Rue Avenue Boulevard Bd Chemin Allée Impasse Place Quai Via Viale Piazza Piazzale "
    "Corso Largo Vicolo Strada Calle Avenida Plaza Paseo Camino Carrer Rua Travessa "
    "Praça Estrada Alameda Ulica ul. Aleja Odos Leoforos Plac Rynek Strasse Straße"
)
#: Street types that end one compound word (German, Dutch, Nordic, Finnish, Estonian,
#: Hungarian): the number follows.
COMPOUND = (
    "straße",
    "strasse",
    "str.",
    "gasse",
    "weg",
    "platz",
    "allee",
    "ring",
    "damm",
    "ufer",
    "gatan",
    "gata",
    "vägen",
    "väg",
    "vej",
    "gade",
    "veien",
    "vegen",
    "gate",
    "stien",
    "katu",
    "tie",
    "kuja",
    "polku",
    "tee",
    "laan",
    "straat",
    "plein",
    "gracht",
    "utca",
)
_UNIT = re.compile(
    r",?\s{1,4}(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Rm|Floor|Fl)\.?\s?#?\d{1,5}[A-Za-z]?"
    r"(?![\w-])"
)
# A number that could be a house number: 1-5 digits (and a letter), not part of a longer
# number, a date or a code, with a word before it or a capitalised word after it. With
# no word before it, only a street type among the next three words can make it one
# ("12 Baker Street"): the pattern looks for one there, so that numbers followed by
# other capitalised words ("12 January") cost no Python at all. (The look-ahead admits
# more than ``_number_first`` accepts, never less: it is a filter, not the rule.)
_SUFFIX_AHEAD = "|".join(sorted(SUFFIXES, key=len, reverse=True))
_NUMBER_REST = (
    r"(?<![\w.,/:+-]\d)"
    r"(?P<named>(?<=[^\W\d_] \d))?"  # a word before it: "Via Roma 12"
    r"\d{0,4}[A-Za-z]?(?![\w/:-]|[.,]\d)"
    r"(?(named)|(?=,? [A-Z])(?=,?.(?:[^ ]* ){1,3}(?:" + _SUFFIX_AHEAD + r")))"
)
_NUMBER = re.compile(E.first_of(r"\d") + _NUMBER_REST)
#: The same, for a text whose digits are all 0-9 (``E.plain_digits``).
_NUMBER_PLAIN = re.compile(E.first_of_plain(r"\d") + _NUMBER_REST)
_ORDINAL = re.compile(r"\d{1,3}(?:st|nd|rd|th)")


class AddressRecognizer:
    name = "address"
    entities = frozenset({E.STREET_ADDRESS})

    def find(self, text: str) -> Iterator[Span]:
        return self.find_digits(text, E.plain_digits(text))

    def find_digits(self, text: str, plain: bool) -> Iterator[Span]:
        """:meth:`find`, told whether the text's digits are all 0-9."""
        end = 0
        for m in (_NUMBER_PLAIN if plain else _NUMBER).finditer(text):
            if m.start() < end:
                continue
            start, stop = m.span()
            # A word must follow ("12 Baker Street") or precede it ("Via Roma 12").
            ahead = text[stop : stop + 2]
            span = None
            if len(ahead) == 2 and ahead[0] in " ," and (ahead[1].isupper() or ahead[1] == " "):
                span = self._number_first(text, m)
            if (
                span is None
                and start >= 2
                and text[start - 1] == " "
                and text[start - 2].isalpha()
                and _capitalised_word_before(text, start - 1)
            ):
                span = self._number_last(text, m)
            if span is None:
                continue
            start, end, score = span
            unit = _UNIT.match(text, end)
            if unit is not None:
                end = unit.end()
            yield Span(E.STREET_ADDRESS, start, end, score, text[start:end], self.name)

    @staticmethod
    def _number_first(text: str, m: re.Match[str]) -> tuple[int, int, float] | None:
        """``221B Baker Street``: one to three capitalised words, then a street type."""
        pos = m.end() + (text[m.end()] == ",") + 1
        words = text[pos : pos + 64].split(" ", 4)
        for i, word in enumerate(words[:4]):
            line_end = "\n" in word
            word = word.split("\n", 1)[0]
            core = word.rstrip(".,;:")
            if i and core in SUFFIXES:
                stop = pos + len(core) + (word[len(core) : len(core) + 1] == ".")
                return m.start(), stop, 0.6
            if line_end or not (core[:1].isupper() or _ORDINAL.fullmatch(core)):
                return None
            pos += len(word) + 1
        return None

    @staticmethod
    def _number_last(text: str, m: re.Match[str]) -> tuple[int, int, float] | None:
        start = m.start()
        line_start = text.rfind("\n", max(0, start - 48), start) + 1
        before = text[max(line_start, start - 48) : start - 1]  # without the space
        words = before.rstrip(",").split(" ")[-6:]
        last = words[-1]
        if len(last) > 5 and last[0].isupper() and last.casefold().endswith(COMPOUND):
            return start - 1 - len(last), m.end(), 0.55
        # A street word up to five words back, each word after it part of the name.
        for i, w in enumerate(words[:-1]):
            if w in PREFIXES and all(x and (x[0].isupper() or x.islower()) for x in words[i:]):
                return start - 1 - len(" ".join(words[i:])), m.end(), 0.6
        return None


def _capitalised_word_before(text: str, end: int) -> bool:
    """Whether a capitalised word (or a street word's particle, ``de``) ends at ``end``
    within its line: streets are named, and "age 45" or "in 2019" are not streets."""
    space = max(text.rfind(" ", 0, end), text.rfind("\n", 0, end))
    word = text[space + 1 : end]
    return bool(word) and (word[0].isupper() or word in _PARTICLES_BEFORE_NUMBER)


# "Via XX Settembre 5" has a capital; a lower-case last word before the number is rare.
_PARTICLES_BEFORE_NUMBER = frozenset({"ul."})
