"""Domain events the feed emits: small, typed, immutable. Nothing past the feed sees wire dicts.

Prices and sizes are carried as exact integers in 10^-6 units (``*_units``; cheap to build in
the hot path and to write to a database) with ``Decimal`` properties for everyone else.
Timestamps: ``ts_ms`` is the venue's event time in milliseconds, ``recv_ns`` the local
receive time (``time.time_ns()`` live, the recorded value in replay).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec

from core.feed.numbers import parse_price_units, parse_size_units, price_decimal, units_to_decimal
from core.feed.wire import PriceChangeEntry
from core.types import BookStatus, Level, Side

LevelUnits = tuple[int, int]
"""(price_units, size_units) of one level."""


class LevelUpdate(msgspec.Struct, frozen=True, gc=False):
    """One level's new absolute size (0 = the level is gone). BUY = bid side."""

    asset_id: str
    side: Side
    price_units: int
    size_units: int

    @property
    def price(self) -> Decimal:
        return price_decimal(self.price_units)

    @property
    def size(self) -> Decimal:
        return units_to_decimal(self.size_units)


class PriceChange(msgspec.Struct, frozen=True, gc=False):
    """The accepted level updates of one ``price_change`` event (any of the three wire formats).

    ``entries`` are the validated wire entries, kept as they are so the hot path allocates
    nothing per level; read them through :attr:`changes` (typed, exact units).
    """

    market: str
    ts_ms: int
    recv_ns: int
    entries: Sequence[PriceChangeEntry]

    @property
    def changes(self) -> tuple[LevelUpdate, ...]:
        return tuple(
            LevelUpdate(e.asset_id, e.side, parse_price_units(e.price), parse_size_units(e.size)) for e in self.entries
        )

    @property
    def asset_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.asset_id for e in self.entries))


class BookSnapshot(msgspec.Struct, frozen=True, gc=False):
    """A book (re)seeded from a ``book`` event (``source="ws"``) or ``GET /book`` (``"rest"``).

    ``bids``/``asks`` are best-first (price_units, size_units).
    """

    asset_id: str
    market: str
    ts_ms: int
    recv_ns: int
    bids: tuple[LevelUnits, ...]
    asks: tuple[LevelUnits, ...]
    tick_size: Decimal
    hash: str = ""
    source: str = "ws"

    def bid_levels(self) -> list[Level]:
        return [(price_decimal(p), units_to_decimal(s)) for p, s in self.bids]

    def ask_levels(self) -> list[Level]:
        return [(price_decimal(p), units_to_decimal(s)) for p, s in self.asks]


class TradePrint(msgspec.Struct, frozen=True, gc=False):
    """``last_trade_price``: a match on the venue (side is the taker's)."""

    asset_id: str
    market: str
    side: Side
    price_units: int
    size_units: int
    fee_rate_bps: int
    ts_ms: int
    recv_ns: int
    transaction_hash: str = ""

    @property
    def price(self) -> Decimal:
        return price_decimal(self.price_units)

    @property
    def size(self) -> Decimal:
        return units_to_decimal(self.size_units)


class TickSizeChanged(msgspec.Struct, frozen=True, gc=False):
    """The book starts a new ``epoch`` and waits for a fresh snapshot."""

    asset_id: str
    market: str
    old_tick: Decimal | None
    new_tick: Decimal
    epoch: int
    ts_ms: int
    recv_ns: int


class BestBidAsk(msgspec.Struct, frozen=True, gc=False):
    """``best_bid_ask`` (custom feature). None = that side is empty."""

    asset_id: str
    market: str
    best_bid_units: int | None
    best_ask_units: int | None
    ts_ms: int
    recv_ns: int

    @property
    def best_bid(self) -> Decimal | None:
        return None if self.best_bid_units is None else price_decimal(self.best_bid_units)

    @property
    def best_ask(self) -> Decimal | None:
        return None if self.best_ask_units is None else price_decimal(self.best_ask_units)


class NewMarket(msgspec.Struct, frozen=True, gc=False):
    """``new_market`` (custom feature; broadcast, also for markets not subscribed)."""

    market: str
    question: str
    slug: str
    asset_ids: tuple[str, ...]
    outcomes: tuple[str, ...]
    tick_size: Decimal | None
    active: bool
    tags: tuple[str, ...]
    ts_ms: int
    recv_ns: int
    market_id: str = ""
    event_slug: str = ""
    group_item_title: str = ""


class MarketResolved(msgspec.Struct, frozen=True, gc=False):
    market: str
    asset_ids: tuple[str, ...]
    winning_asset_id: str
    winning_outcome: str
    ts_ms: int
    recv_ns: int


class BookStatusChanged(msgspec.Struct, frozen=True, gc=False):
    """A book's status moved; ``reason`` is short and stable (e.g. ``mismatch``, ``snapshot``)."""

    asset_id: str
    old: BookStatus
    new: BookStatus
    reason: str
    recv_ns: int


class Pong(msgspec.Struct, frozen=True, gc=False):
    """The heartbeat answer ``PONG`` (proves the socket is alive, says nothing about markets)."""

    recv_ns: int


FeedEvent = (
    PriceChange
    | BookSnapshot
    | TradePrint
    | TickSizeChanged
    | BestBidAsk
    | NewMarket
    | MarketResolved
    | BookStatusChanged
    | Pong
)
