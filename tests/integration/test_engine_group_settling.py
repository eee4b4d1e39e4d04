"""A Dutch group whose legs the venue matched is not judged before their trades settle (SQLite and
PostgreSQL). The CLOB's answer to a batch says "matched" for each FOK leg; only a CONFIRMED trade
moves a leg's filled size, seconds later, one leg at a time. Until then a matched leg is on its
way to filled, not dead: taking it for dead made the group "failed" at once, and, with one leg's
trade confirmed before the other's, one-legged, so the unwind policy sold the confirmed leg of a
complete set."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.events import Alert, AlertCleared, AlertKind
from core.execution.engine import Engine, GroupResult, GroupState, OneLegPolicy
from core.execution.events import SettlementFailure, TradeStatus, TradeUpdate
from core.execution.types import OrderRequest
from core.types import Intent, OrderType, Side
from tests.integration.engine_world import BIN, NO, YES, World, intent, venue_answers_matched, venue_fill


def _legs() -> list[Intent]:
    return [
        intent(YES, Side.BUY, "0.45", "10", OrderType.FOK, group_id="g1"),
        intent(NO, Side.BUY, "0.50", "10", OrderType.FOK, group_id="g1"),
    ]


async def _matched_group(
    world: World, monkeypatch: pytest.MonkeyPatch, policy: OneLegPolicy, killed: frozenset[str] = frozenset()
) -> tuple[Engine, GroupResult, list[OrderRequest]]:
    """A binary group whose batch the venue answered "matched" for its legs (but those on ``killed``
    tokens), no trade settled yet."""
    world.books.set(YES, asks=[("0.45", "100")], bids=[("0.40", "100")])
    world.books.set(NO, asks=[("0.50", "100")], bids=[("0.45", "100")])
    engine = await world.engine(policy=policy)
    posted = venue_answers_matched(monkeypatch, world, killed=killed)
    return engine, await engine.submit_group(_legs(), [BIN]), posted


def _trade(req: OrderRequest, status: TradeStatus) -> TradeUpdate:
    return TradeUpdate(venue_fill(req, f"t-{req.token_id}", confirmed=status is TradeStatus.CONFIRMED), status)


async def test_matched_legs_wait_for_their_trades_and_nothing_is_unwound(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, res, posted = await _matched_group(world, monkeypatch, OneLegPolicy.UNWIND)
    assert res.state is GroupState.PENDING, "matched legs taken for dead before their trades settled"
    yes, no = posted
    for req in posted:
        await engine.trade(_trade(req, TradeStatus.MATCHED))
    await engine.trade(_trade(yes, TradeStatus.CONFIRMED))  # one leg settles first
    await world.bus.drain()
    assert len(posted) == 2, "an unwind order was placed for a complete set"
    assert engine.group_state(res.group_id) is GroupState.PENDING
    await engine.trade(_trade(no, TradeStatus.CONFIRMED))
    await world.bus.drain()
    assert engine.group_state(res.group_id) is GroupState.COMPLETE
    assert [a for a in world.recorder.of(Alert) if a.kind == AlertKind.ONE_LEGGED] == []
    for token in (YES, NO):
        position = engine.positions.get(token)
        assert position is not None and position.shares == D("10")


async def test_a_matched_leg_whose_trade_fails_leaves_the_group_one_legged(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, res, posted = await _matched_group(world, monkeypatch, OneLegPolicy.ALERT)
    yes, no = posted
    await engine.trade(_trade(yes, TradeStatus.CONFIRMED))
    failed = _trade(no, TradeStatus.MATCHED)
    await engine.trade(failed)
    await engine.settlement_failed(SettlementFailure(f"t-{no.token_id}", no.client_order_id, failed.fill))
    await world.bus.drain()
    assert engine.group_state(res.group_id) is GroupState.ONE_LEGGED
    assert [a.kind for a in world.recorder.of(Alert) if a.kind == AlertKind.ONE_LEGGED] == [AlertKind.ONE_LEGGED]


def _kinds(world: World, kind: AlertKind) -> list[Alert]:
    return [a for a in world.recorder.of(Alert) if a.kind == kind]


async def test_a_matched_leg_beside_a_killed_one_is_judged_once_it_settles(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """YES matched, NO's FOK killed: nothing is known of what the group holds until YES's trade
    settles (it may still fail); then it is one-legged and the trader is told. Judged at once, the
    group went "failed" (nothing filled, no leg working) and was never looked at again: 10 YES held
    with no alert and no policy."""
    engine, res, posted = await _matched_group(world, monkeypatch, OneLegPolicy.ALERT, killed=frozenset({NO}))
    assert res.state is GroupState.PENDING, "judged before the matched leg settled"
    yes = posted[0]
    await engine.trade(_trade(yes, TradeStatus.MATCHED))
    assert engine.group_state(res.group_id) is GroupState.PENDING
    await engine.trade(_trade(yes, TradeStatus.CONFIRMED))
    await world.bus.drain()
    assert engine.group_state(res.group_id) is GroupState.ONE_LEGGED
    assert len(_kinds(world, AlertKind.ONE_LEGGED)) == 1, "10 YES held and the trader not told"


async def test_an_unwind_the_venue_matched_is_no_failure_and_settles_the_group(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unwind's sell is answered "matched" (its trade settles later): not a failed policy, and
    when its trade settles the group is looked at again and balanced (the alert cleared)."""
    engine, res, posted = await _matched_group(world, monkeypatch, OneLegPolicy.UNWIND, killed=frozenset({NO}))
    yes = posted[0]
    await engine.trade(_trade(yes, TradeStatus.CONFIRMED))
    await world.bus.drain()
    assert engine.group_state(res.group_id) is GroupState.ONE_LEGGED
    unwind = posted[-1]
    assert (unwind.side, unwind.token_id, unwind.size) == (Side.SELL, YES, D("10"))
    assert _kinds(world, AlertKind.POLICY_FAILED) == [], "a matched unwind reported as failed"
    await engine.trade(_trade(unwind, TradeStatus.CONFIRMED))
    await world.bus.drain()
    assert engine.group_state(res.group_id) is GroupState.SETTLED
    assert engine.unsettled_groups() == []
    cleared = [c for c in world.recorder.of(AlertCleared) if c.kind == AlertKind.ONE_LEGGED]
    assert len(cleared) == 1
    position = engine.positions.get(YES)
    assert position is not None and position.shares == 0
    assert len(posted) == 3, "unwound twice while the first unwind settled"
