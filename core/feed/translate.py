"""Wire events that change no book, translated to domain events (the edge: nothing past it sees a
wire struct). Each function raises :class:`~core.feed.numbers.BadNumber` (its ``kind`` is the
rejection reason) for a number it cannot accept; the processor counts it.
"""

from __future__ import annotations

from decimal import Decimal

from core.feed.events import BestBidAsk, MarketResolved, NewMarket, TradePrint
from core.feed.numbers import (
    BadNumber,
    parse_best_units,
    parse_price_units,
    parse_size_units,
    parse_tick_units,
    units_to_decimal,
)
from core.feed.wire import BestBidAskMsg, LastTradePriceMsg, MarketResolvedMsg, NewMarketMsg


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
