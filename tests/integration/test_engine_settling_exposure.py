"""An order the venue matched counts against the risk limits until its trades settle (SQLite and
PostgreSQL). The CLOB answers "matched" at once; only a CONFIRMED trade, seconds later, turns the
matched size into a position. Meanwhile the order is no longer open, so counting only open orders
and positions left its notional out of every limit: another order passed a market limit the first
one had already used up."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.execution.engine import Engine, SubmitResult
from core.execution.events import SettlementFailure, TradeStatus, TradeUpdate
from core.execution.risk_gate import RiskLimits
from core.execution.types import OrderRequest, OrderStatus, Outcome
from core.types import OrderType, Side
from tests.integration.engine_world import BIN, YES, World, intent, venue_answers_matched, venue_fill

LIMITS = replace(RiskLimits.configured(), max_market_notional=D("8"), max_order_notional=D("100"))


async def _first_matched(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> tuple[Engine, list[OrderRequest], SubmitResult]:
    """A market limit of 8 pUSD, and a 5 pUSD buy the venue matched (its trade not settled)."""
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine(limits=LIMITS)
    posted = venue_answers_matched(monkeypatch, world)
    first = await engine.submit(intent(price="0.50", size="10", order_type=OrderType.FOK), BIN)
    return engine, posted, first


async def _buy(engine: Engine, size: str, seq: int) -> SubmitResult:
    return await engine.submit(intent(price="0.50", size=size, order_type=OrderType.FOK, seq=seq), BIN)


async def test_a_matched_order_counts_against_the_limits_until_its_trade_settles(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, posted, first = await _first_matched(world, monkeypatch)
    assert first.status is OrderStatus.FILLED and len(posted) == 1
    assert engine.settling_shares(YES) == D("10")  # what the quoters count with their inventory
    second = await _buy(engine, "10", 2)
    assert not second.ok and len(posted) == 1, "the matched order's notional was left out of the limit"
    await engine.trade(TradeUpdate(venue_fill(posted[0], "t1", confirmed=False), TradeStatus.MATCHED))
    await engine.trade(TradeUpdate(venue_fill(posted[0], "t1", confirmed=True), TradeStatus.CONFIRMED))
    position = engine.positions.get(YES)
    assert position is not None and position.shares == D("10")  # now a position: counted once, not twice
    assert engine.settling_shares(YES) == 0
    third = await _buy(engine, "10", 3)
    assert not third.ok and len(posted) == 1
    small = await _buy(engine, "4", 4)
    assert small.ok and len(posted) == 2, "the settled order counted twice"


async def test_a_matched_order_whose_trade_fails_frees_its_share_of_the_limits(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, posted, _ = await _first_matched(world, monkeypatch)
    fill = venue_fill(posted[0], "t1", confirmed=False)
    await engine.trade(TradeUpdate(fill, TradeStatus.MATCHED))
    await engine.settlement_failed(SettlementFailure("t1", posted[0].client_order_id, fill))
    again = await _buy(engine, "10", 2)
    assert again.ok and len(posted) == 2


async def test_a_resting_order_partly_matched_then_canceled_keeps_its_matched_shares_counted(
    world: World,
) -> None:
    """A resting bid of 10: the venue matches 6 (its order update and the trade, not settled), then
    the order is canceled (a requote, /cancel, the kill switch). The 6 shares are bought all the
    same: they count against the limits and as settling until their trade settles. Before, a
    canceled order carried nothing and the quoter bid again as if nothing had been bought."""
    world.books.set(YES, asks=[("0.60", "100")])  # the bid at 0.50 rests
    engine = await world.engine(limits=LIMITS)
    placed = await engine.submit(intent(price="0.50", size="10"), BIN)
    assert placed.status is OrderStatus.LIVE and placed.venue_order_id
    coid, venue_id = placed.client_order_id, placed.venue_order_id
    assert await engine.on_order_status(venue_id, coid, OrderStatus.PARTIALLY_FILLED, D("6"))
    fill = replace(
        venue_fill(OrderRequest(coid, BIN.condition_id, YES, Side.BUY, D("0.50"), D("6")), "t6", confirmed=False),
        venue_order_id=venue_id,
    )
    await engine.trade(TradeUpdate(fill, TradeStatus.MATCHED))
    assert engine.settling_shares(YES) == D("6")
    assert (await engine.cancel(coid)).outcome is Outcome.ACCEPTED
    assert engine.order(coid).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert engine.settling_shares(YES) == D("6"), "the matched shares of a canceled order dropped"
    refused = await _buy(engine, "10", 2)  # 3 pUSD settling + 5 > the market's 8
    assert not refused.ok, "the canceled order's matched shares were left out of the limit"
    await engine.trade(TradeUpdate(replace(fill, confirmed=True), TradeStatus.CONFIRMED))
    assert engine.settling_shares(YES) == 0
    position = engine.positions.get(YES)
    assert position is not None and position.shares == D("6")
