"""The service's scheduled jobs: registered with the right triggers, and each one fires with
controlled time — staleness watch, Gamma market refresh (against the Gamma double), health ping
to admins, daily summary — with their alerts reaching Telegram (the in-process Bot API double).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.app import start_telegram
from bot.fake_api import FakeBotApi
from core.feed.replay import iter_frames
from core.service import Service, ServiceOptions
from core.settings import load_settings
from core.sim.demo_data import DEMO_RECORDING
from core.sim.mock_gamma import MockGammaServer
from core.types import BookStatus

ADMIN, VIEWER, DESK = 1001, 1002, -100777


def _env(db_url: str, gamma_url: str, **extra: str) -> dict[str, str]:
    env = {
        "POLYBOT_DB__URL": db_url,
        "POLYBOT_GAMMA__URL": gamma_url,
        "POLYBOT_GAMMA__MAX_RETRIES": "0",
        "POLYBOT_GAMMA__TIMEOUT_S": "5",
        "POLYBOT_TELEGRAM__USERS": f'[{{"id": {ADMIN}, "role": "admin"}}, {{"id": {VIEWER}, "role": "viewer"}}]',
        "POLYBOT_TELEGRAM__ALERT_CHATS": f"[{DESK}]",
        "POLYBOT_SERVICE__MARKET_REFRESH_MINUTES": "7",
        "POLYBOT_SERVICE__HEALTH_PING_MINUTES": "45",
        "POLYBOT_SERVICE__DAILY_SUMMARY_UTC": "07:30",
    }
    env.update(extra)
    return env


@pytest.fixture
async def gamma() -> AsyncIterator[MockGammaServer]:
    async with MockGammaServer() as server:
        yield server


async def started(tmp_path: Path, gamma: MockGammaServer, **extra: str) -> tuple[Service, FakeBotApi]:
    api = FakeBotApi()
    loaded = load_settings(None, env=_env(f"sqlite:///{tmp_path / 'jobs.db'}", gamma.url, **extra))
    service = Service(
        loaded,
        ServiceOptions(migrate=True, bot_request=api, with_bot=True, staleness_tick_s=0.1, frontend=start_telegram),
    )
    await service.start()
    await service.bus.drain()
    api.calls.clear()  # the start-up notice
    return service, api


def to_chat(api: FakeBotApi, chat: int) -> list[str]:
    return [c.text or "" for c in api.calls if c.method == "sendMessage" and c.chat_id == chat]


def replay(service: Service, recv_ns: int, limit: int = 60) -> None:
    """Feed the first frames of the demo recording as if received at ``recv_ns``."""
    for n, (_, frame) in enumerate(iter_frames(DEMO_RECORDING)):
        if n >= limit:
            break
        service.pipeline.on_frame(frame, recv_ns + n)


async def wait_for(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_jobs_are_registered_with_their_triggers(tmp_path: Path, gamma: MockGammaServer) -> None:
    service, _ = await started(tmp_path, gamma)
    try:
        jobs = {job.id: job for job in service.scheduler.get_jobs()}
        assert set(jobs) == {"staleness", "market_refresh", "reconcile", "health_ping", "daily_summary", "retention"}
        retention = jobs["retention"].trigger  # db.retention's prune job, one interval after start
        assert isinstance(retention, IntervalTrigger) and retention.interval == timedelta(minutes=60)
        staleness, refresh, ping = (
            jobs["staleness"].trigger,
            jobs["market_refresh"].trigger,
            jobs["health_ping"].trigger,
        )
        assert isinstance(staleness, IntervalTrigger) and staleness.interval == timedelta(seconds=0.1)
        assert isinstance(refresh, IntervalTrigger) and refresh.interval == timedelta(minutes=7)
        assert isinstance(ping, IntervalTrigger) and ping.interval == timedelta(minutes=45)
        daily = jobs["daily_summary"].trigger
        assert isinstance(daily, CronTrigger)
        fields = {f.name: str(f) for f in daily.fields}
        assert (fields["hour"], fields["minute"]) == ("7", "30") and str(daily.timezone) == "UTC"
        nxt = jobs["daily_summary"].next_run_time
        now = datetime.now(UTC)
        assert (nxt.hour, nxt.minute) == (7, 30) and now < nxt <= now + timedelta(days=1)
        for job in jobs.values():
            assert job.func.__wrapped__.__self__ is service.jobs  # the service's own jobs, on its loop
    finally:
        await service.stop()


async def test_no_health_ping_job_when_disabled(tmp_path: Path, gamma: MockGammaServer) -> None:
    service, _ = await started(tmp_path, gamma, POLYBOT_SERVICE__HEALTH_PING_MINUTES="0")
    try:
        assert "health_ping" not in {job.id for job in service.scheduler.get_jobs()}
    finally:
        await service.stop()


async def test_staleness_watch_fires_on_schedule_and_marks_old_books_stale(
    tmp_path: Path, gamma: MockGammaServer
) -> None:
    service, api = await started(tmp_path, gamma, POLYBOT_FEED__QUIET_AFTER_S="8")
    try:
        # controlled time: the frames arrived 10 s ago (staleness limit 5 s, quiet after 8 s)
        replay(service, time.time_ns() - 10 * 10**9)
        books = service.processor.books
        assert books and all(b.status is BookStatus.OK for b in books.values())
        await wait_for(lambda: all(b.status is BookStatus.STALE for b in books.values()))
        health = await service.control.health()
        assert not health.ok and f"{len(books)} book(s) stale" in health.reasons
        await wait_for(lambda: any("<b>Markets quiet</b>" in t for t in to_chat(api, DESK)), 30)
        await service.bus.drain()
        quiet = [t for t in to_chat(api, DESK) if "<b>Markets quiet</b>" in t]
        # one alert for all quiet books (not one message per token), naming how many and for how long
        assert len(quiet) == 1 and f"{len(books)} book(s) without an update for 8s on a live socket" in quiet[0]
        # fresh frames: the books are ok again and the quiet alerts clear with a "recovered" message
        api.calls.clear()
        replay(service, time.time_ns())
        assert any(b.status is BookStatus.OK for b in books.values())
        await wait_for(lambda: any("<b>Markets trading again</b> after " in t for t in to_chat(api, DESK)))
    finally:
        await service.stop()


async def test_market_refresh_job_loads_markets_and_alerts_on_failure(tmp_path: Path, gamma: MockGammaServer) -> None:
    service, api = await started(tmp_path, gamma)
    try:
        assert len(service.registry) == 0  # a fresh database: nothing discovered yet
        gamma.fail_500(1)
        await service.jobs.refresh_markets()
        await service.bus.drain()
        assert len(service.registry) == 0
        failed = to_chat(api, DESK)
        assert len(failed) == 1 and failed[0].startswith("⚠️ <b>Market list stale</b>\nGamma refresh failed")
        await service.jobs.refresh_markets()
        await service.bus.drain()
        assert len(service.registry) == 9
        assert service.registry.resolve("demo-cup-2026-aurora").neg_risk
        assert to_chat(api, DESK)[-1].startswith("✅ <b>Market list fresh</b> after ")
        assert [r.method for r in gamma.requests][-1:] == ["GET"]
    finally:
        await service.stop()


async def test_health_ping_goes_to_admins_only(tmp_path: Path, gamma: MockGammaServer) -> None:
    service, api = await started(tmp_path, gamma)
    try:
        await service.jobs.health_ping()
        assert to_chat(api, ADMIN) == ["✅ healthy — paper, disarmed, 0 frames"]
        assert to_chat(api, VIEWER) == [] and to_chat(api, DESK) == []
        service.bot.notifier.mute(ADMIN, 3600)
        await service.jobs.health_ping()
        assert len(to_chat(api, ADMIN)) == 1  # muted: no second ping
    finally:
        await service.stop()


async def test_scheduler_fires_the_daily_summary_and_health_ping_when_due(
    tmp_path: Path, gamma: MockGammaServer
) -> None:
    service, api = await started(tmp_path, gamma)
    try:
        now = datetime.now(UTC)
        service.scheduler.modify_job("daily_summary", next_run_time=now)
        service.scheduler.modify_job("health_ping", next_run_time=now)
        await wait_for(lambda: bool(to_chat(api, DESK)) and bool(to_chat(api, ADMIN)))
        summary = to_chat(api, DESK)[0]
        assert summary.startswith("ℹ️ <b>Daily summary</b>\ndaily summary: realised today 0")
        assert "0 open order(s), 0 position(s)" in summary
        assert to_chat(api, ADMIN)[0].startswith("✅ healthy")
        # both were rescheduled for their next period, not run again at once
        jobs = {j.id: j for j in service.scheduler.get_jobs()}
        nxt = jobs["daily_summary"].next_run_time  # its next 07:30 UTC (less than an hour away from 06:30)
        assert (nxt.hour, nxt.minute) == (7, 30) and now + timedelta(seconds=1) < nxt <= now + timedelta(days=1)
        assert jobs["health_ping"].next_run_time > now + timedelta(minutes=40)
    finally:
        await service.stop()
