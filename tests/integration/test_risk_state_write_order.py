"""The arm state's row follows the order of its changes (SQLite and PostgreSQL): a disarm (the kill
switch, the daily loss limit) made while an arm's write still waits (SQLite's write lock held by
another connection, a slow commit) is never overtaken by it. Before, the older write could land
last: the state table said "armed" while the service was disarmed, and every face reading it from
another process (``polybot status``, health) showed a disarmed bot as armed (and the next start
raised a "was armed at shutdown" alert)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.execution.risk_gate import RiskGate, RiskLimits
from core.store.models import ARMED_KEY
from tests.integration.engine_world import World
from tests.integration.polling import WAIT_S, until


async def test_a_disarm_does_not_overtake_the_arm_still_being_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = RiskGate(RiskLimits.configured(), world.store, world.clock, world.bus)
    await gate.start()
    set_state = world.store.set_state
    release, entered, later_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow(key: str, value: Any) -> None:  # the first write waits: a slow commit
        if not entered.is_set():
            entered.set()
            await release.wait()
            await set_state(key, value)
            return
        await set_state(key, value)
        later_done.set()

    monkeypatch.setattr(world.store, "set_state", slow)
    arming = asyncio.create_task(gate.arm("alice"))
    async with asyncio.timeout(WAIT_S):
        await entered.wait()
    assert gate.armed
    disarming = asyncio.create_task(gate.kill("bob"))
    # the disarm's write done (it went first) or queued behind the arm's
    await until(lambda: later_done.is_set() or gate.state_writes.waiting() > 0, "the disarm's write")
    assert not gate.armed
    release.set()
    async with asyncio.timeout(WAIT_S):
        armed, _ = await asyncio.gather(arming, disarming)
    assert armed.ok and not gate.armed
    stored = await world.store.get_state(ARMED_KEY)
    assert isinstance(stored, dict)
    assert (stored["armed"], stored["by"], stored["reason"]) == (False, "bob", "kill switch"), "the arm overwrote it"
