"""A stop the operator asked for is not a failure: SIGTERM / Ctrl-C produce only the stopping
notice, never a critical component_failed alert (was: every clean stop pushed
"🚨 component_failed: feed failed (returned unexpectedly); restart #1" before "Polybot stopping")."""

from __future__ import annotations

import asyncio

import pytest

from core.events import Alert, Severity
from tests.faults.fault_harness import FaultRecord, running_service, wait_for


async def test_a_requested_stop_raises_no_alert_but_the_stopping_notice(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "clean stop (what SIGTERM / SIGINT call)"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        await rig.frames_advance(20)
        await rig.service.bus.drain()
        rig.api.calls.clear()
        rig.events.clear()
        rig.service.request_stop()  # what run-service's SIGTERM / SIGINT handler calls
        # the supervised feed task sees the stop first; give it every chance to (wrongly) report a failure
        feed = rig.service.supervisor.components["feed"]
        await wait_for(lambda: not feed.running, 20, "the feed component to end")
        await asyncio.sleep(0)  # its supervisor decides right after: restart with an alert, or finish
        await rig.service.bus.drain()
        await asyncio.wait_for(rig.service.stop(), 20)
        alerts = [e for e in rig.events if isinstance(e, Alert)]
        fault_record.alerts = ", ".join(f"{a.kind}/{a.key}" for a in alerts)
        assert [(a.kind, a.key, a.severity) for a in alerts] == [("service", "stop", Severity.INFO)]
        pushed = [c.text or "" for c in rig.api.calls if c.method == "sendMessage"]
        assert pushed and all("stopping" in text for text in pushed), pushed
        assert feed.restarts == 0
