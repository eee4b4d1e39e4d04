"""A group's legs go out as batch requests (SQLite and PostgreSQL): the write-ahead is committed before
the relayer is called, per-order results map onto their legs, a refused batch is retried within the
bounds, an unknown one is reconciled leg by leg and never re-posted, and a large group is split
scarcest leg first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from core.events import Alert, AlertKind
from core.execution.engine import GroupState
from core.execution.events import TradeStatus, TradeUpdate
from core.execution.relayers.paper import PaperRelayer
from core.execution.types import Fill, OrderRequest, OrderStatus, Outcome, PlaceResult
from core.store import models as m
from core.store.db import create_engine, session_factory
from core.types import Intent, MarketInfo, OrderType, Side
from tests.integration.engine_world import BIN, NO, YES, World, assert_exposure_consistent, intent, neg_risk_market

Hook = Callable[[Sequence[OrderRequest]], Awaitable[None]]


class BatchSpy(PaperRelayer):
    """The paper relayer, recording every batch request (client ids in request order) and running a
    hook when called (before anything reaches the simulated venue)."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]  # the paper relayer's own arguments, passed through
        self.batches: list[list[str]] = []
        self.hook: Hook | None = None
        self.unheard: list[Fill] | None = None  # a list: the user channel is silent, its trades kept here

    async def place_batch(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        self.batches.append([o.client_order_id for o in orders])
        if self.hook is not None:
            await self.hook(orders)
        return await super().place_batch(orders)

    async def _deliver(self, fill: Fill) -> None:
        if self.unheard is None:
            await super()._deliver(fill)
        else:
            self.unheard.append(fill)


def spy(world: World) -> BatchSpy:
    relayer = BatchSpy(world.books, clock=world.clock)
    world.relayer = relayer
    return relayer


def nr_leg(i: int, price: str, size: str = "10", order_type: OrderType = OrderType.FOK, gid: str = "g") -> Intent:
    market = neg_risk_market(i)
    return intent(f"{i}01", Side.BUY, price, size, order_type, market=market, group_id=gid)


def nr_markets(n: int) -> list[MarketInfo]:
    return [neg_risk_market(i) for i in range(n)]


def binary_legs() -> list[Intent]:
    return [
        intent(YES, Side.BUY, "0.45", "10", OrderType.FOK, group_id="g1"),
        intent(NO, Side.BUY, "0.50", "10", OrderType.FOK, group_id="g1"),
    ]


async def place_audit(world: World, coid: str) -> list[tuple[int, str, str | None]]:
    return [(a.attempt, a.outcome, a.error_class) for a in await world.store.list_audit(coid, action="place")]


async def test_mixed_per_order_results_map_onto_their_legs(world: World) -> None:
    relayer = spy(world)
    world.books.set("001", asks=[("0.30", "100")])  # fills
    world.books.set("101", asks=[("0.20", "100")])  # the venue refuses this one
    world.books.set("201", asks=[("0.40", "100")])  # nothing at the limit: rests, and is the scarcest leg
    engine = await world.engine()
    world.inject.next(Outcome.REJECTED, token_id="101", error="not enough balance / allowance")
    legs = [nr_leg(0, "0.30", order_type=OrderType.GTC), nr_leg(1, "0.20"), nr_leg(2, "0.30", order_type=OrderType.GTC)]
    res = await engine.submit_group(legs, nr_markets(3))
    coids = [leg.client_order_id for leg in res.legs]
    # one request, the scarcest leg first in it; each result went to its own leg, not to a position in the group
    assert relayer.batches == [[coids[2], coids[0], coids[1]]]
    assert [leg.status for leg in res.legs] == [OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.LIVE]
    assert res.legs[1].detail == "not enough balance / allowance"
    assert engine.positions.get("001").shares == D("10")  # type: ignore[union-attr]  # filled legs: the position / order exists
    assert engine.positions.get("101") is None
    rows = {r.client_order_id: r for r in await world.rows(m.Order)}
    assert [rows[c].status for c in coids] == ["filled", "rejected", "live"]
    assert rows[coids[1]].error == "not enough balance / allowance"
    assert rows[coids[0]].venue_order_id != rows[coids[2]].venue_order_id
    assert [await place_audit(world, c) for c in coids] == [
        [(1, "accepted", "none")],
        [(1, "rejected", "400")],
        [(1, "accepted", "none")],
    ]
    assert_exposure_consistent(engine)


async def test_intent_rows_are_committed_before_the_relayer_is_called(world: World, db_url: str) -> None:
    relayer = spy(world)
    for i in range(3):
        world.books.set(f"{i}01", asks=[("0.30", "100")])
    seen: list[dict[str, str]] = []
    other = create_engine(db_url)  # another connection: it sees committed rows only

    async def look(orders: Sequence[OrderRequest]) -> None:
        async with session_factory(other)() as s:
            rows = (await s.execute(select(m.Order.client_order_id, m.Order.status))).all()
        seen.append({c: st for c, st in rows})

    relayer.hook = look
    try:
        engine = await world.engine()
        res = await engine.submit_group([nr_leg(i, "0.30") for i in range(3)], nr_markets(3))
    finally:
        await other.dispose()
    assert res.ok and res.state is GroupState.COMPLETE
    assert seen == [{leg.client_order_id: "new" for leg in res.legs}]


async def test_a_whole_batch_429_is_retried_after_retry_after_then_accepted(world: World) -> None:
    world.books.set(YES, asks=[("0.45", "100")])
    world.books.set(NO, asks=[("0.50", "100")])
    relayer = spy(world)
    engine = await world.engine(relayer_max_retries=2, relayer_retry_sleep_ms=100)
    world.inject.next_batch(Outcome.RETRYABLE, retry_after_s=0.5)
    res = await engine.submit_group(binary_legs(), [BIN])
    assert res.ok and res.state is GroupState.COMPLETE
    assert relayer.batch_calls == 2 and len(relayer.batches) == 2 and relayer.batches[0] == relayer.batches[1]
    assert world.sleeps.calls == [0.5]  # the venue's Retry-After, not the configured pause
    for leg in res.legs:
        assert await place_audit(world, leg.client_order_id) == [(1, "retryable", "429"), (2, "accepted", "none")]
        assert leg.attempts == 2


async def test_a_refused_batch_stops_exactly_at_the_retry_bounds(world: World) -> None:
    world.books.set(YES, asks=[("0.45", "100")])
    world.books.set(NO, asks=[("0.50", "100")])
    relayer = spy(world)
    engine = await world.engine(
        relayer_max_retries=2, relayer_retry_sleep_ms=150, engine_max_retries=1, engine_retry_sleep_ms=2000
    )
    world.inject.next_batch(Outcome.RETRYABLE, times=100)
    res = await engine.submit_group(binary_legs(), [BIN])
    assert relayer.batch_calls == (1 + 1) * (2 + 1) and relayer.place_calls == 2 * 6
    assert world.sleeps.calls == [0.15, 0.15, 2.0, 0.15, 0.15]
    assert [leg.status for leg in res.legs] == [OrderStatus.FAILED, OrderStatus.FAILED]
    for leg in res.legs:
        assert [a for a, _, _ in await place_audit(world, leg.client_order_id)] == [1, 2, 3, 4, 5, 6]
    assert res.state is GroupState.FAILED and engine.positions.get(YES) is None


async def test_a_retry_after_beyond_the_cap_gives_up_at_once(world: World) -> None:
    world.books.set(YES, asks=[("0.45", "100")])
    world.books.set(NO, asks=[("0.50", "100")])
    relayer = spy(world)
    engine = await world.engine(max_retry_after_s=5.0)
    world.inject.next_batch(Outcome.RETRYABLE, retry_after_s=60.0)
    res = await engine.submit_group(binary_legs(), [BIN])
    assert relayer.batch_calls == 1 and world.sleeps.calls == []
    assert all("exceeds 5s: giving up" in leg.detail for leg in res.legs)
    assert [leg.status for leg in res.legs] == [OrderStatus.FAILED, OrderStatus.FAILED]


async def test_an_unknown_batch_is_reconciled_leg_by_leg_and_never_reposted(world: World) -> None:
    world.books.set(YES, asks=[("0.45", "100")])
    world.books.set(NO, asks=[("0.50", "100")])
    relayer = spy(world)
    relayer.unheard = []  # the user channel is late: the legs' trades come after the reconciliation
    engine = await world.engine()
    world.inject.next_batch(Outcome.UNKNOWN)  # the venue took the request; the answer was lost
    res = await engine.submit_group(binary_legs(), [BIN])
    assert relayer.batch_calls == 1 and relayer.place_calls == 2  # nothing re-posted
    assert relayer.lookup_calls == 2  # each leg looked up on its own
    assert [leg.status for leg in res.legs] == [OrderStatus.FILLED, OrderStatus.FILLED]
    assert res.state is GroupState.PENDING  # matched in full at the venue: awaiting the trades
    for leg in res.legs:
        coid = leg.client_order_id
        assert await place_audit(world, coid) == [(1, "unknown", "timeout")]
        assert [a.outcome for a in await world.store.list_audit(coid, action="lookup")] == ["found"]
    unknown = [a.key for a in world.recorder.of(Alert) if a.kind == AlertKind.UNKNOWN_OUTCOME]
    assert sorted(unknown) == sorted(leg.client_order_id for leg in res.legs)
    for fill in relayer.unheard:
        await engine.trade(TradeUpdate(fill, TradeStatus.CONFIRMED))
    assert engine.group_state(res.group_id) is GroupState.COMPLETE
    assert engine.positions.get(YES).shares == D("10") and engine.positions.get(NO).shares == D("10")  # type: ignore[union-attr]  # filled legs: the position / order exists


async def test_a_lost_batch_answer_after_the_venue_filled_the_legs_is_no_unknown_outcome(world: World) -> None:
    """The user channel's trades (confirmed) came before the batch's answer was lost: each leg's
    outcome is known, so none is reported unknown or looked up, and nothing is re-posted."""
    world.books.set(YES, asks=[("0.45", "100")])
    world.books.set(NO, asks=[("0.50", "100")])
    relayer = spy(world)
    engine = await world.engine()
    world.inject.next_batch(Outcome.UNKNOWN)
    res = await engine.submit_group(binary_legs(), [BIN])
    assert relayer.batch_calls == 1 and relayer.place_calls == 2 and relayer.lookup_calls == 0
    assert [leg.status for leg in res.legs] == [OrderStatus.FILLED, OrderStatus.FILLED]
    assert res.state is GroupState.COMPLETE
    for leg in res.legs:
        assert await place_audit(world, leg.client_order_id) == [(1, "unknown", "timeout")]  # the post's record kept
        [row] = [r for r in await world.rows(m.Order) if r.client_order_id == leg.client_order_id]
        assert (row.status, row.error) == (OrderStatus.FILLED.value, None)
    assert [a for a in world.recorder.of(Alert) if a.kind == AlertKind.UNKNOWN_OUTCOME] == []
    assert engine.positions.get(YES).shares == D("10") and engine.positions.get(NO).shares == D("10")  # type: ignore[union-attr]  # filled legs: the position / order exists


async def test_an_unknown_batch_that_never_arrived_fails_after_the_grace_without_a_repost(world: World) -> None:
    world.books.set(YES, asks=[("0.45", "100")])
    world.books.set(NO, asks=[("0.50", "100")])
    relayer = spy(world)
    engine = await world.engine(unknown_grace_s=30.0)
    world.inject.next_batch(Outcome.UNKNOWN, accept=False)
    res = await engine.submit_group(binary_legs(), [BIN])
    assert [leg.status for leg in res.legs] == [OrderStatus.SUBMITTED_UNKNOWN] * 2
    again = await engine.submit_group(binary_legs(), [BIN])  # the same group again: a duplicate, not a post
    assert again.duplicate
    world.clock.advance(31)
    await engine.reconcile()
    assert [engine.order(leg.client_order_id).status for leg in res.legs] == [OrderStatus.FAILED] * 2  # type: ignore[union-attr]  # filled legs: the position / order exists
    assert relayer.batch_calls == 1 and relayer.place_calls == 2
    assert await relayer.open_orders() == []


async def test_a_batch_without_an_answer_is_unknown_for_every_leg(world: World) -> None:
    world.books.set(YES, asks=[("0.45", "100")])
    world.books.set(NO, asks=[("0.50", "100")])
    relayer = spy(world)
    hang = asyncio.Event()

    async def never_answers(orders: Sequence[OrderRequest]) -> None:
        await hang.wait()

    relayer.hook = never_answers
    engine = await world.engine(place_timeout_s=0.2)
    res = await engine.submit_group(binary_legs(), [BIN])
    assert [leg.status for leg in res.legs] == [OrderStatus.SUBMITTED_UNKNOWN] * 2
    assert {leg.error_class for leg in res.legs} == {"timeout"}
    assert len(relayer.batches) == 1 and relayer.lookup_calls == 2  # asked once, then looked up, never re-posted


async def test_twenty_legs_go_out_as_15_plus_5_with_the_scarcest_leg_in_the_first(world: World) -> None:
    relayer = spy(world)
    depth = {i: "100" for i in range(20)}
    depth[17], depth[3] = "30", "50"  # the scarcest leg is the 18th of the group, the next one the 4th
    for i in range(20):
        world.books.set(f"{i}01", asks=[("0.04", depth[i])])
    engine = await world.engine()
    res = await engine.submit_group([nr_leg(i, "0.04", size="25") for i in range(20)], nr_markets(20))
    assert res.ok and res.state is GroupState.COMPLETE, res
    coids = [leg.client_order_id for leg in res.legs]
    assert [len(b) for b in relayer.batches] == [15, 5]
    first, second = relayer.batches
    assert first[:2] == [coids[17], coids[3]]
    assert sorted(first + second) == sorted(coids)
    assert all(leg.status is OrderStatus.FILLED for leg in res.legs)


async def test_a_refused_batch_is_one_error_for_the_breaker_not_one_per_leg(world: World) -> None:
    relayer = spy(world)
    for i in range(12):
        world.books.set(f"{i}01", asks=[("0.10", "100")])
    engine = await world.engine(relayer_max_retries=0, engine_max_retries=0)
    world.inject.next_batch(Outcome.RETRYABLE)  # one 5xx for the whole request of 12 legs
    res = await engine.submit_group([nr_leg(i, "0.10", gid="g12") for i in range(12)], nr_markets(12))
    assert relayer.batch_calls == 1 and {leg.status for leg in res.legs} == {OrderStatus.FAILED}
    assert engine.risk.breaker.recent() == 1  # the default breaker trips at 10: one refused request must not
    assert [a for a in world.recorder.of(Alert) if a.kind == AlertKind.ERROR_RATE] == []
    # two different refusals inside one accepted batch are two errors
    world.inject.next(Outcome.REJECTED, token_id="001", error="not enough balance / allowance")
    world.inject.next(Outcome.REJECTED, token_id="101", error="invalid signature")
    await engine.submit_group([nr_leg(i, "0.10", gid="g2") for i in range(2)], nr_markets(2))
    assert engine.risk.breaker.recent() == 3


class SigningSpy(BatchSpy):
    """A relayer that signs before posting (as the CLOB relayer does): order hashes known up front."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)
        self.signed: list[list[str]] = []

    async def sign_orders(self, orders: Sequence[OrderRequest]) -> list[str | None]:
        self.signed.append([o.client_order_id for o in orders])
        return [f"0xhash-{o.client_order_id}" for o in orders]


async def test_a_signing_relayer_signs_every_leg_before_the_write_ahead(world: World, db_url: str) -> None:
    relayer = SigningSpy(world.books, clock=world.clock)
    world.relayer = relayer
    for i in range(3):
        world.books.set(f"{i}01", asks=[("0.30", "100")])
    seen: list[dict[str, str | None]] = []
    other = create_engine(db_url)

    async def look(orders: Sequence[OrderRequest]) -> None:
        async with session_factory(other)() as s:
            rows = (await s.execute(select(m.Order.client_order_id, m.Order.order_hash))).all()
        seen.append({c: h for c, h in rows})

    relayer.hook = look
    try:
        engine = await world.engine()
        res = await engine.submit_group([nr_leg(i, "0.30") for i in range(3)], nr_markets(3))
    finally:
        await other.dispose()
    coids = [leg.client_order_id for leg in res.legs]
    assert res.ok and relayer.signed == [coids]  # one call, every leg, before the rows were written
    assert seen == [{c: f"0xhash-{c}" for c in coids}]  # the rows carried their hashes when posted


async def test_a_failed_write_of_a_batch_s_answers_still_settles_every_leg(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one transaction for a batch's answers fails (a locked or dropped database): every leg's
    answer is still applied (fills to the ledger, the group evaluated) and each row written on its own."""
    spy(world)
    world.books.set("001", asks=[("0.30", "100")])
    world.books.set("101", asks=[("0.20", "100")])
    engine = await world.engine()
    real = world.store.record_attempts
    calls: list[int] = []

    async def fails_once(rows: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        await real(rows)  # type: ignore[arg-type]  # the store's own argument, passed through

    monkeypatch.setattr(world.store, "record_attempts", fails_once)
    res = await engine.submit_group([nr_leg(0, "0.30"), nr_leg(1, "0.20")], nr_markets(2))
    assert res.ok and res.state is GroupState.COMPLETE
    assert engine.positions.get("001").shares == D("10") and engine.positions.get("101").shares == D("10")  # type: ignore[union-attr]
    rows = {r.client_order_id: r.status for r in await world.rows(m.Order)}
    assert sorted(rows.values()) == ["filled", "filled"]
