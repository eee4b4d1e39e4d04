"""The authenticated user channel (``/ws/user``): wire types, translation to our fills, the client.

Wire messages are decoded once into msgspec structs (:class:`OrderWire`, :class:`TradeWire`) and
translated by :class:`UserStreamTranslator` into domain events: :class:`OrderEvent` for order
life-cycle changes and :class:`TradeEvent` (carrying our :class:`~core.execution.types.Fill`)
for each trade status change. A trade runs MATCHED -> MINED -> CONFIRMED, or RETRYING ->
FAILED; our part of it is final (``Fill.confirmed``) only at CONFIRMED. As maker our part is our
entry in ``maker_orders[]`` (the top-level price/size describe the taker), possibly on the
complement token. REST ``/data/trades`` items have the same shape, so a resync after a reconnect
goes through the same translator, which de-duplicates by (trade id, order id).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from core.execution.types import Fill, OrderStatus
from core.types import Side

log = logging.getLogger(__name__)

Scalar = str | int | float | None


# --------------------------------------------------------------------------- wire types


class MakerOrderWire(msgspec.Struct, kw_only=True):
    order_id: str
    owner: str = ""
    maker_address: str = ""
    matched_amount: Scalar = None
    price: Scalar = None
    asset_id: str = ""
    outcome: str = ""
    side: str | None = None
    fee_rate_bps: Scalar = None


class OrderWire(msgspec.Struct, kw_only=True):
    id: str
    asset_id: str = ""
    market: str = ""
    side: str = ""
    price: Scalar = None
    original_size: Scalar = None
    size_matched: Scalar = None
    status: str = ""
    type: str = ""
    owner: str = ""
    order_owner: str = ""
    order_type: str = ""
    outcome: str = ""
    maker_address: str = ""
    timestamp: Scalar = None
    created_at: Scalar = None
    expiration: Scalar = None
    associate_trades: list[str] | None = None


class TradeWire(msgspec.Struct, kw_only=True):
    id: str
    taker_order_id: str = ""
    market: str = ""
    asset_id: str = ""
    side: str = ""
    size: Scalar = None
    price: Scalar = None
    status: str = ""
    fee_rate_bps: Scalar = None
    outcome: str = ""
    owner: str = ""
    trade_owner: str = ""
    maker_address: str = ""
    maker_orders: list[MakerOrderWire] | None = None
    trader_side: str = ""
    transaction_hash: str | None = None
    match_time: Scalar = None
    last_update: Scalar = None
    timestamp: Scalar = None


_ORDER_TYPES = {"PLACEMENT", "UPDATE", "CANCELLATION"}


class BadMessage(ValueError):
    """A user-channel item that is not an order or trade we can read."""


def decode_item(item: Any) -> OrderWire | TradeWire:
    """One JSON object of a user-channel frame (or a REST order/trade) -> typed wire struct."""
    if not isinstance(item, dict):
        raise BadMessage(f"expected an object, got {type(item).__name__}")
    kind = str(item.get("event_type") or "").lower()
    if not kind:
        typ = str(item.get("type") or "").upper()
        if typ in _ORDER_TYPES:
            kind = "order"
        elif typ == "TRADE" or "taker_order_id" in item:
            kind = "trade"
    try:
        if kind == "order":
            return msgspec.convert(item, OrderWire, strict=False)
        if kind == "trade":
            return msgspec.convert(item, TradeWire, strict=False)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"{kind} message does not match the expected shape: {exc}") from None
    raise BadMessage(f"unknown user-channel message (event_type={item.get('event_type')!r}, type={item.get('type')!r})")


def decode_frame(data: str | bytes) -> list[Any]:
    """A frame is one JSON object or an array of them; ``PONG`` and other text yield nothing."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return []
    try:
        decoded = msgspec.json.decode(stripped)
    except msgspec.DecodeError as exc:
        raise BadMessage(f"frame is not valid JSON: {exc}") from None
    return decoded if isinstance(decoded, list) else [decoded]


# --------------------------------------------------------------------------- domain events


class TradeStatus(enum.StrEnum):
    MATCHED = "MATCHED"
    MINED = "MINED"
    CONFIRMED = "CONFIRMED"
    RETRYING = "RETRYING"
    FAILED = "FAILED"

    @property
    def rank(self) -> int:
        return _TRADE_RANK[self]

    @property
    def final(self) -> bool:
        return self in (TradeStatus.CONFIRMED, TradeStatus.FAILED)


_TRADE_RANK = {
    TradeStatus.MATCHED: 1,
    TradeStatus.MINED: 2,
    TradeStatus.RETRYING: 2,
    TradeStatus.CONFIRMED: 3,
    TradeStatus.FAILED: 3,
}


@dataclass(frozen=True, slots=True)
class OrderEvent:
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
class TradeEvent:
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

    @property
    def failed(self) -> bool:
        return self.status is TradeStatus.FAILED


UserEvent = OrderEvent | TradeEvent


def parse_decimal(value: Scalar) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def parse_side(value: str | None) -> Side | None:
    try:
        return Side(str(value).upper()) if value else None
    except ValueError:
        return None


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


def taker_fee(size: Decimal, price: Decimal, fee_rate_bps: Decimal | None) -> Decimal:
    """shares x rate x p x (1 - p), rounded down to 5 decimals (makers pay nothing)."""
    if not fee_rate_bps:
        return Decimal(0)
    rate = fee_rate_bps / Decimal(10_000)
    return (size * rate * price * (1 - price)).quantize(Decimal("0.00001"), rounding=ROUND_DOWN)


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
        self._orders[venue_order_id.lower()] = _KnownOrder(client_order_id, side, token_id)
        self._orders.move_to_end(venue_order_id.lower())
        while len(self._orders) > self._max:
            self._orders.popitem(last=False)

    def client_order_id(self, venue_order_id: str) -> str | None:
        known = self._orders.get(venue_order_id.lower())
        return known.client_order_id if known else None

    def known_order_ids(self) -> list[str]:
        return list(self._orders)

    def handle(self, item: Any, *, source: str = "ws") -> list[UserEvent]:
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

    def _order_event(self, wire: OrderWire, source: str) -> OrderEvent:
        original = parse_decimal(wire.original_size)
        matched = parse_decimal(wire.size_matched)
        status = map_order_status(wire.status, original, matched)
        if status is None:
            self.stats["unknown_order_status"] += 1
            log.warning("user channel: unknown order status %r for %s", wire.status, wire.id)
        self.stats["order_events"] += 1
        return OrderEvent(
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

    def _trade_events(self, wire: TradeWire, source: str) -> list[TradeEvent]:
        try:
            status = TradeStatus(wire.status.upper())
        except ValueError:
            self.stats["unknown_trade_status"] += 1
            log.warning("user channel: unknown trade status %r for trade %s", wire.status, wire.id)
            return []
        ts = _ts_ms(wire.timestamp, wire.last_update, wire.match_time)
        taker_side = parse_side(wire.side)
        parts: list[tuple[str, str, Fill]] = []
        taker_ours = wire.trader_side.upper() == "TAKER" and self._is_ours(
            wire.taker_order_id, wire.owner or wire.trade_owner, ""
        )
        if wire.taker_order_id and wire.taker_order_id.lower() in self._orders:
            taker_ours = True
        if taker_ours and taker_side is not None:
            price, size = parse_decimal(wire.price), parse_decimal(wire.size)
            if price is not None and size is not None:
                fill = Fill(
                    client_order_id=self.client_order_id(wire.taker_order_id) or "",
                    venue_order_id=wire.taker_order_id,
                    token_id=wire.asset_id,
                    side=taker_side,
                    price=price,
                    size=size,
                    fee=taker_fee(size, price, parse_decimal(wire.fee_rate_bps)),
                    trade_id=wire.id,
                    confirmed=status is TradeStatus.CONFIRMED,
                    ts_ms=ts,
                )
                parts.append((wire.taker_order_id, "TAKER", fill))
        for maker in wire.maker_orders or ():
            if not self._is_ours(maker.order_id, maker.owner, maker.maker_address):
                continue
            price, size = parse_decimal(maker.price), parse_decimal(maker.matched_amount)
            side = self._maker_side(maker, wire.asset_id, taker_side)
            if price is None or size is None or side is None:
                self.stats["bad_maker_entry"] += 1
                log.warning("user channel: unreadable maker entry %s in trade %s", maker.order_id, wire.id)
                continue
            fill = Fill(
                client_order_id=self.client_order_id(maker.order_id) or "",
                venue_order_id=maker.order_id,
                token_id=maker.asset_id or wire.asset_id,
                side=side,
                price=price,
                size=size,
                fee=Decimal(0),
                trade_id=wire.id,
                confirmed=status is TradeStatus.CONFIRMED,
                ts_ms=ts,
            )
            parts.append((maker.order_id, "MAKER", fill))
        events: list[TradeEvent] = []
        for order_id, role, fill in parts:
            first = (wire.id, order_id.lower()) not in self._trade_state
            if not self._advance(wire.id, order_id, status):
                continue
            self.stats[f"trade_{status.value.lower()}"] += 1
            events.append(
                TradeEvent(
                    trade_id=wire.id,
                    venue_order_id=order_id,
                    client_order_id=fill.client_order_id or None,
                    status=status,
                    role=role,
                    fill=fill,
                    transaction_hash=wire.transaction_hash or None,
                    source=source,
                    first_seen=first,
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


# --------------------------------------------------------------------------- client

FrameHandler = Callable[[list[Any]], Awaitable[None]]
ConnectHandler = Callable[[bool], Awaitable[None]]


class UserChannel:
    """Keeps one authenticated ``/ws/user`` subscription alive: ping, dead-socket detection, reconnect.

    ``on_items`` gets the decoded JSON items of each frame; ``on_connect(reconnected)`` runs after
    every successful subscribe (``reconnected`` is True from the second one on: the caller then
    re-reads open orders and trades over REST, since the channel does not replay).
    """

    def __init__(
        self,
        url: str,
        auth: dict[str, str],
        markets: list[str],
        on_items: FrameHandler,
        on_connect: ConnectHandler,
        *,
        ping_interval_s: float = 10.0,
        dead_after_s: float = 30.0,
        open_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.url = url
        self._auth = dict(auth)
        self.markets = list(markets)
        self._on_items = on_items
        self._on_connect = on_connect
        self.ping_interval_s = ping_interval_s
        self.dead_after_s = dead_after_s
        self.open_timeout_s = open_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.connected = asyncio.Event()
        self.connects = 0
        self.stats: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._stopping = False
        self.last_frame_at = 0.0
        self.down_since: float | None = None  # wall clock: since when it has had no live subscription

    def __repr__(self) -> str:
        return f"UserChannel(url={self.url!r}, markets={len(self.markets)}, connected={self.connected.is_set()})"

    def subscribe_message(self) -> str:
        return msgspec.json.encode({"auth": self._auth, "markets": self.markets, "type": "user"}).decode()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self.down_since = time.time()
            self._task = asyncio.create_task(self._run(), name="clob-user-channel")

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None
        self.connected.clear()

    def set_markets(self, markets: list[str]) -> bool:
        """Change the subscribed condition ids; a live socket is dropped so the loop resubscribes
        (and the caller's on_connect resyncs over REST). Returns True when the list changed."""
        markets = list(dict.fromkeys(markets))
        if markets == self.markets:
            return False
        self.markets = markets
        if self._ws is not None:
            asyncio.get_running_loop().create_task(self.reconnect())
        return True

    async def reconnect(self) -> None:
        """Drop the current socket (e.g. after the market list changed); the loop resubscribes."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def _run(self) -> None:
        backoff = self.backoff_initial_s
        while not self._stopping:
            try:
                async with websockets.connect(
                    self.url, open_timeout=self.open_timeout_s, ping_interval=None, max_size=2**24
                ) as ws:
                    self._ws = ws
                    await ws.send(self.subscribe_message())
                    self.connects += 1
                    self.connected.set()
                    self.down_since = None
                    backoff = self.backoff_initial_s
                    await self._on_connect(self.connects > 1)
                    await self._read(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    break
                self.stats["disconnects"] += 1
                log.warning("user channel %s: %s: %s", self.url, type(exc).__name__, exc)
            finally:
                self._ws = None
                if self.connected.is_set() or self.down_since is None:
                    self.down_since = time.time()
                self.connected.clear()
            if self._stopping:
                break
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(backoff * 2, self.backoff_max_s)

    async def _read(self, ws: ClientConnection) -> None:
        pinger = asyncio.create_task(self._ping(ws))
        try:
            while True:
                try:
                    data = await asyncio.wait_for(ws.recv(), timeout=self.dead_after_s)
                except TimeoutError:
                    self.stats["dead_socket"] += 1
                    log.warning("user channel: no frame for %.0f s, reconnecting", self.dead_after_s)
                    return
                self.last_frame_at = time.monotonic()
                try:
                    items = decode_frame(data)
                except BadMessage as exc:
                    self.stats["bad_frame"] += 1
                    log.warning("user channel: dropped a frame (%s)", exc)
                    continue
                if items:
                    self.stats["frames"] += 1
                    await self._on_items(items)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger

    async def _ping(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            await ws.send("PING")
