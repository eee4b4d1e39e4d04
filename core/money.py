"""Exact money helpers: Decimal at the edges, integer 10^-6 units on chain."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

UNIT = 10**6
"""pUSD and outcome shares both have 6 decimals."""

ZERO = Decimal(0)
ONE = Decimal(1)


def to_units(value: Decimal) -> int:
    """Decimal amount -> integer 10^-6 units; refuses values that are not exact at 6 decimals."""
    scaled = value * UNIT
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than 6 decimals")
    return int(scaled)


def from_units(units: int) -> Decimal:
    return Decimal(units).scaleb(-6)


def round_to_tick(price: Decimal, tick: Decimal, *, mode: str = ROUND_HALF_EVEN) -> Decimal:
    """Round a price to the tick grid with an explicit rounding mode."""
    return (price / tick).to_integral_value(rounding=mode) * tick


def floor_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return round_to_tick(price, tick, mode=ROUND_DOWN)


def ceil_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return round_to_tick(price, tick, mode=ROUND_UP)


def on_tick(price: Decimal, tick: Decimal) -> bool:
    return (price % tick) == 0


def quantize_down(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
MAX_DECIMAL_TEXT = 32
"""Longer number texts are refused: no price, size or amount a trader types needs more."""


def parse_plain_decimal(text: str) -> Decimal:
    """A decimal a person typed: ASCII digits with at most one '.', an optional sign, nothing else.

    ``Decimal()`` alone also takes '٠.٥' and '０.５' (any Unicode digit), '1_0', '1e30', 'NaN' and
    'Infinity'; an order must never be built from a number the trader did not see as such.
    Raises ``ValueError`` with a message that quotes nothing but the rule (callers add the name).
    """
    stripped = text.strip()
    if len(stripped) > MAX_DECIMAL_TEXT:
        raise ValueError(f"is too long (at most {MAX_DECIMAL_TEXT} characters)")
    if not _PLAIN_DECIMAL.fullmatch(stripped):
        raise ValueError("must be a plain decimal number like 0.45 or 10 (ASCII digits, no exponent)")
    return Decimal(stripped)
