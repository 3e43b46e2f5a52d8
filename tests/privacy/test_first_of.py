"""``entities.first_of``: a faster first character with exactly the class it stands for."""

from __future__ import annotations

import re
import sys

import pytest

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
