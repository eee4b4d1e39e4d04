"""core.execution.ordered_writes: an order's writes run in the order they were issued; a failed or
abandoned one does not hold the next back, nor is the earlier one cancelled with a waiter."""

from __future__ import annotations

import asyncio

import pytest

from core.execution.ordered_writes import OrderedWrites

WAIT_S = 30.0


async def test_a_later_write_of_the_same_order_waits_for_the_earlier_one() -> None:
    writes = OrderedWrites()
    gate = asyncio.Event()
    done: list[str] = []

    async def slow() -> str:
        await gate.wait()
        done.append("live")
        return "live"

    async def fast() -> str:
        done.append("canceled")
        return "canceled"

    first = asyncio.create_task(writes.run(("a",), slow))
    await asyncio.sleep(0)
    second = asyncio.create_task(writes.run(("a", "b"), fast))
    other = asyncio.create_task(writes.run(("c",), fast))  # another order: not held
    async with asyncio.timeout(WAIT_S):
        await other
    assert done == ["canceled"]
    assert writes.waiting() == 1  # the second, behind the first
    gate.set()
    async with asyncio.timeout(WAIT_S):
        assert await asyncio.gather(first, second) == ["live", "canceled"]
    assert done == ["canceled", "live", "canceled"]
    assert writes.pending() == 0 and writes.waiting() == 0


async def test_a_failed_write_lets_the_next_run() -> None:
    writes = OrderedWrites()

    async def boom() -> None:
        raise RuntimeError("database gone")

    async def ok() -> str:
        return "written"

    with pytest.raises(RuntimeError):
        await writes.run(("a",), boom)
    async with asyncio.timeout(WAIT_S):
        assert await writes.run(("a",), ok) == "written"


async def test_cancelling_a_waiting_write_leaves_the_earlier_one_running() -> None:
    writes = OrderedWrites()
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "first"

    async def never() -> str:
        raise AssertionError("a cancelled write must not run")

    first = asyncio.create_task(writes.run(("a",), slow))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(writes.run(("a",), never))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not first.done()
    gate.set()
    async with asyncio.timeout(WAIT_S):
        assert await first == "first"
