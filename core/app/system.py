"""The parts below the control facade, built and wired together (not started yet).

Storage (database, execution store, batched writer), the known markets, the ingest pipeline and
its books, the execution stack, the feed link and the trading wiring. Everything that must be
closed is registered on ``resources`` as soon as it exists, so a start that fails half-way
closes what it had opened.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.app import strategies
from core.app.alerts import BookAlerts, FeedDeadAlerts, OrderAlerts
from core.app.balances import VenueBalances
from core.app.execution_stack import ExecutionStack, build_execution
from core.app.feed_link import FeedLink, FromFeedWorker
from core.app.lifecycle import Lifecycle
from core.app.order_sinks import EngineDutchSink, EngineQuoteSink, TradingCounters
from core.app.paper_fills import PaperFills
from core.app.reseed import BookFetcher, ClobBookFetcher, Reseeder
from core.app.resolution import MarketResolutions
from core.app.settlement import Settlement, build_settlement
from core.app.settlement_sender import settlement_sender
from core.app.tick_sizes import TickSizes
from core.app.trading import TradingWiring
from core.app.universe import feed_assets, neg_risk_events, tracked_markets
from core.app.user_markets import UserMarketSync
from core.app.venue_sync import VenueSync, build_venue_sync
from core.app.watch import Watcher
from core.events import EventBus, OrderEvent
from core.execution.alert_rows import record_alerts
from core.execution.funds import VenueFunds
from core.execution.relayers.paper import PaperRelayer
from core.execution.store import SqlExecutionStore
from core.execution.types import BookFills
from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
from core.feed.processor import FeedProcessor
from core.markets import load_markets
from core.metrics.collect import METRICS
from core.registry import MarketRegistry
from core.settings import Settings
from core.store.db import create_engine, session_factory
from core.store.migrate import ensure_schema
from core.store.writer import BatchedWriter
from core.types import MarketInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class System:
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    registry: MarketRegistry
    tracked: list[MarketInfo]
    assets: list[str]
    writer: BatchedWriter
    pipeline: IngestPipeline
    execution: ExecutionStack
    link: FeedLink | None  # None: no market or asset to follow
    trading: TradingWiring
    balances: VenueBalances | None  # None: funds are not the venue's (paper)
    resolutions: MarketResolutions
    venue_sync: VenueSync | None = None  # None: paper (no venue position to compare with)
    settlement: Settlement | None = None  # merge and redeem (always built by build_system)
    watch: Watcher | None = None  # what the feed follows while running (always built by build_system)
    user_markets: UserMarketSync | None = None  # what the user channel follows (None: no CLOB relayer)

    @property
    def processor(self) -> FeedProcessor:
        return self.pipeline.processor


async def build_system(
    settings: Settings,
    bus: EventBus,
    resources: contextlib.AsyncExitStack,
    counters: TradingCounters,
    lifecycle: Lifecycle,
    *,
    migrate: bool,
    clock: Callable[[], float],
) -> System:
    s = settings
    db = create_engine(s.db.url)
    resources.push_async_callback(db.dispose)
    await ensure_schema(db, s.db.url, migrate=migrate)
    sessions = session_factory(db)
    store = SqlExecutionStore(sessions)
    resources.push_async_callback(store.close)  # before the engine's pool is disposed
    record_alerts(bus, store)

    registry = MarketRegistry(await load_markets(sessions))
    bus.subscribe(OrderEvent, OrderAlerts(bus, registry.label).on_order_event)
    tracked = tracked_markets(s, registry)
    watch = Watcher(
        registry=registry, sessions=sessions, bus=bus, rules=s.feed.watch, configured=tracked, raw_assets=s.feed.assets
    )
    await watch.load()  # the persisted watch list and the rules' selection join the start set
    assets = list(dict.fromkeys(feed_assets(s, tracked) + watch.desired_assets()))
    processor = FeedProcessor(
        known_assets=set(assets) if assets or watch.active else None,
        max_frame_bytes=s.feed.max_frame_bytes,
        staleness_ms=s.service.staleness_ms,
        burst_quiet_ms=LIVE_BURST_QUIET_MS,
        tick_sizes={t.token_id: m.tick_size for m in tracked for t in m.tokens},
    )
    log.info("feed fast path: %s", processor.kernel_status)
    writer = BatchedWriter(db)
    writer.start()
    resources.push_async_callback(writer.close)
    pipeline = IngestPipeline(processor, writer, live=True)  # quiet bursts judged only while the loop keeps up
    resources.callback(pipeline.close)

    audited = METRICS.audit_store(store)  # every relayer call counted as the engine records it
    execution = build_execution(s, registry, processor.books, store, bus, clock, engine_store=audited)
    resources.push_async_callback(execution.relayer.close)
    execution.engine.register_markets(registry.all())
    for event_id, members in neg_risk_events(registry.all()).items():
        execution.engine.set_event_markets(event_id, [m.condition_id for m in members])
    relayer = execution.relayer
    user_markets = None if isinstance(relayer, PaperRelayer) else UserMarketSync(bus, execution.engine, relayer)
    funds = execution.funds
    balances = VenueBalances(funds, execution.engine, lifecycle) if isinstance(funds, VenueFunds) else None

    fetcher = ClobBookFetcher(s.clob.url, timeout_s=s.clob.timeout_s)
    resources.push_async_callback(fetcher.aclose)
    books_from: BookFetcher = fetcher if s.feed.source == "ws" else FromFeedWorker()  # bus: never GET /book here
    trading = _trading(s, bus, registry, processor, execution, books_from, counters, lifecycle)
    resolutions = MarketResolutions(
        registry=registry,
        engine=execution.engine,
        books=processor.books,
        sessions=sessions,
        strategies=trading,
        bus=bus,
        spawn=lifecycle.spawn,
        watched=[m.condition_id for m in tracked],
    )
    if resolutions.already_closed(tracked):
        log.info("followed markets already closed: not traded")
    pipeline.add_sink(resolutions.on_events)  # first: a resolved market's runners are gone before they see the batch
    pipeline.add_sink(trading.on_events)
    watch.books, watch.holdings, watch.resolved = processor, execution.engine, resolutions.resolved.keys
    conditions = {t.token_id: m.condition_id for m in registry.all() for t in m.tokens}
    link = FeedLink(
        s.feed, assets, pipeline, FeedDeadAlerts(bus), on_started=watch.apply, bus=s.bus, conditions=conditions
    )
    watch.feed = link.feed
    sync = build_venue_sync(s, execution, registry, bus, resources)
    sender = settlement_sender(s, sessions, resources)
    settlement = build_settlement(s, bus, registry, execution, resolutions, lifecycle.spawn, sender)
    gc.freeze()  # what is built lives as long as the service: no full collection rescans it (docs/soak.md)
    resources.callback(gc.unfreeze)
    return System(
        db,
        sessions,
        registry,
        tracked,
        assets,
        writer,
        pipeline,
        execution,
        link,
        trading,
        balances,
        resolutions,
        sync,
        settlement,
        watch,
        user_markets,
    )


def bind_metrics(system: System, bus: EventBus, counters: TradingCounters) -> None:
    """Point the metrics registry at this system's parts (read when /metrics is scraped)."""
    METRICS.bind(
        processor=system.processor,
        feed=None if system.link is None else system.link.feed,
        market_bus=None if system.link is None else system.link.bus_stats,
        writer=system.writer,
        pipeline=system.pipeline,
        engine=system.execution.engine,
        risk=system.execution.risk,
        bus=bus,
        opportunities={"dutch": counters},
        runners=system.trading.runners,
    )


def _trading(
    settings: Settings,
    bus: EventBus,
    registry: MarketRegistry,
    processor: FeedProcessor,
    execution: ExecutionStack,
    fetcher: BookFetcher,
    counters: TradingCounters,
    lifecycle: Lifecycle,
) -> TradingWiring:
    engine, gate, relayer = execution.engine, execution.risk, execution.relayer
    dutch_sink = EngineDutchSink(engine, gate, registry, counters, lifecycle)

    def quote_sink(market: MarketInfo) -> EngineQuoteSink:
        return EngineQuoteSink(engine, gate, market, counters, lifecycle)

    return TradingWiring(
        book_alerts=BookAlerts(bus, registry.label),
        reseeder=Reseeder(processor, fetcher, registry.label),
        tick_sizes=TickSizes(registry, engine, relayer),
        dutch_runners=strategies.dutch_runners(settings, registry, processor, dutch_sink),
        quoters=strategies.quoters(settings, registry, processor, quote_sink),
        gate=gate,
        positions=engine.positions,
        paper_fills=PaperFills(relayer, engine, lifecycle) if isinstance(relayer, BookFills) else None,
        lifecycle=lifecycle,
        settling=engine.settling_shares,
    )
