"""The engine's batch path against the CLOB double over a real socket (SQLite and PostgreSQL): a group
is one ``POST /orders``; a batch whose answer is lost after the venue took it is reconciled leg by leg
and never posted again (POSTs counted at the double); a 429 on the batch is retried as one request."""

from __future__ import annotations

from decimal import Decimal as D

from core.execution.engine import Engine, GroupState
from core.execution.relayers.clob import ClobRelayer
from core.execution.types import OrderStatus
from core.sim.mock_clob import MockClobServer
from core.types import Intent, MarketInfo, OrderType, Side
from tests.integration.engine_world import World

BATCH_POST = ("POST", "/orders")
SINGLE_POST = ("POST", "/order")


def legs(market: MarketInfo, gid: str) -> list[Intent]:
    return [
        Intent(market.condition_id, tok.token_id, Side.BUY, D("0.10"), D("10"), OrderType.GTC, group_id=gid)
        for tok in market.tokens
    ]


async def engine_of(world: World) -> Engine:
    return await world.engine(unknown_grace_s=30.0)


async def test_an_unknown_batch_at_the_venue_is_reconciled_leg_by_leg_with_one_post(
    world: World, clob_server: MockClobServer, clob_venue: tuple[ClobRelayer, MarketInfo]
) -> None:
    _, market = clob_venue
    server = clob_server
    engine = await engine_of(world)
    server.inject("drop_after_accept", path="/orders")  # the venue takes the batch; the answer is lost
    res = await engine.submit_group(legs(market, "g-drop"), [market])
    assert server.request_counts[BATCH_POST] == 1 and server.request_counts[SINGLE_POST] == 0
    # each leg was looked up on its own and found live at the venue, by the hash it was signed with
    assert [leg.status for leg in res.legs] == [OrderStatus.LIVE, OrderStatus.LIVE]
    rows = {r.client_order_id: r for r in await world.store.load_open_orders()}
    for leg in res.legs:
        row = rows[leg.client_order_id]
        assert row.order_hash and row.order_hash in server.orders
        assert [a.outcome for a in await world.store.list_audit(leg.client_order_id, action="place")] == ["unknown"]
        assert [a.outcome for a in await world.store.list_audit(leg.client_order_id, action="lookup")] == ["found"]
    assert len(server.orders) == 2
    again = await engine.submit_group(legs(market, "g-drop"), [market])
    assert again.duplicate and server.request_counts[BATCH_POST] == 1  # never posted twice
    assert res.state is GroupState.PENDING


async def test_a_429_on_the_batch_is_one_retried_request(
    world: World, clob_server: MockClobServer, clob_venue: tuple[ClobRelayer, MarketInfo]
) -> None:
    _, market = clob_venue
    server = clob_server
    engine = await engine_of(world)
    server.inject("429", path="/orders", retry_after=1)
    res = await engine.submit_group(legs(market, "g-429"), [market])
    assert res.ok and [leg.status for leg in res.legs] == [OrderStatus.LIVE, OrderStatus.LIVE]
    assert server.request_counts[BATCH_POST] == 2 and server.request_counts[SINGLE_POST] == 0
    assert world.sleeps.calls == [1.0]
    assert len(server.orders) == 2
