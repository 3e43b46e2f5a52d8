"""``entities.first_of``: a faster first character with exactly the class it stands for."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.privacy import entities as E


def test_the_digit_table_holds_every_decimal_digit() -> None:
    table = re.compile(E.first_of(r"\d"))
    for code in range(sys.maxunicode + 1):
        c = chr(code)
        if c.isdecimal():
            assert table.fullmatch(c), hex(code)


@pytest.mark.parametrize("chars", [r"\d", r"+(\d", r"A-Z\d"])
def test_first_of_matches_what_its_class_matches(chars: str) -> None:
    fast, plain = re.compile(E.first_of(chars)), re.compile(f"[{chars}]")
    for code in range(sys.maxunicode + 1):
        c = chr(code)
        assert (fast.fullmatch(c) is None) == (plain.fullmatch(c) is None), hex(code)


def test_plain_digits_says_whether_every_digit_is_ascii() -> None:
    # Every character that is a decimal digit other than 0-9 makes a text not plain;
    # so does any character beyond the BMP (cautious); other characters do not.
    for code in range(0x10000 + 2):
        c = chr(code)
        other_digit = c.isdecimal() and c not in "0123456789"
        for text in (c, f"Tel. 555 {c} 0192", f"’{c}"):
            assert E.plain_digits(text) == (not other_digit and code < 0x10000), hex(code)


DIGIT_LED = [
    ("phones", "PhoneRecognizer"),
    ("addresses", "AddressRecognizer"),
    ("recognizers", "IbanRecognizer"),
    ("recognizers", "NumberRecognizer"),
    ("recognizers", "NationalIdRecognizer"),
]


def _recognizer(module: str, name: str) -> Any:
    import importlib

    cls = getattr(importlib.import_module(f"bastion.privacy.{module}"), name)
    if name == "NationalIdRecognizer":
        from bastion.privacy.recognizers import ID_RULES

        return cls(frozenset(r.entity_type for r in ID_RULES))
    if name == "PhoneRecognizer":
        from bastion.privacy.config import DEFAULT_PHONE_REGIONS

        return cls(DEFAULT_PHONE_REGIONS)
    return cls()


SAMPLES = [
    "Call +44 20 7946 0958 or (555) 010-4477 ext 12, card 4111 1111 1111 1111.",
    "IBAN GB82 WEST 1234 5698 7654 32, SSN 078-05-1120, IP 192.168.10.7 – “ok”",
    "Straße 12, 10115 Berlin; 221B Baker Street; Via Roma 12; NIE X1234567L",
    "Tél. : 06 12 34 56 78 — NIR 2 84 05 73 012 345 67; BSN 111222333 ’s",
]


@pytest.mark.parametrize(("module", "name"), DIGIT_LED)
@settings(max_examples=150, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(SAMPLES) | st.text(alphabet="0123456789 +-().,/:ABCXZéß’\n", max_size=40),
        min_size=1,
        max_size=4,
    ).map(" ".join)
)
def test_the_plain_scan_finds_what_the_full_scan_finds(module: str, name: str, text: str) -> None:
    recognizer = _recognizer(module, name)
    assert E.plain_digits(text)
    plain = list(recognizer.find_digits(text, True))
    assert plain == list(recognizer.find_digits(text, False))
    assert plain == list(recognizer.find(text))


@pytest.mark.parametrize(("module", "name"), DIGIT_LED)
def test_other_digits_take_the_full_scan(module: str, name: str) -> None:
    # Arabic-Indic digits: \d matches them, so the plain scan must not be chosen.
    text = "رقم ٤١١١١١١١١١١١١١١١ or 4111111111111111 and +44 20 7946 0958"
    assert not E.plain_digits(text)
    recognizer = _recognizer(module, name)
    assert list(recognizer.find(text)) == list(recognizer.find_digits(text, False))
