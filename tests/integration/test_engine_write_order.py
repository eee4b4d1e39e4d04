"""An order's row in the store follows the order of its status changes in memory (SQLite and
PostgreSQL): a write still waiting (a slow commit, another connection holding SQLite's write lock)
is never overtaken by a later one for the same order. Seen in a full suite run under load: a quote
answered "live" and canceled at once (its market resolved) was left "live" in the database, the
"canceled" row written first and then overwritten by the older answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from core.execution.types import OrderStatus
from core.store import models as m
from tests.integration.engine_world import BIN, YES, World, intent

WAIT_S = 30.0


def _hold_first_answer(monkeypatch: pytest.MonkeyPatch, world: World) -> asyncio.Event:
    """The store's first write of a placed order's answer waits for the returned event (a slow commit)."""
    release = asyncio.Event()
    held: list[bool] = []

    def slow(write: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not held:
                held.append(True)
                await release.wait()
            return await write(*args, **kwargs)

        return wrapper

    for name in ("record_attempt", "record_attempts"):
        monkeypatch.setattr(world.store, name, slow(getattr(world.store, name)))
    return release


async def _until(pred: Callable[[], bool], what: str) -> None:
    """Polled: the engine's memory changes before the (held) write, and no event says so until after it."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        if pred():
            return
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def test_a_cancel_does_not_overtake_the_answer_still_being_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.books.set(YES, asks=[("0.60", "100")])  # a bid at 0.50 rests: the answer is "live"
    engine = await world.engine()
    release = _hold_first_answer(monkeypatch, world)
    placing = asyncio.create_task(engine.submit(intent(), BIN))
    await _until(lambda: any(o.status is OrderStatus.LIVE for o in engine.open_orders()), "the answer in memory")
    [order] = engine.open_orders()
    canceling = asyncio.create_task(engine.cancel(order.client_order_id))
    await _until(lambda: not engine.open_orders(), "the cancel in memory")
    release.set()
    async with asyncio.timeout(WAIT_S):
        placed, canceled = await asyncio.gather(placing, canceling)
    assert placed.ok and canceled.canceled == (order.client_order_id,)
    [row] = await world.rows(m.Order)
    assert row.status == OrderStatus.CANCELED.value, "the older answer overwrote the cancel"
