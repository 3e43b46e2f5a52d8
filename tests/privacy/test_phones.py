"""The phone recognizer's compiled validity test answers as libphonenumber does."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from bastion.privacy import phones


def _numbers(country_code: int, regions: tuple[str, ...], count: int) -> list[str]:
    """National significant numbers to judge: each region's example numbers with one
    digit changed or kept, and random digit strings of every length."""
    rnd = random.Random(country_code)
    out = ["0", "000", "0" * 10]
    for region in regions:
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            example = phonenumbers.example_number_for_non_geo_entity(country_code)
        else:
            example = phonenumbers.example_number(region)
        if example is not None:
            nsn = phonenumbers.national_significant_number(example)
            out.append(nsn)
            for _ in range(count):
                i = rnd.randrange(len(nsn))
                out.append(nsn[:i] + rnd.choice("0123456789") + nsn[i + 1 :])
    for _ in range(count):
        out.append("".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 17))))
    return out


@pytest.mark.parametrize(
    ("country_code", "regions"), sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items())
)
def test_validity_matches_libphonenumber(country_code: int, regions: tuple[str, ...]) -> None:
    for nsn in _numbers(country_code, regions, 12):
        number = phones._number(country_code, nsn)
        assert phones._valid_number(country_code, nsn) == phonenumbers.is_valid_number(number), nsn
        for region in (*regions, "US", "GB", "DE"):
            expected = phonenumbers.is_valid_number_for_region(number, region)
            assert phones._valid_for_region(country_code, region, nsn) == expected, (region, nsn)
