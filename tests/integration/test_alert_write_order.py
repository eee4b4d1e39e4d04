"""An alert's row in the store follows the order the alert and its clearing were published in
(SQLite and PostgreSQL). Each bus handler runs as its own task and each write has its own
connection, so without an order a clearing published while the alert's insert is still waiting for
the write lock (or a slow commit) updates no row, and the insert lands after it: the alert stays
open in the database for good, and every face that reads it (status, health, Telegram through
another process) shows a condition that is over."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from core.events import Alert, AlertCleared, Severity
from core.execution.alert_rows import record_alerts
from core.execution.ordered_writes import OrderedWrites
from core.store import models as m
from tests.integration.engine_world import T0, World
from tests.integration.polling import WAIT_S, until


async def test_a_clearing_does_not_overtake_the_alert_still_being_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, entered, resolved = asyncio.Event(), asyncio.Event(), asyncio.Event()
    add_alert, resolve_alert = world.store.add_alert, world.store.resolve_alert

    async def slow_add(alert: Alert) -> None:  # a slow commit, or SQLite's write lock held elsewhere
        entered.set()
        await release.wait()
        await add_alert(alert)

    async def resolve(*args: Any, **kwargs: Any) -> None:
        await resolve_alert(*args, **kwargs)
        resolved.set()

    monkeypatch.setattr(world.store, "add_alert", slow_add)
    monkeypatch.setattr(world.store, "resolve_alert", resolve)
    writes = OrderedWrites()
    record_alerts(world.bus, world.store, writes=writes)
    world.bus.publish(Alert("feed_dead", Severity.CRITICAL, "ws#1", "feed dead", ts=T0))
    async with asyncio.timeout(WAIT_S):
        await entered.wait()
    world.bus.publish(AlertCleared("feed_dead", "ws#1", "connection re-established", ts=T0 + 2))
    # the clearing's write done (it went first) or queued behind the alert's
    await until(lambda: resolved.is_set() or writes.waiting() > 0, "the clearing's write")
    release.set()
    async with asyncio.timeout(WAIT_S):
        await world.bus.drain()
    [row] = await world.rows(m.Alert)
    assert (row.kind, row.key) == ("feed_dead", "ws#1")
    assert row.resolved_at is not None, "the clearing was overtaken by the alert's insert: open for good"
    assert row.resolved_at.timestamp() == T0 + 2


async def test_alerts_of_other_keys_are_not_held_by_a_slow_one(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()
    add_alert: Callable[[Alert], Awaitable[None]] = world.store.add_alert

    async def slow_add(alert: Alert) -> None:
        if alert.key == "ws#1":
            await release.wait()
        await add_alert(alert)

    monkeypatch.setattr(world.store, "add_alert", slow_add)
    record_alerts(world.bus, world.store)
    world.bus.publish(Alert("feed_dead", Severity.CRITICAL, "ws#1", "feed dead", ts=T0))
    world.bus.publish(Alert("feed_dead", Severity.CRITICAL, "ws#2", "feed dead", ts=T0))

    async def other_written() -> bool:
        return [r.key for r in await world.rows(m.Alert)] == ["ws#2"]

    await until(other_written, "the other key's alert (it must not wait for the slow one)")
    release.set()
    async with asyncio.timeout(WAIT_S):
        await world.bus.drain()
    assert sorted(r.key for r in await world.rows(m.Alert)) == ["ws#1", "ws#2"]
