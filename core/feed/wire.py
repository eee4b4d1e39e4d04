"""Polymarket market-channel wire types (msgspec Structs tagged by ``event_type``).

Prices and sizes stay the venue's decimal strings here; :mod:`core.feed.numbers` turns them
into exact integer units. The structs are frozen: what the venue said cannot be changed past
the edge. Every struct decodes only the fields the bot uses; unknown fields are
skipped by msgspec. Timestamps are milliseconds; the venue sends them as strings, so the decoder runs with
``strict=False`` (string -> int), which does not loosen string fields: a number where a
price string belongs is still a type error.
"""

from __future__ import annotations

from typing import Final, Literal, cast

import msgspec

from core.types import Side

# --------------------------------------------------------------------------- wire structs


class WireLevel(msgspec.Struct, frozen=True, gc=False):
    price: str
    size: str


class BookMsg(msgspec.Struct, tag_field="event_type", tag="book", frozen=True, gc=False):
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


class PriceChangeEntry(msgspec.Struct, frozen=True, gc=False):
    """One entry of ``price_changes[]`` (format since 2025-09-15). The feed's hot loop reads the
    fields by position, in this order (a test checks it)."""

    asset_id: str
    price: str
    size: str
    side: Side
    # None: not carried (the legacy formats); "" or "0"/"1": that side of the book is empty
    best_bid: str | None = None
    best_ask: str | None = None


class LegacyChange(msgspec.Struct, frozen=True, gc=False):
    """One entry of the 2024-10..2025-09 ``changes[]`` format (asset_id at top level)."""

    price: str
    size: str
    side: Side


class PriceChangeFields(msgspec.Struct, frozen=True, gc=False):
    """All three ``price_change`` shapes: ``price_changes[]``, legacy ``changes[]``, one level.
    Decoded as :class:`PriceChangeMsg` (in the union) or :class:`PriceChangeFrame` (alone). The
    processor reads the first three fields by position (a test checks the order)."""

    market: str = ""
    timestamp: int = 0
    price_changes: list[PriceChangeEntry] | None = None
    changes: list[LegacyChange] | None = None
    asset_id: str = ""
    price: str | None = None
    size: str | None = None
    side: Side | None = None


class PriceChangeMsg(PriceChangeFields, tag_field="event_type", tag="price_change", frozen=True, gc=False):
    """A ``price_change`` event as a member of :data:`WireEvent`."""


class PriceChangeFrame(PriceChangeFields, frozen=True, gc=False, kw_only=True):
    """A frame that is one ``price_change`` object, its ``event_type`` read as a plain field.

    The union decoder must know the tag before it can decode anything else, and the venue sends
    ``event_type`` last: it skips the whole object to find it, then reads it again (about a third
    of the decode time). Almost every frame is one ``price_change``, so the processor tries this
    one-pass decoder first. It accepts exactly the objects the union decodes as a
    :class:`PriceChangeMsg` (same fields; ``event_type`` required and equal to the tag); anything
    else fails it and goes to :data:`FRAME_DECODER`, which decides as before.
    """

    event_type: Literal["price_change"]


class TickSizeChangeMsg(msgspec.Struct, tag_field="event_type", tag="tick_size_change", frozen=True, gc=False):
    asset_id: str
    new_tick_size: str
    old_tick_size: str = ""
    market: str = ""
    timestamp: int = 0


class LastTradePriceMsg(msgspec.Struct, tag_field="event_type", tag="last_trade_price", frozen=True, gc=False):
    asset_id: str
    price: str
    size: str
    side: Side
    market: str = ""
    fee_rate_bps: str = "0"
    timestamp: int = 0
    transaction_hash: str = ""


class BestBidAskMsg(msgspec.Struct, tag_field="event_type", tag="best_bid_ask", frozen=True, gc=False):
    asset_id: str
    best_bid: str = ""
    best_ask: str = ""
    market: str = ""
    timestamp: int = 0


class EventMessage(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    slug: str = ""
    title: str = ""


class NewMarketMsg(msgspec.Struct, tag_field="event_type", tag="new_market", frozen=True, gc=False):
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


class MarketResolvedMsg(msgspec.Struct, tag_field="event_type", tag="market_resolved", frozen=True, gc=False):
    market: str
    winning_asset_id: str
    id: str = ""
    assets_ids: list[str] = []
    winning_outcome: str = ""
    timestamp: int = 0
    tags: list[str] = []


class RestBook(msgspec.Struct, frozen=True, gc=False):
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
    t.__struct_config__.tag
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

FRAME_DECODER: Final = msgspec.json.Decoder(list[WireEvent] | WireEvent, strict=False)
"""Decodes one frame: a single event object or a JSON array of them."""

PRICE_CHANGE_DECODER: Final = msgspec.json.Decoder(PriceChangeFrame, strict=False)
"""Decodes a frame that is one ``price_change`` object; raises (ValidationError) for any other."""

REST_BOOK_DECODER: Final = msgspec.json.Decoder(RestBook, strict=False)


def convert_event(obj: object) -> WireEvent:
    """Typed event from an already-parsed JSON object (slow path; raises msgspec.ValidationError)."""
    return cast(WireEvent, msgspec.convert(obj, WireEvent, strict=False))
