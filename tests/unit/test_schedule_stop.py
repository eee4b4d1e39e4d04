"""A scheduled job still running when the service stops: the scheduler's shutdown cancels it, and
that is a stop, not an error (APScheduler alone logs it as a job that raised, with a traceback)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.app.schedule import _stoppable


async def test_a_job_cancelled_by_the_shutdown_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    async def slow_job() -> None:
        started.set()
        await asyncio.sleep(3600)

    sched = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    sched.add_job(_stoppable(slow_job), id="slow")
    with caplog.at_level(logging.DEBUG):
        sched.start()
        await asyncio.wait_for(started.wait(), 30)
        sched.shutdown(wait=False)  # cancels the running job, as the service's stop does
        for _ in range(100):
            await asyncio.sleep(0)  # let the cancellation and the executor's callback run
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert "stopped by the shutdown" in caplog.text


async def test_a_failing_job_still_fails_loudly(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await _stoppable(broken)()
