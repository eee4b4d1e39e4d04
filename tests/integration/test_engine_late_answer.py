"""A venue's answer to a post that arrives after the user channel already gave the order a final
status does not reopen it (SQLite and PostgreSQL). Found in a suite run under load
(tests/faults/test_faults_settlement.py::test_settlement_fails_after_matched, CLOB double): the
double announces the match over the user channel, then the trade's RETRYING and FAILED 0.1 s apart,
and answers the POST; the service's answer came later than the FAILED, and ``matched`` in it put
the failed order back to "filled" (memory and row) - a failed trade shown as a filled order.
Likewise a late "live" answer for an order the venue already said canceled left it "live"."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from core.events import Alert, OrderEvent
from core.execution.engine import Engine
from core.execution.events import SettlementFailure, TradeStatus, TradeUpdate
from core.execution.types import ErrorClass, Fill, OrderRequest, OrderStatus, Outcome, PlaceResult
from core.store import models as m
from core.types import Intent, Side
from tests.integration.engine_world import BIN, YES, World, intent
from tests.integration.polling import WAIT_S


def _hold_answer(
    monkeypatch: pytest.MonkeyPatch, world: World, answer: PlaceResult
) -> tuple[asyncio.Event, asyncio.Event, list[OrderRequest]]:
    """The relayer's answer waits for the first event returned (a slow HTTP answer); the second is
    set once the post went out; the list gets the request."""
    release, posted = asyncio.Event(), asyncio.Event()
    seen: list[OrderRequest] = []

    async def place(req: OrderRequest) -> PlaceResult:
        seen.append(req)
        posted.set()
        await release.wait()
        return answer

    monkeypatch.setattr(world.relayer, "place", place)
    return release, posted, seen


async def _post_held(
    monkeypatch: pytest.MonkeyPatch, world: World, engine: Engine, order: Intent, answer: PlaceResult
) -> tuple[asyncio.Task[object], asyncio.Event, str]:
    """``order`` submitted and posted, its answer held: the submission's task, the event that
    releases the answer, and the order's client id."""
    release, posted, seen = _hold_answer(monkeypatch, world, answer)
    placing: asyncio.Task[object] = asyncio.create_task(engine.submit(order, BIN))
    async with asyncio.timeout(WAIT_S):
        await asyncio.wait([placing, asyncio.ensure_future(posted.wait())], return_when=asyncio.FIRST_COMPLETED)
    assert posted.is_set(), placing.result()
    return placing, release, seen[0].client_order_id


async def test_a_late_matched_answer_does_not_reopen_an_order_whose_trade_failed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine()
    answer = PlaceResult(Outcome.ACCEPTED, venue_order_id="0xv1", status=OrderStatus.FILLED)
    placing, release, coid = await _post_held(monkeypatch, world, engine, intent(size="10"), answer)
    # over the user channel, before the answer: the order matched in full, its trade matched, then failed
    assert await engine.on_order_status("0xv1", coid, OrderStatus.FILLED, D("10"))
    fill = Fill(coid, "0xv1", YES, Side.BUY, D("0.50"), D("10"), trade_id="t1", confirmed=False)
    await engine.trade(TradeUpdate(fill, TradeStatus.MATCHED))
    await engine.settlement_failed(SettlementFailure("t1", coid, fill))
    assert engine.order(coid).status is OrderStatus.FAILED  # type: ignore[union-attr]
    release.set()
    async with asyncio.timeout(WAIT_S):
        await placing
        await world.bus.drain()
    rec = engine.order(coid)
    assert rec is not None and rec.status is OrderStatus.FAILED, "the late answer reopened the failed order"
    assert rec.venue_order_id == "0xv1"
    [row] = await world.rows(m.Order)
    assert row.status == OrderStatus.FAILED.value
    assert [f.status for f in await world.rows(m.Fill)] == ["failed"]
    statuses = [e.status for e in world.recorder.of(OrderEvent) if e.client_order_id == coid]
    assert statuses[-1] is OrderStatus.FAILED and OrderStatus.FAILED in statuses, statuses
    assert engine.positions.get(YES) is None or engine.positions[YES].shares == 0


async def test_a_late_live_answer_does_not_reopen_an_order_the_venue_canceled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    answer = PlaceResult(Outcome.ACCEPTED, venue_order_id="0xv2", status=OrderStatus.LIVE)
    placing, release, coid = await _post_held(monkeypatch, world, engine, intent(), answer)
    assert await engine.on_order_status("0xv2", coid, OrderStatus.CANCELED)  # the venue canceled it at once
    release.set()
    async with asyncio.timeout(WAIT_S):
        await placing
    rec = engine.order(coid)
    assert rec is not None and rec.status is OrderStatus.CANCELED, "the late 'live' answer reopened it"
    assert not engine.open_orders()
    [row] = await world.rows(m.Order)
    assert row.status == OrderStatus.CANCELED.value


async def test_a_lost_answer_after_the_venue_filled_the_order_keeps_it_filled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The venue's word over the user channel (filled, its trade confirmed) before the post's answer
    is lost (a read timeout: outcome unknown). The outcome is known: the order stays filled, and the
    trader is not told it is unknown."""
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine()
    lost = PlaceResult(Outcome.UNKNOWN, error_class=ErrorClass.UNKNOWN_OUTCOME, error="read timeout")
    placing, release, coid = await _post_held(monkeypatch, world, engine, intent(size="10"), lost)
    assert await engine.on_order_status("0xv3", coid, OrderStatus.FILLED, D("10"))
    fill = Fill(coid, "0xv3", YES, Side.BUY, D("0.50"), D("10"), trade_id="t3", confirmed=True)
    await engine.trade(TradeUpdate(fill, TradeStatus.CONFIRMED))
    assert engine.order(coid).status is OrderStatus.FILLED  # type: ignore[union-attr]
    release.set()
    async with asyncio.timeout(WAIT_S):
        await placing
        await world.bus.drain()
    rec = engine.order(coid)
    assert rec is not None and rec.status is OrderStatus.FILLED, rec
    [row] = await world.rows(m.Order)
    assert row.status == OrderStatus.FILLED.value
    assert [a.kind for a in world.recorder.of(Alert)] == [], "an order the venue filled reported as unknown"
    position = engine.positions.get(YES)
    assert position is not None and position.shares == D("10")
