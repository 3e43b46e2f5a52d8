"""Entity types, named as Presidio names them so results compare and users can switch.

A span is one finding: an entity type, character offsets, a score in [0, 1] and the
text it covers. Types Presidio has no name for follow its ``COUNTRY_THING`` pattern.
"""

from __future__ import annotations

import re
from typing import NamedTuple

EMAIL_ADDRESS = "EMAIL_ADDRESS"
PHONE_NUMBER = "PHONE_NUMBER"
CREDIT_CARD = "CREDIT_CARD"
IBAN_CODE = "IBAN_CODE"
US_SSN = "US_SSN"
IP_ADDRESS = "IP_ADDRESS"
URL = "URL"
PERSON = "PERSON"
LOCATION = "LOCATION"
STREET_ADDRESS = "STREET_ADDRESS"
UK_NINO = "UK_NINO"
UK_NHS = "UK_NHS"
DE_TAX_ID = "DE_TAX_ID"
FR_NIR = "FR_NIR"
ES_NIF = "ES_NIF"
ES_NIE = "ES_NIE"
IT_FISCAL_CODE = "IT_FISCAL_CODE"
NL_BSN = "NL_BSN"
PL_PESEL = "PL_PESEL"
FI_PERSONAL_IDENTITY_CODE = "FI_PERSONAL_IDENTITY_CODE"
US_ITIN = "US_ITIN"
IN_AADHAAR = "IN_AADHAAR"
IN_PAN = "IN_PAN"
AU_TFN = "AU_TFN"
CA_SIN = "CA_SIN"

# Credentials (bastion.privacy.secrets): one type per provider or kind, so a policy can
# treat a private key otherwise than a test key; SECRET_GENERIC is a random-looking value
# after a keyword (key, token, secret, password …), SECRET_API_KEY another provider's key.
SECRET_AWS = "SECRET_AWS"
SECRET_GCP = "SECRET_GCP"
SECRET_AZURE = "SECRET_AZURE"
SECRET_GITHUB = "SECRET_GITHUB"
SECRET_GITLAB = "SECRET_GITLAB"
SECRET_SLACK = "SECRET_SLACK"
SECRET_STRIPE = "SECRET_STRIPE"
SECRET_OPENAI = "SECRET_OPENAI"
SECRET_ANTHROPIC = "SECRET_ANTHROPIC"
SECRET_HUGGINGFACE = "SECRET_HUGGINGFACE"
SECRET_NPM = "SECRET_NPM"
SECRET_TWILIO = "SECRET_TWILIO"
SECRET_SENDGRID = "SECRET_SENDGRID"
SECRET_API_KEY = "SECRET_API_KEY"
SECRET_JWT = "SECRET_JWT"
SECRET_PRIVATE_KEY = "SECRET_PRIVATE_KEY"
SECRET_PASSWORD = "SECRET_PASSWORD"
SECRET_GENERIC = "SECRET_GENERIC"

SECRET_ENTITIES: tuple[str, ...] = (
    SECRET_AWS,
    SECRET_GCP,
    SECRET_AZURE,
    SECRET_GITHUB,
    SECRET_GITLAB,
    SECRET_SLACK,
    SECRET_STRIPE,
    SECRET_OPENAI,
    SECRET_ANTHROPIC,
    SECRET_HUGGINGFACE,
    SECRET_NPM,
    SECRET_TWILIO,
    SECRET_SENDGRID,
    SECRET_API_KEY,
    SECRET_JWT,
    SECRET_PRIVATE_KEY,
    SECRET_PASSWORD,
    SECRET_GENERIC,
)
#: In a policy's entity lists, this name stands for every SECRET_* type.
SECRET_GROUP = "SECRET"

#: Every type the built-in recognizers can emit.
KNOWN_ENTITIES: frozenset[str] = frozenset(
    {
        EMAIL_ADDRESS,
        PHONE_NUMBER,
        CREDIT_CARD,
        IBAN_CODE,
        US_SSN,
        IP_ADDRESS,
        URL,
        PERSON,
        LOCATION,
        STREET_ADDRESS,
        UK_NINO,
        UK_NHS,
        DE_TAX_ID,
        FR_NIR,
        ES_NIF,
        ES_NIE,
        IT_FISCAL_CODE,
        NL_BSN,
        PL_PESEL,
        FI_PERSONAL_IDENTITY_CODE,
        US_ITIN,
        IN_AADHAAR,
        IN_PAN,
        AU_TFN,
        CA_SIN,
        *SECRET_ENTITIES,
    }
)

#: What the gateway masks when the policy names no entities.
DEFAULT_ENTITIES: tuple[str, ...] = (
    EMAIL_ADDRESS,
    PHONE_NUMBER,
    CREDIT_CARD,
    IBAN_CODE,
    US_SSN,
    IP_ADDRESS,
    PERSON,
    UK_NINO,
    UK_NHS,
    DE_TAX_ID,
    FR_NIR,
    ES_NIF,
    ES_NIE,
    IT_FISCAL_CODE,
    NL_BSN,
    PL_PESEL,
    FI_PERSONAL_IDENTITY_CODE,
    US_ITIN,
    IN_AADHAAR,
    IN_PAN,
    AU_TFN,
    CA_SIN,
    *SECRET_ENTITIES,
)

#: Placeholder tags: ``<EMAIL_1>`` reads better to a model than ``<EMAIL_ADDRESS_1>``.
PLACEHOLDER_TAGS: dict[str, str] = {
    EMAIL_ADDRESS: "EMAIL",
    PHONE_NUMBER: "PHONE",
    IP_ADDRESS: "IP",
    IBAN_CODE: "IBAN",
}

#: When two findings overlap the higher priority wins, then the higher score, then the
#: longer span: an e-mail is not also a URL or a name, an IP is not a phone.
PRIORITY: dict[str, int] = {
    EMAIL_ADDRESS: 100,
    IBAN_CODE: 95,
    IP_ADDRESS: 90,
    CREDIT_CARD: 85,
    US_SSN: 80,
    URL: 40,
    PHONE_NUMBER: 50,
    PERSON: 20,
    LOCATION: 10,
    # A street line outranks a phone: "03262 2437 Main St" is a postcode and a house.
    STREET_ADDRESS: 55,
    # A credential outranks all: "user:pw@example.com" in a URL is a password, not an
    # e-mail; digits inside a token are not a phone.
    **dict.fromkeys(SECRET_ENTITIES, 120),
}
NATIONAL_ID_PRIORITY = 70

#: Types whose values compare as digits only (separators do not matter).
NUMERIC_ENTITIES: frozenset[str] = frozenset(
    {PHONE_NUMBER, CREDIT_CARD, US_SSN, DE_TAX_ID, NL_BSN, PL_PESEL, US_ITIN, IN_AADHAAR}
    | {AU_TFN, CA_SIN, UK_NHS, FR_NIR}
)


def word_set(text: str) -> frozenset[str]:
    """The words of ``text`` as a set (for the recognizers' word lists)."""
    return frozenset(text.split())


def placeholder_tag(entity_type: str) -> str:
    return PLACEHOLDER_TAGS.get(entity_type, entity_type)


#: Every non-ASCII decimal digit of the Basic Multilingual Plane (what ``\\d`` matches
#: there besides 0-9), in ranges; a test checks it against ``str.isdecimal``.
_BMP_DIGITS = (
    "\\u0660-\\u0669\\u06f0-\\u06f9\\u07c0-\\u07c9\\u0966-\\u096f\\u09e6-\\u09ef\\u0a66-\\u0a6f"
    "\\u0ae6-\\u0aef\\u0b66-\\u0b6f\\u0be6-\\u0bef\\u0c66-\\u0c6f\\u0ce6-\\u0cef\\u0d66-\\u0d6f"
    "\\u0de6-\\u0def\\u0e50-\\u0e59\\u0ed0-\\u0ed9\\u0f20-\\u0f29\\u1040-\\u1049\\u1090-\\u1099"
    "\\u17e0-\\u17e9\\u1810-\\u1819\\u1946-\\u194f\\u19d0-\\u19d9\\u1a80-\\u1a89\\u1a90-\\u1a99"
    "\\u1b50-\\u1b59\\u1bb0-\\u1bb9\\u1c40-\\u1c49\\u1c50-\\u1c59\\ua620-\\ua629\\ua8d0-\\ua8d9"
    "\\ua900-\\ua909\\ua9d0-\\ua9d9\\ua9f0-\\ua9f9\\uaa50-\\uaa59\\uabf0-\\uabf9\\uff10-\\uff19"
)


def first_of(chars: str) -> str:
    """A pattern for one character of the class ``[chars]`` (which holds ``\\d``), as
    the first element of a pattern that ``re`` scans for fastest.

    ``re`` skips ahead to a pattern's first character by testing its class at every
    position; a class holding ``\\d`` costs a Unicode-database look-up per character
    (and one test more per other member). This class is ``\\d``'s own characters in one
    table (0-9, the other digits of the Basic Multilingual Plane, and every character
    beyond it), and the look-behind then requires exactly ``[chars]``: the same matches,
    about a third less time to find them."""
    others = chars.replace("\\d", "")
    return f"[{others}0-9{_BMP_DIGITS}\\U00010000-\\U0010ffff](?<=[{chars}])"


def first_of_plain(chars: str) -> str:
    """:func:`first_of` for a text whose only digits are 0-9 (:func:`plain_digits`):
    a class of a few ASCII characters, which ``re`` tests in a fraction of the time of
    ``\\d``'s whole table. On such a text a pattern starting with it matches exactly
    where the one starting with :func:`first_of` does."""
    others = chars.replace("\\d", "")
    return f"[{others}0-9](?<=[{chars}])"


#: A decimal digit other than 0-9, or any character beyond the Basic Multilingual Plane
#: (where ``\\d`` has digits too; an over-cautious test, not a wrong one).
_OTHER_DIGITS = re.compile(f"[{_BMP_DIGITS}\\U00010000-\\U0010ffff]")


def plain_digits(text: str) -> bool:
    """Whether every decimal digit in ``text`` is one of 0-9 (as in nearly every text),
    so that the digit-led detectors can scan it with their :func:`first_of_plain`
    patterns: one check per text instead of a Unicode table per character in each of
    five scans. Below U+0100 the only decimal digits are 0-9."""
    if text.isascii():
        return True
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return _OTHER_DIGITS.search(text) is None
    return True


def priority(entity_type: str) -> int:
    return PRIORITY.get(entity_type, NATIONAL_ID_PRIORITY)


def normalise(entity_type: str, value: str) -> str:
    """The form two mentions of one value share: digits only, or case-folded text."""
    if entity_type in NUMERIC_ENTITIES:
        digits = "".join(ch for ch in value if ch.isdigit())
        if digits:
            return digits
    if entity_type == IBAN_CODE:
        return "".join(value.split()).upper()
    return " ".join(value.split()).casefold()


class Span(NamedTuple):
    """One finding in a text: ``text[start:end]`` is of ``entity_type``.

    A named tuple rather than a frozen dataclass: as immutable, and made about four
    times faster (a frozen dataclass sets each field through ``object.__setattr__``),
    which was a tenth of the analyzer's work on a 1 KB prompt (bench/pii.py)."""

    entity_type: str
    start: int
    end: int
    score: float
    text: str
    recognizer: str = ""
    #: False where the value has the shape of its type but fails its check (checksum,
    #: issued ranges): kept on context words unless the policy validates strictly.
    valid: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.entity_type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 3),
            "text": self.text,
        }
