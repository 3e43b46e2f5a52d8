"""Entity types, named as Presidio names them so results compare and users can switch.

A span is one finding: an entity type, character offsets, a score in [0, 1] and the
text it covers. Types Presidio has no name for follow its ``COUNTRY_THING`` pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Span:
    """One finding in a text: ``text[start:end]`` is of ``entity_type``."""

    entity_type: str
    start: int
    end: int
    score: float
    text: str
    recognizer: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.entity_type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 3),
            "text": self.text,
        }
