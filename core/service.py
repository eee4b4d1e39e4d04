"""The composition root: builds every component from Settings and starts them on ONE asyncio loop.

What each part does lives elsewhere — the components below ``core/`` and the application layer's
policies in :mod:`core.app` (trading wiring, re-seeding, alerts, control requests, jobs); here
they are built, wired to the control facade and the chat front end, started, and stopped.

Start-up order matters for safety: the database is checked first, the engine reconciles its
orders with the venue and the gate is forced disarmed *before* any feed or strategy runs.
Shutdown reverses it: stop strategies, disarm, cancel open orders if configured, stop the feed,
flush the writer, stop the bot, close sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

from core.app.health_extras import ServiceProblems
from core.app.jobs import Jobs, build_jobs
from core.app.lifecycle import Lifecycle
from core.app.order_sinks import TradingCounters
from core.app.reseed import RESEED_COOLDOWN_S
from core.app.schedule import start_scheduler
from core.app.shutdown import wind_down
from core.app.startup import start_trading
from core.app.strategies import dutch_config
from core.app.system import System, bind_metrics, build_system
from core.control.facade import Control, Runtime
from core.control.frontend import FrontEndHost
from core.control.requests import handle_pending_requests
from core.control.views import followed
from core.events import Alert, EventBus, Severity
from core.metrics.collect import serve_metrics
from core.preflight import run_preflight
from core.settings import LoadedSettings, Settings
from core.supervise import Supervisor
from core.types import Mode

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from core.bus.reader import BusFeed
    from core.control.types import PreflightReport
    from core.execution.engine import Engine
    from core.execution.funds import PaperFunds, VenueFunds
    from core.execution.relayers.clob import ClobRelayer
    from core.execution.relayers.paper import PaperRelayer
    from core.execution.risk_gate import RiskGate
    from core.feed.pipeline import IngestPipeline
    from core.feed.processor import FeedProcessor
    from core.feed.ws import MarketFeed
    from core.registry import MarketRegistry
    from core.store.writer import BatchedWriter

__all__ = ["RESEED_COOLDOWN_S", "FrontEnd", "Service", "ServiceOptions"]

log = logging.getLogger(__name__)


class FrontEnd(Protocol):
    """A chat front end the service hosts on its loop (built by the caller, e.g. ``bot.app.start_telegram``)."""

    async def stop(self) -> None: ...

    async def notify_admins(self, text: str) -> None: ...


@dataclass
class ServiceOptions:
    migrate: bool = False  # apply pending migrations at start (the demo does; production runs `polybot migrate`)
    bot_request: object = None  # for the front end: a Telegram Bot API double (offline bot, no polling)
    with_bot: bool | None = None  # None: when [telegram] enabled and a token is set
    staleness_tick_s: float = 2.0
    bot_clock: Callable[[], float] | None = None  # drives confirmation expiry, rate limits, alert cooldown
    frontend: Callable[[FrontEndHost], Awaitable[FrontEnd]] | None = None  # e.g. bot.app.start_telegram
    clock: Callable[[], float] = time.time
    # what /preflight and /arm check (argument: offline); None: run_preflight on the settings
    preflight: Callable[[bool], Awaitable[PreflightReport]] | None = None


@dataclass(frozen=True, slots=True)
class Running:
    system: System
    control: Control
    jobs: Jobs


class Service:
    def __init__(self, loaded: LoadedSettings, options: ServiceOptions | None = None) -> None:
        self.loaded = loaded
        self.settings: Settings = loaded.settings
        self.opts = options or ServiceOptions()
        self.mode: Mode = self.settings.mode
        self.bus = EventBus()
        self.counters = TradingCounters()
        self.supervisor = Supervisor(self.bus)
        self.lifecycle = Lifecycle()
        self.startup_alerts: list[Alert] = []  # published before the chat front end started (it replays them)
        # names this process in the control_requests table (which service claimed a request)
        self.instance_name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started = False
        self.bot: FrontEnd | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self._running: Running | None = None
        self._resources = contextlib.AsyncExitStack()  # closed last, in reverse: front end, sockets, writer, db
        self._stop_event = asyncio.Event()

    # ---- start ----------------------------------------------------------------------------
    async def start(self) -> None:
        s, opts = self.settings, self.opts
        # alerts raised while starting (before the chat front end exists) are handed to it once it does
        stop_collecting = self.bus.subscribe(Alert, self.startup_alerts.append)
        system = await build_system(
            s, self.bus, self._resources, self.counters, self.lifecycle, migrate=opts.migrate, clock=opts.clock
        )
        # the facade exists before the engine starts so that it hears what starting says (a reset of the
        # armed state, foreign orders); nothing can call it until the front ends start, at the end
        control = Control(self._runtime(system))
        if restored := await control.tuning.restore():  # what /set and /strategy changed before the stop
            log.warning("runtime changes applied again: %s", ", ".join(restored))
        requests = partial(handle_pending_requests, system.sessions, control, handled_by=self.instance_name)
        jobs = build_jobs(s, self.bus, system, control, requests, self.counters, admins=self)
        self._running = Running(system, control, jobs)
        await start_trading(system, self.bus, self.mode)
        bind_metrics(system, self.bus, self.counters)
        if system.link is not None:
            self.supervisor.start("feed", partial(system.link.run, self._stop_event))
        else:
            log.warning("no markets or assets configured: the feed is not started ([feed] markets / assets)")
        await self._start_metrics()
        await self._start_front_end()
        with_balances = system.balances is not None
        self.scheduler = start_scheduler(jobs, s, staleness_tick_s=opts.staleness_tick_s, balances=with_balances)
        stop_collecting()
        # The start-up heap (modules, mappers, markets) lives as long as the process: frozen out of the
        # collector, a full collection scans what came after only (measured with the tick-to-wire
        # world after 600 groups: 104 ms -> 18 ms, a pause any tick arriving during it would wait out).
        gc.collect()
        gc.freeze()
        self.started = True
        what = followed(system.registry, system.watch, system.assets).text()  # as /status counts it
        message = f"Polybot started in {self.mode.value} mode, disarmed; {what}"
        self.bus.publish(Alert(kind="service", severity=Severity.INFO, key="start", message=message))

    def _runtime(self, system: System) -> Runtime:
        s, execution, pipeline = self.settings, system.execution, system.pipeline
        return Runtime(
            mode=self.mode,
            bus=self.bus,
            registry=system.registry,
            books=system.processor.books,
            risk=execution.risk,
            engine=execution.engine,
            sessions=system.sessions,
            feed=system.link,
            preflight=self.opts.preflight or (lambda offline: run_preflight(self.loaded, offline=offline)),
            dutch=dutch_config(s),
            staleness_ms=s.service.staleness_ms,
            frames=lambda: pipeline.stats.frames,
            extra_health=ServiceProblems(system.writer, pipeline, self.supervisor, self.lifecycle).reasons,
            audit_rows=system.writer,
            venue=execution.venue_status,
            funds=execution.funds.snapshot,
            settlement=system.settlement,
            strategies=system.trading,
            watch=system.watch,
        )

    async def _start_metrics(self) -> None:
        if (m := self.settings.metrics).enabled:
            server = await serve_metrics(m.host, m.port, role="service", instance=m.instance)
            self._resources.push_async_callback(server.aclose)
            log.info("metrics on http://%s:%s/metrics", m.host, server.port)

    async def _start_front_end(self) -> None:
        """Start the chat front end the caller supplied (core never imports ``bot/``)."""
        t = self.settings.telegram
        wanted = self.opts.with_bot if self.opts.with_bot is not None else (t.enabled and t.token is not None)
        if not wanted:
            log.warning("Telegram is not configured ([telegram] enabled + token): running without the bot")
        elif self.opts.frontend is None:
            log.warning("Telegram is configured but this process was started without a chat front end")
        else:
            self.bot = bot = await self.opts.frontend(self)
            self._resources.push_async_callback(bot.stop)

    async def notify_admins(self, text: str) -> None:
        """Admins hear it through the chat front end, when there is one (the health ping)."""
        if self.bot is not None:
            await self.bot.notify_admins(text)

    # ---- stop -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """A stop asked for by the operator or a signal: from here on a component that returns is
        finishing, not failing (it must not raise a component_failed alert)."""
        self.supervisor.begin_stop()
        self._stop_event.set()

    async def wait(self) -> None:
        await self._stop_event.wait()

    async def stop(self) -> None:
        if self.lifecycle.stopping:
            return
        self.lifecycle.begin_stop()
        self.request_stop()
        gc.unfreeze()  # what this service froze may become garbage now (several services run in one test process)
        running = self._running
        if self.started and running is not None:
            execution = running.system.execution
            cancel = self.settings.service.cancel_on_shutdown
            settle = partial(self.lifecycle.drain, timeout_s=5)  # what is past the gate lands before the cancel
            await wind_down(execution.risk, execution.engine, self.bus, cancel_open_orders=cancel, settle=settle)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if running is not None and running.system.link is not None:
            await running.system.link.feed.stop()
        await self.supervisor.stop()
        await self.lifecycle.drain(timeout_s=5)
        await self.bus.drain()
        await self._resources.aclose()

    # ---- what a started service is made of (tests and front ends read these) -------------
    def _up(self) -> Running:
        if self._running is None:
            raise RuntimeError("the service is not started")
        return self._running

    @property
    def engine(self) -> Engine:
        return self._up().system.execution.engine

    @property
    def risk(self) -> RiskGate:
        return self._up().system.execution.risk

    @property
    def relayer(self) -> PaperRelayer | ClobRelayer:
        return self._up().system.execution.relayer

    @property
    def funds(self) -> PaperFunds | VenueFunds:
        return self._up().system.execution.funds

    @property
    def registry(self) -> MarketRegistry:
        return self._up().system.registry

    @property
    def pipeline(self) -> IngestPipeline:
        return self._up().system.pipeline

    @property
    def processor(self) -> FeedProcessor:
        return self._up().system.processor

    @property
    def writer(self) -> BatchedWriter:
        return self._up().system.writer

    @property
    def control(self) -> Control:
        return self._up().control

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._up().system.sessions

    @property
    def db(self) -> AsyncEngine:
        return self._up().system.db

    @property
    def jobs(self) -> Jobs:
        return self._up().jobs

    @property
    def feed(self) -> MarketFeed | BusFeed | None:
        link = self._up().system.link
        return None if link is None else link.feed

    async def job_staleness(self) -> None:
        await self.jobs.staleness()

    async def job_reconcile(self, *, unknown_only: bool = False) -> None:
        await self.jobs.reconcile(unknown_only=unknown_only)

    async def job_balances(self) -> None:
        await self.jobs.balances()
