"""The user channel follows the markets with our open orders or positions, on its live socket.

Real sockets: the relayer against the CLOB double, whose user channel honours
``{"operation":"subscribe"|"unsubscribe","markets":[...]}`` and journals each operation beside
each event it sends, so the order of the two is checked where it matters (at the venue).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from core.app.user_markets import UserMarketSync
from core.events import EventBus, OrderEvent
from core.execution.events import EventSink, OrderUpdate, SettlementFailure, TradeStatus, TradeUpdate
from core.execution.positions import PositionBook
from core.execution.records import OrderRecord
from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_user_channel import UserChannel
from core.execution.types import OrderRequest, OrderStatus, Outcome
from core.sim.mock_clob import MockClobServer, MockMarket
from core.sim.mock_clob_user import SERVICE_RESTART, Subscriber
from core.types import Fill, Side

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture
async def server() -> AsyncIterator[MockClobServer]:
    srv = MockClobServer(confirm_delay_s=0.2)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


class _Engine:
    """The engine's end of the event sink, and its open orders and positions (what is held)."""

    def __init__(self) -> None:
        self.trades: list[TradeUpdate] = []
        self.orders: list[OrderRecord] = []
        self.positions = PositionBook()

    async def order_update(self, update: OrderUpdate) -> None:
        pass

    async def trade(self, update: TradeUpdate) -> None:
        self.trades.append(update)

    async def settlement_failed(self, failure: SettlementFailure) -> None:
        pass

    def open_orders(self) -> list[OrderRecord]:
        return list(self.orders)


async def _until(cond: Callable[[], bool], limit_s: float = 10.0) -> None:
    async with asyncio.timeout(limit_s):
        while not cond():  # noqa: ASYNC110 - set by socket callbacks
            await asyncio.sleep(0.02)


def _markets(server: MockClobServer) -> tuple[MockMarket, MockMarket]:
    """One market already held (a neg-risk one), one we trade in (binary)."""
    held = next(m for m in server.markets.values() if m.neg_risk)
    traded = next(m for m in server.markets.values() if not m.neg_risk)
    return held, traded


def _order(m: MockMarket, cid: str, price: str) -> OrderRequest:
    return OrderRequest(
        cid, m.condition_id, m.tokens[0][0], Side.BUY, Decimal(price), Decimal(10), tick_size=m.tick_size
    )


async def _live(server: MockClobServer, engine: _Engine, held: list[str]) -> tuple[ClobRelayer, UserChannel]:
    sink = EventSink()
    sink.connect(engine)
    relayer = ClobRelayer(
        server.url,
        137,
        KEY,
        dry_run=False,
        derive_api_key=True,
        user_ws_url=server.ws_url,
        user_markets=held,
        events=sink,
        heartbeat_interval_s=0,
        timeout_s=2.0,
    )
    for market in server.markets.values():
        await relayer.prewarm(market.condition_id)  # parameters only: prewarming subscribes nothing
    await relayer.start()
    channel = relayer.user_channel
    assert channel is not None
    await asyncio.wait_for(channel.connected.wait(), 5)
    await _until(lambda: server.user_channel_clients == 1)
    return relayer, channel


def _subscriber(server: MockClobServer) -> Subscriber:
    [sub] = server.user.subscribers
    return sub


async def test_a_market_is_subscribed_before_the_order_that_needs_it_is_posted(server: MockClobServer) -> None:
    held, traded = _markets(server)
    engine = _Engine()
    relayer, channel = await _live(server, engine, [held.condition_id])
    try:
        sub = _subscriber(server)
        assert sub.markets == {held.condition_id} and not sub.everything
        result = await relayer.place(_order(traded, "taker-1", "0.52"))  # crosses: fills at once
        assert result.outcome is Outcome.ACCEPTED
        await _until(lambda: any(t.status is TradeStatus.CONFIRMED for t in engine.trades))
        journal = list(server.user.journal)
        first_event = journal.index(("event", traded.condition_id))
        assert ("subscribe", traded.condition_id) in journal[:first_event], journal
        assert sub.markets == {held.condition_id, traded.condition_id}
        assert server.user.operations == {"subscribe": 1}
        assert channel.connects == 1 and channel.stats["subscribe_ops"] == 1  # no reconnect
    finally:
        await relayer.close()


async def test_a_canceled_order_without_a_position_leaves_the_channel(server: MockClobServer) -> None:
    held, traded = _markets(server)
    engine = _Engine()
    engine.positions.apply_fill(
        Fill("old", None, held.tokens[0][0], Side.BUY, Decimal("0.5"), Decimal(5)), held.condition_id
    )
    bus = EventBus()
    relayer, channel = await _live(server, engine, [])
    sync = UserMarketSync(bus, engine, relayer)
    try:
        assert sync.refresh() == [held.condition_id]  # what start does once the engine knows its state
        await _until(lambda: _subscriber(server).markets == {held.condition_id})
        request = _order(traded, "rest-1", "0.05")  # far below the asks: rests
        record = OrderRecord.from_request(request, mode="live", group_id=None, reason="", ts=0.0)
        engine.orders.append(record)  # the engine's write-ahead: open before it is posted
        result = await relayer.place(request)
        assert result.outcome is Outcome.ACCEPTED and result.venue_order_id
        record.status = OrderStatus.LIVE
        bus.publish(OrderEvent(record.client_order_id, OrderStatus.LIVE, market=traded.condition_id))
        await _until(lambda: traded.condition_id in _subscriber(server).markets)

        canceled = await relayer.cancel(result.venue_order_id)
        assert canceled.canceled == (result.venue_order_id,)
        engine.orders.clear()
        bus.publish(OrderEvent(record.client_order_id, OrderStatus.CANCELED, market=traded.condition_id))
        await _until(lambda: server.user.operations["unsubscribe"] == 1)
        assert _subscriber(server).markets == {held.condition_id}  # the position's market stays
        assert server.user.journal[-1] == ("unsubscribe", traded.condition_id)
        assert channel.connects == 1 and server.user_channel_clients == 1  # no reconnect
    finally:
        sync.close()
        await relayer.close()


async def test_a_market_stays_while_a_trade_of_ours_settles(server: MockClobServer) -> None:
    server.confirm_delay_s = 1.0
    held, traded = _markets(server)
    engine = _Engine()
    relayer, _ = await _live(server, engine, [held.condition_id])
    try:
        await relayer.place(_order(traded, "taker-2", "0.52"))
        await _until(lambda: any(t.status is TradeStatus.MATCHED for t in engine.trades))
        relayer.follow_markets([held.condition_id])  # the engine holds nothing there (say, sold again)
        await asyncio.sleep(0)
        assert traded.condition_id in _subscriber(server).markets
        assert server.user.operations["unsubscribe"] == 0
        await _until(lambda: any(t.status is TradeStatus.CONFIRMED for t in engine.trades))
        await _until(lambda: server.user.operations["unsubscribe"] == 1)
        assert _subscriber(server).markets == {held.condition_id}
    finally:
        await relayer.close()


async def test_a_reconnect_subscribes_the_current_set(server: MockClobServer) -> None:
    held, traded = _markets(server)
    engine = _Engine()
    relayer, channel = await _live(server, engine, [held.condition_id])
    try:
        relayer.follow_markets([held.condition_id, traded.condition_id])
        await _until(lambda: server.user.operations["subscribe"] == 1)
        assert channel.connects == 1
        await server.user.close_all(SERVICE_RESTART, "restart")
        await _until(lambda: channel.connects == 2 and server.user_channel_clients == 1)
        sub = _subscriber(server)
        assert sub.markets == {held.condition_id, traded.condition_id}
        assert sub.operations == {}  # the whole set came with the subscription itself
    finally:
        await relayer.close()
