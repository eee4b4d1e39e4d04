"""An order the venue matched counts against the risk limits until its trades settle (SQLite and
PostgreSQL). The CLOB answers "matched" at once; only a CONFIRMED trade, seconds later, turns the
matched size into a position. Meanwhile the order is no longer open, so counting only open orders
and positions left its notional out of every limit: another order passed a market limit the first
one had already used up."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.execution.events import SettlementFailure, TradeStatus, TradeUpdate
from core.execution.risk_gate import RiskLimits
from core.execution.types import Fill, OrderRequest, OrderStatus, Outcome, PlaceResult
from core.types import OrderType, Side
from tests.integration.engine_world import BIN, YES, World, intent

LIMITS = replace(RiskLimits.configured(), max_market_notional=D("8"), max_order_notional=D("100"))


def _matched(monkeypatch: pytest.MonkeyPatch, world: World, posted: list[OrderRequest]) -> None:
    """The relayer answers as the CLOB does: matched, the trades to follow over the user channel."""

    async def place(req: OrderRequest) -> PlaceResult:
        posted.append(req)
        return PlaceResult(Outcome.ACCEPTED, venue_order_id=f"0x{req.client_order_id}", status=OrderStatus.FILLED)

    monkeypatch.setattr(world.relayer, "place", place)


def _fill(req: OrderRequest, confirmed: bool) -> Fill:
    venue_id = f"0x{req.client_order_id}"
    return Fill(
        req.client_order_id, venue_id, req.token_id, req.side, req.price, req.size, trade_id="t1", confirmed=confirmed
    )


async def test_a_matched_order_counts_against_the_limits_until_its_trade_settles(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine(limits=LIMITS)
    posted: list[OrderRequest] = []
    _matched(monkeypatch, world, posted)
    first = await engine.submit(intent(price="0.50", size="10", order_type=OrderType.FOK), BIN)
    assert first.status is OrderStatus.FILLED and len(posted) == 1  # 5 pUSD of the market's 8
    assert engine.settling_shares(YES) == D("10")  # what the quoters count with their inventory
    second = await engine.submit(intent(price="0.50", size="10", order_type=OrderType.FOK, seq=2), BIN)
    assert not second.ok and len(posted) == 1, "the matched order's notional was left out of the limit"
    await engine.trade(TradeUpdate(_fill(posted[0], confirmed=False), TradeStatus.MATCHED))
    await engine.trade(TradeUpdate(_fill(posted[0], confirmed=True), TradeStatus.CONFIRMED))
    position = engine.positions.get(YES)
    assert position is not None and position.shares == D("10")  # now a position: counted once, not twice
    assert engine.settling_shares(YES) == 0
    third = await engine.submit(intent(price="0.50", size="10", order_type=OrderType.FOK, seq=3), BIN)
    assert not third.ok and len(posted) == 1
    small = await engine.submit(intent(price="0.50", size="4", order_type=OrderType.FOK, seq=4), BIN)
    assert small.ok and len(posted) == 2, "the settled order counted twice"


async def test_a_matched_order_whose_trade_fails_frees_its_share_of_the_limits(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine(limits=LIMITS)
    posted: list[OrderRequest] = []
    _matched(monkeypatch, world, posted)
    await engine.submit(intent(price="0.50", size="10", order_type=OrderType.FOK), BIN)
    fill = _fill(posted[0], confirmed=False)
    await engine.trade(TradeUpdate(fill, TradeStatus.MATCHED))
    await engine.settlement_failed(SettlementFailure("t1", posted[0].client_order_id, fill))
    again = await engine.submit(intent(price="0.50", size="10", order_type=OrderType.FOK, seq=2), BIN)
    assert again.ok and len(posted) == 2
