"""A group's signing shares the write-ahead's worker-thread call (issue 15: one hop, not two), still
off the event loop and before the commit; on PostgreSQL the signing is its only hop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal as D
from typing import Any

import pytest

from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_signing import MarketParams, OrderInvalid, SignedClobOrder
from core.execution.types import OrderRequest, OrderStatus
from core.types import Intent, MarketInfo, OrderType, Side
from tests.integration.engine_world import World


async def test_the_legs_are_signed_in_the_write_aheads_thread_hop(
    world: World, clob_venue: tuple[ClobRelayer, MarketInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    relayer, market = clob_venue
    loop_thread = threading.get_ident()
    signed_in: list[int] = []
    real_sign_batch = relayer.signer.sign_batch

    def recording_sign_batch(
        orders: Iterable[tuple[OrderRequest, MarketParams | None]], *, owner: str = ""
    ) -> list[SignedClobOrder | OrderInvalid]:
        signed_in.append(threading.get_ident())
        return real_sign_batch(orders, owner=owner)

    monkeypatch.setattr(relayer.signer, "sign_batch", recording_sign_batch)
    engine = await world.engine()
    hops: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counting_to_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__qualname__", repr(fn)))
        return await real_to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)
    legs = [
        Intent(market.condition_id, tok.token_id, Side.BUY, D("0.10"), D("10"), OrderType.GTC, group_id="g-hop")
        for tok in market.tokens
    ]
    res = await engine.submit_group(legs, [market])
    monkeypatch.undo()

    assert res.ok and [leg.status for leg in res.legs] == [OrderStatus.LIVE, OrderStatus.LIVE]
    assert len(signed_in) == 1 and signed_in[0] != loop_thread  # signed once, off the loop
    assert len(hops) == 1, hops  # the signing and the write-ahead: one worker-thread call
    rows = [await world.store.get_order(leg.client_order_id) for leg in res.legs]
    signed = [relayer.signed_order(leg.client_order_id) for leg in res.legs]
    assert [r.order_hash for r in rows if r] == [s.order_hash for s in signed if s]  # written with the hashes
