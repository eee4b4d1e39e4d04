"""The engine's batch path against the CLOB double over a real socket (SQLite and PostgreSQL): a group
is one ``POST /orders``; a batch whose answer is lost after the venue took it is reconciled leg by leg
and never posted again (POSTs counted at the double); a 429 on the batch is retried as one request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest

from core.execution.engine import Engine, GroupState
from core.execution.relayers.clob import ClobRelayer
from core.execution.types import OrderStatus
from core.sim.mock_clob import MockClobServer, MockMarket
from core.types import Intent, MarketInfo, OrderType, Side, TokenInfo
from tests.integration.engine_world import World

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
BATCH_POST = ("POST", "/orders")
SINGLE_POST = ("POST", "/order")


@pytest.fixture
async def server() -> AsyncIterator[MockClobServer]:
    srv = MockClobServer(confirm_delay_s=0.1)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def venue(world: World, server: MockClobServer) -> AsyncIterator[tuple[ClobRelayer, MarketInfo]]:
    relayer = ClobRelayer(
        server.url, 137, KEY, dry_run=False, derive_api_key=True, timeout_s=0.6, heartbeat_interval_s=0
    )
    await relayer.start()
    mock: MockMarket = next(m for m in server.markets.values() if not m.neg_risk)
    await relayer.prewarm(mock.condition_id)
    market = MarketInfo(
        mock.condition_id,
        mock.question,
        "mock-binary",
        tuple(TokenInfo(t, o) for t, o in mock.tokens),
        tick_size=mock.tick_size,
        min_order_size=mock.min_order_size,
    )
    for tok in market.tokens:  # the local view: asks well above the legs' limits, so they rest
        world.books.set(tok.token_id, asks=[("0.90", "100")], bids=[("0.05", "100")])
    world.relayer = relayer  # type: ignore[assignment]  # the world's engine runs on the CLOB relayer here
    try:
        yield relayer, market
    finally:
        await relayer.close()


def legs(market: MarketInfo, gid: str) -> list[Intent]:
    return [
        Intent(market.condition_id, tok.token_id, Side.BUY, D("0.10"), D("10"), OrderType.GTC, group_id=gid)
        for tok in market.tokens
    ]


async def engine_of(world: World) -> Engine:
    return await world.engine(unknown_grace_s=30.0)


async def test_an_unknown_batch_at_the_venue_is_reconciled_leg_by_leg_with_one_post(
    world: World, server: MockClobServer, venue: tuple[ClobRelayer, MarketInfo]
) -> None:
    _, market = venue
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
    world: World, server: MockClobServer, venue: tuple[ClobRelayer, MarketInfo]
) -> None:
    _, market = venue
    engine = await engine_of(world)
    server.inject("429", path="/orders", retry_after=1)
    res = await engine.submit_group(legs(market, "g-429"), [market])
    assert res.ok and [leg.status for leg in res.legs] == [OrderStatus.LIVE, OrderStatus.LIVE]
    assert server.request_counts[BATCH_POST] == 2 and server.request_counts[SINGLE_POST] == 0
    assert world.sleeps.calls == [1.0]
    assert len(server.orders) == 2
