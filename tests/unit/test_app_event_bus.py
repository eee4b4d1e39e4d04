"""The event bus: handlers by event type, in subscription order; a coroutine handler runs as a task
that ``drain`` waits for; a failing handler is logged and counted and never breaks the publisher or
the other handlers (trading must not stop because a chat message could not be rendered)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.events import Alert, AlertCleared, EventBus, Recorder, Severity

ALERT = Alert(kind="service", severity=Severity.INFO, key="k", message="m")
CLEARED = AlertCleared(kind="service", key="k")


def test_handlers_hear_their_event_type_in_subscription_order_until_they_unsubscribe() -> None:
    bus = EventBus()
    heard: list[str] = []
    bus.subscribe(Alert, lambda e: heard.append(f"first {e.key}"))
    stop = bus.subscribe(Alert, lambda e: heard.append("second"))
    bus.subscribe(AlertCleared, lambda e: heard.append("cleared"))
    bus.subscribe(None, lambda e: heard.append(f"any {type(e).__name__}"))
    bus.publish(ALERT)
    stop()
    stop()  # twice is once
    bus.publish(ALERT)
    bus.publish(CLEARED)
    assert heard == ["first k", "second", "any Alert", "first k", "any Alert", "cleared", "any AlertCleared"]
    assert bus.published == 3


def test_a_failing_handler_is_logged_and_counted_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    rec = Recorder(bus, Alert)

    def broken(event: Alert) -> None:
        raise ValueError("cannot render")

    bus.subscribe(Alert, broken)
    rec2 = Recorder(bus)
    with caplog.at_level(logging.ERROR, logger="core.events"):
        bus.publish(ALERT)
    assert rec.of(Alert) == [ALERT] and rec2.events == [ALERT]
    assert bus.handler_errors == 1
    assert "event handler" in caplog.text and "broken failed on Alert" in caplog.text


async def test_coroutine_handlers_run_as_tasks_that_drain_waits_for_and_their_failures_count() -> None:
    bus = EventBus()
    done: list[str] = []

    async def slow(event: Alert) -> None:
        for _ in range(100):  # many turns of the loop: done only if drain really waits
            await asyncio.sleep(0)
        done.append(event.key)

    async def failing(event: Alert) -> None:
        raise ConnectionError("telegram down")

    bus.subscribe(Alert, slow)
    bus.subscribe(Alert, failing)
    bus.publish(ALERT)  # returns at once: the publisher never waits for a chat message
    assert done == []
    await asyncio.wait_for(bus.drain(), 30)
    assert done == ["k"] and bus.handler_errors == 1


def test_without_a_running_loop_a_coroutine_handler_runs_to_completion_rather_than_being_dropped() -> None:
    bus = EventBus()
    done: list[str] = []

    async def handler(event: Alert) -> None:
        await asyncio.sleep(0)
        done.append(event.key)

    bus.subscribe(Alert, handler)
    bus.publish(ALERT)
    assert done == ["k"]


def test_a_recorder_stops_recording_when_closed() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    bus.publish(ALERT)
    rec.close()
    bus.publish(CLEARED)
    assert rec.events == [ALERT] and rec.of(AlertCleared) == []
