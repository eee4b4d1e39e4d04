"""Wire events that change no book, translated to domain events (the edge: nothing past it sees a
wire struct). Each function raises :class:`~core.feed.numbers.BadNumber` (its ``kind`` is the
rejection reason) for a number it cannot accept; the processor counts it.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from core.feed.counters import MALFORMED_JSON, UNKNOWN_EVENT, WRONG_TYPE, Counters
from core.feed.events import BestBidAsk, MarketResolved, NewMarket, TradePrint
from core.feed.numbers import (
    BadNumber,
    parse_best_units,
    parse_price_units,
    parse_size_units,
    parse_tick_units,
    units_to_decimal,
)
from core.feed.wire import (
    EVENT_TYPES,
    BestBidAskMsg,
    LastTradePriceMsg,
    MarketResolvedMsg,
    NewMarketMsg,
    PriceChangeEntry,
    PriceChangeFields,
    WireEvent,
    convert_event,
)


def trade_print(msg: LastTradePriceMsg, recv_ns: int) -> TradePrint:
    price = parse_price_units(msg.price)
    size = parse_size_units(msg.size)
    try:
        fee_bps = int(msg.fee_rate_bps or 0)
    except ValueError:
        raise BadNumber("wrong_type", f"fee_rate_bps {msg.fee_rate_bps!r}") from None
    return TradePrint(
        msg.asset_id, msg.market, msg.side, price, size, fee_bps, msg.timestamp, recv_ns, msg.transaction_hash
    )


def best_bid_ask(msg: BestBidAskMsg, recv_ns: int) -> BestBidAsk:
    bid = parse_best_units(msg.best_bid)
    ask = parse_best_units(msg.best_ask)
    return BestBidAsk(msg.asset_id, msg.market, bid, ask, msg.timestamp, recv_ns)


def new_market_tick(msg: NewMarketMsg) -> Decimal | None:
    """The market's tick, when it says one."""
    if not msg.order_price_min_tick_size:
        return None
    return units_to_decimal(parse_tick_units(msg.order_price_min_tick_size))


def new_market(msg: NewMarketMsg, tick: Decimal | None, recv_ns: int) -> NewMarket:
    return NewMarket(
        msg.market or msg.condition_id,
        msg.question,
        msg.slug,
        tuple(msg.assets_ids or msg.clob_token_ids),
        tuple(msg.outcomes),
        tick,
        msg.active,
        tuple(msg.tags),
        msg.timestamp,
        recv_ns,
        msg.id,
        msg.event_message.slug if msg.event_message is not None else "",
        msg.group_item_title,
    )


def market_resolved(msg: MarketResolvedMsg, recv_ns: int) -> MarketResolved:
    return MarketResolved(
        msg.market, tuple(msg.assets_ids), msg.winning_asset_id, msg.winning_outcome, msg.timestamp, recv_ns
    )


# ---------------------------------------------------------------------------- the slow paths
# (interpreted even when the hot path is compiled: they run only for unusual frames)


def preview(frame: str | bytes, limit: int = 80) -> str:
    """The start of a frame, for a log line."""
    text = frame if isinstance(frame, str) else frame[:limit].decode("utf-8", "replace")
    return repr(text[:limit]) + ("…" if len(frame) > limit else "")


def schema_events(frame: str | bytes, exc: Exception, counters: Counters) -> list[WireEvent]:
    """A frame that is JSON but does not all fit the schema: each bad event counted by reason,
    the good ones returned (so they still apply)."""
    try:
        raw = msgspec.json.decode(frame)
    except msgspec.DecodeError:  # pragma: no cover - the typed decoder already parsed it
        counters.record(MALFORMED_JSON, f"{exc}: {preview(frame)}")
        return []
    good: list[WireEvent] = []
    for item in raw if isinstance(raw, list) else [raw]:
        if not isinstance(item, dict):
            counters.record(WRONG_TYPE, f"event is a {type(item).__name__}, not an object: {preview(frame)}")
            continue
        event_type = item.get("event_type")
        if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
            counters.record(UNKNOWN_EVENT, f"event_type {event_type!r}: {preview(frame)}")
            continue
        try:
            good.append(convert_event(item))
        except msgspec.ValidationError as item_exc:
            counters.record(WRONG_TYPE, f"{event_type}: {item_exc}")
    return good


def legacy_entries(msg: PriceChangeFields, counters: Counters) -> list[PriceChangeEntry] | None:
    """Legacy ``changes[]`` (asset at top level) and the oldest one-level shape as entries. They
    carry no best prices, so a completed burst is checked for crossing only."""
    if msg.changes is not None:
        levels = [(c.price, c.size, c.side) for c in msg.changes]
    elif msg.price is not None and msg.size is not None and msg.side is not None:
        levels = [(msg.price, msg.size, msg.side)]
    else:
        counters.record(WRONG_TYPE, "price_change without price_changes, changes or a level")
        return None
    if not msg.asset_id:
        counters.record(WRONG_TYPE, "price_change without asset_id")
        return None
    return [PriceChangeEntry(msg.asset_id, price, size, side) for price, size, side in levels]
