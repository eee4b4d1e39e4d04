"""Telegram answers 429 (flood control): alerts and replies are retried after Retry-After and
delivered once; past the retry budget a message is counted as failed and logged, and trading and
ingest go on regardless."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.fault_harness import TRADER, FaultRecord, running_service, wait_for


def _sent(rig: object, needle: str) -> list[str]:
    return [c.text or "" for c in rig.api.calls if c.method == "sendMessage" and needle in (c.text or "")]  # type: ignore[attr-defined]


async def test_telegram_429_on_alerts_and_replies(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "Telegram answers 429 retry_after=1 (alert push and a command reply)"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        await rig.service.bus.drain()
        api = rig.api
        api.retry_after = 1
        api.throttle_next = 2
        rig.ws.drop_connections()
        await wait_for(lambda: rig.cleared("feed_dead"), 6, "the reconnect")
        await wait_for(lambda: rig.tg_alerts("feed_dead") and rig.tg_recovered("feed_dead"), 8, "both messages")
        # a command while Telegram throttles: the reply arrives once, after the wait
        api.throttle_next = 1
        await asyncio.wait_for(rig.telegram_feed([rig.updates.msg(TRADER, "/status")]), 10)
        await rig.service.bus.drain()
        throttled = [c for c in api.calls if c.method.endswith("!429")]
        status_replies = _sent(rig, "<b>Polybot</b> — mode")
        sender = rig.service.bot.sender
        fault_record.alerts = rig.alert_summary("feed_dead")
        fault_record.counters = {"429_answers": len(throttled), "sent": sender.sent, "send_failed": sender.failed}
        assert len(throttled) == 3
        assert len(rig.tg_alerts("feed_dead")) == 1 and len(rig.tg_recovered("feed_dead")) == 1
        assert len(status_replies) == 1
        assert sender.failed == 0
        await rig.frames_advance(20)


async def test_telegram_429_past_the_retry_budget(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord, caplog: pytest.LogCaptureFixture
) -> None:
    fault_record.scenario = "Telegram keeps answering 429 past the retry budget"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        await rig.service.bus.drain()
        rig.api.retry_after = 1
        rig.api.throttle_next = 100
        await asyncio.wait_for(rig.telegram_feed([rig.updates.msg(TRADER, "/health")]), 15)
        sender = rig.service.bot.sender
        fault_record.counters = {
            "429_answers": sum(1 for c in rig.api.calls if c.method.endswith("!429")),
            "send_failed": sender.failed,
        }
        fault_record.alerts = "none (counted in sender.failed and logged)"
        assert sender.failed == 1, "a message given up on must be counted"
        assert any("telegram send to chat" in r.getMessage() for r in caplog.records)
        rig.api.throttle_next = 0
        await rig.frames_advance(20)  # ingest never waited on Telegram
        await asyncio.wait_for(rig.telegram_feed([rig.updates.msg(TRADER, "/health")]), 10)
        assert _sent(rig, "healthy")


async def test_telegram_429_keeps_alert_order(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.scenario = "Telegram 429 on an alert: the alert still arrives before its recovery"
    async with running_service(sqlite_url, monkeypatch) as rig:
        await rig.wait_books_ok()
        await rig.service.bus.drain()
        rig.api.retry_after = 2  # a wide window: the reconnect and its recovery note land inside it
        rig.api.throttle_next = 2
        rig.ws.drop_connections()
        await wait_for(lambda: rig.tg_alerts("feed_dead") and rig.tg_recovered("feed_dead"), 12, "both messages")
        texts = [c.text or "" for c in rig.api.calls if c.method == "sendMessage"]
        fault_record.alerts = rig.alert_summary("feed_dead")
        assert texts.index(rig.tg_alerts("feed_dead")[0]) < texts.index(rig.tg_recovered("feed_dead")[0])
