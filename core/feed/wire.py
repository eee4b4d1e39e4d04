"""Polymarket market-channel wire types (msgspec Structs tagged by ``event_type``) and the
string -> integer-unit parsers the feed uses in its hot path.

Prices and sizes travel as decimal strings. Inside the feed they become integers in 10^-6
units (the same unit as :mod:`core.money`): exact, and cheap to compare and add. Prices are
looked up in a precomputed table covering every multiple of the finest tick (0.0001) in
(0, 1) in every spelling the venue uses ("0.5", "0.50", "0.500", "0.5000"); anything else
goes through a slow, strict Decimal path. Sizes go through a small bounded cache (the same
size string usually arrives twice: on a token and mirrored on its complement) and a strict
ASCII parser.

Every struct decodes only the fields the bot uses; unknown fields are skipped by msgspec.
Timestamps are milliseconds; the venue sends them as strings, so the decoder runs with
``strict=False`` (string -> int), which does not loosen string fields: a number where a
price string belongs is still a type error.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

import msgspec

from core.types import Side

UNIT: Final = 10**6
FINEST_TICK_UNITS: Final = 100  # 0.0001, the finest tick the venue uses
STANDARD_TICKS: Final = (
    Decimal("0.1"),
    Decimal("0.01"),
    Decimal("0.005"),
    Decimal("0.0025"),
    Decimal("0.001"),
    Decimal("0.0001"),
)


# --------------------------------------------------------------------------- wire structs


class WireLevel(msgspec.Struct, gc=False):
    price: str
    size: str


class BookMsg(msgspec.Struct, tag_field="event_type", tag="book", gc=False):
    """Full snapshot of one token. Bids arrive ascending and asks descending (best LAST)."""

    asset_id: str
    market: str = ""
    timestamp: int = 0
    hash: str = ""
    bids: list[WireLevel] = []
    asks: list[WireLevel] = []
    # the oldest documented shape named the sides buys/sells
    buys: list[WireLevel] | None = None
    sells: list[WireLevel] | None = None
    tick_size: str = ""
    last_trade_price: str = ""


class PriceChangeEntry(msgspec.Struct, gc=False):
    """One entry of ``price_changes[]`` (format since 2025-09-15)."""

    asset_id: str
    price: str
    size: str
    side: Side
    # None: not carried (the legacy formats); "" or "0"/"1": that side of the book is empty
    best_bid: str | None = None
    best_ask: str | None = None


class LegacyChange(msgspec.Struct, gc=False):
    """One entry of the 2024-10..2025-09 ``changes[]`` format (asset_id at top level)."""

    price: str
    size: str
    side: Side


class PriceChangeMsg(msgspec.Struct, tag_field="event_type", tag="price_change", gc=False):
    """All three ``price_change`` shapes: ``price_changes[]``, legacy ``changes[]``, one level."""

    market: str = ""
    timestamp: int = 0
    price_changes: list[PriceChangeEntry] | None = None
    changes: list[LegacyChange] | None = None
    asset_id: str = ""
    price: str | None = None
    size: str | None = None
    side: Side | None = None


class TickSizeChangeMsg(msgspec.Struct, tag_field="event_type", tag="tick_size_change", gc=False):
    asset_id: str
    new_tick_size: str
    old_tick_size: str = ""
    market: str = ""
    timestamp: int = 0


class LastTradePriceMsg(msgspec.Struct, tag_field="event_type", tag="last_trade_price", gc=False):
    asset_id: str
    price: str
    size: str
    side: Side
    market: str = ""
    fee_rate_bps: str = "0"
    timestamp: int = 0
    transaction_hash: str = ""


class BestBidAskMsg(msgspec.Struct, tag_field="event_type", tag="best_bid_ask", gc=False):
    asset_id: str
    best_bid: str = ""
    best_ask: str = ""
    market: str = ""
    timestamp: int = 0


class EventMessage(msgspec.Struct, gc=False):
    id: str = ""
    slug: str = ""
    title: str = ""


class NewMarketMsg(msgspec.Struct, tag_field="event_type", tag="new_market", gc=False):
    market: str
    id: str = ""
    question: str = ""
    slug: str = ""
    assets_ids: list[str] = []
    outcomes: list[str] = []
    timestamp: int = 0
    tags: list[str] = []
    condition_id: str = ""
    active: bool = True
    clob_token_ids: list[str] = []
    order_price_min_tick_size: str = ""
    group_item_title: str = ""
    event_message: EventMessage | None = None


class MarketResolvedMsg(msgspec.Struct, tag_field="event_type", tag="market_resolved", gc=False):
    market: str
    winning_asset_id: str
    id: str = ""
    assets_ids: list[str] = []
    winning_outcome: str = ""
    timestamp: int = 0
    tags: list[str] = []


class RestBook(msgspec.Struct, gc=False):
    """``GET /book?token_id=`` response (same level order as the websocket ``book``)."""

    asset_id: str = ""
    market: str = ""
    timestamp: int = 0
    hash: str = ""
    bids: list[WireLevel] = []
    asks: list[WireLevel] = []
    min_order_size: str = ""
    tick_size: str = ""
    neg_risk: bool = False
    last_trade_price: str = ""


WireEvent = (
    BookMsg | PriceChangeMsg | TickSizeChangeMsg | LastTradePriceMsg | BestBidAskMsg | NewMarketMsg | MarketResolvedMsg
)
EVENT_TYPES: Final = frozenset(
    t.__struct_config__.tag  # type: ignore[attr-defined]
    for t in (
        BookMsg,
        PriceChangeMsg,
        TickSizeChangeMsg,
        LastTradePriceMsg,
        BestBidAskMsg,
        NewMarketMsg,
        MarketResolvedMsg,
    )
)

FRAME_DECODER: Final = msgspec.json.Decoder(list[WireEvent] | WireEvent, strict=False)  # type: ignore[arg-type]
"""Decodes one frame: a single event object or a JSON array of them."""

REST_BOOK_DECODER: Final = msgspec.json.Decoder(RestBook, strict=False)


def convert_event(obj: object) -> WireEvent:
    """Typed event from an already-parsed JSON object (slow path; raises msgspec.ValidationError)."""
    return msgspec.convert(obj, WireEvent, strict=False)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- prices


def _build_price_table() -> dict[str, int]:
    table: dict[str, int] = {}
    for n in range(1, 10_000):  # n * 0.0001, strictly inside (0, 1)
        digits = f"{n:04d}"
        stripped = digits.rstrip("0")
        units = n * FINEST_TICK_UNITS
        for width in range(len(stripped), 5):
            table["0." + digits[:width].ljust(width, "0")] = units
        # a few feeds pad to six decimals
        table["0." + digits + "00"] = units
    return table


PRICE_UNITS: Final[dict[str, int]] = _build_price_table()
"""Every in-range price on the 0.0001 grid, in each spelling, -> 10^-6 units."""

_TICK_TABLES: dict[int, dict[str, int]] = {}


def price_table(tick_units: int) -> dict[str, int]:
    """The subset of :data:`PRICE_UNITS` on a tick's grid (shared per tick): one lookup both
    parses a price and checks range and tick. A miss is not necessarily invalid (an unusual
    spelling, a grid finer than 0.0001): callers fall back to :func:`parse_price_units`."""
    table = _TICK_TABLES.get(tick_units)
    if table is None:
        table = {text: units for text, units in PRICE_UNITS.items() if units % tick_units == 0}
        _TICK_TABLES[tick_units] = table
    return table


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
    scaled = value * UNIT
    if not (0 < value < 1) or scaled != scaled.to_integral_value():
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

_SCALE: Final = tuple(10 ** (6 - k) for k in range(7))
SIZE_CACHE: dict[str, int] = {}
SIZE_CACHE_MAX: Final = 1 << 16


def parse_size_units(text: str) -> int:
    """Strict size parse -> 10^-6 units (ASCII digits with an optional fraction of <= 6 digits).

    Raises :class:`BadNumber` with ``kind`` ``negative_size`` or ``wrong_type``.
    """
    units = SIZE_CACHE.get(text)
    if units is not None:
        return units
    return parse_new_size(text)


def parse_new_size(text: str) -> int:
    """:func:`parse_size_units` for a size known to be missing from the cache (one call, no
    second lookup: the feed's hot path calls this on a cache miss)."""
    whole, _, frac = text.partition(".")
    if whole.isdigit() and len(frac) <= 6 and (frac.isdigit() or not frac) and text.isascii():
        units = int(whole + frac) * _SCALE[len(frac)]
    else:
        units = _parse_size_slow(text)
    if len(SIZE_CACHE) >= SIZE_CACHE_MAX:
        SIZE_CACHE.clear()
    SIZE_CACHE[text] = units
    return units


def _parse_size_slow(text: str) -> int:
    # rare: negative, exponent, ".5" or garbage; decide with Decimal
    value = _decimal(text)
    if value < 0:
        raise BadNumber("negative_size", f"negative size {text!r}")
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
