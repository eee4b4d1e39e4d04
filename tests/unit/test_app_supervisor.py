"""Supervised components: a failure is logged, alerted and restarted after a growing, capped
backoff (reset by a healthy run); a component that ends because the service stops raises nothing."""

from __future__ import annotations

import asyncio
import random

import pytest

from core.events import Alert, EventBus, Recorder, Severity
from core.supervise import Supervisor


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def until(predicate: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, what
        await asyncio.sleep(0.001)


def flaky(failures: int, forever: asyncio.Event) -> tuple[list[int], object]:
    runs: list[int] = []

    async def component() -> None:
        runs.append(len(runs) + 1)
        if len(runs) <= failures:
            raise ConnectionError(f"boom {len(runs)}")
        await forever.wait()

    return runs, component


async def test_a_failing_component_is_alerted_and_restarted_after_a_growing_capped_backoff() -> None:
    bus, sleeps, forever = EventBus(), Sleeps(), asyncio.Event()
    rec = Recorder(bus, Alert)
    sup = Supervisor(bus, initial_backoff_s=0.5, max_backoff_s=3.0, sleep=sleeps, rng=random.Random(1))
    runs, component = flaky(5, forever)
    state = sup.start("feed", component)  # type: ignore[arg-type]
    await until(lambda: len(runs) == 6 and state.running, "the sixth run")
    bases = [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(sleeps.delays) == 5
    for delay, base in zip(sleeps.delays, bases, strict=True):
        assert base <= delay <= base * 1.2  # up to 20% later, so components restart apart
    alerts = rec.of(Alert)
    assert [(a.kind, a.key, a.severity) for a in alerts] == [("component_failed", "feed", Severity.CRITICAL)] * 5
    assert alerts[0].message == f"feed failed (ConnectionError: boom 1); restart #1 in {sleeps.delays[0]:.1f}s"
    assert state.restarts == 5 and state.last_error == "ConnectionError: boom 5"
    await sup.stop()
    assert not state.running and state.task is not None and state.task.done()


async def test_a_healthy_run_starts_the_backoff_over() -> None:
    bus, sleeps, forever = EventBus(), Sleeps(), asyncio.Event()
    sup = Supervisor(bus, initial_backoff_s=0.5, max_backoff_s=30.0, healthy_after_s=0.0, sleep=sleeps)
    runs, component = flaky(4, forever)
    sup.start("feed", component)  # type: ignore[arg-type]
    await until(lambda: len(runs) == 5, "the fifth run")
    assert all(0.5 <= d <= 0.6 for d in sleeps.delays), sleeps.delays  # every run counted as healthy
    await sup.stop()


async def test_a_component_that_returns_by_itself_is_a_failure() -> None:
    bus, sleeps = EventBus(), Sleeps()
    rec = Recorder(bus, Alert)
    sup = Supervisor(bus, sleep=sleeps)
    runs: list[int] = []

    async def component() -> None:
        runs.append(1)
        if len(runs) > 1:
            await asyncio.Event().wait()

    state = sup.start("feed", component)
    await until(lambda: len(runs) == 2, "the restart")
    assert [a.message.split(";")[0] for a in rec.of(Alert)] == ["feed failed (returned unexpectedly)"]
    assert state.restarts == 1
    await sup.stop()


@pytest.mark.parametrize("ending", ["returns", "raises"])
async def test_a_component_ending_during_a_requested_stop_raises_no_alert(ending: str) -> None:
    bus, sleeps, stop = EventBus(), Sleeps(), asyncio.Event()
    rec = Recorder(bus, Alert)
    sup = Supervisor(bus, sleep=sleeps)

    async def component() -> None:
        await stop.wait()
        if ending == "raises":
            raise ConnectionError("socket closed by the stop")

    state = sup.start("feed", component)
    await until(lambda: state.running, "the component to run")
    sup.begin_stop()  # what request_stop() does first
    stop.set()
    assert state.task is not None
    await asyncio.wait_for(state.task, 30)
    assert rec.of(Alert) == [] and state.restarts == 0 and sleeps.delays == []
    await sup.stop()
