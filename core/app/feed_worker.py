"""``polybot feed-worker``: one shard of the market's websockets, its books, published on the bus.

The worker follows what a service with the same configuration would follow (``feed.markets``,
the strategies' markets, ``feed.assets`` and the ``feed.watch`` rules over the stored markets),
keeps the markets of its shard (:mod:`core.bus.shard`: a stable hash of the condition id, or of
the neg-risk event for the members of one), or exactly the assets it is given.

Several workers may claim one shard; the lease (:mod:`core.bus.lease`) makes one active. A standby
only watches the lease. The active one, for the term of its lease (its *epoch*):

- runs the service's own feed: :class:`core.app.feed_link.FeedLink` (the websockets), a
  :class:`core.feed.processor.FeedProcessor` and :class:`core.feed.pipeline.IngestPipeline` with
  today's integrity rules, inconsistent books re-seeded from ``GET /book`` (:class:`Reseeder`);
- publishes every event through :class:`core.bus.publish.MdPublisher` (a pipeline sink), first a
  ``status`` awaiting_snapshot for every book of the new epoch, then the venue's snapshots;
- answers snapshot requests for its assets and beats every second on ``<prefix>.hb.<shard>``.

A term starts with fresh books (nothing carries over from a previous term) and ends when the lease
is lost, after which the worker is a standby again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from core.app.alerts import FeedDeadAlerts
from core.app.feed_link import FeedLink
from core.app.reseed import ClobBookFetcher, Reseeder
from core.app.universe import tracked_markets
from core.app.watch import Watcher
from core.bus import messages as m
from core.bus.connect import connect, ensure_stream, lease_bucket
from core.bus.lease import ShardLease
from core.bus.publish import MdPublisher
from core.bus.shard import Shard, shard_key, shard_of
from core.bus.subjects import heartbeat_subject, lease_key, snapshot_wildcard
from core.events import EventBus
from core.feed.events import BookStatusChanged, FeedEvent
from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
from core.feed.processor import FeedProcessor
from core.markets import load_markets
from core.metrics.bus_stats import BusStats
from core.metrics.collect import METRICS, MetricsServer, serve_metrics
from core.registry import MarketRegistry
from core.settings import Settings
from core.store.db import create_engine, session_factory
from core.store.migrate import ensure_schema
from core.types import BookStatus

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
TICK_S = 0.25


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker follows: its lease's shard label, the assets, their markets and ticks."""

    shard: str
    assets: list[str]
    conditions: dict[str, str] = field(default_factory=dict)
    ticks: dict[str, Decimal] = field(default_factory=dict)


async def plan_worker(settings: Settings, shard: Shard | None, assets: Sequence[str] = ()) -> WorkerPlan:
    """Explicit ``assets``: exactly those (markets learnt from the feed). Otherwise the configured
    and watched markets of the stored ones (``[db] url``) that fall in ``shard``."""
    if assets:
        digest = f"{zlib.crc32(','.join(sorted(assets)).encode()):08x}"
        return WorkerPlan(f"assets-{digest}", list(dict.fromkeys(assets)))
    if shard is None:
        raise ValueError("a feed worker needs --shard I/N (or [bus] shard) or --assets")
    db = create_engine(settings.db.url)
    try:
        await ensure_schema(db, settings.db.url, migrate=False)
        sessions = session_factory(db)
        registry = MarketRegistry(await load_markets(sessions))
        watch = Watcher(
            registry=registry,
            sessions=sessions,
            bus=EventBus(),
            rules=settings.feed.watch,
            configured=tracked_markets(settings, registry),
            raw_assets=settings.feed.assets,
        )
        await watch.load()
    finally:
        await db.dispose()
    markets = [mk for mk in watch.desired_markets() if shard.owns(shard_key(mk))]
    raw = [a for a in settings.feed.assets if registry.for_token(a) is None and shard_of(a, shard.count) == shard.index]
    return WorkerPlan(
        shard.label,
        list(dict.fromkeys([t.token_id for mk in markets for t in mk.tokens] + raw)),
        {t.token_id: mk.condition_id for mk in markets for t in mk.tokens},
        {t.token_id: mk.tick_size for mk in markets for t in mk.tokens},
    )


class _Term:
    """The active worker's feed for one lease term (fresh books each time)."""

    def __init__(self, settings: Settings, plan: WorkerPlan, nc: Client, epoch: int, meter: BusStats) -> None:
        s = settings
        self.processor = FeedProcessor(
            known_assets=set(plan.assets),
            max_frame_bytes=s.feed.max_frame_bytes,
            staleness_ms=s.service.staleness_ms,
            burst_quiet_ms=LIVE_BURST_QUIET_MS,
            tick_sizes=plan.ticks,
        )
        self.pipeline = IngestPipeline(
            self.processor, None, live=True
        )  # sockets: quiet judged only while the loop keeps up
        self.publisher = MdPublisher(s.bus.prefix, self.processor.books, plan.conditions, meter=meter)
        self.meter = meter
        self.pipeline.add_sink(self.publisher.on_events)
        self.pipeline.add_sink(self._on_events)
        self.fetcher = ClobBookFetcher(s.clob.url, timeout_s=s.clob.timeout_s)
        self.reseeder = Reseeder(self.processor, self.fetcher, lambda a: a[:12])
        self.link = FeedLink(s.feed, plan.assets, self.pipeline, FeedDeadAlerts(EventBus()))
        self.nc = nc
        self.epoch = epoch
        self.assets = plan.assets
        self._tasks: set[asyncio.Task[None]] = set()

    def _on_events(self, events: list[FeedEvent]) -> None:
        for ev in events:
            if (
                isinstance(ev, BookStatusChanged)
                and ev.new is BookStatus.INCONSISTENT
                and self.reseeder.claim(ev.asset_id)
            ):
                self._spawn(self._reseed(ev.asset_id))

    async def _reseed(self, asset_id: str) -> None:
        self.publisher.on_events(await self.reseeder.reseed(asset_id))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, msg: Msg) -> None:
        """A snapshot request: answered only for an asset this worker follows."""
        try:
            request = m.decode_as(msg.data, m.SnapshotRequest)
        except Exception:
            return
        snap = await self.publisher.settled_snapshot(request.asset)
        if snap is not None and msg.reply:
            await msg.respond(m.encode(m.SnapshotReply(snapshot=snap)))
            self.meter.snapshots_served += 1

    async def run(self, stop: asyncio.Event, settings: Settings) -> None:
        self.publisher.begin_epoch(self.epoch, self.assets)
        sub = await self.nc.subscribe(snapshot_wildcard(settings.bus.prefix), cb=self.answer)
        self._spawn(self.publisher.run(self.nc.publish, stop))
        self._spawn(self.link.run(stop))
        self._spawn(self._ticks(stop))
        try:
            await stop.wait()
        finally:
            self.publisher.end()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            await self.link.feed.stop()
            self.pipeline.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.fetcher.aclose()

    async def _ticks(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(TICK_S)
            self.pipeline.tick()


class FeedWorker:
    def __init__(self, settings: Settings, plan: WorkerPlan, *, name: str) -> None:
        self.settings = settings
        self.plan = plan
        self.name = name
        self.term: _Term | None = None
        self.terms = 0
        self.stats = BusStats()  # /metrics: polybot_bus_* (role feed-worker)

    async def run(self, stop: asyncio.Event) -> None:
        """Standby until the lease is taken, active while it is held, again and again until ``stop``."""
        b = self.settings.bus
        nc = await connect(b, self.name)
        server = await self._serve_metrics()
        try:
            js = nc.jetstream()
            await ensure_stream(js, b)
            kv = await lease_bucket(js, b)
            lease = ShardLease(
                kv, lease_key(self.plan.shard), worker=self.name, shard=self.plan.shard, ttl_s=b.lease_ttl_s
            )
            log.info("feed worker %s: shard %s, %d assets, standby", self.name, self.plan.shard, len(self.plan.assets))
            while not stop.is_set():
                if await self._try_take(lease):
                    await self._serve(nc, lease, stop)
                else:
                    await _wait(stop, min(0.25, b.lease_ttl_s / 12))
            await lease.release()
        finally:
            if server is not None:
                await server.aclose()
            with contextlib.suppress(Exception):
                await nc.drain()

    async def _serve_metrics(self) -> MetricsServer | None:
        METRICS.bind(market_bus=self.stats)
        self.stats.set_shard(self.plan.shard, False)
        if not (mc := self.settings.metrics).enabled:
            return None
        server = await serve_metrics(mc.host, mc.port, role="feed-worker", instance=mc.instance)
        log.info("metrics on http://%s:%s/metrics", mc.host, server.port)
        return server

    @staticmethod
    async def _try_take(lease: ShardLease) -> bool:
        try:
            return await lease.try_take()
        except Exception as exc:  # the bus is down: stay standby and try again
            log.warning("lease %s: %s", lease.key, exc)
            return False

    async def _serve(self, nc: Client, lease: ShardLease, stop: asyncio.Event) -> None:
        """One term: the feed runs while the lease is renewed; stops with it (or at ``stop``)."""
        self.terms += 1
        term_over = asyncio.Event()
        self.term = term = _Term(self.settings, self.plan, nc, lease.epoch, self.stats)
        METRICS.bind(processor=term.processor, feed=term.link.feed, pipeline=term.pipeline)
        self.stats.set_shard(self.plan.shard, True)
        runner = asyncio.ensure_future(term.run(term_over, self.settings))
        renew_s = lease.ttl_s / 3
        beat = m.Heartbeat(self.name, self.plan.shard, lease.epoch, len(self.plan.assets), 0)
        subject = heartbeat_subject(self.settings.bus.prefix, self.plan.shard)
        next_renew = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set() and not runner.done():
                if loop.time() >= next_renew:
                    if not await lease.renew():
                        break
                    next_renew = loop.time() + renew_s
                with contextlib.suppress(Exception):
                    beat_now = m.Heartbeat(
                        beat.worker, beat.shard, beat.epoch, beat.assets, time.time_ns(), term.publisher.take_changed()
                    )
                    await nc.publish(subject, m.encode(beat_now))
                await _wait(stop, min(HEARTBEAT_S, renew_s))
        finally:
            term_over.set()
            await asyncio.gather(runner, return_exceptions=True)
            self.term = None
            self.stats.set_shard(self.plan.shard, False)
            log.warning("feed worker %s: term %d (epoch %d) over", self.name, self.terms, lease.epoch)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
