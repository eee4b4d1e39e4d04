"""Engine life-cycle on a real database: start disarmed, kill switch, daily loss auto-disarm,
restart (positions rebuilt from fills) and start-up reconciliation against the venue."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.events import Alert, AlertKind, StateChanged
from core.execution.alert_rows import record_alerts
from core.execution.risk_gate import RiskLimits
from core.execution.rules import ReasonCode
from core.execution.store import OrderRecord
from core.execution.types import Fill, OrderRequest, OrderStatus, Outcome
from core.store import models as m
from core.types import OrderType, Side
from tests.integration.engine_world import BIN, NO, T0, YES, World, assert_exposure_consistent, intent


@pytest.fixture
def world(world: World) -> World:
    """The conftest's world with these books."""
    world.books.set(YES, asks=[("0.60", "100")], bids=[("0.30", "100")])
    world.books.set(NO, asks=[("0.70", "100")], bids=[("0.20", "100")])
    return world


async def test_the_service_always_starts_disarmed(world: World) -> None:
    first = await world.engine()
    assert first.risk.armed
    [state] = await world.rows(m.State)
    assert state.key == m.ARMED_KEY and state.value["armed"] is True
    world.recorder.events.clear()
    restarted = await world.engine(arm=False)
    assert not restarted.risk.armed
    [state] = await world.rows(m.State)
    assert state.value["armed"] is False and "always start disarmed" in state.value["reason"]
    [reset] = await world.store.list_audit(action="reset")
    assert "was armed (by tester)" in (reset.error or "")
    assert [e.armed for e in world.recorder.of(StateChanged)] == [False]
    assert [a.kind for a in world.recorder.of(Alert)] == [AlertKind.RESET_ON_START]
    refused = await restarted.submit(intent(), BIN)
    assert refused.reason_code is ReasonCode.NOT_ARMED
    # a third start after a disarmed shutdown has nothing to reset
    await world.engine(arm=False)
    assert len(await world.store.list_audit(action="reset")) == 1


async def test_kill_switch_disarms_and_cancels_every_open_order(world: World) -> None:
    engine = await world.engine()
    placed = [await engine.submit(intent(price=p), BIN) for p in ("0.50", "0.51", "0.52")]
    placed.append(await engine.submit(intent(NO, price="0.40"), BIN))
    assert all(p.status is OrderStatus.LIVE for p in placed)
    result = await engine.risk.kill("alice")
    assert not engine.risk.armed
    assert result.canceled == 4 and result.not_canceled == {}
    assert await world.relayer.open_orders() == []
    assert {r.status for r in await world.rows(m.Order)} == {"canceled"}
    assert engine.open_orders() == []
    actions = [a.action for a in await world.store.list_audit()]
    assert actions[-3:] == ["disarm", "cancel_all", "kill"]
    assert any(a.kind == AlertKind.KILL_SWITCH for a in world.recorder.of(Alert))
    assert (await engine.submit(intent(price="0.53"), BIN)).reason_code is ReasonCode.NOT_ARMED


async def test_kill_switch_retries_a_failing_cancel_all_within_the_bounds(world: World) -> None:
    engine = await world.engine(relayer_max_retries=2, relayer_retry_sleep_ms=250)
    res = await engine.submit(intent(), BIN)
    world.inject.next_cancel(Outcome.RETRYABLE).next_cancel(Outcome.UNKNOWN)
    killed = await engine.risk.kill("alice")
    assert killed.canceled == 1 and engine.order(res.client_order_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    attempts = [(a.attempt, a.outcome) for a in await world.store.list_audit(action="cancel_all")]
    assert attempts == [(1, "retryable"), (2, "unknown"), (3, "accepted")]
    assert world.sleeps.calls == [0.25, 0.25]
    # out of retries: the kill still disarms and reports the failure
    world.inject.next_cancel(Outcome.RETRYABLE, times=3)
    await engine.risk.arm("alice")
    again = await engine.risk.kill("alice")
    assert not engine.risk.armed and again.error == "injected server error"


async def test_daily_loss_auto_disarms_and_publishes_an_alert(world: World) -> None:
    record_alerts(world.bus, world.store)
    engine = await world.engine(limits=replace(RiskLimits.configured(), daily_loss_limit=D("2")))
    assert (await engine.submit(intent(YES, Side.BUY, "0.60", "10", OrderType.FOK), BIN)).ok
    assert engine.risk.armed
    sold = await engine.submit(intent(YES, Side.SELL, "0.30", "10", OrderType.FOK), BIN)
    assert sold.ok and sold.status is OrderStatus.FILLED
    assert engine.positions.daily_realised() == D("-3.00")
    assert not engine.risk.armed
    [alert] = [a for a in world.recorder.of(Alert) if a.kind == AlertKind.DAILY_LOSS]
    assert alert.severity == "critical" and "-3.00" in alert.message
    await world.bus.drain()
    assert [(a.kind, a.severity) for a in await world.rows(m.Alert)] == [("daily_loss", "critical")]
    assert (await engine.risk.arm("alice")).reason_code is ReasonCode.DAILY_LOSS_LIMIT


async def test_restart_rebuilds_positions_and_daily_pnl_from_fills(world: World) -> None:
    engine = await world.engine()
    await engine.submit(intent(YES, Side.BUY, "0.60", "30", OrderType.FOK), BIN)
    world.books.set(YES, asks=[("0.65", "100")], bids=[("0.40", "100")])
    await engine.submit(intent(YES, Side.BUY, "0.65", "10", OrderType.FOK), BIN)
    await engine.submit(intent(YES, Side.SELL, "0.40", "15", OrderType.FOK), BIN)
    before = engine.positions.get(YES)
    assert before is not None
    restarted = await world.engine(arm=False)
    after = restarted.positions.get(YES)
    assert after is not None
    assert (after.shares, after.cost, after.realised, after.market) == (
        before.shares,
        before.cost,
        before.realised,
        BIN.condition_id,
    )
    assert restarted.positions.daily_realised() == engine.positions.daily_realised() == before.realised
    assert_exposure_consistent(restarted)
    assert restarted.exposure().market_exposure(BIN.condition_id) == after.cost
    # 30 @ 0.60 + 10 @ 0.65 = 24.5 for 40; selling 15 releases 9.1875, realised 6 - 9.1875
    assert before.realised == D("-3.1875")
    # a fill replayed by the venue after the restart is not applied twice
    [fill_row] = [f for f in await world.rows(m.Fill) if f.side == "SELL"]
    await restarted.on_fill(
        Fill(
            fill_row.client_order_id,
            fill_row.venue_order_id,
            YES,
            Side.SELL,
            fill_row.price,
            fill_row.size,
            trade_id=fill_row.trade_id,
        )
    )
    assert restarted.positions.get(YES).shares == after.shares  # type: ignore[union-attr]


async def test_startup_reconcile_fixes_statuses_from_the_venue(world: World) -> None:
    engine = await world.engine()
    live = await engine.submit(intent(price="0.50"), BIN)
    gone = await engine.submit(intent(price="0.51"), BIN)
    filled_meanwhile = await engine.submit(intent(NO, price="0.50"), BIN)
    assert gone.venue_order_id and filled_meanwhile.venue_order_id
    # while we are down: the venue cancels one order and the book fills another
    await world.relayer.cancel(gone.venue_order_id)
    world.relayer.events.disconnect()  # nobody hears the venue while we are down
    world.books.set(NO, asks=[("0.45", "100")], bids=[("0.20", "100")])
    await world.relayer.on_book_update(NO)
    # a crash between writing an order and posting it leaves a NEW row the venue never saw
    await world.store.save_order(
        OrderRecord(
            "pb-crashed", BIN.condition_id, YES, Side.BUY, D("0.10"), D("5"), created_ts=T0 - 120, updated_ts=T0 - 120
        )
    )
    # and a venue order that is not ours at all
    foreign = await world.relayer.place(
        OrderRequest("someone-else", BIN.condition_id, YES, Side.BUY, D("0.05"), D("5"))
    )
    await world.engine(arm=False)
    report = world.last_report
    assert report is not None and report.error == ""
    statuses = {r.client_order_id: r.status for r in await world.rows(m.Order)}
    assert statuses[live.client_order_id] == "live"
    assert statuses[gone.client_order_id] == "canceled"
    assert statuses[filled_meanwhile.client_order_id] == "filled"
    assert statuses["pb-crashed"] == "failed"
    assert report.foreign == (foreign.venue_order_id,)
    assert any(a.kind == AlertKind.RECONCILE for a in world.recorder.of(Alert))
    assert set(report.changed) == {gone.client_order_id, filled_meanwhile.client_order_id, "pb-crashed"}
    # one reconcile row per engine start
    assert len(await world.store.list_audit(action="reconcile")) == 2
