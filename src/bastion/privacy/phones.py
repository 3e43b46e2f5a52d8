"""PHONE_NUMBER: one cheap candidate pass, then ``phonenumbers`` judges each candidate.

Presidio's ``PhoneRecognizer`` runs libphonenumber's matcher over the whole text once per
region, which dominates its time. Here one regular expression finds every run of digits
that could be a phone number, and libphonenumber validates only those, region by region
and only in the regions whose number lengths fit. Written here, and why: the candidate
pattern, and the scoring of national numbers by the marks only phone numbers carry
(libphonenumber says whether a number is allocated, not whether a digit run in prose is
a phone number; its own matcher's "grouping" leniencies need one full parse per region).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers

from bastion.privacy import entities as E
from bastion.privacy.entities import Span

# One pass over the text finds every run that could be a phone number: an optional
# "+" or "(", digits with at most two separators between them, an optional extension.
# The first character is matched before the look-behind (see the module docstring); the
# look-behinds after it then require what the original first element required.
_PHONE = re.compile(
    r"[+(\d](?<![\w+.\-/:][+(\d])"
    r"(?:(?<=\+)(?:\(\s*\+?\d{1,4}\s*\)|\d)|(?<=\()\s*\+?\d{1,4}\s*\)|(?<=\d))"
    r"(?:[ .\-/]{0,2}(?:\(\d{1,5}\)|\d)){5,19}"
    r"(?:\s*(?:x|ext\.?|extension|#)\s*\d{1,6})?"
    # A label may follow a hyphen ("555-0192-Office"); a digit may not.
    r"(?![\w:]|-\d)(?!\.\d)"
)
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension|#)\s*\d{1,6}$")
_TRUNK_ZERO = re.compile(r"\(0\)")
_GROUPS = re.compile(r"\d+")
# Dates and the SSN layout are digit runs that no one writes a phone number as.
_NOT_PHONE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{3}-\d{2}-\d{4}"
)

# Scores of a national number (see PhoneRecognizer): what the numbering plan says of it,
# plus the marks that only phone numbers carry, capped.
_VALID, _POSSIBLE = 0.4, 0.25
_MARK_PAREN, _MARK_EXTENSION, _MARK_TRUNK, _MARK_GROUPING = 0.2, 0.2, 0.15, 0.15
_MARKS_CAP = 0.3
#: Bare digit runs and numbers shorter than nine digits stay below the default threshold
#: (0.5) unless a context word raises them: amounts, order and licence numbers look alike.
_WEAK_CAP = 0.4


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    country_code: int
    national_prefix: str
    lengths: frozenset[int]
    pattern: re.Pattern[str]
    #: Whether other regions share the country code (+1: the US, Canada, ...).
    shared: bool
    #: (leading digits, digit groups) of each way the region writes its numbers, by the
    #: number of groups.
    formats: dict[int, tuple[tuple[re.Pattern[str] | None, re.Pattern[str]], ...]]


def _alternate_formats(country_code: int) -> list[Any]:
    # The other groupings in common use (Spain's mobiles as 3-3-3 beside 3-2-2-2) are
    # libphonenumber data that only its matcher reads; absent in a future release, the
    # grouping mark falls back to the main formats.
    import phonenumbers.data as data

    table: dict[int, list[Any]] = getattr(data, "_ALT_NUMBER_FORMATS", {})
    return list(table.get(country_code, ()))


def _region(code: str) -> _Region:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(code.upper(), None)
    if meta is None:
        raise ValueError(f"unknown phone region {code!r}; use ISO 3166 codes such as GB, DE")
    desc: Any = meta.general_desc
    country_code = int(meta.country_code or 0)
    formats: dict[int, list[tuple[re.Pattern[str] | None, re.Pattern[str]]]] = {}
    for fmt in [*(meta.number_format or ()), *_alternate_formats(country_code)]:
        leading = fmt.leading_digits_pattern
        pattern = re.compile(fmt.pattern)
        formats.setdefault(pattern.groups, []).append(
            (re.compile(leading[-1]) if leading else None, pattern)
        )
    return _Region(
        code=code.upper(),
        country_code=country_code,
        national_prefix=meta.national_prefix or "",
        lengths=frozenset(desc.possible_length or ()),
        pattern=re.compile(desc.national_number_pattern or r"\d+"),
        shared=len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())) > 1,
        formats={n: tuple(f) for n, f in formats.items()},
    )


class PhoneRecognizer:
    """One candidate pass, then libphonenumber judges each candidate.

    International numbers (``+`` or ``00``) are recognised from anywhere: 0.75 when the
    numbering plan allocates them, 0.55 when they merely have a possible length (fake and
    newly allocated numbers are still somebody's number to whoever reads them).

    National formats are tried for the configured regions only, and scored on two kinds
    of evidence. The numbering plan: *valid* (allocated; 0.4) or *possible* (a length the
    region uses; 0.25); a number written without the trunk prefix ``0`` where the region
    has one counts as possible at best, because nobody dials it that way. And the marks
    that only phone numbers carry: an area code in parentheses, an extension, the trunk
    prefix, digit groups exactly as the region formats them (``(415) 555-2671``, not
    ``41 555 2671``). A valid number with one mark passes the default threshold; one
    without needs a context word (before it: "call", "phone", "fax"; or a label after it:
    "office", "mobile"). Bare digit runs and short numbers always need one.

    A region's cheap length-and-pattern check runs before libphonenumber's validation,
    and the dearer formatting (for the grouping mark) only where no other mark decides.
    """

    name = "phone"
    entities = frozenset({E.PHONE_NUMBER})

    def __init__(self, regions: Sequence[str]) -> None:
        self.regions = tuple(_region(r) for r in regions)
        # The regions a national number of n digits can belong to (with or without its
        # trunk prefix), so each candidate visits only those.
        self._by_length: dict[int, tuple[_Region, ...]] = {
            n: tuple(
                r
                for r in self.regions
                if n in r.lengths or (r.national_prefix and n - len(r.national_prefix) in r.lengths)
            )
            for n in range(7, 16)
        }

    def find(self, text: str) -> Iterator[Span]:
        for m in _PHONE.finditer(text):
            value = m.group()
            score = self._score(value)
            if score:
                yield Span(E.PHONE_NUMBER, m.start(), m.end(), score, value, self.name)

    def _score(self, value: str) -> float:
        ext = _EXTENSION.search(value)
        head = value[: ext.start()] if ext else value
        digits = "".join(filter(str.isdigit, _TRUNK_ZERO.sub("", head) if "(" in head else head))
        if not 7 <= len(digits) <= 15 or _NOT_PHONE.fullmatch(value):
            return 0.0
        if value.startswith(("+", "00")):
            if value.startswith("00"):
                digits = digits[2:]
            return {2: 0.75, 1: 0.55}.get(_check_international(digits), 0.0)
        paren = "(" in head
        # Bare digit runs and short numbers: amounts, order and licence numbers look alike.
        cap = _WEAK_CAP if head.isdigit() or (len(digits) < 9 and not paren) else 1.0
        marks = _MARK_PAREN * paren + _MARK_EXTENSION * (ext is not None)
        best = 0.0
        for region in self._by_length[len(digits)]:
            score = self._national(region, head, digits, marks, cap, best)
            if score > best:
                best = score
                if best >= min(cap, _VALID + _MARKS_CAP):
                    break
        return best

    @staticmethod
    def _national(
        region: _Region, head: str, digits: str, marks: float, cap: float, best: float
    ) -> float:
        """The score in ``region``; 0.0 where it cannot beat ``best``. The dear checks
        (libphonenumber's validation, the grouping) run only where they could."""
        prefix = region.national_prefix
        trunk = bool(prefix) and digits.startswith(prefix)
        nsn = digits[len(prefix) :] if trunk else digits
        if len(nsn) not in region.lengths:
            return 0.0
        marks += _MARK_TRUNK * trunk
        # Where the trunk prefix is 0, numbers are written with it; without it, a digit
        # run is as often a house number or a code: possible at best.
        can_be_valid = not (prefix == "0" and not trunk)
        top = _VALID if can_be_valid else _POSSIBLE
        if min(cap, top + min(_MARKS_CAP, marks + _MARK_GROUPING)) <= best:
            return 0.0
        base = _POSSIBLE
        if can_be_valid and region.pattern.fullmatch(nsn) and _valid(region, nsn):
            base = _VALID
        if (
            base + min(marks, _MARKS_CAP) < cap
            and marks < _MARKS_CAP
            and _grouped_as_formatted(head, nsn, region)
        ):
            marks += _MARK_GROUPING
        return round(min(cap, base + min(marks, _MARKS_CAP)), 3)


def _valid(region: _Region, nsn: str) -> bool:
    number = _number(region.country_code, nsn)
    # Checking the one region is a third of the cost of finding the number's region
    # first; where the code is shared, a number of a sibling region is valid too.
    if phonenumbers.is_valid_number_for_region(number, region.code):
        return True
    return region.shared and phonenumbers.is_valid_number(number)


def _grouped_as_formatted(head: str, nsn: str, region: _Region) -> bool:
    """Whether the candidate's digit groups are exactly those of one of the region's
    formats (the trunk prefix may open the first group, as in ``030 901820 55``)."""
    groups = _GROUPS.findall(head)
    if len(groups) < 2:
        return False
    for leading, pattern in region.formats.get(len(groups), ()):
        if leading is not None and not leading.match(nsn):
            continue
        m = pattern.fullmatch(nsn)
        if m is None:
            continue
        expected = m.groups()
        if (
            tuple(groups[1:]) == expected[1:]
            and groups[0].endswith(expected[0])
            and groups[0][: len(groups[0]) - len(expected[0])] in ("", region.national_prefix)
        ):
            return True
    return False


def _number(country_code: int, nsn: str) -> phonenumbers.PhoneNumber:
    # Building the number directly skips parse()'s normalisation, a third of the cost.
    zeros = len(nsn) - len(nsn.lstrip("0"))
    return phonenumbers.PhoneNumber(
        country_code=country_code,
        national_number=int(nsn),
        italian_leading_zero=True if zeros else None,
        number_of_leading_zeros=zeros if zeros > 1 else None,
    )


def _check_international(digits: str) -> int:
    """2: a valid number; 1: a possible one (right length for its country); 0: neither."""
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            nsn = digits[size:]
            if not nsn:
                return 0
            number = _number(code, nsn)
            if phonenumbers.is_valid_number(number):
                return 2
            return 1 if phonenumbers.is_possible_number(number) else 0
    return 0
