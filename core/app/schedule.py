"""The jobs on the service's loop (APScheduler 3.x): intervals from the settings, the daily
summary at a fixed UTC time, the venue sync at start and then on its interval; one instance of a
job at a time, missed runs coalesced, and a run the loop was too busy to start on time run late
rather than skipped (APScheduler's default grace of 1 s dropped the start-up venue sync on a loaded
machine)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from core.app.jobs import Jobs
from core.settings import Settings

log = logging.getLogger(__name__)


def _stoppable(job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """A job the scheduler's shutdown may cancel mid-run without an ERROR and a traceback in the log
    (APScheduler reports a cancelled coroutine job as one that raised): the service is stopping."""

    @functools.wraps(job)
    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.debug("job %s stopped by the shutdown", getattr(job, "__qualname__", job))

    return run


def start_scheduler(jobs: Jobs, settings: Settings, *, staleness_tick_s: float, balances: bool) -> AsyncIOScheduler:
    s = settings.service
    sched = AsyncIOScheduler(
        timezone=UTC, event_loop=asyncio.get_running_loop(), job_defaults={"misfire_grace_time": None}
    )
    every = {"trigger": "interval", "max_instances": 1, "coalesce": True}
    sched.add_job(_stoppable(jobs.staleness), seconds=staleness_tick_s, id="staleness", **every)
    sched.add_job(_stoppable(jobs.refresh_markets), minutes=s.market_refresh_minutes, id="market_refresh", **every)
    if s.health_ping_minutes > 0:
        sched.add_job(_stoppable(jobs.health_ping), minutes=s.health_ping_minutes, id="health_ping", **every)
    sched.add_job(_stoppable(jobs.reconcile), seconds=s.reconcile_s, id="reconcile", **every)
    if balances:
        sched.add_job(_stoppable(jobs.balances), seconds=settings.risk.balance_refresh_s, id="balances", **every)
    if jobs.syncs_venue:  # at start (now), then every sync_minutes; 0 = only at start
        if s.sync_minutes > 0:
            sched.add_job(
                _stoppable(jobs.venue_sync),
                minutes=s.sync_minutes,
                id="venue_sync",
                next_run_time=datetime.now(UTC),
                **every,
            )
        else:
            sched.add_job(_stoppable(jobs.venue_sync), id="venue_sync")
    if jobs.prunes:  # first one interval after start: a restart loop does not prune on every start
        sched.add_job(_stoppable(jobs.prune), minutes=settings.db.retention.interval_minutes, id="retention", **every)
    t = s.daily_summary_time
    sched.add_job(
        _stoppable(jobs.daily_summary), CronTrigger(hour=t.hour, minute=t.minute, timezone=UTC), id="daily_summary"
    )
    sched.start()
    return sched
