"""Engine on a real database (SQLite and PostgreSQL): idempotency, unknown outcomes reconciled
instead of re-posted, fills from book updates, cancels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.events import Alert, AlertCleared, FillEvent
from core.execution.relayers.paper import PaperRelayer
from core.execution.types import OrderRequest, OrderStatus, Outcome, PlaceResult
from core.store import models as m
from core.types import OrderType
from tests.integration.test_engine_harness import BIN, YES, World, intent


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    w = await World.create(db_url)
    yield w
    await w.close()


async def test_same_intent_twice_places_once(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    first = await engine.submit(intent(), BIN)
    assert first.ok and first.status is OrderStatus.LIVE and first.attempts == 1
    again = await engine.submit(intent(), BIN)
    assert again.duplicate and not again.ok and again.client_order_id == first.client_order_id
    assert world.relayer.place_calls == 1
    # a new sequence number is a new order
    other = await engine.submit(intent(seq=1), BIN)
    assert other.ok and other.client_order_id != first.client_order_id
    assert world.relayer.place_calls == 2
    assert len(await world.rows(m.Order)) == 2


async def test_duplicate_after_restart_is_caught_by_the_unique_key(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    assert (await engine.submit(intent(), BIN)).ok
    restarted = await world.engine()  # new process: empty memory, same database and venue
    again = await restarted.submit(intent(), BIN)
    assert again.duplicate and again.status is OrderStatus.LIVE
    assert world.relayer.place_calls == 1


async def test_unknown_after_accepting_is_reconciled_never_reposted(world: World) -> None:
    world.books.set(YES, asks=[("0.50", "10"), ("0.51", "100")])
    engine = await world.engine()
    world.inject.next(Outcome.UNKNOWN)  # the venue takes the order, the answer is lost
    res = await engine.submit(intent(price="0.51", size="20", order_type=OrderType.FOK), BIN)
    assert world.relayer.place_calls == 1
    assert res.outcome is Outcome.UNKNOWN
    assert res.status is OrderStatus.FILLED  # found by lookup, fills came over the "user channel"
    assert res.venue_order_id is not None
    assert engine.positions.get(YES).shares == D("20")  # type: ignore[union-attr]
    again = await engine.submit(intent(price="0.51", size="20", order_type=OrderType.FOK), BIN)
    assert again.duplicate and world.relayer.place_calls == 1
    audit = await world.store.list_audit(res.client_order_id)
    assert [(a.action, a.outcome) for a in audit] == [("place", "unknown"), ("lookup", "found")]
    kinds = [type(e).__name__ for e in world.recorder.events if isinstance(e, Alert | AlertCleared)]
    assert kinds == ["Alert", "AlertCleared"]
    [order_row] = await world.rows(m.Order)
    assert order_row.status == "filled" and order_row.filled_size == D("20")


async def test_unknown_and_not_found_stays_unknown_then_fails_after_grace(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine(unknown_grace_s=30)
    world.inject.next(Outcome.UNKNOWN, accept=False)  # it never reached the venue
    res = await engine.submit(intent(), BIN)
    assert res.status is OrderStatus.SUBMITTED_UNKNOWN
    # while unknown, the order counts as exposure and the same intent only triggers a lookup
    assert engine.exposure().market_exposure(BIN.condition_id) == D("5.00")
    again = await engine.submit(intent(), BIN)
    assert again.duplicate and again.status is OrderStatus.SUBMITTED_UNKNOWN
    assert (world.relayer.place_calls, world.relayer.lookup_calls) == (1, 2)
    world.clock.advance(31)
    report = await engine.reconcile()
    assert report.changed == {res.client_order_id: "submitted_unknown -> failed"}
    assert world.relayer.place_calls == 1
    assert engine.exposure().market_exposure(BIN.condition_id) == 0


async def test_resting_order_filled_by_book_updates_updates_order_and_position(world: World) -> None:
    book = world.books.set(YES, asks=[("0.60", "100")], bids=[("0.40", "100")])
    engine = await world.engine()
    res = await engine.submit(intent(price="0.50", size="20"), BIN)
    assert res.status is OrderStatus.LIVE
    book.ask_levels = [(D("0.48"), D("8"))]
    await world.relayer.on_book_update(YES)
    assert engine.order(res.client_order_id).status is OrderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]
    book.ask_levels = [(D("0.50"), D("30"))]
    await world.relayer.on_book_update(YES)
    rec = engine.order(res.client_order_id)
    assert rec is not None and rec.status is OrderStatus.FILLED and rec.filled_size == D("20")
    pos = engine.positions.get(YES)
    assert pos is not None and (pos.shares, pos.cost) == (D("20"), D("10.00"))
    [row] = await world.rows(m.Position)
    assert (row.size, row.avg_cost) == (D("20"), D("0.5"))
    assert len(await world.rows(m.Fill)) == 2
    assert [e.position_shares for e in world.recorder.of(FillEvent)] == [D("8"), D("20")]


async def test_cancel_one_order(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    res = await engine.submit(intent(), BIN)
    out = await engine.cancel(res.client_order_id)
    assert out.canceled == (res.client_order_id,)
    assert engine.order(res.client_order_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    again = await engine.cancel(res.client_order_id)
    assert "already canceled" in again.not_canceled[res.client_order_id]
    assert "unknown order" in (await engine.cancel("pb-nope")).not_canceled["pb-nope"]
    [audit] = await world.store.list_audit(res.client_order_id, action="cancel")
    assert audit.outcome == "accepted"
    assert await world.relayer.open_orders() == []


class HashingRelayer(PaperRelayer):
    """Like the CLOB relayer: reports the signed order's hash (its venue id), even when the outcome is UNKNOWN."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.remembered: dict[str, str] = {}

    async def place(self, order: OrderRequest) -> PlaceResult:
        res = await super().place(order)
        return replace(res, order_hash=f"0xhash-{order.client_order_id}")

    def remember_order(self, client_order_id: str, order_hash: str) -> None:
        self.remembered[client_order_id] = order_hash


async def test_the_order_hash_is_stored_and_handed_back_to_the_relayer_after_a_restart(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    world.relayer = HashingRelayer(world.books, clock=world.clock)
    engine = await world.engine()
    world.inject.next(Outcome.UNKNOWN, accept=False)
    res = await engine.submit(intent(), BIN)
    assert res.status is OrderStatus.SUBMITTED_UNKNOWN
    [row] = await world.rows(m.Order)
    assert row.order_hash == f"0xhash-{res.client_order_id}"
    await world.engine(arm=False)  # restart: open orders are loaded and the relayer is told their hashes
    assert world.relayer.remembered == {res.client_order_id: f"0xhash-{res.client_order_id}"}
