"""The feed's size parser: its fast loop for the plain spelling agrees with the strict Decimal
path on every input (the loop is what the compiled feed runs; the Decimal path is the rule)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.feed.numbers import BadNumber, _parse_size_slow, parse_size_units


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
