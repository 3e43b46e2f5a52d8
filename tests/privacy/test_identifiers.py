"""The shortcuts the identifier recognizers take agree with the validators they skip."""

from __future__ import annotations

import random
import re
import string

import pytest
from stdnum import iban

from bastion.privacy import recognizers

_KIND = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + "0123"}


#: Every two-letter code that stdnum's IBAN registry gives a structure (and so a length).
_IBAN_COUNTRIES = [
    a + b
    for a in string.ascii_uppercase
    for b in string.ascii_uppercase
    if recognizers._iban_length(a + b) is not None
]


def test_the_registry_gives_a_length_for_the_iban_countries() -> None:
    assert len(_IBAN_COUNTRIES) >= 80
    assert {"GB", "DE", "FR", "ES", "IT", "NL", "CH", "NO", "SA", "BR"} <= set(_IBAN_COUNTRIES)
    assert recognizers._iban_length("US") is None  # no IBANs: every length is tried


@pytest.mark.parametrize("country", _IBAN_COUNTRIES)
def test_iban_length_is_the_length_stdnum_accepts(country: str) -> None:
    length = recognizers._iban_length(country)
    structure = recognizers.numdb.get("iban").info(country)[0][1]["bban"]
    rnd = random.Random(country)
    bban = "".join(
        "".join(rnd.choice(_KIND[kind]) for _ in range(int(count)))
        for count, kind in re.findall(r"(\d+)!([nac])", structure)
    )
    number = country + iban.calc_check_digits(country + "00" + bban) + bban
    assert len(number) == length
    assert iban.is_valid(number, check_country=False)
    # One character more or less, check digits recomputed: never valid.
    for other in (bban + "0", bban[:-1]):
        changed = country + iban.calc_check_digits(country + "00" + other) + other
        assert not iban.is_valid(changed, check_country=False)


def test_an_iban_running_into_words_is_cut_at_its_length() -> None:
    text = "pay GB26YVOK09234647792923 Title VII of the act"
    [span] = recognizers.IbanRecognizer().find(text)
    assert span.text == "GB26YVOK09234647792923"


@pytest.mark.parametrize("rule", recognizers.ID_RULES, ids=lambda r: r.entity_type)
def test_id_rule_widths_bound_its_matches(rule: recognizers.IdRule) -> None:
    """A one-token candidate is given only to rules whose matches can be its length."""
    shortest, longest = rule.widths
    assert 0 < shortest <= longest < 64
    rnd = random.Random(rule.entity_type)
    for _ in range(2000):
        n = rnd.randint(1, 24)
        value = "".join(rnd.choice("0123456789ABCDEFGHLMNPQRSTUVXYZ -.+") for _ in range(n))
        for m in rule.pattern.finditer(value):
            assert shortest <= len(m.group()) <= longest


# --- shape without validity (issue #23): masked next to a context word --------------

#: (text with a context word, the same value without one, type): each value has the
#: exact shape of its type and fails its check.
SHAPED = [
    ("SSN: 912-34-5678", "ref 912-34-5678", "US_SSN"),  # area 900-999: never issued
    ("SSN 000-12-3456", "ref 000-12-3456", "US_SSN"),
    ("ssn 666 12 3456", "ref 666 12 3456", "US_SSN"),
    ("her SSN is 078-05-1120", "ref 078-05-1120", "US_SSN"),  # a published number
    ("card 4111 1111 1111 1112", "ref 4111 1111 1111 1112", "CREDIT_CARD"),  # Luhn
    ("IBAN GB83 WEST 1234 5698 7654 32", "ref GB83 WEST 1234 5698 7654 32", "IBAN_CODE"),
    ("BSN: 123456780", "ref 123456780", "NL_BSN"),  # check digit
    ("NHS number 943 476 5912", "ref 943 476 5912", "UK_NHS"),
    ("Steuer-ID 12 345 678 901", "ref 12 345 678 901", "DE_TAX_ID"),
]


@pytest.mark.parametrize(("with_context", "without", "entity_type"), SHAPED)
def test_a_value_of_the_right_shape_is_masked_next_to_its_context_word(
    with_context: str, without: str, entity_type: str
) -> None:
    from bastion.privacy import KNOWN_ENTITIES, Analyzer

    analyzer = Analyzer(KNOWN_ENTITIES)
    [span] = [s for s in analyzer.analyze(with_context) if s.entity_type == entity_type]
    assert not span.valid
    assert with_context.endswith(span.text)
    assert not [s for s in analyzer.analyze(without) if s.entity_type == entity_type]
    # Strict validation, where the policy asks for it, drops what fails the check.
    strict = Analyzer(KNOWN_ENTITIES, strict_validation=[entity_type])
    assert not [s for s in strict.analyze(with_context) if s.entity_type == entity_type]


def test_validity_raises_the_score() -> None:
    from bastion.privacy import Analyzer

    analyzer = Analyzer(["US_SSN"])
    [valid] = analyzer.analyze("SSN: 536-22-8726")
    [shaped] = analyzer.analyze("SSN: 912-34-5678")
    assert valid.valid and not shaped.valid
    assert valid.score > shaped.score >= 0.5
    # A valid dashed SSN needs no context word; one outside the issued ranges does.
    assert Analyzer(["US_SSN"]).analyze("ref 536-22-8726")


def test_strict_validation_is_a_policy_setting() -> None:
    from pydantic import ValidationError

    from bastion.privacy import Analyzer, PrivacyPolicy

    policy = PrivacyPolicy(strict_validation=["US_SSN"])
    assert Analyzer.from_policy(policy).strict_validation == {"US_SSN"}
    with pytest.raises(ValidationError, match="unknown entity type"):
        PrivacyPolicy(strict_validation=["SSN"])


def test_itin_keeps_its_type_and_an_ssn_context_makes_it_an_ssn() -> None:
    from bastion.privacy import Analyzer

    analyzer = Analyzer(["US_SSN", "US_ITIN"])
    assert [s.entity_type for s in analyzer.analyze("ITIN 912-78-1234")] == ["US_ITIN"]
    assert [s.entity_type for s in analyzer.analyze("SSN 912-78-1234")] == ["US_SSN"]
