"""Decimal strings of the wire -> exact integers in 10^-6 units, and back.

Prices and sizes travel as decimal strings. Inside the feed they become integers in 10^-6
units (the same unit as :mod:`core.money`): exact, and cheap to compare and add. Prices are
looked up in a precomputed table covering every multiple of the finest tick (0.0001) in
(0, 1) in every spelling the venue uses ("0.5", "0.50", "0.500", "0.5000"); anything else
goes through a slow, strict Decimal path. Sizes go through a strict ASCII parser (and the
same Decimal path for unusual spellings).

Part of the feed's hot path: compiled with book.py and integrity.py when a compiler is present
(:mod:`core.feed.kernel`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    # mypyc compiles i64 to a native 64-bit integer (no tagged-int checks, no calls for a
    # multiply); at run time it is only an annotation, so nothing is imported
    from mypy_extensions import i64

UNIT: Final = 10**6
FINEST_TICK_UNITS: Final = 100  # 0.0001, the finest tick the venue uses
_SCALE: Final[tuple[int, ...]] = tuple(10 ** (6 - k) for k in range(7))  # 10^(6-k): k decimal digits -> units
_SCALE_I64: Final[tuple[i64, ...]] = _SCALE  # the same, for a product that fits in 64 bits
STANDARD_TICKS: Final = (
    Decimal("0.1"),
    Decimal("0.01"),
    Decimal("0.005"),
    Decimal("0.0025"),
    Decimal("0.001"),
    Decimal("0.0001"),
)


# --------------------------------------------------------------------------- prices


def _shared(table: dict[str, int]) -> dict[str, Any]:
    """The table with its values typed as objects: compiled code then copies the shared int
    objects instead of unboxing and re-boxing them."""
    return table


def _build_price_table() -> dict[str, int]:
    table: dict[str, Any] = {}
    for n in range(1, 10_000):  # n * 0.0001, strictly inside (0, 1)
        digits = f"{n:04d}"
        stripped = digits.rstrip("0")
        # one int object per price, shared by every spelling, every tick's table and every book's
        # levels (Any: compiled, an int would be unboxed and boxed anew at each store)
        units: Any = n * FINEST_TICK_UNITS
        for width in range(len(stripped), 5):
            table["0." + digits[:width].ljust(width, "0")] = units
        # a few feeds pad to six decimals
        table["0." + digits + "00"] = units
    return table


PRICE_UNITS: Final[dict[str, int]] = _build_price_table()
"""Every in-range price on the 0.0001 grid, in each spelling, -> 10^-6 units."""

PRICE_OBJECTS: Final[dict[int, Any]] = {units: units for units in _shared(PRICE_UNITS).values()}
"""Units -> the one int object :data:`PRICE_UNITS` holds for that price. A book keeps these as its
level keys: 10,000 books then hold no price of their own (memory), and their level lists point
at a hundred or so objects the processor reads all the time (cache)."""

_BY_STEP: Final[list[Any]] = [PRICE_OBJECTS.get(n * FINEST_TICK_UNITS, 0) for n in range(UNIT // FINEST_TICK_UNITS)]
"""The objects of :data:`PRICE_OBJECTS` by price / 0.0001 (a list index, where a dict lookup hashes)."""

_TICK_TABLES: dict[int, dict[str, int]] = {}


def price_table(tick_units: int) -> dict[str, int]:
    """The subset of :data:`PRICE_UNITS` on a tick's grid (shared per tick): one lookup both
    parses a price and checks range and tick. A miss is not necessarily invalid (an unusual
    spelling, a grid finer than 0.0001): callers fall back to :func:`parse_price_units`."""
    table = _TICK_TABLES.get(tick_units)
    if table is None:
        table = _on_grid(tick_units)
        _TICK_TABLES[tick_units] = table
    return table


def _on_grid(tick_units: int) -> dict[str, int]:
    table: dict[str, Any] = {}
    for text, units in _shared(PRICE_UNITS).items():
        if units % tick_units == 0:
            table[text] = units
    return table


def plain_price_units(text: str) -> i64:
    """A price spelled ``0.`` and one to six digits (as the venue writes them) -> units, by a loop
    over the characters (compiled, cheaper than hashing the text for a table lookup); 0 for any
    other text and for zero (the strict parsers decide those)."""
    end: i64 = len(text)
    if end == 4:  # "0.dd", the usual spelling, without the loop
        tens: i64 = ord(text[2]) - 48
        ones: i64 = ord(text[3]) - 48
        if ord(text[0]) == 48 and ord(text[1]) == 46 and 0 <= tens <= 9 and 0 <= ones <= 9:
            return tens * 100_000 + ones * 10_000
        return 0
    if end < 3 or end > 8 or ord(text[0]) != 48 or ord(text[1]) != 46:  # "0."
        return 0
    units: i64 = 0  # at most six digits
    i: i64 = 2
    while i < end:
        digit: i64 = ord(text[i]) - 48
        if digit < 0 or digit > 9:
            return 0
        units = units * 10 + digit
        i += 1
    return units * _SCALE_I64[end - 2]


def shared_price(units: i64) -> Any:
    """The one int object :data:`PRICE_OBJECTS` holds for a price on the 0.0001 grid (a book keeps
    these, see :meth:`core.feed.book.Book.apply_units`); a new int for a finer price."""
    if 0 < units < UNIT and units % FINEST_TICK_UNITS == 0:
        return _BY_STEP[units // FINEST_TICK_UNITS]
    value: int = units
    return value


def index_ascending(prices: list[int], units: int) -> int:
    """Where ``units`` is, or goes, in ascending prices: bisect_left (compiled, a native loop
    beats calling bisect)."""
    lo: i64 = 0
    hi: i64 = len(prices)
    while lo < hi:
        mid = (lo + hi) >> 1
        if prices[mid] < units:
            lo = mid + 1
        else:
            hi = mid
    return lo


def index_descending(prices: list[int], units: int) -> int:
    """Where ``units`` is, or goes, in descending prices."""
    lo: i64 = 0
    hi: i64 = len(prices)
    while lo < hi:
        mid = (lo + hi) >> 1
        if prices[mid] > units:
            lo = mid + 1
        else:
            hi = mid
    return lo


class BadNumber(ValueError):
    """A price or size string that is not a plain non-negative decimal (reason in ``kind``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_price_units(text: str) -> int:
    """Strict price parse: a decimal strictly inside (0, 1), exact at 10^-6.

    Raises :class:`BadNumber` with ``kind`` ``wrong_type`` (not a number),
    ``price_out_of_range`` or ``off_tick`` (finer than 10^-6).
    """
    units = PRICE_UNITS.get(text)
    if units is not None:
        return units
    value = _decimal(text)
    if not (0 < value < 1):
        raise BadNumber("price_out_of_range", f"price {text!r} outside (0, 1)")
    scaled = value * UNIT
    if scaled != scaled.to_integral_value():
        raise BadNumber("off_tick", f"price {text!r} finer than 0.000001")
    return int(scaled)


def parse_tick_units(text: str) -> int:
    """A tick size string -> units; must be a positive multiple of 10^-6 below 1."""
    value = _decimal(text)
    if not (0 < value < 1):
        raise BadNumber("wrong_type", f"tick size {text!r} is not a tick")
    scaled = value * UNIT
    if scaled != scaled.to_integral_value():
        raise BadNumber("wrong_type", f"tick size {text!r} is not a tick")
    return int(scaled)


def parse_best_units(text: str) -> int | None:
    """``best_bid``/``best_ask`` carried on entries: None when that side is empty ("", "0", "1")."""
    units = PRICE_UNITS.get(text)
    if units is not None:
        return units
    if text == "":
        return None
    value = _decimal(text)
    if value <= 0 or value >= 1:
        return None
    scaled = value * UNIT
    if scaled != scaled.to_integral_value():
        raise BadNumber("off_tick", f"best price {text!r} finer than 0.000001")
    return int(scaled)


# --------------------------------------------------------------------------- sizes

MAX_SIZE_DIGITS: Final = 15
"""A size has fewer whole digits than this (far above any real order: garbage stays garbage)."""


def parse_size_units(text: str) -> int:
    """Strict size parse -> 10^-6 units (ASCII digits with an optional fraction of <= 6 digits).

    Raises :class:`BadNumber` with ``kind`` ``negative_size`` or ``wrong_type``.
    """
    # The plain spelling by a loop over the characters (compiled, it costs less than a lookup in
    # a cache of the sizes seen: the venue's are too varied for one to stay small); anything
    # else is decided by the slow path.
    end: i64 = len(text)
    if end > 18:  # then the digits could overflow 64 bits: the slow path decides
        return _parse_size_slow(text)
    units: i64 = 0  # at most 18 digits: fits
    whole: i64 = 0  # digits before the point
    decimals: i64 = -1  # digits after it; -1 until there is one
    i: i64 = 0
    while i < end:  # compiled, indexing beats iterating over the characters
        code: i64 = ord(text[i])
        i += 1
        if 48 <= code <= 57:
            units = units * 10 + (code - 48)
            if decimals < 0:
                whole += 1
            else:
                decimals += 1
        elif code == 46 and decimals < 0:
            decimals = 0
        else:
            return _parse_size_slow(text)
    if whole == 0 or whole > MAX_SIZE_DIGITS or decimals == 0 or decimals > 6:
        return _parse_size_slow(text)
    scaled: int = units  # (an int: 15 digits and six more may not fit in 64 bits)
    return scaled * (UNIT if decimals < 0 else _SCALE[decimals])


def _parse_size_slow(text: str) -> int:
    # rare: negative, exponent, ".5", too long or garbage; decide with Decimal
    value = _decimal(text)
    if value < 0:
        raise BadNumber("negative_size", f"negative size {text!r}")
    if value and value.adjusted() >= MAX_SIZE_DIGITS:  # "1e999999" must not become a huge integer
        raise BadNumber("wrong_type", f"size {text[:40]!r} is not below 10^{MAX_SIZE_DIGITS}")
    scaled = value * UNIT
    if scaled != scaled.to_integral_value():
        raise BadNumber("wrong_type", f"size {text!r} has more than 6 decimals")
    return int(scaled)


_NUMBER_CHARS: Final = frozenset("0123456789.-+eE")


def _decimal(text: str) -> Decimal:
    # Decimal() alone would also take whitespace, underscores and "NaN"
    if not text or not _NUMBER_CHARS.issuperset(text):
        raise BadNumber("wrong_type", f"not a decimal number: {text[:40]!r}")
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        raise BadNumber("wrong_type", f"not a decimal number: {text[:40]!r}") from None
    if not value.is_finite():
        raise BadNumber("wrong_type", f"not a finite number: {text[:40]!r}")
    return value


# --------------------------------------------------------------------------- units -> Decimal

_PRICE_DEC: dict[int, Decimal] = {}


def units_to_decimal(units: int) -> Decimal:
    """Exact, canonical Decimal for 10^-6 units: 510000 -> 0.51, 3300000000 -> 3300."""
    whole, frac = divmod(units, UNIT)
    if frac == 0:
        return Decimal(whole)
    return Decimal(f"{whole}.{frac:06d}".rstrip("0"))


def price_decimal(units: int) -> Decimal:
    """Like :func:`units_to_decimal`, cached (prices repeat)."""
    dec = _PRICE_DEC.get(units)
    if dec is None:
        dec = units_to_decimal(units)
        if len(_PRICE_DEC) < 100_000:
            _PRICE_DEC[units] = dec
    return dec


def decimal_to_units(value: Decimal | str | int) -> int:
    """Decimal (or decimal string) -> exact 10^-6 units; raises ValueError when not exact."""
    dec = value if isinstance(value, Decimal) else Decimal(str(value))
    scaled = dec * UNIT
    if not dec.is_finite() or scaled != scaled.to_integral_value():
        raise ValueError(f"{value} is not exact at 6 decimals")
    return int(scaled)


def walk_levels(levels: list[tuple[int, int]], size: Decimal) -> tuple[Decimal, Decimal | None, Decimal]:
    """Take ``size`` from levels (best first, in units): (cost, average price, filled), exact
    (see :meth:`core.feed.book.Book.cost_to_buy`)."""
    want = decimal_to_units(size)
    if want < 0:
        raise ValueError(f"size must not be negative: {size}")
    left = want
    notional = 0  # in 10^-12 (price units x size units)
    for p, level_size in levels:
        if left <= 0:
            break
        take = min(left, level_size)
        notional += p * take
        left -= take
    filled_u = want - left
    cost = Decimal(notional).scaleb(-12)
    cost = cost.quantize(Decimal(1)) if cost == cost.to_integral_value() else cost.normalize()
    filled = units_to_decimal(filled_u)
    avg = (Decimal(notional) / Decimal(filled_u * UNIT)) if filled_u else None
    return cost, avg, filled
