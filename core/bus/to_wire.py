"""A bus message back into the venue's frame, for a reader's own feed processor.

A trader reading the bus applies each message through the same :class:`core.feed.processor.FeedProcessor`
(and ingest pipeline) as a process on the websockets: the message becomes the market-channel event it
came from (``book``, ``price_change``, ``last_trade_price``, ``best_bid_ask``, ``tick_size_change``,
``market_resolved``), JSON-encoded by msgspec from the wire structs of :mod:`core.feed.wire`. So its
books follow exactly the integrity rules the worker's follow (the burst checks against the carried
best prices included), and everything downstream receives the same domain events.
"""

from __future__ import annotations

from typing import Final

import msgspec

from core.bus import messages as m
from core.feed.numbers import price_decimal, units_to_decimal
from core.feed.wire import (
    BestBidAskMsg,
    BookMsg,
    LastTradePriceMsg,
    MarketResolvedMsg,
    PriceChangeEntry,
    PriceChangeMsg,
    TickSizeChangeMsg,
    WireLevel,
)
from core.types import Side

_ENCODE: Final = msgspec.json.Encoder().encode


def _market(msg: m.MdMessage) -> str:
    return "" if msg.condition == "_" else msg.condition


def _price(units: int | None) -> str:
    return "" if units is None else str(price_decimal(units))


def book_frame(msg: m.Snapshot) -> bytes:
    """A ``book`` event: bids ascending and asks descending (best last), as the venue sends them."""
    bids = [WireLevel(str(price_decimal(p)), str(units_to_decimal(s))) for p, s in reversed(msg.bids)]
    asks = [WireLevel(str(price_decimal(p)), str(units_to_decimal(s))) for p, s in reversed(msg.asks)]
    return _ENCODE(
        BookMsg(
            asset_id=msg.asset,
            market=_market(msg),
            timestamp=msg.ts_ms,
            hash=msg.hash,
            bids=bids,
            asks=asks,
            tick_size=msg.tick_size,
        )
    )


def delta_frame(msg: m.Delta) -> bytes:
    entries = [
        PriceChangeEntry(msg.asset, lv.price, lv.size, Side(lv.side), lv.best_bid, lv.best_ask) for lv in msg.levels
    ]
    return _ENCODE(PriceChangeMsg(market=_market(msg), timestamp=msg.ts_ms, price_changes=entries))


def trade_frame(msg: m.Trade) -> bytes:
    return _ENCODE(
        LastTradePriceMsg(
            asset_id=msg.asset,
            price=_price(msg.price_units),
            size=str(units_to_decimal(msg.size_units)),
            side=Side(msg.side),
            market=_market(msg),
            fee_rate_bps=str(msg.fee_rate_bps),
            timestamp=msg.ts_ms,
            transaction_hash=msg.transaction_hash,
        )
    )


def best_frame(msg: m.BestPrices) -> bytes:
    return _ENCODE(
        BestBidAskMsg(
            asset_id=msg.asset,
            best_bid=_price(msg.best_bid_units),
            best_ask=_price(msg.best_ask_units),
            market=_market(msg),
            timestamp=msg.ts_ms,
        )
    )


def tick_frame(msg: m.TickSize) -> bytes:
    return _ENCODE(
        TickSizeChangeMsg(
            asset_id=msg.asset,
            new_tick_size=msg.new_tick,
            old_tick_size=msg.old_tick or "",
            market=_market(msg),
            timestamp=msg.ts_ms,
        )
    )


def resolved_frame(msg: m.Resolved) -> bytes:
    return _ENCODE(
        MarketResolvedMsg(
            market=msg.condition,
            winning_asset_id=msg.winning_asset_id,
            assets_ids=list(msg.asset_ids),
            winning_outcome=msg.winning_outcome,
            timestamp=msg.ts_ms,
        )
    )
