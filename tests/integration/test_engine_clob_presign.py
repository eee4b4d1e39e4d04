"""The engine on the real CLOB relayer (SQLite and PostgreSQL, the CLOB double over a real socket): the
relayer knows a group's order hashes before it signs them (it is a ``JobPresigner``), so when the batch
is posted every intent row already carries the hash of the very order in the request, and the legs are
signed in one worker-thread call, not again when posted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_signing import OrderInvalid, PreparedOrder, SignedClobOrder
from core.execution.types import OrderRequest, OrderStatus, PlaceResult
from core.sim.mock_clob import MockClobServer
from core.store import models as m
from core.store.db import create_engine, session_factory
from core.types import Intent, MarketInfo, OrderType, Side
from tests.integration.engine_world import World


async def test_rows_carry_the_posted_orders_hashes_before_the_batch_leaves(
    world: World,
    clob_server: MockClobServer,
    clob_venue: tuple[ClobRelayer, MarketInfo],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relayer, market = clob_venue

    sign_calls: list[list[str]] = []
    real_complete = relayer.signer.complete_batch

    def counting_complete(
        prepared: Iterable[PreparedOrder], *, owner: str = ""
    ) -> list[SignedClobOrder | OrderInvalid]:
        jobs = list(prepared)
        sign_calls.append([p.order.client_order_id for p in jobs])
        return real_complete(jobs, owner=owner)

    monkeypatch.setattr(relayer.signer, "complete_batch", counting_complete)
    seen: list[dict[str, str | None]] = []  # the rows, read on another connection as the batch leaves
    other = create_engine(db_url)
    real_place_batch = relayer.place_batch

    async def looking_place_batch(orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        async with session_factory(other)() as s:
            rows = (await s.execute(select(m.Order.client_order_id, m.Order.order_hash))).all()
        seen.append(dict(rows))
        return await real_place_batch(orders)

    monkeypatch.setattr(relayer, "place_batch", looking_place_batch)
    try:
        engine = await world.engine()
        legs = [
            Intent(market.condition_id, tok.token_id, Side.BUY, D("0.10"), D("10"), OrderType.GTC, group_id="g-1")
            for tok in market.tokens
        ]
        res = await engine.submit_group(legs, [market])
    finally:
        await other.dispose()

    coids = [leg.client_order_id for leg in res.legs]
    assert res.ok and [leg.status for leg in res.legs] == [OrderStatus.LIVE, OrderStatus.LIVE]
    assert sign_calls == [coids]  # one signing call for the group, none again when posted
    posted = {s.client_order_id: s.order_hash for s in map(relayer.signed_order, coids) if s}
    assert set(posted.values()) == set(clob_server.orders)  # the venue holds exactly these orders
    assert seen == [posted]  # every row carried its order's hash before the request left
