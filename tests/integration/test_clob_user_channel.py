"""The user channel: parsing real captures, trade status -> fills, and the live socket with resync,
its events reaching the engine's end of the relayer's event sink as typed classes."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from core.execution.events import EventSink, OrderUpdate, SettlementFailure, TradeStatus, TradeUpdate
from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_reads import ClobReader
from core.execution.relayers.clob_user_channel import UserChannel
from core.execution.relayers.clob_user_feed import UserFeed
from core.execution.relayers.clob_user_translate import (
    UserOrderEvent,
    UserStreamTranslator,
    UserTradeEvent,
    map_order_status,
)
from core.execution.relayers.clob_user_wire import decode_frame
from core.execution.types import Fill, OrderRequest, OrderStatus, Outcome
from core.fees import taker_fee
from core.retry import EQUAL_JITTER, Backoff
from core.sim.mock_clob import MockClobServer, MockMarket
from core.types import Side
from tests.conftest import load_shared

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OWNER_2024 = "3e2c94ca-8124-c4c1-c7ea-be1ea21b71fe"  # the account of the 2024 captures
YES_2024 = "21742633143463906290569050155826241533067272736897614950488156847949938836455"


def _translator(api_key: str = OWNER_2024, addresses: set[str] | None = None) -> UserStreamTranslator:
    return UserStreamTranslator(api_key, addresses or set())


# --------------------------------------------------------------------------- parsing captures


def test_order_placement_and_cancellation_captures() -> None:
    t = _translator()
    t.register_order("0x0f76f4dc6eaf3332f4100f2e8a0b4a927351dd64646b7bb12f37df775c657a78", "cid-1", Side.BUY, YES_2024)
    [placed] = t.handle(load_shared("ws_user/order_placement.json"))
    assert isinstance(placed, UserOrderEvent)
    assert placed.kind == "PLACEMENT" and placed.status is OrderStatus.LIVE and placed.client_order_id == "cid-1"
    assert placed.price == Decimal("0.513") and placed.original_size == Decimal("5") and placed.side is Side.BUY
    [canceled] = t.handle(load_shared("ws_user/order_cancel.json"))
    assert (
        isinstance(canceled, UserOrderEvent)
        and canceled.status is OrderStatus.CANCELED
        and canceled.kind == "CANCELLATION"
    )


@pytest.mark.parametrize(
    "capture",
    [
        "ws_user/ws_user_order_fok_killed.json",
        "ws_user/ws_user_order_fok_buy_pusd_size.json",
        "ws_user/ws_user_order_venue_cancel.json",
    ],
)
def test_v2_cancellation_statuses_match_by_prefix(capture: str) -> None:
    [event] = _translator().handle(load_shared(capture))
    assert isinstance(event, UserOrderEvent) and event.status is OrderStatus.CANCELED
    assert event.venue_status.startswith(("CANCELED", "INVALID"))


def test_order_status_mapping() -> None:
    d = Decimal
    assert map_order_status("LIVE", d(10), d(0)) is OrderStatus.LIVE
    assert map_order_status("LIVE", d(10), d(4)) is OrderStatus.PARTIALLY_FILLED
    assert map_order_status("MATCHED", d(10), d(10)) is OrderStatus.FILLED
    assert map_order_status("MATCHED", d(10), d(3)) is OrderStatus.PARTIALLY_FILLED
    assert map_order_status("CANCELED_market resolved", d(10), d(0)) is OrderStatus.CANCELED
    assert map_order_status("UNMATCHED", d(10), d(0)) is OrderStatus.FAILED
    assert map_order_status("SOMETHING_NEW", d(10), d(0)) is None


def test_taker_trade_capture_gives_an_unconfirmed_taker_fill() -> None:
    t = _translator()
    [event] = t.handle(load_shared("ws_user/user_trade2.json"))
    assert isinstance(event, UserTradeEvent) and event.status is TradeStatus.MATCHED and event.role == "TAKER"
    assert event.first_seen and not event.fill.confirmed
    fill = event.fill
    assert (fill.side, fill.price, fill.size, fill.token_id) == (Side.BUY, Decimal("0.52"), Decimal("5"), YES_2024)
    assert fill.venue_order_id == "0x5b605a0e8e40f3402d3cb3bc19edad6733ed23fbc079d2a09ee399c3487ace81"


def test_maker_trade_capture_uses_our_maker_entry_not_the_taker_fields() -> None:
    t = _translator()
    [event] = t.handle(load_shared("ws_user/user_trade1.json"))
    assert isinstance(event, UserTradeEvent) and event.role == "MAKER" and event.status is TradeStatus.MINED
    fill = event.fill
    # Top-level size 1096.87 describes the taker; our entry matched 5 @ 0.518, on the same token: we sold.
    assert (fill.side, fill.price, fill.size, fill.fee) == (Side.SELL, Decimal("0.518"), Decimal("5"), Decimal(0))
    assert fill.venue_order_id == "0xab679e56242324e15e59cfd488cd0f12e4fd71b153b9bfb57518898b9983145e"


def test_maker_entry_on_the_complement_token_is_a_buy() -> None:
    t = _translator(api_key="78132bc3-22af-6aa2-79ae-11929f821cae")  # the NO-leg maker in the capture
    [event] = t.handle(load_shared("ws_user/user_trade1.json"))
    assert isinstance(event, UserTradeEvent)
    assert event.fill.side is Side.BUY and event.fill.token_id != YES_2024 and event.fill.size == Decimal("10")


def test_rest_trade_item_and_array_frame() -> None:
    t = _translator()
    [event] = t.handle(load_shared("ws_user/trades.json"), source="rest")
    assert isinstance(event, UserTradeEvent) and event.status is TradeStatus.CONFIRMED and event.fill.confirmed
    assert event.source == "rest"
    items = load_shared("ws_user/ws_user_batch_msg.json")
    t2 = _translator(api_key="00000000-0000-0000-0000-000000000001")
    events = [e for item in items for e in t2.handle(item)]
    assert [type(e).__name__ for e in events] == ["UserOrderEvent", "UserTradeEvent"]
    assert isinstance(events[1], UserTradeEvent) and events[1].fill.confirmed and events[1].fill.size == Decimal("25.0")


def test_status_sequence_is_deduplicated_and_monotonic() -> None:
    t = _translator()
    trade = load_shared("ws_user/user_trade2.json")
    statuses = ["MATCHED", "MATCHED", "MINED", "MATCHED", "CONFIRMED", "MINED", "CONFIRMED"]
    seen = [e.status for s in statuses for e in t.handle({**trade, "status": s}) if isinstance(e, UserTradeEvent)]
    assert seen == [TradeStatus.MATCHED, TradeStatus.MINED, TradeStatus.CONFIRMED]
    assert t.stats["trade_duplicate"] == 4
    t2 = _translator()
    failed = [e for s in ("MATCHED", "RETRYING", "FAILED", "CONFIRMED") for e in t2.handle({**trade, "status": s})]
    assert [e.status for e in failed if isinstance(e, UserTradeEvent)] == [
        TradeStatus.MATCHED,
        TradeStatus.RETRYING,
        TradeStatus.FAILED,
    ]


def test_bad_input_is_counted_not_raised() -> None:
    t = _translator()
    assert (
        t.handle({"event_type": "mystery"}) == [] and t.handle([1, 2]) == [] and t.handle({"event_type": "trade"}) == []
    )
    assert t.handle({**load_shared("ws_user/user_trade2.json"), "status": "WEIRD"}) == []
    assert t.stats["bad_message"] == 3 and t.stats["unknown_trade_status"] == 1
    assert decode_frame("PONG") == [] and len(decode_frame('[{"a":1},{"b":2}]')) == 2
    with pytest.raises(ValueError):
        decode_frame("{not json")


def test_taker_fee_comes_from_the_fee_module() -> None:
    # shares x rate x p x (1 - p), rounded down to 5 decimals; the wire gives the rate in bps
    trade = {**load_shared("ws_user/user_trade2.json"), "fee_rate_bps": "500"}
    [event] = _translator().handle(trade)
    assert isinstance(event, UserTradeEvent) and event.role == "TAKER"
    assert event.fill.fee == taker_fee(Decimal("5"), Decimal("0.52"), Decimal("0.05")) == Decimal("0.06240")
    [maker] = _translator(api_key="ce168652-c146-2d93-a45c-f36cc52ae6f6").handle(trade)
    assert isinstance(maker, UserTradeEvent) and maker.role == "MAKER" and maker.fill.fee == 0
    # a fee the module refuses (a price outside [0, 1]) keeps the fill, counted, without fee
    t = _translator()
    [odd] = t.handle({**trade, "price": "1.5"})
    assert isinstance(odd, UserTradeEvent) and odd.fill.size == Decimal("5") and odd.fill.fee == 0
    assert t.stats["bad_fee"] == 1


# --------------------------------------------------------------------------- live socket


@pytest.fixture
async def server() -> AsyncIterator[MockClobServer]:
    srv = MockClobServer(confirm_delay_s=0.2)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


class Recorder:
    """The engine's end of the relayer's event sink."""

    def __init__(self) -> None:
        self.events: list[OrderUpdate | TradeUpdate | SettlementFailure] = []

    async def order_update(self, update: OrderUpdate) -> None:
        self.events.append(update)

    async def trade(self, update: TradeUpdate) -> None:
        self.events.append(update)

    async def settlement_failed(self, failure: SettlementFailure) -> None:
        self.events.append(failure)

    def trades(self) -> list[TradeUpdate]:
        return [e for e in self.events if isinstance(e, TradeUpdate)]

    def orders(self) -> list[OrderUpdate]:
        return [e for e in self.events if isinstance(e, OrderUpdate)]

    def failures(self) -> list[SettlementFailure]:
        return [e for e in self.events if isinstance(e, SettlementFailure)]

    @property
    def fills(self) -> list[Fill]:
        return [t.fill for t in self.trades()]


class _SlowEngine(Recorder):
    """Takes its time over a trade, as the engine does when a fill moves a Dutch group."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def trade(self, update: TradeUpdate) -> None:
        self.entered.set()
        await self.release.wait()
        await super().trade(update)


async def test_a_second_reader_of_a_trade_returns_only_once_the_first_has_delivered_it() -> None:
    """A resync racing the channel's own (a cancel reconciling right after a reconnect): the translator
    drops a trade it has seen, so the second reader must not return while the first is still
    delivering it, or the caller decides "canceled" for an order that filled."""
    engine = _SlowEngine()
    sink = EventSink()
    sink.connect(engine)
    feed = UserFeed(_translator(), ClobReader.__new__(ClobReader), sink, Counter())
    trade = load_shared("ws_user/trades.json")
    first = asyncio.create_task(feed.on_items([trade], source="ws"))
    await asyncio.wait_for(engine.entered.wait(), 10)
    second = asyncio.create_task(feed.on_items([trade], source="rest"))
    done, _ = await asyncio.wait({second}, timeout=0.2)
    assert not done, "the second reader returned before the trade reached the engine"
    engine.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert len(engine.fills) == 1


async def test_the_engine_may_read_the_venue_again_while_it_handles_an_event() -> None:
    """Inside its dispatch the engine can cancel, and a cancel reconciles through the same feed."""
    engine = Recorder()
    sink = EventSink()
    feed = UserFeed(_translator(), ClobReader.__new__(ClobReader), sink, Counter())

    class Reentrant(Recorder):
        async def trade(self, update: TradeUpdate) -> None:
            await feed.on_items([load_shared("ws_user/trades.json")], source="rest")  # a duplicate: dropped
            await engine.trade(update)

    sink.connect(Reentrant())
    await asyncio.wait_for(feed.on_items([load_shared("ws_user/trades.json")]), 10)
    assert len(engine.fills) == 1


async def _until(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Poll a condition set by callbacks, bounded in time."""
    async with asyncio.timeout(limit_s):
        while not cond():  # noqa: ASYNC110 - the condition is set by relayer callbacks
            await asyncio.sleep(0.02)


async def _live(server: MockClobServer, rec: Recorder) -> ClobRelayer:
    sink = EventSink()
    sink.connect(rec)
    relayer = ClobRelayer(
        server.url,
        137,
        KEY,
        dry_run=False,
        derive_api_key=True,
        user_ws_url=server.ws_url,
        events=sink,
        heartbeat_interval_s=0,
        timeout_s=2.0,
    )
    for market in server.markets.values():
        await relayer.prewarm(market.condition_id)
    await relayer.start()
    assert relayer.user_channel is not None
    await asyncio.wait_for(relayer.user_channel.connected.wait(), 5)
    await _until(lambda: server.user_channel_clients == 1)
    return relayer


def _binary(server: MockClobServer) -> MockMarket:
    return next(m for m in server.markets.values() if not m.neg_risk)


def _order(m: MockMarket, cid: str, price: str, size: str = "10") -> OrderRequest:
    return OrderRequest(
        cid, m.condition_id, m.tokens[0][0], Side.BUY, Decimal(price), Decimal(size), tick_size=m.tick_size
    )


async def test_matched_then_confirmed_gives_one_confirmed_fill(server: MockClobServer) -> None:
    rec = Recorder()
    relayer = await _live(server, rec)
    try:
        result = await relayer.place(_order(_binary(server), "taker-1", "0.52"))
        assert result.outcome is Outcome.ACCEPTED
        await _until(lambda: any(f.confirmed for f in rec.fills))
        assert [t.status for t in rec.trades()] == [TradeStatus.MATCHED, TradeStatus.MINED, TradeStatus.CONFIRMED]
        assert [f.confirmed for f in rec.fills] == [False, False, True]
        confirmed = rec.fills[-1]
        assert confirmed.client_order_id == "taker-1" and confirmed.venue_order_id == result.venue_order_id
        assert (confirmed.price, confirmed.size, confirmed.side) == (Decimal("0.52"), Decimal("10"), Side.BUY)
        assert confirmed.fee == Decimal("0.12480")  # 10 x 0.05 x 0.52 x 0.48
        first = rec.orders()[0]
        assert first.status is OrderStatus.FILLED and first.client_order_id == "taker-1"
    finally:
        await relayer.close()


async def test_failed_settlement_is_reported_and_never_confirmed(server: MockClobServer) -> None:
    server.settlement = "fail"
    rec = Recorder()
    relayer = await _live(server, rec)
    try:
        await relayer.place(_order(_binary(server), "taker-f", "0.52"))
        await _until(lambda: bool(rec.failures()))
        assert [t.status for t in rec.trades()] == [TradeStatus.MATCHED, TradeStatus.RETRYING]
        [failure] = rec.failures()
        assert failure.client_order_id == "taker-f" and failure.fill.size == Decimal("10") and failure.trade_id
        assert not any(f.confirmed for f in rec.fills)
    finally:
        await relayer.close()


async def test_maker_fill_from_a_resting_order(server: MockClobServer) -> None:
    rec = Recorder()
    relayer = await _live(server, rec)
    try:
        placed = await relayer.place(_order(_binary(server), "maker-1", "0.45"))
        await server.trade_against(str(placed.venue_order_id), Decimal("4"))
        await _until(lambda: any(f.confirmed for f in rec.fills))
        fill = next(f for f in rec.fills if f.confirmed)
        assert fill.client_order_id == "maker-1" and fill.side is Side.BUY and fill.size == Decimal("4")
        assert fill.fee == 0 and fill.venue_order_id == placed.venue_order_id  # our maker entry: no fee
        statuses = [e.status for e in rec.orders()]
        assert statuses[:2] == [OrderStatus.LIVE, OrderStatus.PARTIALLY_FILLED]
    finally:
        await relayer.close()


async def test_reconnect_resyncs_what_the_channel_missed(server: MockClobServer) -> None:
    server.confirm_delay_s = 60  # the trade stays MATCHED: only a REST resync can reveal it
    rec = Recorder()
    relayer = await _live(server, rec)
    try:
        placed = await relayer.place(_order(_binary(server), "resting", "0.45"))
        await _until(lambda: len(rec.events) >= 1)
        await server.disconnect_user_channels()
        await server.trade_against(str(placed.venue_order_id))  # happens while we are away
        assert relayer.user_channel is not None
        await _until(lambda: relayer.user_channel is not None and relayer.user_channel.connects >= 2)
        await _until(lambda: any(t.source == "rest" for t in rec.trades()))
        trade = next(t for t in rec.trades() if t.source == "rest")
        assert trade.status is TradeStatus.MATCHED and trade.fill.client_order_id == "resting"
        assert any(not f.confirmed and f.size == Decimal("10") for f in rec.fills)
        assert relayer.stats["resyncs"] >= 1
        # The resting order, now fully matched, is no longer open, and the venue answers 404 for it
        # (GET /data/order only finds live orders): its trades are what tell that it filled.
        assert not any(e.source == "rest" for e in rec.orders())
    finally:
        await relayer.close()


async def test_reconnect_waits_grow_with_equal_jitter_on_the_shared_retry_helper() -> None:
    """No server: every subscription fails; the waits double from 0.25 s, each drawn from [wait/2, wait]."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)
        if len(waits) == 5:
            raise asyncio.CancelledError  # enough: end the loop here

    channel = UserChannel(
        f"ws://127.0.0.1:{port}/ws/user", {}, [], _no_items, _no_connect, rng=random.Random(7), sleep=record
    )
    channel.start()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(channel._task, 30)  # type: ignore[arg-type]
    expected = Backoff(0.25, 30.0, 2.0, EQUAL_JITTER)
    rng = random.Random(7)
    assert waits == [expected.delay(n, rng) for n in range(5)]
    assert all(0.25 * 2**n / 2 <= w <= 0.25 * 2**n for n, w in enumerate(waits))
    assert channel.stats["disconnects"] == 5 and not channel.connected.is_set()


async def _no_items(items: list[object]) -> None:
    raise AssertionError("no frame can arrive")


async def _no_connect(reconnected: bool) -> None:
    raise AssertionError("no subscription can succeed")
