"""The composition root: builds every component from Settings and runs them on ONE asyncio loop.

Feed (websocket -> processor -> books -> batched writer), strategies (Dutch book, spread quoter),
risk gate + engine + relayer (paper / CLOB dry-run / CLOB live), the control facade, the Telegram
bot (manual PTB lifecycle), scheduled jobs (APScheduler 3.x) and the metrics endpoint.

Start-up order matters for safety: the database is checked first, the engine reconciles its
orders with the venue and the gate is forced disarmed *before* any feed or strategy runs.
Shutdown reverses it: stop strategies, disarm, cancel open orders if configured, stop the feed,
flush the writer, stop the bot, close sockets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from core.control.facade import Control, Runtime
from core.control.types import FeedConnection, PreflightReport
from core.events import Alert, AlertCleared, EventBus, FillEvent, OrderEvent, Severity
from core.execution.funds import PaperFunds, VenueFunds
from core.execution.positions import PositionBook
from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_config import clob_relayer
from core.execution.types import TickAware
from core.execution.venue_link import VenueStatus
from core.feed.events import BookStatusChanged, FeedEvent, TickSizeChanged, TradePrint
from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
from core.feed.processor import FeedProcessor
from core.registry import MarketRegistry
from core.settings import LoadedSettings, Settings
from core.strategies.dutch import DutchConfig, DutchOpportunity
from core.strategies.runner import DutchRunner, QuoterRunner, touched_assets
from core.strategies.spread import QuoteAction, QuoteDecision, SpreadConfig, SpreadQuoter
from core.supervise import Supervisor
from core.types import BookStatus, BookView, MarketInfo, Mode
from core.venue_watch import VenueWatch

log = logging.getLogger(__name__)

RESEED_COOLDOWN_S = 2.0


@dataclass
class ServiceOptions:
    migrate: bool = False  # apply pending migrations at start (the demo does; production runs `polybot migrate`)
    bot_request: Any = None  # a telegram BaseRequest double: offline bot, no polling
    with_bot: bool | None = None  # None: when [telegram] enabled and a token is set
    staleness_tick_s: float = 2.0
    bot_clock: Callable[[], float] | None = None  # drives confirmation expiry, rate limits, alert cooldown
    frontend: Callable[[Service], Awaitable[FrontEnd]] | None = None  # e.g. bot.app.start_telegram
    clock: Callable[[], float] = time.time


class FrontEnd(Protocol):
    """A chat front end the service hosts on its loop (built by the caller, e.g. ``bot.app.start_telegram``)."""

    async def stop(self) -> None: ...

    async def notify_admins(self, text: str) -> None: ...


@dataclass
class ServiceCounters:
    opportunities: int = 0
    groups_submitted: int = 0
    missed: dict[str, int] = field(default_factory=dict)
    quotes: int = 0
    pulls: int = 0

    def miss(self, reason: str) -> None:
        self.missed[reason] = self.missed.get(reason, 0) + 1


class FeedAdapter:
    """Connection view for the control facade (status/health) over MarketFeed stats."""

    def __init__(self, feed: Any) -> None:
        self.feed = feed

    def connections(self) -> list[FeedConnection]:
        if self.feed is None:
            return []
        now = time.time_ns()
        out = []
        for c in self.feed.stats().connections:
            last = c.last_frame_ns or c.last_pong_ns
            out.append(
                FeedConnection(
                    name=f"ws#{c.conn_id}",
                    state=str(c.state.value if hasattr(c.state, "value") else c.state),
                    assets=c.asset_count,
                    seconds_since_frame=None if last is None else max(0.0, (now - last) / 1e9),
                    reconnects=c.reconnects,
                )
            )
        return out


class Service:
    def __init__(self, loaded: LoadedSettings, options: ServiceOptions | None = None) -> None:
        self.loaded = loaded
        self.settings: Settings = loaded.settings
        self.opts = options or ServiceOptions()
        self.bus = EventBus()
        self.counters = ServiceCounters()
        self.supervisor = Supervisor(self.bus)
        self.started = False
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inflight_groups: set[str] = set()
        self._paper_pending: set[str] = set()
        # re-seeds: at most one per asset per RESEED_COOLDOWN_S (a feed that keeps disagreeing must
        # not become a storm of GET /book calls that starves the loop); a fault inside the cooldown
        # is not dropped but answered by one deferred re-seed when it ends
        self._reseed_at: dict[str, float] = {}
        self._reseed_waiting: set[str] = set()
        self._quiet: set[str] = set()
        self._balance_tokens: set[str] = set()
        self._feed_down_since: dict[str, int] = {}
        self.startup_alerts: list[
            Alert
        ] = []  # published before the chat front end started (it replays them)  # connection -> ns of its last frame before it died
        self._balance_refreshing = False
        # names this process in the control_requests table (which service claimed a request)
        self.instance_name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.dutch_runners: list[DutchRunner] = []
        self.quoters: list[QuoterRunner] = []
        self.feed: Any = None
        self.bot: Any = None
        self.scheduler: Any = None
        self.metrics_server: Any = None
        self._stop_event = asyncio.Event()

    # ------------------------------------------------------------------------------------
    # start
    # ------------------------------------------------------------------------------------
    async def start(self) -> None:
        from core.execution.store import SqlExecutionStore, record_alerts
        from core.markets import load_markets
        from core.store.db import create_engine, session_factory
        from core.store.migrate import ensure_schema
        from core.store.writer import BatchedWriter

        s = self.settings
        self.mode = s.mode
        self.db = create_engine(s.db.url)
        await ensure_schema(self.db, s.db.url, migrate=self.opts.migrate)
        self.sessions = session_factory(self.db)
        self.store = SqlExecutionStore(self.sessions)
        record_alerts(self.bus, self.store)
        self.bus.subscribe(OrderEvent, self._on_order_event)
        # alerts raised while starting (before the chat front end exists) are handed to it once it does
        stop_collecting = self.bus.subscribe(Alert, self.startup_alerts.append)

        self.registry = MarketRegistry(await load_markets(self.sessions))
        tracked = self._tracked_markets()
        assets = list(dict.fromkeys([t.token_id for m in tracked for t in m.tokens] + list(s.feed.assets)))
        self.processor = FeedProcessor(
            known_assets=set(assets) if assets else None,
            max_frame_bytes=s.feed.max_frame_bytes,
            staleness_ms=s.service.staleness_ms,
            burst_quiet_ms=LIVE_BURST_QUIET_MS,
            tick_sizes={t.token_id: m.tick_size for m in tracked for t in m.tokens},
        )
        log.info("feed fast path: %s", self.processor.kernel_status)
        self.writer = BatchedWriter(self.db)
        self.writer.start()
        self.pipeline = IngestPipeline(self.processor, self.writer, sinks=[self._on_feed_events])

        self.relayer = self._build_relayer()
        self.risk, self.engine = self._build_risk_and_engine()
        self.engine.register_markets(self.registry.all())
        for event_id, members in self._events(self.registry.all()).items():
            self.engine.set_event_markets(event_id, [m.condition_id for m in members])
        # the facade exists before the engine starts so that it hears what starting says (a reset of the
        # armed state, foreign orders); nothing can call it until the front ends start, at the end
        self.control = Control(
            Runtime(
                mode=self.mode,
                bus=self.bus,
                registry=self.registry,
                books=self.processor.books,
                risk=self.risk,
                engine=self.engine,
                sessions=self.sessions,
                feed=FeedAdapter(None),
                preflight=self._preflight,
                dutch=self._dutch_cfg(),
                staleness_ms=s.service.staleness_ms,
                frames=lambda: self.pipeline.stats.frames,
                extra_health=self._extra_health,
                audit_rows=self.writer,
                venue=self._venue_status,
                funds=self.funds.snapshot,
            )
        )
        await self.relayer.start()
        report = await self.engine.start()  # forces disarmed, rebuilds positions, reconciles orders
        log.info("engine reconciled %d order(s) at start: %s", report.checked, report.changed or "no change")
        resync = getattr(self.relayer, "resync", None)
        if resync is not None and self.mode is Mode.LIVE:
            # the user channel does not replay: fills made while we were down come from REST, and are
            # applied now that the engine knows its orders (the engine ignores fills it already has)
            await resync()
        if isinstance(self.funds, VenueFunds):
            await self.job_balances()
            if self.funds.collateral is None:
                log.warning(
                    "venue balance could not be read at start (%s): buys refused until it is", self.funds.last_error
                )
        self.bus.subscribe(FillEvent, self._on_fill_event)
        self.venue_watch = VenueWatch(
            self.bus,
            after_failures=s.relayer.unreachable_after,
            heartbeat_s=s.relayer.heartbeat_s,
        )

        self._build_strategies(tracked)
        self._bind_metrics()
        if assets:
            self._start_feed(assets)
        else:
            log.warning("no markets or assets configured: the feed is not started ([feed] markets / assets)")
        await self._start_metrics()
        self._start_scheduler()
        await self._start_bot()
        stop_collecting()
        self.started = True
        self.bus.publish(
            Alert(
                kind="service",
                severity=Severity.INFO,
                key="start",
                message=f"Polybot started in {self.mode.value} mode, disarmed; {len(tracked)} market(s), {len(assets)} asset(s)",
            )
        )

    def _tracked_markets(self) -> list[MarketInfo]:
        """Markets named in [feed] markets and the strategies, plus whole neg-risk events for Dutch."""
        s = self.settings
        refs = list(s.feed.markets) + list(s.strategies.dutch.markets) + list(s.strategies.spread.markets)
        out: dict[str, MarketInfo] = {}
        for ref in refs:
            market = self.registry.resolve(ref)
            out[market.condition_id] = market
            if market.neg_risk and market.neg_risk_market_id and ref in s.strategies.dutch.markets:
                for member in self.registry.event_members(market.neg_risk_market_id):
                    out[member.condition_id] = member
        return list(out.values())

    @staticmethod
    def _events(markets: Sequence[MarketInfo]) -> dict[str, list[MarketInfo]]:
        events: dict[str, list[MarketInfo]] = {}
        for m in markets:
            if m.neg_risk and m.neg_risk_market_id:
                events.setdefault(m.neg_risk_market_id, []).append(m)
        return events

    def _build_relayer(self) -> Any:
        r = self.settings.relayer
        if r.type == "fake":
            from core.execution.relayers.paper import PaperRelayer

            return PaperRelayer(self._book)

        relayer = clob_relayer(
            self.settings,
            dry_run=r.dry_run,
            user_ws_url=None if r.dry_run else self.settings.feed.user_ws_url,
            user_markets=[m.condition_id for m in self.registry.all()],
            heartbeat_interval_s=r.heartbeat_s,
        )
        for m in self.registry.all():
            relayer.prewarm_market(m)
        return relayer

    def _build_risk_and_engine(self) -> tuple[Any, Any]:
        from core.execution.engine import Engine
        from core.risk import RiskGate, RiskLimits

        s = self.settings
        limits = RiskLimits(
            max_order_notional=s.risk.max_order_notional,
            max_market_notional=s.risk.max_market_notional,
            max_event_notional=s.risk.max_event_notional,
            max_total_exposure=s.risk.max_total_exposure,
            daily_loss_limit=s.risk.max_daily_loss,
            error_breaker_max_errors=s.risk.error_rate_max,
            error_breaker_window_s=float(s.risk.error_rate_window_s),
            orders_per_s=float(s.risk.orders_per_s),
            order_burst=s.risk.orders_burst,
            cancels_per_s=float(s.risk.cancels_per_s),
            cancel_burst=s.risk.cancels_burst,
        )
        risk = RiskGate(limits, self.store, self.opts.clock, self.bus, mode=self.mode.value)
        positions = PositionBook(clock=self.opts.clock)
        self.funds = self._build_funds(positions)
        engine = Engine(
            self.relayer,
            risk,
            self.store,
            self.bus,
            relayer_max_retries=s.service.relayer_max_retries,
            relayer_retry_sleep_ms=s.service.relayer_retry_sleep_ms,
            engine_max_retries=s.service.engine_max_retries,
            engine_retry_sleep_ms=s.service.engine_retry_sleep_ms,
            one_leg_policy=s.risk.one_leg_policy,
            clock=self.opts.clock,
            book_provider=self._book,
            mark_provider=self._mark,
            positions=positions,
            funds=self.funds,
        )
        return risk, engine

    def _build_funds(self, positions: PositionBook) -> PaperFunds | VenueFunds:
        """Paper trades against a bankroll; live (and dry-run with API credentials) against what the
        venue says the account holds."""
        r = self.settings.relayer
        if isinstance(self.relayer, ClobRelayer) and (self.mode is Mode.LIVE or r.api_key is not None):
            return VenueFunds(self.relayer, max_age_s=self.settings.risk.balance_refresh_s)
        return PaperFunds(self.settings.risk.paper_bankroll, positions)

    def _book(self, token_id: str) -> BookView | None:
        return self.processor.books.get(token_id)

    def _mark(self, token_id: str) -> Decimal | None:
        book = self.processor.books.get(token_id)
        if book is None or book.status is not BookStatus.OK:
            return None
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        return bid if bid is not None else ask

    def _dutch_cfg(self) -> DutchConfig:
        d = self.settings.strategies.dutch
        from core.fees import rate_from_bps

        return DutchConfig(
            safety_margin_usdc=d.safety_margin_usdc,
            slippage_ticks=d.slippage_ticks,
            fee_rate_override=None if d.fee_bps is None else rate_from_bps(d.fee_bps),
            max_sets=d.max_sets,
        )

    def _build_strategies(self, tracked: Sequence[MarketInfo]) -> None:
        s = self.settings.strategies
        if s.dutch.enabled:
            cfg = self._dutch_cfg()
            seen: set[str] = set()
            for ref in s.dutch.markets:
                market = self.registry.resolve(ref)
                if market.neg_risk and market.neg_risk_market_id:
                    if market.neg_risk_market_id in seen:
                        continue
                    seen.add(market.neg_risk_market_id)
                    members = self.registry.event_members(market.neg_risk_market_id)
                    if market.neg_risk_augmented or any(m.neg_risk_augmented for m in members):
                        log.warning("dutch: event %s is augmented (outcomes do not cover everything): skipped", ref)
                        continue
                    runner_markets = members
                else:
                    runner_markets = [market]
                self.dutch_runners.append(DutchRunner(runner_markets, cfg, _EngineDutchSink(self), self.processor))
        if s.spread.enabled:
            quoter = SpreadQuoter(
                SpreadConfig(
                    min_spread_ticks=s.spread.min_spread_ticks,
                    requote_ticks=s.spread.requote_ticks,
                    size=s.spread.size,
                    skew_per_share=s.spread.skew_per_share,
                    max_inventory=s.spread.max_inventory,
                )
            )
            for ref in s.spread.markets:
                market = self.registry.resolve(ref)
                for tok in market.tokens:
                    runner = QuoterRunner(
                        market, tok, quoter, _EngineQuoteSink(self, market), self.processor, armed=False
                    )
                    self.quoters.append(runner)

    # ------------------------------------------------------------------------------------
    # the feed and what reacts to it
    # ------------------------------------------------------------------------------------
    def _start_feed(self, assets: list[str]) -> None:
        from core.feed.ws import MarketFeed

        f = self.settings.feed
        self.feed = MarketFeed(
            f.ws_url,
            assets,
            self.pipeline.on_frame,
            max_assets_per_connection=f.max_assets_per_connection,
            ping_interval_s=f.ping_interval_s,
            dead_after_s=f.dead_after_s,
            reconnect_initial_s=f.reconnect_initial_ms / 1000.0,
            reconnect_max_s=f.reconnect_max_ms / 1000.0,
            jitter=f.reconnect_jitter,
            max_frame_bytes=f.max_frame_bytes,
            on_state=self._on_connection_event,
        )
        self.control.rt.feed = FeedAdapter(self.feed)

        async def run_feed() -> None:
            await self.feed.start()
            await self._stop_event.wait()

        self.supervisor.start("feed", run_feed)

    def _on_connection_event(self, event: Any) -> None:
        self.pipeline.on_connection_event(event)
        state = str(getattr(event.state, "value", event.state))
        key = f"ws#{event.conn_id}"
        if state == "dead":
            if key not in self._feed_down_since:
                # the outage began with the last frame, not when it was declared dead
                last = next(
                    (
                        c.last_frame_ns or c.last_pong_ns
                        for c in self.feed.stats().connections
                        if c.conn_id == event.conn_id
                    ),
                    None,
                )
                self._feed_down_since[key] = last or event.at_ns
            self.bus.publish(
                Alert(
                    kind="feed_dead",
                    severity=Severity.CRITICAL,
                    key=key,
                    message=f"market feed connection {key} is dead ({event.reason or 'no frames'}); reconnecting",
                )
            )
        elif state in ("reconnected", "connected"):
            since = self._feed_down_since.pop(key, None)
            lasted = None if since is None else max(0.0, (event.at_ns - since) / 1e9)
            self.bus.publish(
                AlertCleared(kind="feed_dead", key=key, message="connection re-established", duration_s=lasted)
            )

    def _on_feed_events(self, events: list[FeedEvent]) -> None:
        recv_ns = time.time_ns()
        for ev in events:
            if type(ev) is BookStatusChanged:
                self._on_book_status(ev)
            elif type(ev) is TickSizeChanged:
                self._on_tick_size(ev)
        if not self._stopping:
            for runner in self.dutch_runners:
                runner.on_events(events, recv_ns)
            armed = self.risk.armed
            for q in self.quoters:
                pos = self.engine.positions.get(q.token.token_id)
                q.inventory = pos.shares if pos is not None else Decimal(0)
                if q.armed != armed:
                    q.set_armed(armed, recv_ns)
                q.on_events(events, recv_ns)
        paper_update = getattr(self.relayer, "on_book_update", None)
        if paper_update is not None:
            for asset in touched_assets(events):
                if asset not in self._paper_pending and self._has_open_orders(asset):
                    self._paper_pending.add(asset)
                    self._spawn(self._paper_book_update(asset), f"paper-fill:{asset[:8]}")
            for ev in events:
                if type(ev) is TradePrint and ev.asset_id not in self._paper_pending:
                    self._paper_pending.add(ev.asset_id)
                    self._spawn(self._paper_book_update(ev.asset_id), "paper-fill")

    def _on_tick_size(self, ev: TickSizeChanged) -> None:
        """The venue changed a market's tick: orders are checked and signed on the new grid from now
        on (a finer tick would otherwise be refused until a restart)."""
        market = self.registry.for_token(ev.asset_id)
        if market is None or market.tick_size == ev.new_tick:
            return
        updated = replace(market, tick_size=ev.new_tick)
        self.registry.update([updated])
        self.engine.register_markets([updated])
        if isinstance(self.relayer, TickAware):
            for tok in updated.tokens:
                self.relayer.update_tick_size(tok.token_id, ev.new_tick)
        log.info("tick size of %s: %s -> %s", updated.slug or updated.condition_id, market.tick_size, ev.new_tick)

    def _has_open_orders(self, token_id: str) -> bool:
        return any(o.token_id == token_id for o in self.engine.open_orders())

    async def _paper_book_update(self, token_id: str) -> None:
        try:
            await self.relayer.on_book_update(token_id)
        finally:
            self._paper_pending.discard(token_id)

    def _on_book_status(self, ev: BookStatusChanged) -> None:
        if ev.new is BookStatus.INCONSISTENT:
            self.bus.publish(
                Alert(
                    kind="book_inconsistent",
                    severity=Severity.WARNING,
                    key=ev.asset_id,
                    message=f"book {self._label(ev.asset_id)} inconsistent ({ev.reason}); not trading it until re-seeded",
                )
            )
            if ev.asset_id not in self._reseed_waiting:
                self._reseed_waiting.add(ev.asset_id)
                self._spawn(self._reseed_when_due(ev.asset_id), "reseed")
        elif ev.new is BookStatus.OK and ev.old is BookStatus.INCONSISTENT:
            self.bus.publish(AlertCleared(kind="book_inconsistent", key=ev.asset_id, message="book re-seeded"))

    async def _reseed_when_due(self, asset_id: str) -> None:
        try:
            wait = self._reseed_at.get(asset_id, -RESEED_COOLDOWN_S) + RESEED_COOLDOWN_S - time.monotonic()
            if wait > 0:
                log.debug("re-seed of %s in %.1fs (one per %ss)", self._label(asset_id), wait, RESEED_COOLDOWN_S)
                await asyncio.sleep(wait)
        finally:
            self._reseed_waiting.discard(asset_id)
        book = self.processor.books.get(asset_id)
        if book is None or book.raw_status is not BookStatus.INCONSISTENT:
            return  # healed meanwhile (a snapshot from the feed)
        self._reseed_at[asset_id] = time.monotonic()
        await self._reseed(asset_id)

    async def _reseed(self, asset_id: str) -> None:
        """Re-seed an inconsistent book from CLOB GET /book (the feed's next snapshot also heals it)."""
        import httpx

        url = f"{self.settings.clob.url.rstrip('/')}/book"
        try:
            async with httpx.AsyncClient(timeout=self.settings.clob.timeout_s) as client:
                resp = await client.get(url, params={"token_id": asset_id})
            if resp.status_code == 200:
                self._on_feed_events(self.processor.apply_rest_book(asset_id, resp.content))
            else:
                log.warning("re-seed of %s: GET /book answered %s", self._label(asset_id), resp.status_code)
        except httpx.HTTPError as exc:
            log.warning("re-seed of %s failed: %s", self._label(asset_id), exc)

    def _label(self, token_id: str) -> str:
        market = self.registry.for_token(token_id)
        tok = self.registry.token(token_id)
        if market is None or tok is None:
            return token_id[:12] + "…"
        return f"{market.slug or market.condition_id[:10]} {tok.outcome}"

    def _on_order_event(self, ev: OrderEvent) -> None:
        status = str(getattr(ev.status, "value", ev.status))
        if status in ("rejected", "failed"):
            self.bus.publish(
                Alert(
                    kind="order_rejected" if status == "rejected" else "order_failed",
                    severity=Severity.WARNING,
                    key=ev.client_order_id,
                    message=f"order {ev.client_order_id} {status}: {ev.detail or ev.reason_code or 'no reason given'}",
                )
            )

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------------------------------
    # jobs
    # ------------------------------------------------------------------------------------
    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.cron import CronTrigger

        s = self.settings.service
        sched = AsyncIOScheduler(timezone=UTC, event_loop=asyncio.get_running_loop())
        sched.add_job(
            self.job_staleness,
            "interval",
            seconds=self.opts.staleness_tick_s,
            id="staleness",
            max_instances=1,
            coalesce=True,
        )
        sched.add_job(
            self.job_refresh_markets,
            "interval",
            minutes=s.market_refresh_minutes,
            id="market_refresh",
            max_instances=1,
            coalesce=True,
        )
        if s.health_ping_minutes > 0:
            sched.add_job(
                self.job_health_ping,
                "interval",
                minutes=s.health_ping_minutes,
                id="health_ping",
                max_instances=1,
                coalesce=True,
            )
        sched.add_job(
            self.job_reconcile,
            "interval",
            seconds=s.reconcile_s,
            id="reconcile",
            max_instances=1,
            coalesce=True,
        )
        if isinstance(self.funds, VenueFunds):
            sched.add_job(
                self.job_balances,
                "interval",
                seconds=self.settings.risk.balance_refresh_s,
                id="balances",
                max_instances=1,
                coalesce=True,
            )
        t = s.daily_summary_time
        sched.add_job(
            self.job_daily_summary, CronTrigger(hour=t.hour, minute=t.minute, timezone=UTC), id="daily_summary"
        )
        sched.start()
        self.scheduler = sched

    async def job_staleness(self) -> None:
        """Close quiet bursts, mark stale books, flag quiet markets on live sockets (one alert for all),
        watch the venue's reachability; then the database and venue round trips (control requests,
        unknown outcomes), so that a slow database never delays what the feed has to say."""
        self.pipeline.tick()
        self._flag_quiet_books()
        status = self._venue_status()
        if status is not None:
            self.venue_watch.check(status, len(self.engine.open_orders()))
        await self._control_requests()
        await self.job_reconcile(unknown_only=True)

    def _flag_quiet_books(self) -> None:
        quiet_ns = int(self.settings.feed.quiet_after_s * 1e9)
        now = time.time_ns()
        quiet = sorted(
            token_id
            for token_id, book in self.processor.books.items()
            if (last := getattr(book, "last_update_ns", 0) or 0) and now - last > quiet_ns
        )
        if quiet and set(quiet) != self._quiet:
            names = ", ".join(self._label(t) for t in quiet[:5]) + (" …" if len(quiet) > 5 else "")
            self.bus.publish(
                Alert(
                    kind="market_quiet",
                    severity=Severity.INFO,
                    key="books",
                    message=f"{len(quiet)} book(s) without an update for {int(quiet_ns / 1e9)}s on a live socket: {names}",
                )
            )
        elif not quiet and self._quiet:
            self.bus.publish(AlertCleared(kind="market_quiet", key="books", message="markets trading again"))
        self._quiet = set(quiet)

    async def job_reconcile(self, *, unknown_only: bool = False) -> None:
        """The venue's truth about our open orders while running (the same path as at start): an
        order it no longer lists is settled from its trades, never left "live". ``unknown_only``:
        the staleness tick's quick pass, for orders whose outcome is unknown (never resubmitted:
        reconciled every few seconds until the venue's view settles them)."""
        from core.execution.types import OrderStatus

        orders = self.engine.open_orders()
        if unknown_only:
            orders = [o for o in orders if o.status is OrderStatus.SUBMITTED_UNKNOWN]
        if not orders:
            return
        try:
            report = await self.engine.reconcile()
            if report.changed:
                log.info("reconciled with the venue: %s", report.changed)
        except Exception:
            log.exception("reconciling open orders with the venue failed; will retry")

    async def job_balances(self) -> None:
        """Re-read collateral and the shares of every token we hold or have orders on."""
        if not isinstance(self.funds, VenueFunds):
            return
        tokens = {p.token_id for p in self.engine.positions.open_positions()}
        tokens |= {o.token_id for o in self.engine.open_orders()}
        await self.funds.refresh(sorted(tokens))

    def _on_fill_event(self, ev: FillEvent) -> None:
        """A confirmed fill moved money and shares at the venue: read them again (one read at a time)."""
        if isinstance(self.funds, VenueFunds) and ev.fill.confirmed and not self._stopping:
            self._balance_tokens.add(ev.fill.token_id)
            if not self._balance_refreshing:
                self._balance_refreshing = True
                self._spawn(self._refresh_after_fills(), "balances")

    async def _refresh_after_fills(self) -> None:
        assert isinstance(self.funds, VenueFunds)
        try:
            while self._balance_tokens:
                tokens, self._balance_tokens = sorted(self._balance_tokens), set()
                await self.funds.refresh(tokens)
        finally:
            self._balance_refreshing = False

    def _venue_status(self) -> VenueStatus | None:
        return self.relayer.venue_status() if isinstance(self.relayer, ClobRelayer) and self.mode is Mode.LIVE else None

    async def _control_requests(self) -> None:
        """Act on ``polybot disarm`` / ``polybot kill`` requests written to the database (claimed
        atomically: a request runs once, in one service, and never after it expired)."""
        from core.control.requests import handle_pending_requests

        try:
            await handle_pending_requests(self.sessions, self.control, handled_by=self.instance_name)
        except Exception:
            log.exception("could not handle a control request from the database")

    async def job_refresh_markets(self) -> None:
        from core.markets import GammaClient, MarketFilters, load_markets, refresh_markets

        g = self.settings.gamma
        try:
            async with GammaClient(g.url, timeout_s=g.timeout_s, max_retries=g.max_retries) as client:
                result = await refresh_markets(
                    self.sessions, client, MarketFilters(active=g.active, closed=g.closed, limit=g.page_limit)
                )
            self.registry.update(await load_markets(self.sessions))
            self.engine.register_markets(self.registry.all())
            self.bus.publish(AlertCleared(kind="market_refresh", key="gamma"))
            log.info("market refresh: %s", result)
        except Exception as exc:
            self.bus.publish(
                Alert(
                    kind="market_refresh",
                    severity=Severity.WARNING,
                    key="gamma",
                    message=f"Gamma refresh failed: {exc}",
                )
            )

    async def job_health_ping(self) -> None:
        report = await self.control.health()
        status = await self.control.status()
        if self.bot is not None:
            text = ("✅ healthy" if report.ok else "⚠️ unhealthy: " + "; ".join(report.reasons[:5])) + (
                f" — {status.mode}, {'armed' if status.armed else 'disarmed'}, {status.frames} frames"
            )
            await self.bot.notify_admins(text)

    async def job_daily_summary(self) -> None:
        pnl = await self.control.pnl()
        status = await self.control.status()
        self.bus.publish(
            Alert(
                kind="daily_summary",
                severity=Severity.INFO,
                key=datetime.now(UTC).strftime("%Y-%m-%d"),
                message=(
                    f"daily summary: realised today {pnl.realised_today} pUSD, unrealised {pnl.unrealised} pUSD, "
                    f"{status.open_orders} open order(s), {status.positions} position(s), "
                    f"{self.counters.opportunities} opportunities, {self.counters.groups_submitted} groups sent"
                ),
            )
        )

    def _extra_health(self) -> list[str]:
        out = []
        st = self.writer.stats
        if st.queue_full_count:
            out.append(f"writer queue was full {st.queue_full_count} time(s)")
        if self.pipeline.stats.rows_refused:
            out.append(f"{self.pipeline.stats.rows_refused} feed row(s) could not be queued for storage")
        for name, comp in self.supervisor.components.items():
            if not comp.running and not self._stopping:
                out.append(f"component {name} is down ({comp.last_error or 'stopped'})")
        return out

    async def _preflight(self, offline: bool) -> PreflightReport:
        from core.preflight import run_preflight

        return await run_preflight(self.loaded, offline=offline)

    # ------------------------------------------------------------------------------------
    # bot and metrics
    # ------------------------------------------------------------------------------------
    async def _start_bot(self) -> None:
        """Start the chat front end the caller supplied (core never imports ``bot/``)."""
        t = self.settings.telegram
        wanted = self.opts.with_bot if self.opts.with_bot is not None else (t.enabled and t.token is not None)
        if not wanted:
            log.warning("Telegram is not configured ([telegram] enabled + token): running without the bot")
            return
        if self.opts.frontend is None:
            log.warning("Telegram is configured but this process was started without a chat front end")
            return
        self.bot = await self.opts.frontend(self)

    def _bind_metrics(self) -> None:
        try:
            from core.metrics.collect import METRICS
        except ImportError:
            return
        bind = getattr(METRICS, "bind", None)
        if bind is not None:
            bind(
                processor=self.processor,
                feed=None,
                writer=self.writer,
                pipeline=self.pipeline,
                engine=self.engine,
                risk=self.risk,
                bus=self.bus,
                opportunities={"dutch": self.counters},
                runners=lambda: [*self.dutch_runners, *self.quoters],
            )

    async def _start_metrics(self) -> None:
        m = self.settings.metrics
        if not m.enabled:
            return
        from core.metrics.collect import METRICS, serve_metrics

        if self.feed is not None:
            METRICS.bind(feed=self.feed)
        self.metrics_server = await serve_metrics(m.host, m.port)
        log.info("metrics on http://%s:%s/metrics", m.host, self.metrics_server.port)

    # ------------------------------------------------------------------------------------
    # stop
    # ------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """A stop asked for by the operator or a signal: from here on a component that returns is
        finishing, not failing (it must not raise a component_failed alert)."""
        self.supervisor.begin_stop()
        self._stop_event.set()

    async def wait(self) -> None:
        await self._stop_event.wait()

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.supervisor.begin_stop()
        self._stop_event.set()
        if not self.started:
            await self._close_storage()
            return
        await self.risk.disarm("service", "shutdown")
        if self.settings.service.cancel_on_shutdown and self.engine.open_orders():
            try:
                res = await self.engine.cancel_all()
                log.info("shutdown: canceled %d open order(s)", len(res.canceled))
            except Exception:
                log.exception("shutdown: cancel_all failed")
        self.bus.publish(Alert(kind="service", severity=Severity.INFO, key="stop", message="Polybot stopping"))
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.feed is not None:
            await self.feed.stop()
        await self.supervisor.stop()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.bus.drain()
        if self.bot is not None:
            await self.bot.stop()
        if self.metrics_server is not None:
            await self.metrics_server.aclose()
        await self.relayer.close()
        await self._close_storage()

    async def _close_storage(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None:
            await writer.close()
        db = getattr(self, "db", None)
        if db is not None:
            await db.dispose()


class _EngineDutchSink:
    """Dutch opportunities -> the engine (only when armed; otherwise counted as missed)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_opportunity(self, opp: DutchOpportunity, books: Mapping[str, BookView], frame_no: int, recv_ns: int) -> None:
        svc = self.svc
        svc.counters.opportunities += 1
        if svc._stopping:
            svc.counters.miss("stopping")
            return
        if not svc.risk.armed:
            svc.counters.miss("not_armed")
            return
        if opp.group_id in svc._inflight_groups:
            svc.counters.miss("in_flight")
            return
        svc._inflight_groups.add(opp.group_id)
        markets = {leg.market: svc.registry.get(leg.market) for leg in opp.legs}
        if any(m is None for m in markets.values()):
            svc.counters.miss("unknown_market")
            svc._inflight_groups.discard(opp.group_id)
            return

        async def submit() -> None:
            try:
                result = await svc.engine.submit_group(list(opp.legs), {k: v for k, v in markets.items() if v})
                if result.ok:
                    svc.counters.groups_submitted += 1
                else:
                    svc.counters.miss(str(result.reason_code or f"group_{result.state}"))
                    log.info("dutch group %s not placed: %s %s", opp.group_id, result.reason_code, result.detail)
            finally:
                svc._inflight_groups.discard(opp.group_id)

        svc._spawn(submit(), f"dutch:{opp.group_id[:8]}")


class _EngineQuoteSink:
    """Quote decisions -> cancel the resting quotes and place new ones through the engine."""

    def __init__(self, svc: Service, market: MarketInfo) -> None:
        self.svc = svc
        self.market = market
        self.resting: list[str] = []
        self._seq = 0

    def on_quote(self, decision: QuoteDecision, frame_no: int, recv_ns: int) -> None:
        if decision.action is not QuoteAction.QUOTE or decision.quotes is None or not self.svc.risk.armed:
            return
        self.svc.counters.quotes += 1
        self._seq += 1
        intents = [i for i in (decision.quotes.bid, decision.quotes.ask) if i is not None]
        seq = self._seq
        self.svc._spawn(self._replace(intents, seq), "quote")

    async def _replace(self, intents: list[Any], seq: int) -> None:
        await self._cancel_resting()
        for intent in intents:
            result = await self.svc.engine.submit(intent, self.market, seq=f"q{seq}")
            if result.ok:
                self.resting.append(result.client_order_id)

    async def _cancel_resting(self) -> None:
        for coid in self.resting:
            await self.svc.engine.cancel(coid)
        self.resting = []

    def on_pull(self, reason: str, frame_no: int, recv_ns: int) -> None:
        self.svc.counters.pulls += 1
        if self.resting:
            self.svc._spawn(self._cancel_resting(), "quote-pull")

    def on_fill(self, *args: Any, **kwargs: Any) -> None:
        """Live fills reach positions through the engine; the runner's own paper estimate is ignored."""
