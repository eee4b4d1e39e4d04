"""User-channel items -> our events: order life-cycle changes and our part of each trade.

:class:`UserStreamTranslator` turns decoded items (:mod:`.clob_user_wire`) into
:class:`UserOrderEvent` for order life-cycle changes and :class:`UserTradeEvent` (carrying our
:class:`~core.types.Fill`) for each trade status change. A trade runs MATCHED -> MINED ->
CONFIRMED, or RETRYING -> FAILED; our part of it is final (``Fill.confirmed``) only at CONFIRMED.
As maker our part is our entry in ``maker_orders[]`` (the top-level price/size describe the
taker), possibly on the complement token. REST ``/data/trades`` items have the same shape, so a
resync after a reconnect goes through the same translator, which de-duplicates by (trade id,
order id).
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass
from decimal import Decimal

from core.execution.events import TradeStatus
from core.execution.relayers.clob_user_wire import (
    BadMessage,
    MakerOrderWire,
    OrderWire,
    Scalar,
    TradeWire,
    decode_item,
    parse_decimal,
    parse_side,
)
from core.fees import taker_fee
from core.types import Fill, OrderStatus, Side

log = logging.getLogger(__name__)

_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class UserOrderEvent:
    """An order of ours changed (from the user channel, or from a REST resync: ``source="rest"``)."""

    venue_order_id: str
    client_order_id: str | None
    kind: str  # PLACEMENT / UPDATE / CANCELLATION / SYNC
    venue_status: str  # as the venue wrote it (e.g. "CANCELED_order couldn't be fully filled...")
    status: OrderStatus | None  # None when the venue status is not one we know
    token_id: str
    market: str
    side: Side | None
    price: Decimal | None
    original_size: Decimal | None
    size_matched: Decimal | None
    source: str = "ws"


@dataclass(frozen=True, slots=True)
class UserTradeEvent:
    """A status change of a trade that involves one of our orders; ``fill`` is our part of it."""

    trade_id: str
    venue_order_id: str
    client_order_id: str | None
    status: TradeStatus
    role: str  # TAKER / MAKER
    fill: Fill
    transaction_hash: str | None = None
    source: str = "ws"
    first_seen: bool = False  # the first status we learn of this (trade, order)
    market: str = ""  # condition id (the user channel follows a market while a trade in it settles)

    @property
    def failed(self) -> bool:
        return self.status is TradeStatus.FAILED


UserEvent = UserOrderEvent | UserTradeEvent


def map_order_status(raw: str, original: Decimal | None, matched: Decimal | None) -> OrderStatus | None:
    """Venue order status -> our order status. Cancellations carry suffixes: match by prefix."""
    up = raw.strip().upper()
    full = original is not None and matched is not None and matched >= original > 0
    partial = matched is not None and matched > 0
    if up.startswith("CANCELED") or up.startswith("CANCELLED") or up == "INVALID":
        return OrderStatus.CANCELED
    if up == "LIVE":
        return OrderStatus.PARTIALLY_FILLED if partial else OrderStatus.LIVE
    if up == "MATCHED":
        return OrderStatus.PARTIALLY_FILLED if partial and not full else OrderStatus.FILLED
    if up == "DELAYED":
        return OrderStatus.LIVE
    if up == "UNMATCHED":
        return OrderStatus.FAILED
    return None


def _ts_ms(*values: Scalar) -> int:
    for value in values:
        number = parse_decimal(value)
        if number is None:
            continue
        # seconds (10 digits) or milliseconds (13 digits)
        return int(number * 1000) if number < 10**11 else int(number)
    return 0


@dataclass(slots=True)
class _KnownOrder:
    client_order_id: str | None
    side: Side | None
    token_id: str


class UserStreamTranslator:
    """Turns user-channel / REST items into our events; remembers which orders are ours.

    ``api_key`` (the owner uuid) and ``addresses`` (maker/funder addresses) identify our maker
    entries; orders registered with :meth:`register_order` are recognised by id as well.
    """

    def __init__(self, api_key: str | None, addresses: set[str], *, max_remembered: int = 100_000) -> None:
        self.api_key = api_key or ""
        self.addresses = {a.lower() for a in addresses if a}
        self._orders: OrderedDict[str, _KnownOrder] = OrderedDict()
        self._trade_state: OrderedDict[tuple[str, str], TradeStatus] = OrderedDict()
        self._max = max_remembered
        self.stats: Counter[str] = Counter()

    def register_order(
        self, venue_order_id: str, client_order_id: str | None, side: Side | None, token_id: str
    ) -> None:
        key = venue_order_id.lower()
        if key in self._orders:
            self._orders.move_to_end(key)  # a new one goes to the end by itself
        self._orders[key] = _KnownOrder(client_order_id, side, token_id)
        while len(self._orders) > self._max:
            self._orders.popitem(last=False)

    def client_order_id(self, venue_order_id: str) -> str | None:
        known = self._orders.get(venue_order_id.lower())
        return known.client_order_id if known else None

    def known_order_ids(self) -> list[str]:
        return list(self._orders)

    def handle(self, item: object, *, source: str = "ws") -> list[UserEvent]:
        """Translate one decoded item; bad input is counted, logged and yields nothing."""
        try:
            wire = decode_item(item)
        except BadMessage as exc:
            self.stats["bad_message"] += 1
            log.warning("user channel: dropped a bad message (%s)", exc)
            return []
        if isinstance(wire, OrderWire):
            return [self._order_event(wire, source)]
        return list(self._trade_events(wire, source))

    def _order_event(self, wire: OrderWire, source: str) -> UserOrderEvent:
        original = parse_decimal(wire.original_size)
        matched = parse_decimal(wire.size_matched)
        status = map_order_status(wire.status, original, matched)
        if status is None:
            self.stats["unknown_order_status"] += 1
            log.warning("user channel: unknown order status %r for %s", wire.status, wire.id)
        self.stats["order_events"] += 1
        return UserOrderEvent(
            venue_order_id=wire.id,
            client_order_id=self.client_order_id(wire.id),
            kind=(wire.type or "SYNC").upper() if source == "ws" else "SYNC",
            venue_status=wire.status,
            status=status,
            token_id=wire.asset_id,
            market=wire.market,
            side=parse_side(wire.side),
            price=parse_decimal(wire.price),
            original_size=original,
            size_matched=matched,
            source=source,
        )

    def _is_ours(self, order_id: str, owner: str, address: str) -> bool:
        if order_id and order_id.lower() in self._orders:
            return True
        if self.api_key and owner == self.api_key:
            return True
        return bool(address) and address.lower() in self.addresses

    def _taker_fee(self, wire: TradeWire, size: Decimal, price: Decimal) -> Decimal:
        bps = parse_decimal(wire.fee_rate_bps)
        try:
            return taker_fee(size, price, (bps or Decimal(0)) / _BPS)
        except ValueError as exc:
            # the fill is real whatever its fee field says: keep it, count the unreadable fee
            self.stats["bad_fee"] += 1
            log.warning("user channel: trade %s: fee not computable (%s); recorded without fee", wire.id, exc)
            return Decimal(0)

    def _taker_part(self, wire: TradeWire, status: TradeStatus, ts: int) -> tuple[str, str, Fill] | None:
        taker_ours = wire.trader_side.upper() == "TAKER" and self._is_ours(
            wire.taker_order_id, wire.owner or wire.trade_owner, ""
        )
        if wire.taker_order_id and wire.taker_order_id.lower() in self._orders:
            taker_ours = True
        side = parse_side(wire.side)
        price, size = parse_decimal(wire.price), parse_decimal(wire.size)
        if not taker_ours or side is None or price is None or size is None:
            return None
        fill = Fill(
            client_order_id=self.client_order_id(wire.taker_order_id) or "",
            venue_order_id=wire.taker_order_id,
            token_id=wire.asset_id,
            side=side,
            price=price,
            size=size,
            fee=self._taker_fee(wire, size, price),
            trade_id=wire.id,
            confirmed=status is TradeStatus.CONFIRMED,
            ts_ms=ts,
        )
        return wire.taker_order_id, "TAKER", fill

    def _maker_part(
        self, wire: TradeWire, maker: MakerOrderWire, status: TradeStatus, ts: int
    ) -> tuple[str, str, Fill] | None:
        price, size = parse_decimal(maker.price), parse_decimal(maker.matched_amount)
        side = self._maker_side(maker, wire.asset_id, parse_side(wire.side))
        if price is None or size is None or side is None:
            self.stats["bad_maker_entry"] += 1
            log.warning("user channel: unreadable maker entry %s in trade %s", maker.order_id, wire.id)
            return None
        fill = Fill(
            client_order_id=self.client_order_id(maker.order_id) or "",
            venue_order_id=maker.order_id,
            token_id=maker.asset_id or wire.asset_id,
            side=side,
            price=price,
            size=size,
            fee=Decimal(0),  # makers pay no fee
            trade_id=wire.id,
            confirmed=status is TradeStatus.CONFIRMED,
            ts_ms=ts,
        )
        return maker.order_id, "MAKER", fill

    def _trade_events(self, wire: TradeWire, source: str) -> list[UserTradeEvent]:
        try:
            status = TradeStatus(wire.status.upper())
        except ValueError:
            self.stats["unknown_trade_status"] += 1
            log.warning("user channel: unknown trade status %r for trade %s", wire.status, wire.id)
            return []
        ts = _ts_ms(wire.timestamp, wire.last_update, wire.match_time)
        parts = [self._taker_part(wire, status, ts)]
        parts += [
            self._maker_part(wire, maker, status, ts)
            for maker in wire.maker_orders or ()
            if self._is_ours(maker.order_id, maker.owner, maker.maker_address)
        ]
        events: list[UserTradeEvent] = []
        for order_id, role, fill in (p for p in parts if p is not None):
            first = (wire.id, order_id.lower()) not in self._trade_state
            if not self._advance(wire.id, order_id, status):
                continue
            self.stats[f"trade_{status.value.lower()}"] += 1
            events.append(
                UserTradeEvent(
                    trade_id=wire.id,
                    venue_order_id=order_id,
                    client_order_id=fill.client_order_id or None,
                    status=status,
                    role=role,
                    fill=fill,
                    transaction_hash=wire.transaction_hash or None,
                    source=source,
                    first_seen=first,
                    market=wire.market,
                )
            )
        return events

    def _maker_side(self, maker: MakerOrderWire, taker_asset: str, taker_side: Side | None) -> Side | None:
        side = parse_side(maker.side)
        if side is not None:
            return side
        known = self._orders.get(maker.order_id.lower())
        if known is not None and known.side is not None:
            return known.side
        if taker_side is None:
            return None
        # Same token: the maker took the other side. Complement token: both bought (mint) or sold (merge).
        return taker_side.opposite if (maker.asset_id or taker_asset) == taker_asset else taker_side

    def _advance(self, trade_id: str, order_id: str, status: TradeStatus) -> bool:
        """Record a status; False when it is a repeat or goes backwards (REST resync, duplicates)."""
        key = (trade_id, order_id.lower())
        previous = self._trade_state.get(key)
        if previous is not None and (previous.final or status.rank <= previous.rank):
            self.stats["trade_duplicate"] += 1
            return False
        self._trade_state[key] = status
        self._trade_state.move_to_end(key)
        while len(self._trade_state) > self._max:
            self._trade_state.popitem(last=False)
        return True
