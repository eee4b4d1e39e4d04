"""Sizes near the fast parser's limits: compiled, it counts digits in 64-bit integers, so a spelling
that could overflow them (more than 18 characters) takes the strict path, and the scaling to units
(15 whole digits and six more) is done on an int; every path must agree with the strict rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.feed.numbers import _parse_size_slow, parse_size_units
from tests.unit.test_book_numbers import _outcome


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789.", min_size=10, max_size=26))
def test_long_spellings_agree_with_the_strict_rule(text: str) -> None:
    assert _outcome(parse_size_units, text) == _outcome(_parse_size_slow, text)


@pytest.mark.parametrize(
    ("text", "units"),
    [("999999999999.99999", 999_999_999_999_999_990), ("999999999999.999999", 999_999_999_999_999_999),
     ("9999999999999.9999", 9_999_999_999_999_999_900), ("999999999999999", 999_999_999_999_999 * 10**6),
     ("999999999999999.999999", 10**21 - 1), ("000000000000000001", 1_000_000), ("9223372036854.775807", 2**63 - 1),
     ("9223372036854.775808", 2**63)],
)  # fmt: skip
def test_wide_sizes(text: str, units: int) -> None:
    assert parse_size_units(text) == units
