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
from functools import lru_cache
from typing import Any

import phonenumbers

from bastion.privacy import entities as E
from bastion.privacy.entities import Span

# One pass over the text finds every run that could be a phone number: an optional
# "+" or "(", digits with at most two separators between them, an optional extension.
# The first character is matched before the look-behind (see the module docstring); the
# look-behinds after it then require what the original first element required.
_PHONE_REST = (
    r"(?<![\w+.\-/:][+(\d])"
    r"(?:(?<=\+)(?:\(\s*\+?\d{1,4}\s*\)|\d)|(?<=\()\s*\+?\d{1,5}\s*\)|(?<=\d))"
    r"(?:[ .\-/]{0,2}(?:\(\d{1,5}\)|\d)){5,19}"
    r"(?:\s*(?:x|ext\.?|extension|#)\s*\d{1,6})?"
    # A label may follow a hyphen ("555-0192-Office"); a digit may not.
    r"(?![\w:]|-\d)(?!\.\d)"
)
_PHONE = re.compile(E.first_of(r"+(\d") + _PHONE_REST)
#: The same, for a text whose digits are all 0-9 (``E.plain_digits``).
_PHONE_PLAIN = re.compile(E.first_of_plain(r"+(\d") + _PHONE_REST)
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
#: A local number written without its area code (seven or eight digits that no region's
#: plan takes whole: "9691 2587", "555-0192"): found only next to a context word.
_SHORT = 0.2
_SHORT_LENGTHS = (7, 8)


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
        return self.find_digits(text, E.plain_digits(text))

    def find_digits(self, text: str, plain: bool) -> Iterator[Span]:
        """:meth:`find`, told whether the text's digits are all 0-9."""
        for m in (_PHONE_PLAIN if plain else _PHONE).finditer(text):
            value = m.group()
            score = self._score(value)
            if not score:
                # The run may have taken in the next number on the line ("(796)417-0792
                # 228 Main St"): the run without its last group, once.
                cut = value.rfind(" ")
                if cut > 0 and ("-" in value[:cut] or "." in value[:cut] or ")" in value[:cut]):
                    value = value[:cut].rstrip(" .-/")
                    score = self._score(value)
            if score:
                start = m.start()
                yield Span(E.PHONE_NUMBER, start, start + len(value), score, value, self.name)

    def _score(self, value: str) -> float:
        ext = _EXTENSION.search(value)
        head = value[: ext.start()] if ext else value
        digits = "".join(filter(str.isdigit, _TRUNK_ZERO.sub("", head) if "(" in head else head))
        if not 7 <= len(digits) <= 15 or _NOT_PHONE.fullmatch(value):
            return 0.0
        if value.startswith("+"):
            return {2: 0.75, 1: 0.55}.get(_check_international(digits), 0.0)
        if value.startswith("00"):
            found = _check_international(digits[2:])
            if found:
                return 0.75 if found == 2 else 0.55
            # Not a number abroad: "0038733729" may still be a national number.
        paren = "(" in head
        # Bare digit runs and short numbers: amounts, order and licence numbers look alike.
        cap = _WEAK_CAP if head.isdigit() or (len(digits) < 9 and not paren) else 1.0
        marks = _MARK_PAREN * paren + _MARK_EXTENSION * (ext is not None)
        enough = cap if cap < _VALID + _MARKS_CAP else _VALID + _MARKS_CAP
        groups = _GROUPS.findall(head)
        best = 0.0
        for region in self._by_length[len(digits)]:
            score = _national(region, groups, digits, marks, cap, best)
            if score > best:
                best = score
                if best >= enough:
                    break
        if not best and len(digits) in _SHORT_LENGTHS:
            return _SHORT
        return best


def _national(
    region: _Region, groups: list[str], digits: str, marks: float, cap: float, best: float
) -> float:
    """The score in ``region``; 0.0 where it cannot beat ``best``. The dear checks
    (libphonenumber's validation, the grouping) run only where they could."""
    prefix = region.national_prefix
    trunk = bool(prefix) and digits.startswith(prefix)
    nsn = digits[len(prefix) :] if trunk else digits
    if len(nsn) not in region.lengths:
        return 0.0
    if trunk:
        marks += _MARK_TRUNK
    # Where the trunk prefix is 0, numbers are written with it; without it, a digit run
    # is as often a house number or a code: possible at best.
    can_be_valid = trunk or prefix != "0"
    top = _VALID if can_be_valid else _POSSIBLE
    grouped = marks + _MARK_GROUPING
    reach = top + (grouped if grouped < _MARKS_CAP else _MARKS_CAP)
    if (reach if reach < cap else cap) <= best:
        return 0.0
    base = _POSSIBLE
    if can_be_valid and region.pattern.fullmatch(nsn) and _valid(region, nsn):
        base = _VALID
    if (
        marks < _MARKS_CAP
        and base + marks < cap
        and len(groups) > 1
        and _grouped_as_formatted(groups, nsn, region)
    ):
        marks += _MARK_GROUPING
    score = base + (marks if marks < _MARKS_CAP else _MARKS_CAP)
    return _rounded(score if score < cap else cap)


# Scores are sums of a few constants: each distinct one is rounded once (``round`` with
# digits costs a float-to-decimal conversion). Bounded all the same.
_ROUNDED: dict[float, float] = {}


def _rounded(score: float) -> float:
    found = _ROUNDED.get(score)
    if found is None:
        found = round(score, 3)
        if len(_ROUNDED) < 4096:
            _ROUNDED[score] = found
    return found


def _valid(region: _Region, nsn: str) -> bool:
    # Checking the one region is a third of the cost of finding the number's region
    # first; where the code is shared, a number of a sibling region is valid too.
    if _valid_for_region(region.country_code, region.code, nsn):
        return True
    return region.shared and _valid_number(region.country_code, nsn)


# --- libphonenumber's validity test, compiled ---------------------------------------
#
# ``phonenumbers.is_valid_number_for_region`` matches a number against the region's
# general pattern and then, one Python call each, against the pattern of every number
# type (fixed line, mobile, toll free, ...): most of the cost of a phone candidate.
# The same test here reads the same metadata, but the type patterns that allow a given
# length are joined into one pattern, so a number costs two regex matches. It answers
# as the library does (a test compares the two); numbers that are all zeros, whose
# national significant number the library writes with one zero more, go to the library.

#: The number types whose patterns make a number valid (``_number_type_helper``).
_NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


class _Plan:
    """One region's numbering plan, as libphonenumber's validity test reads it."""

    __slots__ = ("_by_length", "_descs", "general")

    def __init__(self, meta: Any) -> None:
        self.general = _desc_pattern(meta.general_desc)
        descs = [getattr(meta, name) for name in _NUMBER_TYPES]
        if not meta.same_mobile_and_fixed_line_pattern:
            descs.append(meta.mobile)
        self._descs = [d for d in descs if _desc_pattern(d) is not None]
        self._by_length: dict[int, re.Pattern[str] | None] = {}

    def valid(self, nsn: str) -> bool:
        general = self.general
        if general is None or not general[0](len(nsn)) or general[1].fullmatch(nsn) is None:
            return False
        n = len(nsn)
        if n in self._by_length:
            typed = self._by_length[n]
        else:
            alternatives = [
                f"(?:{d.national_number_pattern})"
                for d in self._descs
                if not d.possible_length or n in d.possible_length
            ]
            typed = re.compile("|".join(alternatives)) if alternatives else None
            self._by_length[n] = typed
        return typed is not None and typed.fullmatch(nsn) is not None


def _desc_pattern(desc: Any) -> tuple[Any, re.Pattern[str]] | None:
    """A number description's length test and pattern, or None where it matches
    nothing (``_is_number_matching_desc``)."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = frozenset(desc.possible_length or ())
    return (lengths.__contains__ if lengths else _any_length), re.compile(
        desc.national_number_pattern
    )


def _any_length(n: int) -> bool:
    return True


@lru_cache(maxsize=512)
def _region_plan(region_code: str) -> _Plan | None:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region_code.upper(), None)
    return None if meta is None else _Plan(meta)


@lru_cache(maxsize=64)
def _non_geo_plan(country_code: int) -> _Plan | None:
    meta = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(country_code, None)
    return None if meta is None else _Plan(meta)


@lru_cache(maxsize=512)
def _leading_digits(region_code: str) -> re.Pattern[str] | None:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region_code.upper(), None)
    if meta is None or meta.leading_digits is None:
        return None
    return re.compile(meta.leading_digits)


_NON_GEO = phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY


def _valid_for_region(country_code: int, region_code: str, nsn: str) -> bool:
    """``phonenumbers.is_valid_number_for_region``."""
    if not nsn.strip("0"):
        return phonenumbers.is_valid_number_for_region(_number(country_code, nsn), region_code)
    if region_code == _NON_GEO:
        plan = _non_geo_plan(country_code)
    else:
        plan = _region_plan(region_code)
        if plan is not None and country_code != _country_code(region_code):
            return False
    return plan is not None and plan.valid(nsn)


@lru_cache(maxsize=512)
def _country_code(region_code: str) -> int:
    return int(phonenumbers.country_code_for_valid_region(region_code))


def _valid_number(country_code: int, nsn: str) -> bool:
    """``phonenumbers.is_valid_number``: the number's region is found first."""
    if not nsn.strip("0"):
        return phonenumbers.is_valid_number(_number(country_code, nsn))
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions:
        return False
    if len(regions) == 1:
        return _valid_for_region(country_code, regions[0], nsn)
    for region_code in regions:
        if phonenumbers.PhoneMetadata.metadata_for_region(region_code.upper(), None) is None:
            continue
        leading = _leading_digits(region_code)
        if leading is not None:
            if leading.match(nsn):
                return _valid_for_region(country_code, region_code, nsn)
        else:
            plan = _region_plan(region_code)
            if plan is not None and plan.valid(nsn):
                return _valid_for_region(country_code, region_code, nsn)
    return False


def _grouped_as_formatted(groups: list[str], nsn: str, region: _Region) -> bool:
    """Whether the candidate's digit groups are exactly those of one of the region's
    formats (the trunk prefix may open the first group, as in ``030 901820 55``)."""
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
            if _valid_number(code, nsn):
                return 2
            return 1 if phonenumbers.is_possible_number(_number(code, nsn)) else 0
    return 0
