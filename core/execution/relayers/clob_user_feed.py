"""Our account's events, from the user channel (and REST after a reconnect) to the engine's sink.

Items are translated (:mod:`.clob_user_translate`) and become the relayer's typed events
(:mod:`core.execution.events`): an order status change is an :class:`OrderUpdate`, a trade status
change a :class:`TradeUpdate`, a trade that FAILED to settle a :class:`SettlementFailure`. The
channel does not replay what it missed, so after every reconnect open orders and recent trades
are re-read over REST and fed through the same de-duplicating translator.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from core.errors import PolybotError
from core.execution.events import EventSink, OrderUpdate, SettlementFailure, TradeUpdate
from core.execution.relayers.clob_http import VenueError
from core.execution.relayers.clob_reads import ClobReader
from core.execution.relayers.clob_user_channel import UserChannel
from core.execution.relayers.clob_user_markets import UserMarkets
from core.execution.relayers.clob_user_translate import UserEvent, UserOrderEvent, UserStreamTranslator
from core.types import OrderStatus

log = logging.getLogger(__name__)

RESYNC_LOOKUPS = 200
MAX_FINAL_REMEMBERED = 100_000
_FINAL_ORDER_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED})


class _TaskLock:
    """An asyncio lock its holding task may take again.

    The engine reacts to an event inside its dispatch (a group's leg policy cancels, a cancel
    reconciles, reconciling re-reads the venue through this feed): that nested read is the same
    task and must not wait on itself.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        me = asyncio.current_task()
        if me is not None and me is self._owner:
            yield
            return
        async with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None


class UserFeed:
    def __init__(
        self, translator: UserStreamTranslator, reader: ClobReader, events: EventSink, stats: Counter[str]
    ) -> None:
        self._translator = translator
        self._reader = reader
        self._events = events
        self._stats = stats
        self._channel: UserChannel | None = None
        self.markets = UserMarkets()
        self._final_orders: set[str] = set()
        self._last_trade_ts = 0
        # One batch is translated and dispatched at a time: the translator drops an item it has
        # seen, so a second reader of the same trade (a resync racing the channel's own) must not
        # go on until the first reader's dispatch has reached the engine.
        self._dispatching = _TaskLock()

    @property
    def channel(self) -> UserChannel | None:
        return self._channel

    def start(self, url: str, auth: dict[str, str]) -> None:
        self._channel = UserChannel(url, auth, self.markets.wanted(), self.on_items, self._on_connect)
        self._channel.start()

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.stop()
            self._channel = None

    def follow(self, held: Iterable[str]) -> None:
        """The markets we hold an open order or a position in (:mod:`.clob_user_markets`)."""
        self.markets.follow(held)
        self._push()

    @asynccontextmanager
    async def posting(self, markets: Iterable[str]) -> AsyncIterator[None]:
        """Around a post: its markets are subscribed (the frame written) before the order goes out,
        so none of its events can come before the channel listens to its market."""
        pinned = list(markets)
        self.markets.pin(pinned)
        self._push()
        if self._channel is not None:
            await self._channel.sync()
        try:
            yield
        finally:
            self.markets.unpin(pinned)

    def _push(self) -> None:
        if self._channel is not None:
            self._channel.set_markets(self.markets.wanted())

    async def on_items(self, items: list[object], *, source: str = "ws") -> None:
        async with self._dispatching.held():
            for item in items:
                for event in self._translator.handle(item, source=source):
                    await self._dispatch(event)

    async def _dispatch(self, event: UserEvent) -> None:
        if isinstance(event, UserOrderEvent):
            if event.status in _FINAL_ORDER_STATUSES:
                if len(self._final_orders) >= MAX_FINAL_REMEMBERED:
                    self._final_orders.clear()  # only an optimisation for resync: forgetting is safe
                self._final_orders.add(event.venue_order_id.lower())
            if event.status is not None:  # an unknown status is counted and logged by the translator
                update = OrderUpdate(
                    event.venue_order_id, event.client_order_id, event.status, event.size_matched, event.source
                )
                await self._events.order_update(update)
            return
        self._last_trade_ts = max(self._last_trade_ts, event.fill.ts_ms // 1000)
        if self.markets.trade(event.market, event.trade_id, event.status.final):
            self._push()
        if event.failed:
            await self._events.settlement_failed(SettlementFailure(event.trade_id, event.client_order_id, event.fill))
        else:
            await self._events.trade(TradeUpdate(event.fill, event.status, event.source))

    async def _on_connect(self, reconnected: bool) -> None:
        if reconnected:
            try:
                await self.resync()
            except (VenueError, PolybotError) as err:
                self._stats["resync_errors"] += 1
                log.warning("user channel resync over REST failed: %s", err)

    async def resync(self) -> None:
        """Re-read open orders and recent trades over REST and feed them through the translator."""
        self._stats["resyncs"] += 1
        open_items = await self._reader.paged("/data/orders", {})
        open_ids = {str(item.get("id") or "").lower() for item in open_items}
        await self.on_items([{**item, "event_type": "order"} for item in open_items], source="rest")
        after = max(0, self._last_trade_ts - 60) if self._last_trade_ts else None
        await self.on_items(list(await self._reader.trades(after=after)), source="rest")
        # Orders we placed that are no longer open and not known final: read their state (bounded).
        missing = [
            oid for oid in self._translator.known_order_ids() if oid not in open_ids and oid not in self._final_orders
        ][-RESYNC_LOOKUPS:]
        for oid in missing:
            item = await self._reader.order_item(oid)
            if item is not None:
                await self.on_items([{**item, "event_type": "order"}], source="rest")
