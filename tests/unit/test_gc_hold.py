"""The collector is off while a group is placed and back on after it, nested holds counted, never on
when it was off before, and back on after ``max_s`` whatever happens (core/execution/gc_hold.py)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from core.execution.gc_hold import GcHold


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


async def test_off_inside_on_after_and_nested_holds_count() -> None:
    hold = GcHold()
    with hold:
        assert not gc.isenabled() and hold.held
        with hold:
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer group is still in flight
    assert gc.isenabled() and not hold.held


async def test_two_groups_in_flight_overlapping() -> None:
    hold = GcHold()
    first_in, second_done = asyncio.Event(), asyncio.Event()
    seen: list[bool] = []

    async def first() -> None:
        with hold:
            first_in.set()
            await second_done.wait()
            seen.append(gc.isenabled())

    async def second() -> None:
        await first_in.wait()
        with hold:
            seen.append(gc.isenabled())
        second_done.set()

    await asyncio.wait_for(asyncio.gather(first(), second()), 10)
    assert seen == [False, False] and gc.isenabled()


async def test_a_collector_turned_off_stays_off() -> None:
    gc.disable()
    hold = GcHold()
    with hold:
        assert not gc.isenabled() and not hold.held
    assert not gc.isenabled()


async def test_released_after_max_s_even_inside() -> None:
    hold = GcHold(max_s=0.01)
    with hold:
        for _ in range(1000):  # a venue that does not answer: the hold ends by itself
            if gc.isenabled():
                break
            await asyncio.sleep(0.005)
        assert gc.isenabled() and not hold.held
    assert gc.isenabled()


async def test_an_exception_releases_it() -> None:
    hold = GcHold()
    with pytest.raises(RuntimeError), hold:
        raise RuntimeError("boom")
    assert gc.isenabled()
