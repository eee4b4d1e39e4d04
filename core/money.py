"""Exact money helpers: Decimal at the edges, integer 10^-6 units on chain."""

from __future__ import annotations

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
