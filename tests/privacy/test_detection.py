"""Detectors, table-driven: what must be found, and the look-alikes that must not."""

from __future__ import annotations

import pytest

from bastion.privacy import KNOWN_ENTITIES, Analyzer, PrivacyPolicy
from bastion.privacy.recognizers import card_network


def found(analyzer: Analyzer, text: str) -> list[tuple[str, str]]:
    return [(s.entity_type, s.text) for s in analyzer.analyze(text)]


POSITIVES = [
    # e-mail
    ("write to jane.doe+tag@example.co.uk today", "EMAIL_ADDRESS", "jane.doe+tag@example.co.uk"),
    (
        "Mail: ChristopheBjorklund@jourrapide.com",
        "EMAIL_ADDRESS",
        "ChristopheBjorklund@jourrapide.com",
    ),
    # phones: international anywhere, national for the configured regions
    ("call +44 20 7946 0958 now", "PHONE_NUMBER", "+44 20 7946 0958"),
    ("ring 0049 30 901820 please", "PHONE_NUMBER", "0049 30 901820"),
    ("office: +41 (0)44 668 18 00", "PHONE_NUMBER", "+41 (0)44 668 18 00"),
    ("US office (415) 555-2671 x42", "PHONE_NUMBER", "(415) 555-2671 x42"),
    ("Ruf an: 030 901820 55", "PHONE_NUMBER", "030 901820 55"),
    ("phone 9498777106", "PHONE_NUMBER", "9498777106"),
    # a label after the number, joined by a hyphen or a space
    ("the line 3660170548-Fax", "PHONE_NUMBER", "3660170548"),
    ("Lines: 020 7946 0958-Office, 020 7946 0959-Fax", "PHONE_NUMBER", "020 7946 0959"),
    # a grouping the region uses besides its main one (Spanish mobiles as 3-3-3)
    ("Escríbeme al 612 345 678 hoy", "PHONE_NUMBER", "612 345 678"),
    # an area code in parentheses and an extension mark a phone number even where the
    # numbering plan has not allocated the area code (yet)
    ("Desk: (898)666-3621x0135", "PHONE_NUMBER", "(898)666-3621x0135"),
    # cards: every network, Mastercard 2-series, 19 digits
    ("Visa 4111 1111 1111 1111 on file", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("mc 2221000000000009 expires", "CREDIT_CARD", "2221000000000009"),
    ("mc 2720-9999-9999-9996 ok", "CREDIT_CARD", "2720-9999-9999-9996"),
    ("visa19 4273468222888969924 ok", "CREDIT_CARD", "4273468222888969924"),
    ("amex 3782 822463 10005 ok", "CREDIT_CARD", "3782 822463 10005"),
    ("discover 6011111111111117", "CREDIT_CARD", "6011111111111117"),
    ("jcb 3530111333300000", "CREDIT_CARD", "3530111333300000"),
    ("unionpay 6200000000000005", "CREDIT_CARD", "6200000000000005"),
    # IBAN, several countries, spaced and compact
    ("IBAN GB82 WEST 1234 5698 7654 32 thanks", "IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
    ("pay DE89370400440532013000 now", "IBAN_CODE", "DE89370400440532013000"),
    ("FR1420041010050500013M02606 is mine", "IBAN_CODE", "FR1420041010050500013M02606"),
    ("NL91ABNA0417164300 bank", "IBAN_CODE", "NL91ABNA0417164300"),
    ("Konto AT61 1904 3002 3457 3201", "IBAN_CODE", "AT61 1904 3002 3457 3201"),
    # SSN (valid since the 2011 randomisation)
    ("SSN 849-66-3189 on the form", "US_SSN", "849-66-3189"),
    ("my social security number is 536 22 8726", "US_SSN", "536 22 8726"),
    # IP addresses
    ("from 192.168.10.1 we saw", "IP_ADDRESS", "192.168.10.1"),
    ("host 2001:db8::8a2e:370:7334 down", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    (
        "v6 6e40:4041:c617:e898:c11:40d2:c669:2eb4 up",
        "IP_ADDRESS",
        "6e40:4041:c617:e898:c11:40d2:c669:2eb4",
    ),
    # national identifiers that python-stdnum validates
    ("NINO AB 12 34 56 C on file", "UK_NINO", "AB 12 34 56 C"),
    ("NHS number 943 476 5919", "UK_NHS", "943 476 5919"),
    ("Steuer-ID 36574261809", "DE_TAX_ID", "36574261809"),
    ("NIR 2 95 10 99 126 111 93", "FR_NIR", "2 95 10 99 126 111 93"),
    ("DNI 54362315K", "ES_NIF", "54362315K"),
    ("NIE X2482300W", "ES_NIE", "X2482300W"),
    ("codice fiscale RCCMNL83S18D969H", "IT_FISCAL_CODE", "RCCMNL83S18D969H"),
    ("BSN 111222333", "NL_BSN", "111222333"),
    ("PESEL 44051401359", "PL_PESEL", "44051401359"),
    ("hetu 131052-308T", "FI_PERSONAL_IDENTITY_CODE", "131052-308T"),
    # names
    ("Please ask Maria Garcia about it", "PERSON", "Maria Garcia"),
    ("Dear Dr. Ahtisaari, thanks", "PERSON", "Ahtisaari"),
    ("The report by Sari J. Paavolainen is late", "PERSON", "Sari J. Paavolainen"),
    ("hi, my name is john smith and I need help", "PERSON", "john smith"),
    ("a letter from Ludwig van Beethoven arrived", "PERSON", "Ludwig van Beethoven"),
    ("Mr. Okonkwo will call", "PERSON", "Okonkwo"),
    # places: countries and large cities alone, other cities after a cue or on an
    # address line, multi-word names, qualifiers left outside
    ("We flew in from Germany on Monday.", "LOCATION", "Germany"),
    ("Offices in New York and São Paulo", "LOCATION", "New York"),
    ("Offices in New York and São Paulo", "LOCATION", "São Paulo"),
    ("She moved to Lisbon last year.", "LOCATION", "Lisbon"),
    ("The orchestra toured Southern Italy", "LOCATION", "Italy"),
    ("Send it to 12 Baker Street, London", "LOCATION", "London"),
    ("the Czech Republic and England", "LOCATION", "Czech Republic"),
    ("I grew up in Florence", "LOCATION", "Florence"),
    # a score exactly at the threshold passes (0.7 - 0.2 is not 0.5 in floating point)
    ("Ship to 221B Baker Street, London.", "LOCATION", "London"),
    # street lines in the three common layouts, with a unit after them
    ("Send it to 221B Baker Street, London", "STREET_ADDRESS", "221B Baker Street"),
    ("Billing: 2450 Crown St. Apt. 4, Leeds", "STREET_ADDRESS", "2450 Crown St. Apt. 4"),
    ("Rue de Rivoli 12, Paris", "STREET_ADDRESS", "Rue de Rivoli 12"),
    ("Via Roma 131\nSuite 12\nMilano", "STREET_ADDRESS", "Via Roma 131\nSuite 12"),
    ("Friedhofstrasse 33, 8000 Zürich", "STREET_ADDRESS", "Friedhofstrasse 33"),
    ("Drottninggatan 7, Stockholm", "STREET_ADDRESS", "Drottninggatan 7"),
]


@pytest.mark.parametrize(("text", "entity_type", "value"), POSITIVES)
def test_finds(analyzer: Analyzer, text: str, entity_type: str, value: str) -> None:
    assert (entity_type, value) in found(analyzer, text)


NEGATIVES = [
    # an e-mail is not also a URL or a name
    ("reach tom.leonard@superrito.com soon", ("URL", "PERSON")),
    # an IP is not a phone
    ("server 10.20.30.40 rebooted", ("PHONE_NUMBER",)),
    # dates and times are not phones
    ("When: 2000-04-16 11:34:35 Where", ("PHONE_NUMBER",)),
    # SSN shapes outside the issued ranges need a context word (see test_identifiers)
    ("ref 000-12-3456", ("US_SSN",)),
    ("ref 666-12-3456", ("US_SSN",)),
    ("ref 912-34-5678", ("US_SSN",)),
    ("ref 123-00-4567", ("US_SSN",)),
    ("ref 078-05-1120", ("US_SSN",)),
    # Luhn failures without a context word, and unknown networks with one
    ("ref 4111 1111 1111 1112", ("CREDIT_CARD",)),
    ("card 9999 9999 9999 9995", ("CREDIT_CARD",)),
    ("order 1234 5678 9012 3452", ("CREDIT_CARD",)),
    # mod-97 failure without a context word
    ("ref GB83 WEST 1234 5698 7654 32", ("IBAN_CODE",)),
    # bare numbers that need context get none: 'lesson' holds 'ssn' but not as a word
    ("the lesson 536228726 was long", ("US_SSN",)),
    ("my BSNL account 111222333", ("NL_BSN",)),
    # house numbers are not phones
    ("The office is at 17151 2450 Crown St", ("PHONE_NUMBER",)),
    ("ship to 94105 2230 Market Street", ("PHONE_NUMBER",)),
    # "number" alone is not a phone's context: licence and account numbers follow it too
    ("driver's license number is 6940579", ("PHONE_NUMBER",)),
    ("licence number 2270-66-1551 expires", ("PHONE_NUMBER",)),
    # amounts written with thousands separators
    ("Total: 78 651 450 euros", ("PHONE_NUMBER",)),
    # versions and plain words
    ("Python 3.11 and ::", ("IP_ADDRESS",)),
    ("The Monday meeting in Paris. Thanks", ("PERSON",)),
    ("Please send the report today.", ("PERSON",)),
    ("Call the SSN team at NASA", ("PERSON",)),
    # a city that is also a word or a first name needs a cue to be a place
    ("Reading is fun, said Mary.", ("LOCATION",)),
    ("Florence Nightingale was a nurse", ("LOCATION",)),
    ("Mobile: 0496 46 46 70", ("LOCATION",)),
    # a number next to words is not yet a street
    ("Chapter 12 Road Safety", ("STREET_ADDRESS",)),
    ("I bought 3 Park tickets", ("STREET_ADDRESS",)),
    ("in 2019 we moved to 4 new offices", ("STREET_ADDRESS",)),
    # a postcode and a house number before a street are not a phone number
    ("Ship to: 03262 2437 Main St Suite 442", ("PHONE_NUMBER",)),
]


@pytest.mark.parametrize(("text", "absent"), NEGATIVES)
def test_does_not_find(analyzer: Analyzer, text: str, absent: tuple[str, ...]) -> None:
    types = {t for t, _ in found(analyzer, text)}
    assert not types & set(absent), found(analyzer, text)


def test_context_word_must_be_whole_word(analyzer: Analyzer) -> None:
    assert ("US_SSN", "536228726") in found(analyzer, "her ssn: 536228726")
    assert ("US_SSN", "536228726") not in found(analyzer, "her lessn: 536228726")


@pytest.mark.parametrize(
    ("digits", "network"),
    [
        ("4111111111111111", "visa"),
        ("2221000000000009", "mastercard"),
        ("5555555555554444", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
        ("36227206271667", "diners"),
        ("2200000000000004", "mir"),
        ("6759649826438453", "maestro"),
        ("4273468222888969924", "visa"),
        ("9999999999999995", None),
    ],
)
def test_card_networks(digits: str, network: str | None) -> None:
    assert card_network(digits) == network


def test_overlaps_resolved_by_priority() -> None:
    a = Analyzer(KNOWN_ENTITIES)
    spans = a.analyze("see https://jane@example.com/x")
    assert [s.entity_type for s in spans] == ["EMAIL_ADDRESS"]


def test_allow_list_and_patterns() -> None:
    policy = PrivacyPolicy(allow_list=["Support@Bastion.dev"], allow_patterns=[r".*@example\.org"])
    a = Analyzer.from_policy(policy)
    text = "mail support@bastion.dev, noreply@example.org or jane@corp.com"
    assert found(a, text) == [("EMAIL_ADDRESS", "jane@corp.com")]


def test_per_type_threshold_drops_weak_findings() -> None:
    text = "call 0496 46 46 70 or mail a@b.co"
    strict = Analyzer(["PHONE_NUMBER", "EMAIL_ADDRESS"], thresholds={"PHONE_NUMBER": 0.99})
    assert [s.entity_type for s in strict.analyze(text)] == ["EMAIL_ADDRESS"]


def test_national_phone_formats_follow_regions() -> None:
    text = "Telefon 030 901820 55"
    assert found(Analyzer(["PHONE_NUMBER"], phone_regions=["DE"]), text)
    assert not found(Analyzer(["PHONE_NUMBER"], phone_regions=["US"]), text)


def test_a_name_and_a_place_of_the_same_word_are_told_apart(analyzer: Analyzer) -> None:
    assert found(analyzer, "Jordan Smith called from Jordan") == [
        ("PERSON", "Jordan Smith"),
        ("LOCATION", "Jordan"),
    ]


def test_locations_are_off_by_default() -> None:
    # Masking every city would cost answers their meaning; a policy switches it on.
    assert not Analyzer().analyze("We flew in from Germany on Monday.")


def test_offsets_are_characters(analyzer: Analyzer) -> None:
    text = "Grüße — schreib an jörg@example.com"
    [span] = [s for s in analyzer.analyze(text) if s.entity_type == "EMAIL_ADDRESS"]
    assert text[span.start : span.end] == span.text == "jörg@example.com"
