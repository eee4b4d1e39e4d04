"""The feed's number parsers: the fast loops for the plain spellings of sizes and prices agree with
the strict Decimal paths on every input (the loops are what the compiled feed runs; the Decimal
paths are the rule)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.feed.numbers import (
    PRICE_OBJECTS,
    PRICE_UNITS,
    BadNumber,
    _parse_size_slow,
    parse_price_units,
    parse_size_units,
    plain_price_units,
    shared_price,
)


def _outcome(parse: object, text: str) -> tuple[str, object]:
    try:
        return "ok", parse(text)  # type: ignore[operator]  # either parser, same signature
    except BadNumber as exc:
        return "bad", exc.kind


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789.-+e _٣", max_size=14))
def test_the_fast_path_agrees_with_the_strict_rule(text: str) -> None:
    assert _outcome(parse_size_units, text) == _outcome(_parse_size_slow, text)


@pytest.mark.parametrize(
    ("text", "units"),
    [("30", 30_000_000), ("12.5", 12_500_000), ("0.000001", 1), ("007", 7_000_000), ("12.", 12_000_000),
     (".5", 500_000), ("0", 0), ("0.1234560", 123_456), ("1e3", 1_000_000_000)],
)  # fmt: skip
def test_sizes(text: str, units: int) -> None:
    assert parse_size_units(text) == units


@pytest.mark.parametrize(
    ("text", "kind"),
    [("-1", "negative_size"), ("1.1234567", "wrong_type"), ("", "wrong_type"), ("٣", "wrong_type"),
     (" 5", "wrong_type"), ("5_0", "wrong_type"), ("NaN", "wrong_type")],
)  # fmt: skip
def test_bad_sizes(text: str, kind: str) -> None:
    with pytest.raises(BadNumber) as caught:
        parse_size_units(text)
    assert caught.value.kind == kind


def test_the_plain_price_loop_reads_every_spelling_of_the_table() -> None:
    assert all(plain_price_units(text) == units for text, units in PRICE_UNITS.items())
    assert plain_price_units("0.50000") == plain_price_units("0.000001") + 499_999 == 500_000


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="0123456789.-+e _٣", max_size=10) | st.from_regex(r"0\.[0-9]{1,7}", fullmatch=True))
def test_the_plain_price_loop_agrees_with_the_strict_rule(text: str) -> None:
    # 0: not the plain spelling of a price (the strict path decides); otherwise the same units
    units = plain_price_units(text)
    if units:
        assert units == parse_price_units(text)
    else:
        assert (
            not text.startswith("0.")
            or not 3 <= len(text) <= 8
            or not (text[2:].isascii() and text[2:].isdigit())
            or not text[2:].strip("0")
        )


@pytest.mark.parametrize(
    "text",
    ["", "0", "1", "0.", ".5", "00.5", "0.0", "0.000000", "1.0", "-0.5", "0.1234567", " 0.5", "0.5 ", "0,5", "0.٣"],
)
def test_what_the_plain_price_loop_leaves_to_the_strict_path(text: str) -> None:
    assert plain_price_units(text) == 0


def test_prices_on_the_finest_grid_are_the_shared_objects() -> None:
    assert all(shared_price(int(str(units))) is units for units in PRICE_OBJECTS.values())
    assert shared_price(500_001) == 500_001 and shared_price(10**6) == 10**6
