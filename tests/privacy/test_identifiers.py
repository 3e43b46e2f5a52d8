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
