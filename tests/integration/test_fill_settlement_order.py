"""A trade that failed to settle on chain leaves no record saying otherwise (SQLite and PostgreSQL),
whatever order the venue's words about it arrive in.

- The failure overtaking the matched fill's insert: the FAILED's update found no row yet, the
  insert committed "matched" after it, and the row said matched for good.
- The failure before anything marked the order matched (its post still awaiting the answer, or the
  order resting): the late answer "matched", its fills, or the user channel's MATCHED for that trade
  recorded a matched fill and showed a filled order for a trade that never happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from typing import Any

import pytest

from core.events import Alert, FillEvent, OrderEvent
from core.execution.engine import Engine
from core.execution.events import SettlementFailure, TradeStatus, TradeUpdate
from core.execution.memory_store import MemoryExecutionStore
from core.execution.types import Fill, OrderRequest, OrderStatus, Outcome, PlaceResult
from core.store import models as m
from core.types import Side
from tests.integration.engine_world import BIN, YES, World, intent
from tests.integration.polling import WAIT_S, until


def _fill(coid: str, venue_id: str | None, size: str = "10", trade: str = "t1") -> Fill:
    return Fill(coid, venue_id, YES, Side.BUY, D("0.50"), D(size), trade_id=trade, confirmed=False)


def _wrap(
    monkeypatch: pytest.MonkeyPatch, world: World, name: str, before: Callable[[], Awaitable[None]] | None = None
) -> asyncio.Event:
    """The store's ``name`` runs ``before`` first (a held write); the event is set once it returned."""
    done = asyncio.Event()
    write: Callable[..., Awaitable[Any]] = getattr(world.store, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            await before()
        result = await write(*args, **kwargs)
        done.set()
        return result

    monkeypatch.setattr(world.store, name, wrapper)
    return done


async def _world_state(world: World, engine: Engine, coid: str) -> tuple[OrderStatus | None, str, list[str]]:
    """The order's status in memory and in its row, and the fill rows' statuses."""
    await world.bus.drain()
    rec = engine.order(coid)
    [row] = [r for r in await world.rows(m.Order) if r.client_order_id == coid]
    return rec.status if rec is not None else None, row.status, [f.status for f in await world.rows(m.Fill)]


def _kinds(world: World) -> list[str]:
    return [str(a.kind) for a in world.recorder.of(Alert)]


async def test_a_failure_does_not_overtake_the_matched_fill_still_being_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.books.set(YES, asks=[("0.60", "100")])  # the bid at 0.50 rests
    engine = await world.engine()
    placed = await engine.submit(intent(size="10"), BIN)
    coid = placed.client_order_id
    release, entered = asyncio.Event(), asyncio.Event()

    async def hold() -> None:  # a slow commit, or SQLite's write lock held elsewhere
        entered.set()
        await release.wait()

    _wrap(monkeypatch, world, "add_fill", hold)
    marked = _wrap(monkeypatch, world, "mark_fill_failed")
    fill = _fill(coid, placed.venue_order_id, size="4")
    matching = asyncio.create_task(engine.trade(TradeUpdate(fill, TradeStatus.MATCHED)))
    async with asyncio.timeout(WAIT_S):
        await entered.wait()  # the matched fill's insert is under way
    failing = asyncio.create_task(engine.settlement_failed(SettlementFailure("t1", coid, fill)))
    async with asyncio.timeout(WAIT_S):
        await marked.wait()  # the failure's write landed first
    release.set()
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(matching, failing)
    status, row, fills = await _world_state(world, engine, coid)
    assert fills == ["failed"], "the matched insert landed after the failure: matched for good"
    assert (status, row) == (OrderStatus.LIVE, OrderStatus.LIVE.value)
    assert world.recorder.of(FillEvent) == [], "a fill announced for a trade that failed"
    assert coid not in engine.in_motion() and engine.positions.get(YES) is None
    assert _kinds(world) == ["settlement_failed"]


def _hold_answer(
    monkeypatch: pytest.MonkeyPatch, world: World, answer: Callable[[str], PlaceResult]
) -> tuple[asyncio.Event, list[str]]:
    """The relayer's answer (``answer`` of the order's client id) waits for the event returned (a
    slow HTTP answer); the list gets the posted order's client id once the post went out."""
    release = asyncio.Event()
    posted: list[str] = []

    async def place(req: OrderRequest) -> PlaceResult:
        posted.append(req.client_order_id)
        await release.wait()
        return answer(req.client_order_id)

    monkeypatch.setattr(world.relayer, "place", place)
    return release, posted


@pytest.mark.parametrize("late", ["channel_before_answer", "channel_after_answer", "in_answer"])
async def test_a_failure_before_the_answer_leaves_a_failed_order_and_a_failed_fill(
    world: World, monkeypatch: pytest.MonkeyPatch, late: str
) -> None:
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine()

    def answer(coid: str) -> PlaceResult:  # the paper relayer's answer carries its fills, the CLOB's none
        fills = (_fill(coid, "0xv1"),) if late == "in_answer" else ()
        return PlaceResult(Outcome.ACCEPTED, venue_order_id="0xv1", status=OrderStatus.FILLED, fills=fills)

    release, posted = _hold_answer(monkeypatch, world, answer)
    placing = asyncio.create_task(engine.submit(intent(size="10"), BIN))
    await until(lambda: bool(posted) or placing.done(), "the post")
    coid = posted[0]
    fill = _fill(coid, "0xv1")  # the CLOB relayer names the order by its hash, known before the post
    # the order still awaits its answer: the venue's FAILED for its trade comes first
    await engine.settlement_failed(SettlementFailure("t1", coid, fill))
    matched = TradeUpdate(fill, TradeStatus.MATCHED)  # the user channel's MATCHED for it, late
    if late == "channel_before_answer":
        await engine.trade(matched)
    release.set()
    async with asyncio.timeout(WAIT_S):
        await placing
    if late == "channel_after_answer":
        await engine.trade(matched)
    status, row, rows = await _world_state(world, engine, coid)
    assert rows == ["failed"], "the failed trade recorded as a matched fill"
    assert (status, row) == (OrderStatus.FAILED, OrderStatus.FAILED.value), "the failed trade shown as a filled order"
    assert "t1" in (engine.order(coid).error or "")  # type: ignore[union-attr]
    assert world.recorder.of(FillEvent) == [], "a fill announced for a trade that failed"
    statuses = [e.status for e in world.recorder.of(OrderEvent) if e.client_order_id == coid]
    assert statuses.count(OrderStatus.FAILED) == 1 and OrderStatus.FILLED not in statuses, statuses
    assert _kinds(world) == [], "the order's failed event tells the trader (one alert, not two)"
    assert coid not in engine.in_motion() and engine.positions.get(YES) is None


async def test_a_late_matched_word_fails_the_order_the_venue_then_said_filled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.books.set(YES, asks=[("0.60", "100")])  # the bid at 0.50 rests
    engine = await world.engine()
    placed = await engine.submit(intent(size="10"), BIN)
    coid, venue_id = placed.client_order_id, placed.venue_order_id
    fill = _fill(coid, venue_id)
    await engine.settlement_failed(SettlementFailure("t1", coid, fill))  # while it rests: the trader is told
    assert [f.status for f in await world.rows(m.Fill)] == ["failed"]
    assert venue_id and await engine.on_order_status(venue_id, coid, OrderStatus.FILLED, D("10"))
    await engine.trade(TradeUpdate(fill, TradeStatus.MATCHED))  # the trade's MATCHED, reordered after
    status, row, rows = await _world_state(world, engine, coid)
    assert rows == ["failed"]
    assert (status, row) == (OrderStatus.FAILED, OrderStatus.FAILED.value), "the failed trade shown as a filled order"
    assert world.recorder.of(FillEvent) == []
    assert _kinds(world) == ["settlement_failed"]


async def test_the_memory_store_records_a_failure_it_has_no_fill_for() -> None:
    store = MemoryExecutionStore()
    fill = _fill("c1", "0xv1")
    await store.mark_fill_failed(fill)
    assert not await store.add_fill(fill), "a late matched word of a failed trade"
    [stored] = store.fills.values()
    assert stored.failed and not stored.fill.confirmed
    assert await store.load_fills() == []


async def test_the_venue_saying_matched_after_the_failure_keeps_the_order_failed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The venue's order update ("matched") overtaken by its trade's FAILED: the match it reports
    is the trade that failed, so the order stays failed (a confirmed fill would still move it)."""
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine()

    def answer(coid: str) -> PlaceResult:
        return PlaceResult(Outcome.ACCEPTED, venue_order_id="0xv1", status=OrderStatus.FILLED)

    release, posted = _hold_answer(monkeypatch, world, answer)
    placing = asyncio.create_task(engine.submit(intent(size="10"), BIN))
    await until(lambda: bool(posted) or placing.done(), "the post")
    coid = posted[0]
    await engine.settlement_failed(SettlementFailure("t1", coid, _fill(coid, "0xv1")))
    await engine.on_order_status("0xv1", coid, OrderStatus.FILLED, D("10"))  # the order's MATCHED, late
    release.set()
    async with asyncio.timeout(WAIT_S):
        await placing
    status, row, rows = await _world_state(world, engine, coid)
    assert (status, row) == (OrderStatus.FAILED, OrderStatus.FAILED.value), "the failed trade shown as a filled order"
    assert rows == ["failed"]
    statuses = [e.status for e in world.recorder.of(OrderEvent) if e.client_order_id == coid]
    assert OrderStatus.FILLED not in statuses, statuses
