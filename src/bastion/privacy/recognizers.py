"""Recognizers for structured identifiers: a cheap regex finds candidates, a library validates.

Validation comes from well-kept libraries: ``python-stdnum`` (Luhn, IBAN mod-97, US SSN
ranges, national identifiers) and the standard library's ``ipaddress``. What is written
here, and why:

- the candidate patterns, so that each text is scanned once per kind of identifier
  (phone numbers, scanned once rather than once per region, are in
  :mod:`bastion.privacy.phones`);
- the card-network IIN table, because ``stdnum`` checks Luhn only and Presidio's card
  pattern misses Mastercard 2-series and 19-digit numbers;
- the UK National Insurance number check, which ``stdnum`` does not have.

Every pattern starts with a character class (a digit, a capital, ``@``) and checks the
character before it with a look-behind placed *after* that first character. Python's
``re`` then skips through the text in C to the next possible first character instead of
trying the whole pattern at every position, which halves the cost of a pass over 1 KB.

Scores follow Presidio's convention: a bare pattern that could be something else scores
low and needs a context word (see :data:`CONTEXT`) to pass the threshold; a validated,
unambiguous identifier scores high on its own.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum import numdb
from stdnum.au import tfn as _au_tfn
from stdnum.ca import sin as _ca_sin
from stdnum.de import idnr as _de_idnr
from stdnum.es import dni as _es_dni
from stdnum.es import nie as _es_nie
from stdnum.fi import hetu as _fi_hetu
from stdnum.fr import nir as _fr_nir
from stdnum.gb import nhs as _gb_nhs
from stdnum.in_ import aadhaar as _in_aadhaar
from stdnum.in_ import pan as _in_pan
from stdnum.it import codicefiscale as _it_cf
from stdnum.nl import bsn as _nl_bsn
from stdnum.pl import pesel as _pl_pesel
from stdnum.us import itin as _us_itin
from stdnum.us import ssn as _us_ssn

from bastion.privacy import entities as E
from bastion.privacy.entities import Span


class Recognizer(Protocol):
    """Finds spans of some entity types in a text."""

    name: str
    entities: frozenset[str]

    def find(self, text: str) -> Iterator[Span]: ...


#: Whole words (or phrases) that, shortly before a candidate, make it more likely.
#: ("number" is not one for phones: licence, account and order numbers follow it too.)
CONTEXT: dict[str, tuple[str, ...]] = {
    E.PHONE_NUMBER: (
        "phone",
        "phones",
        "phoned",
        "telephone",
        "tel",
        "telefon",
        "téléphone",
        "telefono",
        "teléfono",
        "cell",
        "cellphone",
        "mobile",
        "mob",
        "handy",
        "call",
        "calls",
        "called",
        "calling",
        "fax",
        "contact",
        "reach",
        "text",
        "texted",
        "sms",
        "whatsapp",
        "dial",
        "landline",
        "ring",
        "hotline",
        "ph",
        "tél",
        "tlf",
        # German, French, Spanish, Italian, Dutch and Portuguese: the languages of the
        # default phone regions (and their labels: "Tel.:", "Tél. :", "Handy:").
        "telefonnummer",
        "rufnummer",
        "mobil",
        "mobilnummer",
        "festnetz",
        "anrufen",
        "portable",
        "appelez",
        "appelez-moi",
        "rappeler",
        "rückruf",
        "appeler",
        "joindre",
        "fixe",
        "móvil",
        "movil",
        "celular",
        "llamar",
        "llame",
        "llámame",
        "llamame",
        "cellulare",
        "chiamare",
        "chiama",
        "chiamami",
        "telefoon",
        "telefoonnummer",
        "mobiel",
        "bel",
        "bellen",
        "gsm",
        "telefone",
        "ligue",
        "ligar",
    ),
    E.CREDIT_CARD: (
        "card",
        "credit",
        "debit",
        "visa",
        "mastercard",
        "amex",
        "cc",
        "payment",
        "pan",
    ),
    E.US_SSN: ("ssn", "ssns", "social security", "ss#", "ssid"),
    E.IBAN_CODE: ("iban", "bank", "account", "transfer", "wire"),
    E.IP_ADDRESS: ("ip", "ipv4", "ipv6", "address", "server", "host"),
    E.EMAIL_ADDRESS: ("email", "e-mail", "mail"),
    E.UK_NINO: ("national insurance", "nino", "ni number"),
    E.UK_NHS: ("nhs", "health service"),
    E.DE_TAX_ID: (
        "steuer-id",
        "steuerid",
        "idnr",
        "steueridentifikationsnummer",
        "identifikationsnummer",
        "tax id",
        "steuernummer",
    ),
    E.FR_NIR: ("nir", "insee", "sécurité sociale", "securite sociale", "numéro de sécurité"),
    E.ES_NIF: ("dni", "nif", "documento"),
    E.ES_NIE: ("nie", "extranjero"),
    E.IT_FISCAL_CODE: ("codice fiscale", "cf", "fiscal code"),
    E.NL_BSN: ("bsn", "burgerservicenummer", "sofinummer", "sofi"),
    E.PL_PESEL: ("pesel",),
    E.FI_PERSONAL_IDENTITY_CODE: ("hetu", "henkilötunnus", "personal identity code"),
    E.US_ITIN: ("itin", "taxpayer"),
    E.IN_AADHAAR: ("aadhaar", "aadhar", "uidai"),
    E.IN_PAN: ("pan", "permanent account number"),
    E.AU_TFN: ("tfn", "tax file number"),
    E.CA_SIN: ("sin", "social insurance"),
}


#: Labels written right after a value ("555-0192 (office)", "020 7946 0958 mobile"): the
#: first words after a candidate are searched for these.
CONTEXT_AFTER: dict[str, tuple[str, ...]] = {
    E.PHONE_NUMBER: (
        "phone",
        "tel",
        "office",
        "fax",
        "mobile",
        "cell",
        "home",
        "work",
        "landline",
        "whatsapp",
    ),
}
CONTEXT_AFTER_WORDS = 2

#: Words that are context only as a label, right before the value and followed by a
#: colon: "Office: 9691 2587", not "the office is at 17031 2202 Rissik St".
CONTEXT_LABELS: dict[str, tuple[str, ...]] = {
    E.PHONE_NUMBER: ("office", "desk", "work", "home", "direct", "switchboard", "büro", "bureau"),
}

#: The score of a value that has the exact shape of a high-harm identifier (SSN, ITIN,
#: card, IBAN, national id) but fails its check: with a context word (+0.35) it reaches
#: the default threshold, without one it stays below. Validity raises the score; it
#: gates only where the policy asks for strict validation (``strict_validation``).
SHAPE_SCORE = 0.15

# --- e-mail and URL ---------------------------------------------------------------

# An address is found from its "@": the domain forwards, the local part backwards (within
# the 64 characters RFC 5321 allows it), so text without "@" costs one ``in`` test.
_EMAIL_DOMAIN = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)
_EMAIL_LOCAL = re.compile(
    r"(?<![\w.!#$%&'*+=?^`{|}~-])[\w!#$%&'*+=?^`{|}~-]+(?:\.[\w!#$%&'*+=?^`{|}~-]+)*\Z"
)
_LOCAL_MAX = 64
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'`]+")
_URL_TRAILING = ".,;:!?)]}'\""


class EmailRecognizer:
    name = "email"
    entities = frozenset({E.EMAIL_ADDRESS})

    def find(self, text: str) -> Iterator[Span]:
        at = text.find("@")
        while at >= 0:
            domain = _EMAIL_DOMAIN.match(text, at)
            local = _EMAIL_LOCAL.search(text, max(0, at - _LOCAL_MAX), at) if domain else None
            if domain is not None and local is not None:
                start, end = local.start(), domain.end()
                yield Span(E.EMAIL_ADDRESS, start, end, 0.95, text[start:end], self.name)
                at = text.find("@", end)
            else:
                at = text.find("@", at + 1)


class UrlRecognizer:
    name = "url"
    entities = frozenset({E.URL})

    def find(self, text: str) -> Iterator[Span]:
        for m in _URL.finditer(text):
            url = m.group().rstrip(_URL_TRAILING)
            if len(url) > 7:
                yield Span(E.URL, m.start(), m.start() + len(url), 0.6, url, self.name)


# --- IP addresses -----------------------------------------------------------------

_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4}|:)?"
    r"(?:%[\w.]+)?(?![\w:])"
)
# Two colons at most four hex digits apart: a cheap test before the IPv6 pattern.
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")


def _ipv4(m: re.Match[str]) -> Span | None:
    try:
        ipaddress.IPv4Address(m.group())
    except ValueError:
        return None
    return Span(E.IP_ADDRESS, m.start(), m.end(), 0.8, m.group(), "ip")


def _ipv6_matches(text: str) -> Iterator[re.Match[str]]:
    """What ``_IPV6.finditer(text)`` finds, trying the pattern only near its hints.

    The pattern starts with no fixed character, so ``re`` would try it at every
    position. But a match's first colon opens a hint (``:``, up to four hex digits,
    ``:``) at most four characters into it, and that colon either opens a hint that
    ``_IPV6_HINT.finditer`` reports or closes one (hints can share a colon). So every
    match starts between four characters before a reported hint and its last colon."""
    end = 0  # where the last match ended: finditer goes on from there
    for hint in _IPV6_HINT.finditer(text):
        for pos in range(max(end, hint.start() - 4), hint.end()):
            if pos < end:
                continue
            m = _IPV6.match(text, pos)
            if m is not None:
                end = m.end()
                yield m


def _ipv6(text: str) -> Iterator[Span]:
    for m in _ipv6_matches(text):
        value = m.group()
        if len(value) < 3 or not any(c.isalnum() for c in value):
            continue
        try:
            ipaddress.IPv6Address(value.split("%", 1)[0])
        except ValueError:
            continue
        yield Span(E.IP_ADDRESS, m.start(), m.end(), 0.85, value, "ip")


# --- payment cards ----------------------------------------------------------------


def card_network(digits: str) -> str | None:
    """The network whose IIN range and length fit ``digits``, or None.

    Ranges from the networks' published IIN tables (ISO/IEC 7812 registrations).
    """
    n = len(digits)
    p1, p2, p3, p4, p6 = (int(digits[:k]) for k in (1, 2, 3, 4, 6))
    if p1 == 4 and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if 16 <= n <= 19 and (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925):
        return "discover"
    if (3528 <= p4 <= 3589 and 16 <= n <= 19) or (p4 in (1800, 2131) and n == 15):
        return "jcb"
    if (300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if 2200 <= p4 <= 2204 and 16 <= n <= 19:
        return "mir"
    if p2 in (62, 81) and 16 <= n <= 19:
        return "unionpay"
    if (p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19:
        return "maestro"
    if p2 == 82 and n == 16:
        return "rupay"
    if p4 == 9792 and n == 16:
        return "troy"
    if p1 == 1 and n == 15:
        return "uatp"
    return None


def _card(m: re.Match[str]) -> Span | None:
    value = m.group()
    digits = value.replace(" ", "").replace("-", "")
    if not _luhn.is_valid(digits):
        # A number of a network's range and length with a bad check digit: a typo, a
        # test number, or a card all the same to whoever reads it (next to "card").
        if card_network(digits) is None:
            return None
        return Span(E.CREDIT_CARD, m.start(), m.end(), SHAPE_SCORE, value, "card", False)
    if card_network(digits) is not None:
        score = 0.9 if len(digits) != len(value) else 0.8
    elif digits[0] in "23456" and 13 <= len(digits) <= 19:
        # Not in a published range but a payment-card industry digit (ISO/IEC 7812 MII
        # 2-6) and a good Luhn sum: new ranges are allocated every year.
        score = 0.6
    else:
        return None
    return Span(E.CREDIT_CARD, m.start(), m.end(), score, value, "card")


# --- IBAN -------------------------------------------------------------------------

# Found from its check digits (a digit is rarer than a letter), the country code behind.
_IBAN_REST = r"(?<=(?<![\w-])[A-Za-z]{2}\d)\d(?: ?[A-Za-z0-9]){11,30}(?![\w-])"
_IBAN = re.compile(E.first_of(r"\d") + _IBAN_REST)
#: The same, for a text whose digits are all 0-9 (``E.plain_digits``).
_IBAN_PLAIN = re.compile(E.first_of_plain(r"\d") + _IBAN_REST)


class IbanRecognizer:
    name = "iban"
    entities = frozenset({E.IBAN_CODE})

    def find(self, text: str) -> Iterator[Span]:
        return self.find_digits(text, E.plain_digits(text))

    def find_digits(self, text: str, plain: bool) -> Iterator[Span]:
        """:meth:`find`, told whether the text's digits are all 0-9."""
        for m in (_IBAN_PLAIN if plain else _IBAN).finditer(text):
            start = m.start() - 2
            value = text[start : m.end()]
            # The pattern may run on into the words after it ("GB26...23 Title VII");
            # shorten to the longest prefix that ends at a space and validates. Only a
            # prefix of the country's IBAN length can (stdnum checks the structure).
            length = _iban_length(value[:2].upper())
            end = len(value)
            found = False
            while end >= 15:
                candidate = value[:end]
                if (length is None or end - candidate.count(" ") == length) and _iban.is_valid(
                    candidate
                ):
                    yield Span(E.IBAN_CODE, start, start + end, 0.95, candidate, self.name)
                    found = True
                    break
                end = value.rfind(" ", 0, end)
            if not found:
                # The shape of the country's IBANs with wrong check digits: a typo or a
                # made-up example, and an account number to whoever reads it.
                shaped = _iban_shaped(value, length)
                if shaped:
                    yield Span(
                        E.IBAN_CODE, start, start + shaped, 0.2, value[:shaped], self.name, False
                    )


def _iban_shaped(value: str, length: int | None) -> int:
    """The length of the longest prefix of ``value`` (ending at a space) that is an IBAN
    of its country but for its check digits; 0 if none is."""
    if length is None:
        return 0
    end = len(value)
    while end >= 15:
        compact = value[:end].replace(" ", "").upper()
        if len(compact) == length:
            fixed = compact[:2] + _iban.calc_check_digits(compact) + compact[4:]
            return end if _iban.is_valid(fixed) else 0
        end = value.rfind(" ", 0, end)
    return 0


_BBAN_PART = re.compile(r"([1-9][0-9]*)!([nac])")


@cache
def _iban_length(country: str) -> int | None:
    """The length of the country's IBANs, from stdnum's IBAN registry (the structure it
    validates against: "4!a6!n8!n" is four letters, six digits, eight digits); None
    where the registry has no such structure, or one this does not read."""
    info = numdb.get("iban").info(country)
    bban = info[0][1].get("bban", "") if len(info) == 1 and info[0][0] == country else ""
    if not bban or _BBAN_PART.sub("", bban):
        return None
    return len(country) + 2 + sum(int(n) for n, _ in _BBAN_PART.findall(bban))


# --- US SSN -----------------------------------------------------------------------


def _ssn(m: re.Match[str]) -> Span | None:
    """``stdnum.us.ssn`` rejects area 000, 666, 900-999, group 00, serial 0000 and the
    numbers known to be published (078-05-1120 and others). Those are test values and
    examples, but they look exactly like an SSN: kept at a lower score, so a context word
    ("SSN") is needed (see :data:`SHAPE_SCORE`)."""
    value = m.group()
    sep = m.group("sep")
    if _us_ssn.is_valid(value.replace(" ", "-")):
        score = 0.75 if sep == "-" else 0.45 if sep == " " else 0.3
        return Span(E.US_SSN, m.start(), m.end(), score, value, "ssn")
    score = 0.3 if sep == "-" else 0.2 if sep == " " else SHAPE_SCORE
    return Span(E.US_SSN, m.start(), m.end(), score, value, "ssn", False)


# --- cards, SSNs and IPv4 addresses: one pass -------------------------------------

# After the shared first digit, each branch checks the look-behind its own type needs
# (an IPv4 address is not preceded by ".", a card or an SSN not by "-").
_NUMBERS_REST = (
    r"(?<![\w]\d)(?:"
    r"(?P<ip>(?<![.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d))"
    r"|(?P<card>(?<![-]\d)(?:"
    r"\d{11,18}"
    r"|\d{3}(?P<c4>[ -])\d{4}(?P=c4)\d{4}(?P=c4)\d{1,4}(?:(?P=c4)\d{1,3})?"  # 4-4-4-4
    r"|\d{3}(?P<c6>[ -])\d{6}(?P=c6)\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r")(?![\w-]))"
    r"|(?P<ssn>(?<![-]\d)\d{2}(?P<sep>[- ]?)\d{2}(?P=sep)\d{4}(?![\w-]))"
    r")"
)
_NUMBERS = re.compile(E.first_of(r"\d") + _NUMBERS_REST)
#: The same, for a text whose digits are all 0-9 (``E.plain_digits``).
_NUMBERS_PLAIN = re.compile(E.first_of_plain(r"\d") + _NUMBERS_REST)
_VALIDATE: dict[str, Callable[[re.Match[str]], Span | None]] = {
    "ip": _ipv4,
    "card": _card,
    "ssn": _ssn,
}


class NumberRecognizer:
    """Payment cards, US SSNs and IP addresses: one pass over the text finds the digit
    runs of all three (their shapes do not overlap), each then validated by its type."""

    name = "numbers"
    entities = frozenset({E.CREDIT_CARD, E.US_SSN, E.IP_ADDRESS})

    def find(self, text: str) -> Iterator[Span]:
        return self.find_digits(text, E.plain_digits(text))

    def find_digits(self, text: str, plain: bool) -> Iterator[Span]:
        """:meth:`find`, told whether the text's digits are all 0-9."""
        for m in (_NUMBERS_PLAIN if plain else _NUMBERS).finditer(text):
            kind = m.lastgroup
            # lastgroup names the outermost group that matched; a separator group can
            # only match inside its own branch.
            if kind in ("c4", "c6"):
                kind = "card"
            elif kind == "sep":
                kind = "ssn"
            span = _VALIDATE[kind or ""](m) if kind in _VALIDATE else None
            if span is not None:
                yield span
        yield from _ipv6(text)


# --- national identifiers ---------------------------------------------------------

_NINO = re.compile(
    r"(?<![\w-])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w-])"
)


def _nino_valid(value: str) -> bool:
    # The pattern carries all of HMRC's published rules (no D, F, I, Q, U, V; second
    # letter not O; the reserved prefixes); there is no check digit.
    return bool(value)


@dataclass(frozen=True, slots=True)
class IdRule:
    entity_type: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool]
    score: float
    #: Letters and digits in the shortest valid value (a cheap filter on candidates).
    length: int
    #: Whether every valid value has a letter (another cheap filter).
    letters: bool = False
    #: The shortest and longest text the pattern can match, in characters.
    widths: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _widths(self.pattern))


def _widths(pattern: re.Pattern[str]) -> tuple[int, int]:
    """What ``re``'s own parser says of the pattern's match lengths. The parser is
    private; where it is missing or answers otherwise, no length is ruled out."""
    try:
        parser: Any = importlib.import_module("re._parser")
        low, high = parser.parse(pattern.pattern, pattern.flags).getwidth()
        return int(low), int(high)
    except (ImportError, AttributeError, TypeError, ValueError):
        return 0, sys.maxsize


def _d(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])" + pattern + r"(?![\w-])")


ID_RULES: tuple[IdRule, ...] = (
    IdRule(E.UK_NINO, _NINO, _nino_valid, 0.7, 9, True),
    IdRule(E.UK_NHS, _d(r"\d{3}[ -]?\d{3}[ -]?\d{4}"), _gb_nhs.is_valid, 0.3, 10),
    IdRule(E.DE_TAX_ID, _d(r"\d{2} ?\d{3} ?\d{3} ?\d{3}"), _de_idnr.is_valid, 0.3, 11),
    IdRule(
        E.FR_NIR,
        _d(r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2A|2B) ?\d{3} ?\d{3} ?\d{2}"),
        _fr_nir.is_valid,
        0.6,
        15,
    ),
    IdRule(E.ES_NIF, _d(r"\d{8}-?[A-Z]"), _es_dni.is_valid, 0.7, 9, True),
    IdRule(E.ES_NIE, _d(r"[XYZ]-?\d{7}-?[A-Z]"), _es_nie.is_valid, 0.75, 9, True),
    IdRule(
        E.IT_FISCAL_CODE,
        _d(r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-EHLMPR-T][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]"),
        _it_cf.is_valid,
        0.85,
        16,
        True,
    ),
    IdRule(E.NL_BSN, _d(r"\d{4}\.?\d{2}\.?\d{3}"), _nl_bsn.is_valid, 0.3, 9),
    IdRule(E.PL_PESEL, _d(r"\d{11}"), _pl_pesel.is_valid, 0.3, 11),
    IdRule(
        E.FI_PERSONAL_IDENTITY_CODE, _d(r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]"), _fi_hetu.is_valid, 0.8, 10
    ),
    IdRule(
        E.US_ITIN,
        _d(r"9\d{2}-?(?:5\d|6[0-5]|7\d|8[0-8]|9[0-24-9])-?\d{4}"),
        _us_itin.is_valid,
        0.5,
        9,
    ),
    IdRule(E.IN_AADHAAR, _d(r"[2-9]\d{3} ?\d{4} ?\d{4}"), _in_aadhaar.is_valid, 0.3, 12),
    IdRule(E.IN_PAN, _d(r"[A-Z]{3}[ABCFGHLJPT][A-Z]\d{4}[A-Z]"), _in_pan.is_valid, 0.45, 10, True),
    IdRule(E.AU_TFN, _d(r"\d{3} ?\d{3} ?\d{2,3}"), _au_tfn.is_valid, 0.2, 8),
    IdRule(E.CA_SIN, _d(r"\d{3}[ -]?\d{3}[ -]?\d{3}"), _ca_sin.is_valid, 0.3, 9),
)


# Where an identifier could start: up to six capitals then a digit (covers every rule
# above), followed by more letters, digits and separators, eight characters or more.
# One pass finds these; the rules then run only inside them, instead of fifteen passes
# over the whole text.
_ID_CANDIDATE_REST = (
    r"(?<![\w-][A-Z\d])(?=[A-Z\d .\-+]{7})(?:(?<=\d)|(?=[A-Z]{0,5} ?\d))"
    r"[A-Z\d]*(?:[ .\-+][A-Z\d]+)*(?![\w-])"
)
_ID_CANDIDATE = re.compile(E.first_of(r"A-Z\d") + _ID_CANDIDATE_REST)
#: The same, for a text whose digits are all 0-9 (``E.plain_digits``).
_ID_CANDIDATE_PLAIN = re.compile(E.first_of_plain(r"A-Z\d") + _ID_CANDIDATE_REST)


# A country code (or a bracketed trunk zero) right before: the digits are the rest of an
# international phone number ("+34 960821620", "+49(0) 997964112"), not an identifier.
_PHONE_PREFIX = re.compile(r"(?:\+\d{1,3}\s?(?:\(0\))?|\(0\))[ .\-]?\Z")


class NationalIdRecognizer:
    """National identifiers that ``python-stdnum`` validates (check digits, dates)."""

    name = "national_id"

    def __init__(self, entity_types: frozenset[str]) -> None:
        self.rules = tuple(r for r in ID_RULES if r.entity_type in entity_types)
        self.entities = frozenset(r.entity_type for r in self.rules)
        # The rules that can match a candidate of a given shape, worked out once per
        # shape: (letters and digits in it, whether it has a letter, its length if it
        # is one token, else 0).
        self._by_shape: dict[tuple[int, bool, int], tuple[IdRule, ...]] = {}

    def _rules_for(self, size: int, letters: bool, whole: int) -> tuple[IdRule, ...]:
        shape = (size, letters, whole)
        rules = self._by_shape.get(shape)
        if rules is None:
            rules = tuple(
                r
                for r in self.rules
                if size >= r.length
                and (letters or not r.letters)
                and (not whole or r.widths[0] <= whole <= r.widths[1])
            )
            if len(self._by_shape) < 4096:
                self._by_shape[shape] = rules
        return rules

    def find(self, text: str) -> Iterator[Span]:
        return self.find_digits(text, E.plain_digits(text))

    def find_digits(self, text: str, plain: bool) -> Iterator[Span]:
        """:meth:`find`, told whether the text's digits are all 0-9."""
        for c in (_ID_CANDIDATE_PLAIN if plain else _ID_CANDIDATE).finditer(text):
            lo, hi = c.span()
            if hi - lo < 8:
                continue
            value = c.group()
            spaces, dots, pluses = value.count(" "), value.count("."), value.count("+")
            size = len(value) - spaces - dots - pluses - value.count("-")
            letters = not value.isdigit() and value.lower() != value  # A-Z, digits, separators
            # A rule starts and ends where no word character or hyphen touches it: in a
            # candidate of one token ("4111111111111111", the common case) only at its
            # ends, so a rule whose matches are shorter or longer need not run.
            whole = 0 if spaces or dots or pluses else hi - lo
            for rule in self._rules_for(size, letters, whole):
                # endpos makes the rule's look-ahead see an end at ``hi``, which is a
                # real boundary: the candidate pattern ends only before one.
                for m in rule.pattern.finditer(text, lo, hi):
                    value = m.group()
                    # stdnum's validators strip their own separators (and keep the
                    # significant ones, such as the Finnish century sign).
                    before = text[max(0, m.start() - 9) : m.start()]
                    if ("+" in before or "(0)" in before) and _PHONE_PREFIX.search(before):
                        continue
                    valid = rule.validate(value)
                    yield Span(
                        rule.entity_type,
                        m.start(),
                        m.end(),
                        rule.score if valid else SHAPE_SCORE,
                        value,
                        self.name,
                        valid,
                    )
