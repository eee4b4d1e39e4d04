"""An order's row in the store follows the order of its status changes in memory (SQLite and
PostgreSQL): a write still waiting (a slow commit, another connection holding SQLite's write lock)
is never overtaken by a later one for the same order. Seen in a full suite run under load: a quote
answered "live" and canceled at once (its market resolved) was left "live" in the database, the
"canceled" row written first and then overwritten by the older answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from typing import Any

import pytest

from core.execution.types import OrderStatus
from core.store import models as m
from tests.integration.engine_world import BIN, YES, World, intent
from tests.integration.polling import WAIT_S, until


def _hold_first(
    monkeypatch: pytest.MonkeyPatch, world: World, names: tuple[str, ...]
) -> tuple[asyncio.Event, asyncio.Event]:
    """The first call of any of the store's ``names`` waits for the first event returned (a slow
    commit); the second is set once it waits."""
    release, entered = asyncio.Event(), asyncio.Event()

    def slow(write: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not entered.is_set():
                entered.set()
                await release.wait()
            return await write(*args, **kwargs)

        return wrapper

    for name in names:
        monkeypatch.setattr(world.store, name, slow(getattr(world.store, name)))
    return release, entered


async def test_a_cancel_does_not_overtake_the_answer_still_being_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.books.set(YES, asks=[("0.60", "100")])  # a bid at 0.50 rests: the answer is "live"
    engine = await world.engine()
    release, _ = _hold_first(monkeypatch, world, ("record_attempt", "record_attempts"))
    placing = asyncio.create_task(engine.submit(intent(), BIN))
    await until(lambda: any(o.status is OrderStatus.LIVE for o in engine.open_orders()), "the answer in memory")
    [order] = engine.open_orders()
    canceling = asyncio.create_task(engine.cancel(order.client_order_id))
    await until(lambda: not engine.open_orders(), "the cancel in memory")
    release.set()
    async with asyncio.timeout(WAIT_S):
        placed, canceled = await asyncio.gather(placing, canceling)
    assert placed.ok and canceled.canceled == (order.client_order_id,)
    [row] = await world.rows(m.Order)
    assert row.status == OrderStatus.CANCELED.value, "the older answer overwrote the cancel"


async def test_a_cancel_made_while_a_fill_is_written_is_not_undone_by_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = world.books.set(YES, asks=[("0.60", "100")], bids=[("0.40", "100")])
    engine = await world.engine()
    placed = await engine.submit(intent(price="0.50", size="20"), BIN)
    coid = placed.client_order_id
    release, entered = _hold_first(monkeypatch, world, ("record_fill",))
    book.ask_levels = [(D("0.48"), D("8"))]  # 8 of the 20 fill
    filling = asyncio.create_task(world.relayer.on_book_update(YES))
    async with asyncio.timeout(WAIT_S):
        await entered.wait()  # the fill's write is under way
    canceling = asyncio.create_task(engine.cancel(coid))
    await until(lambda: engine.order(coid).status is OrderStatus.CANCELED, "the cancel in memory")  # type: ignore[union-attr]
    release.set()
    async with asyncio.timeout(WAIT_S):
        _, canceled = await asyncio.gather(filling, canceling)
    assert canceled.canceled == (coid,)
    rec = engine.order(coid)
    assert rec is not None and (rec.status, rec.filled_size) == (OrderStatus.CANCELED, D("8")), "the fill reopened it"
    assert not engine.open_orders()
    [row] = await world.rows(m.Order)
    assert (row.status, row.filled_size) == (OrderStatus.CANCELED.value, D("8"))
