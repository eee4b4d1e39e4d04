"""Dutch groups on a real database: placed together, refused together, and the one-leg policies
(unwind, hedge, alert) with the leg counted as exposure until the group is balanced again."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.events import Alert, AlertCleared, AlertKind
from core.execution.engine import GroupState, OneLegPolicy
from core.execution.rules import ReasonCode
from core.execution.types import OrderStatus, Outcome
from core.store import models as m
from core.types import OrderType, Side
from tests.integration.engine_world import (
    BIN,
    NO,
    YES,
    World,
    assert_exposure_consistent,
    intent,
    neg_risk_market,
)


@pytest.fixture
def world(world: World) -> World:
    """The conftest's world with these books."""
    world.books.set(YES, asks=[("0.45", "100")], bids=[("0.43", "100")])
    world.books.set(NO, asks=[("0.50", "100")], bids=[("0.48", "100")])
    return world


def legs(order_type: OrderType = OrderType.FOK, size: str = "10") -> list:  # type: ignore[type-arg]
    return [
        intent(YES, Side.BUY, "0.45", size, order_type, group_id="g1"),
        intent(NO, Side.BUY, "0.50", size, order_type, group_id="g1"),
    ]


def alerts(world: World, kind: AlertKind) -> list[Alert]:
    return [a for a in world.recorder.of(Alert) if a.kind == kind]


async def test_a_group_that_fills_on_every_leg_is_complete(world: World) -> None:
    engine = await world.engine()
    res = await engine.submit_group(legs(), [BIN])
    assert res.ok and res.state is GroupState.COMPLETE
    assert [leg.status for leg in res.legs] == [OrderStatus.FILLED, OrderStatus.FILLED]
    assert {r.group_id for r in await world.rows(m.Order)} == {"g1"}
    # a complete set of a binary market is hedged: no worst-case exposure left
    assert engine.exposure().market_exposure(BIN.condition_id) == 0
    assert alerts(world, AlertKind.ONE_LEGGED) == []
    dup = await engine.submit_group(legs(), [BIN])
    assert dup.duplicate and world.relayer.place_calls == 2


async def test_a_group_is_refused_as_a_whole(world: World) -> None:
    engine = await world.engine()
    bad = [intent(YES, price="0.45", group_id="g2"), intent(NO, price="0.505", group_id="g2")]
    res = await engine.submit_group(bad, {BIN.condition_id: BIN})
    assert not res.ok and res.reason_code is ReasonCode.PRICE_OFF_TICK
    assert world.relayer.place_calls == 0
    for leg in res.legs:
        [row] = await world.store.list_audit(leg.client_order_id, action="refused")
        assert row.error_class == "price_off_tick"


async def test_one_legged_unwind_sells_the_filled_leg_at_the_best_bid(world: World) -> None:
    engine = await world.engine(policy=OneLegPolicy.UNWIND)
    world.inject.next(Outcome.REJECTED, token_id=NO, error="not enough balance / allowance")
    res = await engine.submit_group(legs(), [BIN])
    assert not res.ok
    assert [leg.status for leg in res.legs] == [OrderStatus.FILLED, OrderStatus.REJECTED]
    assert res.state is GroupState.SETTLED
    [alert] = alerts(world, AlertKind.ONE_LEGGED)
    assert alert.key == "g1" and alert.severity == "critical"
    assert [c.key for c in world.recorder.of(AlertCleared) if c.kind == AlertKind.ONE_LEGGED] == ["g1"]
    pos = engine.positions.get(YES)
    assert pos is not None and pos.shares == 0
    assert pos.realised == D("10") * (D("0.43") - D("0.45"))
    unwind = [r for r in await world.rows(m.Order) if r.group_id == "g1/unwind"]
    assert [(u.side, u.price, u.size, u.order_type, u.status) for u in unwind] == [
        ("SELL", D("0.43"), D("10"), "FAK", "filled")
    ]
    assert engine.exposure().total_exposure() == 0
    assert_exposure_consistent(engine)


async def test_one_legged_hedge_buys_the_missing_leg_within_its_limit(world: World) -> None:
    engine = await world.engine(policy=OneLegPolicy.HEDGE)
    world.inject.next(Outcome.REJECTED, token_id=NO)
    res = await engine.submit_group(legs(), [BIN])
    assert res.state is GroupState.SETTLED
    hedge = [r for r in await world.rows(m.Order) if r.group_id == "g1/hedge"]
    assert [(h.token_id, h.side, h.price, h.size, h.status) for h in hedge] == [
        (NO, "BUY", D("0.50"), D("10"), "filled")
    ]
    assert engine.positions.get(NO).shares == D("10")  # type: ignore[union-attr]
    assert engine.exposure().market_exposure(BIN.condition_id) == 0
    assert engine.unsettled_groups() == []


async def test_a_hedge_that_cannot_fill_raises_policy_failed_and_keeps_the_risk(world: World) -> None:
    world.books.set(NO, asks=[("0.50", "4"), ("0.60", "100")], bids=[("0.48", "100")])
    engine = await world.engine(policy=OneLegPolicy.HEDGE)
    world.inject.next(Outcome.REJECTED, token_id=NO)
    res = await engine.submit_group(legs(), [BIN])
    assert res.state is GroupState.ONE_LEGGED
    [failed] = alerts(world, AlertKind.POLICY_FAILED)
    assert "4/10" in failed.message
    assert engine.unsettled_groups() == ["g1"]
    # YES 10 @ 0.45 held, NO only 4 @ 0.50: if NO wins we lose 4.5 + 2 - 4
    assert engine.exposure().market_exposure(BIN.condition_id) == D("2.50")
    assert_exposure_consistent(engine)


async def test_alert_policy_only_alerts_and_the_leg_counts_as_exposure(world: World) -> None:
    engine = await world.engine(policy=OneLegPolicy.ALERT)
    world.inject.next(Outcome.REJECTED, token_id=NO)
    res = await engine.submit_group(legs(), [BIN])
    assert res.state is GroupState.ONE_LEGGED
    assert len(alerts(world, AlertKind.ONE_LEGGED)) == 1
    assert world.relayer.place_calls == 2  # nothing but the two legs
    assert engine.exposure().total_exposure() == D("4.50")
    assert_exposure_consistent(engine)


async def test_resting_legs_stay_pending_then_complete_on_trade_through(world: World) -> None:
    engine = await world.engine(policy=OneLegPolicy.UNWIND)
    book_no = world.books.set(NO, asks=[("0.55", "100")], bids=[("0.48", "100")])
    res = await engine.submit_group(legs(OrderType.GTC), [BIN])
    assert res.state is GroupState.PENDING
    assert [leg.status for leg in res.legs] == [OrderStatus.FILLED, OrderStatus.LIVE]
    assert alerts(world, AlertKind.ONE_LEGGED) == []  # the NO leg is still working
    book_no.ask_levels = [(D("0.50"), D("100"))]
    await world.relayer.on_book_update(NO)
    assert engine.group_state("g1") is GroupState.COMPLETE
    assert_exposure_consistent(engine)


async def test_canceling_a_working_leg_after_the_other_filled_triggers_the_policy(world: World) -> None:
    engine = await world.engine(policy=OneLegPolicy.UNWIND)
    world.books.set(NO, asks=[("0.55", "100")], bids=[("0.48", "100")])
    res = await engine.submit_group(legs(OrderType.GTC), [BIN])
    assert res.state is GroupState.PENDING
    await engine.cancel(res.legs[1].client_order_id)
    assert engine.group_state("g1") is GroupState.SETTLED
    assert engine.positions.get(YES).shares == 0  # type: ignore[union-attr]


async def test_neg_risk_dutch_group_with_a_dead_unfilled_leg_and_nothing_filled_fails_cleanly(world: World) -> None:
    markets = [neg_risk_market(i) for i in (1, 2, 3)]
    for mk in markets:
        world.books.set(mk.tokens[0].token_id, asks=[("0.40", "100")])
    world.books.set("301", asks=[("0.40", "3")])  # the last leg cannot fill completely
    engine = await world.engine(policy=OneLegPolicy.UNWIND)
    engine.set_event_markets("EV", [mk.condition_id for mk in markets])
    group = [
        intent(mk.tokens[0].token_id, Side.BUY, "0.30", "10", OrderType.GTC, market=mk, group_id="nr")
        for mk in markets[:2]
    ] + [intent("301", Side.BUY, "0.30", "10", OrderType.FOK, market=markets[2], group_id="nr")]
    res = await engine.submit_group(group, markets)
    # asks at 0.40 are above every limit: two legs rest, the FOK leg is killed; the resting
    # legs are canceled (nothing filled, so nothing to unwind) and the group fails
    assert res.state is GroupState.FAILED
    assert [leg.status for leg in res.legs] == [OrderStatus.CANCELED, OrderStatus.CANCELED, OrderStatus.CANCELED]
    assert alerts(world, AlertKind.ONE_LEGGED) == []
    assert engine.exposure().total_exposure() == 0
    assert_exposure_consistent(engine)
