"""A restart while a live trade settles loses nothing (SQLite and PostgreSQL).

The CLOB answers a marketable order "matched" (our FILLED) at once; its trade comes MATCHED, then
CONFIRMED seconds to minutes later, and only CONFIRMED moves the order's filled size and the
position. An engine started in between knew only the open orders: the FILLED order short of its
fills was not tracked, nothing remembered the trade as settling, and the CONFIRMED (or FAILED) that
came next was dropped as a fill of an unknown order: the position never booked, the fill row
"matched" for good. After a restart the user channel's translator no longer knows our client order
ids either: its fills name the venue order only (``client_order_id=""``), as here.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.events import Alert, FillEvent
from core.execution.engine import Engine
from core.execution.events import SettlementFailure, TradeStatus, TradeUpdate
from core.execution.memory_store import MemoryExecutionStore
from core.execution.store import ExecutionStore, OrderRecord, Settling
from core.execution.types import Fill, OrderRequest, OrderStatus
from core.store import models as m
from core.types import OrderType, Side
from tests.integration.engine_world import BIN, YES, World, intent, venue_answers_matched, venue_fill


def _after_restart(req: OrderRequest, *, confirmed: bool) -> Fill:
    """The trade as the user channel reports it after a restart: by venue order id only."""
    return replace(venue_fill(req, "t1", confirmed=confirmed), client_order_id="")


async def _matched_then_restarted(
    world: World, monkeypatch: pytest.MonkeyPatch, *, trade_seen: bool = True
) -> tuple[Engine, OrderRequest]:
    """A 5 pUSD buy the venue answered "matched" (its trade MATCHED when ``trade_seen``), then a
    second engine on the same store: the restart."""
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine()
    posted = venue_answers_matched(monkeypatch, world)
    placed = await engine.submit(intent(price="0.50", size="10", order_type=OrderType.FOK), BIN)
    assert placed.status is OrderStatus.FILLED and len(posted) == 1
    if trade_seen:
        await engine.trade(TradeUpdate(venue_fill(posted[0], "t1", confirmed=False), TradeStatus.MATCHED))
    restarted = await world.engine()
    # still settling after the restart: its exposure counts, its fate is open
    assert restarted.settling_shares(YES) == D("10")
    assert posted[0].client_order_id in restarted.in_motion()
    return restarted, posted[0]


async def _assert_booked_once(world: World, engine: Engine, req: OrderRequest) -> None:
    position = engine.positions.get(YES)
    assert position is not None and position.shares == D("10")
    [fill] = await world.rows(m.Fill)
    assert fill.status == "confirmed" and fill.size == D("10")
    for order in (engine.order(req.client_order_id), await world.store.get_order(req.client_order_id)):
        assert order is not None and order.status is OrderStatus.FILLED and order.filled_size == D("10")
    [row] = await world.rows(m.Position)
    assert row.size == D("10")
    assert engine.unmatched_fills == 0
    assert engine.settling_shares(YES) == 0 and engine.in_motion() == []


async def test_a_trade_confirmed_after_a_restart_is_booked_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    restarted, req = await _matched_then_restarted(world, monkeypatch)
    world.recorder.events.clear()
    await restarted.trade(TradeUpdate(_after_restart(req, confirmed=False), TradeStatus.MATCHED))
    assert world.recorder.of(FillEvent) == []  # known to be settling: not announced twice
    await restarted.trade(TradeUpdate(_after_restart(req, confirmed=True), TradeStatus.CONFIRMED))
    await _assert_booked_once(world, restarted, req)
    # the venue repeats itself (a REST resync): nothing moves twice
    await restarted.trade(TradeUpdate(_after_restart(req, confirmed=False), TradeStatus.MATCHED))
    await restarted.trade(TradeUpdate(_after_restart(req, confirmed=True), TradeStatus.CONFIRMED))
    await _assert_booked_once(world, restarted, req)


async def test_a_trade_first_seen_after_a_restart_is_booked_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    restarted, req = await _matched_then_restarted(world, monkeypatch, trade_seen=False)
    await restarted.trade(TradeUpdate(_after_restart(req, confirmed=False), TradeStatus.MATCHED))
    await restarted.trade(TradeUpdate(_after_restart(req, confirmed=True), TradeStatus.CONFIRMED))
    await _assert_booked_once(world, restarted, req)


async def test_a_partly_matched_order_canceled_before_a_restart_is_booked_once(world: World) -> None:
    """4 of a resting 10 matched, the rest canceled: the order is final, its trade still settling."""
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    placed = await engine.submit(intent(price="0.50", size="10"), BIN)
    assert placed.status is OrderStatus.LIVE
    coid, venue_id = placed.client_order_id, placed.venue_order_id
    four = Fill(coid, venue_id, YES, Side.BUY, D("0.50"), D("4"), trade_id="t1", confirmed=False)
    await engine.trade(TradeUpdate(four, TradeStatus.MATCHED))
    assert (await engine.cancel(coid)).canceled == (coid,)
    restarted = await world.engine()
    assert coid in restarted.in_motion()  # its trade's fate is still open
    after_restart = replace(four, client_order_id="", confirmed=True)
    await restarted.trade(TradeUpdate(after_restart, TradeStatus.CONFIRMED))
    position = restarted.positions.get(YES)
    assert position is not None and position.shares == D("4")
    [fill] = await world.rows(m.Fill)
    assert fill.status == "confirmed"
    for order in (restarted.order(coid), await world.store.get_order(coid)):
        assert order is not None and order.status is OrderStatus.CANCELED and order.filled_size == D("4")
    assert restarted.unmatched_fills == 0 and restarted.in_motion() == []


async def test_a_trade_failed_after_a_restart_fails_its_order(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    restarted, req = await _matched_then_restarted(world, monkeypatch)
    world.recorder.events.clear()
    await restarted.settlement_failed(SettlementFailure("t1", None, _after_restart(req, confirmed=False)))
    [fill] = await world.rows(m.Fill)
    assert fill.status == "failed"
    for order in (restarted.order(req.client_order_id), await world.store.get_order(req.client_order_id)):
        assert order is not None and order.status is OrderStatus.FAILED and order.filled_size == 0
        assert "settlement failed" in (order.error or "")
    assert restarted.positions.get(YES) is None and await world.rows(m.Position) == []
    assert [a.kind for a in world.recorder.of(Alert) if a.kind == "settlement_failed"] == []  # the order's own event
    assert restarted.unmatched_fills == 0
    assert restarted.settling_shares(YES) == 0 and restarted.in_motion() == []


async def _settling_on_record(store: ExecutionStore) -> Settling:
    """Orders and fills of every kind; the store says which are still settling."""
    rows = (
        ("pb-answered", OrderStatus.FILLED, "0", "paper"),  # answered matched, its trade not reported yet
        ("pb-settled", OrderStatus.FILLED, "10", "paper"),
        ("pb-canceled", OrderStatus.CANCELED, "0", "paper"),  # 4 matched, the rest canceled
        ("pb-resting", OrderStatus.LIVE, "0", "paper"),  # 3 matched, the rest resting
        ("pb-failed", OrderStatus.FAILED, "0", "paper"),  # its trade failed
        ("pb-live", OrderStatus.FILLED, "0", "live"),  # another mode's
    )
    for coid, status, filled, mode in rows:
        assert await store.save_order(OrderRecord(coid, "0xbin", YES, Side.BUY, D("0.5"), D("10"), mode=mode))
        await store.update_order(coid, status=status, filled_size=D(filled))

    def fill(coid: str, trade: str, size: str, *, confirmed: bool = False) -> Fill:
        return Fill(coid, f"0x{coid}", YES, Side.BUY, D("0.5"), D(size), trade_id=trade, confirmed=confirmed)

    await store.add_fill(fill("pb-settled", "t1", "10", confirmed=True))
    await store.add_fill(fill("pb-canceled", "t2", "4"))
    await store.add_fill(fill("pb-resting", "t3", "3"))
    await store.mark_fill_failed(fill("pb-failed", "t4", "10"))
    await store.add_fill(fill("pb-unknown", "t5", "2"))  # no row of ours: the venue's word, kept
    await store.add_fill(fill("pb-live", "t6", "10"))
    return await store.load_settling("paper")


@pytest.mark.parametrize("kind", ["sql", "memory"])
async def test_the_stores_find_the_same_orders_and_trades_still_settling(world: World, kind: str) -> None:
    settling = await _settling_on_record(world.store if kind == "sql" else MemoryExecutionStore())
    assert sorted(r.client_order_id for r in settling.orders) == ["pb-answered", "pb-canceled", "pb-resting"]
    assert [(f.fill.client_order_id, f.fill.trade_id, f.market) for f in settling.fills] == [
        ("pb-canceled", "t2", "0xbin"),
        ("pb-resting", "t3", "0xbin"),
        ("pb-unknown", "t5", ""),
    ]
    assert all(not f.fill.confirmed and not f.failed and f.fill.size > 0 for f in settling.fills)
