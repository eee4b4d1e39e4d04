"""The service's scheduled jobs, each a method (APScheduler calls them; tests call them directly).

The staleness tick says first what the feed has to say (quiet bursts closed, stale books marked,
quiet markets, the venue's reachability) and only then makes its database and venue round trips
(control requests, unknown outcomes), so that a slow database never delays it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from core.app.alerts import QuietBooks, UpdatedBook
from core.app.balances import VenueBalances
from core.app.control_requests import ControlRequests
from core.app.market_refresh import MarketRefresh
from core.app.order_sinks import TradingCounters
from core.app.ports import OpenOrders
from core.app.reports import AdminNotice, Reports, ServiceReadings
from core.app.system import System
from core.app.venue_sync import VenueSync
from core.app.venue_watch import VenueWatch
from core.events import EventBus
from core.execution.engine import ReconcileReport
from core.execution.types import OrderStatus
from core.execution.venue_link import VenueStatus
from core.settings import Settings
from core.store.retention import Pruner

log = logging.getLogger(__name__)


class Reconciler(OpenOrders, Protocol):
    """The engine: our open orders, and the venue's truth about them."""

    async def reconcile(self) -> ReconcileReport: ...


class FeedTick(Protocol):
    """The ingest pipeline's timer: close quiet bursts, mark stale books."""

    def tick(self, now_ns: int | None = None) -> object: ...


class Jobs:
    def __init__(
        self,
        *,
        feed: FeedTick,
        books: Mapping[str, UpdatedBook],
        quiet: QuietBooks,
        venue_watch: VenueWatch,
        venue_status: Callable[[], VenueStatus | None],
        engine: Reconciler,
        control_requests: ControlRequests,
        market_refresh: MarketRefresh,
        reports: Reports,
        balances: VenueBalances | None,
        venue_sync: VenueSync | None = None,
        pruner: Pruner | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._feed = feed
        self._books = books
        self._quiet = quiet
        self._venue_watch = venue_watch
        self._venue_status = venue_status
        self._engine = engine
        self._control_requests = control_requests
        self._market_refresh = market_refresh
        self._reports = reports
        self._balances = balances
        self._venue_sync = venue_sync
        self._pruner = pruner
        self._clock_ns = clock_ns

    async def staleness(self) -> None:
        self._feed.tick()
        self._quiet.check(self._books, self._clock_ns())
        status = self._venue_status()
        if status is not None:
            self._venue_watch.check(status, len(self._engine.open_orders()))
        await self._control_requests.poll()
        await self.reconcile(unknown_only=True)

    async def reconcile(self, *, unknown_only: bool = False) -> None:
        """The venue's truth about our open orders while running (the same path as at start): an
        order it no longer lists is settled from its trades, never left "live". ``unknown_only``:
        the staleness tick's quick pass, for orders whose outcome is unknown (never resubmitted:
        reconciled every few seconds until the venue's view settles them)."""
        orders = self._engine.open_orders()
        if unknown_only:
            orders = [o for o in orders if o.status is OrderStatus.SUBMITTED_UNKNOWN]
        if not orders:
            return
        try:
            report = await self._engine.reconcile()
        except Exception:
            log.exception("reconciling open orders with the venue failed; will retry")
            return
        if report.changed:
            log.info("reconciled with the venue: %s", report.changed)

    async def balances(self) -> None:
        if self._balances is not None:
            await self._balances.refresh()

    @property
    def syncs_venue(self) -> bool:
        return self._venue_sync is not None

    async def venue_sync(self) -> None:
        """The venue's positions against ours (:mod:`core.app.venue_sync`; never raises)."""
        if self._venue_sync is not None:
            await self._venue_sync.run()

    @property
    def prunes(self) -> bool:
        return self._pruner is not None

    async def prune(self) -> None:
        """Feed-table retention (:mod:`core.store.retention`); a failure is logged, the next run retries."""
        if self._pruner is None:
            return
        try:
            await self._pruner.run()
        except Exception:
            log.exception("pruning the feed tables failed; the next run retries")

    async def refresh_markets(self) -> None:
        await self._market_refresh.run()

    async def health_ping(self) -> None:
        await self._reports.health_ping()

    async def daily_summary(self) -> None:
        await self._reports.daily_summary()


def build_jobs(
    settings: Settings,
    bus: EventBus,
    system: System,
    readings: ServiceReadings,
    handle_requests: Callable[[], Awaitable[object]],
    counters: TradingCounters,
    *,
    admins: AdminNotice,
) -> Jobs:
    """The jobs over a built system; ``readings`` is the control facade, ``handle_requests`` runs
    the pending control requests, ``admins`` reaches the chat front end's admins."""
    s, registry, engine = settings, system.registry, system.execution.engine
    return Jobs(
        feed=system.pipeline,
        books=system.processor.books,
        quiet=QuietBooks(bus, registry.label, quiet_after_s=s.feed.quiet_after_s),
        venue_watch=VenueWatch(bus, after_failures=s.relayer.unreachable_after, heartbeat_s=s.relayer.heartbeat_s),
        venue_status=system.execution.venue_status,
        engine=engine,
        control_requests=ControlRequests(handle_requests),
        market_refresh=MarketRefresh(
            s.gamma, system.sessions, registry, engine, bus, system.resolutions, watch=system.watch
        ),
        reports=Reports(readings, counters, bus, admins),
        balances=system.balances,
        venue_sync=system.venue_sync,
        pruner=Pruner(system.db, s.db.retention) if s.db.retention.enabled else None,
    )
