"""``feed.source = "bus"``: the service's books from the feed workers instead of its own websockets.

:class:`BusFeed` stands where :class:`core.feed.ws.MarketFeed` stands in the service (started,
stopped, told the followed set, read for /status and /metrics). It subscribes to
``<prefix>.md.<condition>.<asset>.*`` for each followed asset, asks the owning worker for a snapshot
(``<prefix>.snap.<asset>``, request/reply) and applies everything through the continuity rules of
:class:`core.bus.sync.BookSync` into the service's own ingest pipeline, as venue-shaped frames: the
processor, its books and integrity rules, the strategies, risk and the engine downstream are the
ones a websocket service has.

A book is never silently wrong: a dropped bus connection, a worker epoch that stops beating
(``<prefix>.hb.*``, silent for ``lease_ttl_s``) or the service's own check finding a book
inconsistent all reset the books concerned to ``awaiting_snapshot`` and resnapshot them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from core.bus import messages as m
from core.bus.connect import connect
from core.bus.meter import NoBusMeter, ReaderMeter
from core.bus.subjects import asset_wildcard, heartbeat_wildcard, snapshot_subject
from core.bus.sync import BookSync
from core.feed.connection import ConnectionState, ConnectionStats, FeedStats, FrameHandler
from core.feed.events import BookStatusChanged, FeedEvent
from core.feed.subscriptions import SubscriptionChange
from core.settings import BusSettings
from core.types import BookStatus

log = logging.getLogger(__name__)

Reset = Callable[[Sequence[str], str], None]
TICK_S = 0.25


class _Target:
    """What :class:`BookSync` decides, carried out on the service's pipeline and the bus."""

    def __init__(self, feed: BusFeed) -> None:
        self._feed = feed

    def frame(self, data: bytes) -> None:
        self._feed.on_frame(data)

    def reset(self, assets: Sequence[str], reason: str) -> None:
        self._feed.on_reset(assets, reason)

    def request(self, asset: str) -> None:
        self._feed.ask(asset)


class BusFeed:
    def __init__(
        self,
        settings: BusSettings,
        asset_ids: Sequence[str],
        on_frame: FrameHandler,
        on_reset: Reset,
        *,
        conditions: Mapping[str, str] | None = None,
        name: str = "polybot-trader",
        clock_ns: Callable[[], int] = time.time_ns,
        meter: ReaderMeter | None = None,
    ) -> None:
        self.settings = settings
        self._prefix = settings.prefix
        self._deliver = on_frame
        self._reset = on_reset
        self._conditions = dict(conditions or {})
        self._name = name
        self._clock_ns = clock_ns
        self._assets: dict[str, None] = dict.fromkeys(asset_ids)
        self.sync = BookSync(_Target(self), retry_after_s=settings.request_timeout_s)
        self.meter: ReaderMeter = meter or NoBusMeter()
        self._counted = (0, 0)  # the sync's (gaps, resyncs) already told the meter
        self._nc: Client | None = None
        self._subs: dict[str, Subscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._asking: set[str] = set()
        self._beats: dict[int, int] = {}  # worker epoch -> monotonic ns of its last heartbeat
        self._published: dict[str, tuple[int, dict[str, int]]] = {}  # shard -> the last beat's (epoch, seqs)
        self._state = ConnectionState.CONNECTING
        self._stopped = False
        self.frames = 0
        self.bytes = 0
        self.decode_errors = 0
        self.apply_errors = 0
        self.reconnects = 0
        self.disconnects = 0
        self.last_frame_ns: int | None = None
        self.latency_ns: list[int] = []  # worker publish -> applied here, the last few thousand

    # ---- what MarketFeed offers the service -------------------------------------------------
    @property
    def asset_ids(self) -> tuple[str, ...]:
        return tuple(self._assets)

    async def start(self) -> None:
        """Connect, subscribe, and ask for every book's snapshot (raises BusUnavailable)."""
        if self._nc is not None:
            return
        self._nc = await connect(
            self.settings, self._name, on_disconnect=self._disconnected, on_reconnect=self._reconnected
        )
        self._state = ConnectionState.CONNECTED
        await self._nc.subscribe(heartbeat_wildcard(self._prefix), cb=self._on_heartbeat)
        await self._subscribe(list(self._assets))
        self._spawn(self._tick_loop())
        log.info("bus feed: %d assets from %s (stream subjects %s.md.>)", len(self._assets), self._name, self._prefix)

    async def set_assets(self, asset_ids: Sequence[str]) -> SubscriptionChange:
        wanted = dict.fromkeys(asset_ids)
        added = [a for a in wanted if a not in self._assets]
        removed = [a for a in self._assets if a not in wanted]
        self._assets = wanted
        if self._nc is not None:
            for asset in removed:
                sub = self._subs.pop(asset, None)
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            await self._subscribe(added)
        self.sync.unfollow(removed)
        return SubscriptionChange(tuple(added), tuple(removed))

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._state = ConnectionState.CLOSED

    def stats(self) -> FeedStats:
        conn = ConnectionStats(
            conn_id=0,
            state=self._state,
            asset_count=len(self._assets),
            frames=self.frames,
            bytes=self.bytes,
            pongs=0,
            reconnects=self.reconnects,
            dead_count=self.disconnects,
            last_frame_ns=self.last_frame_ns,
            last_pong_ns=None,
            last_reason="",
        )
        return FeedStats(
            connections=(conn,),
            frames=self.frames,
            bytes=self.bytes,
            pongs=0,
            reconnects=self.reconnects,
            dead=self.disconnects,
            dropped={"undecodable": self.decode_errors} if self.decode_errors else {},
            callback_errors=0,
        )

    # ---- the pipeline's events (a sink) -----------------------------------------------------
    def on_events(self, events: list[FeedEvent]) -> None:
        """The service's own check found a book inconsistent: resnapshot it from its worker."""
        for ev in events:
            if isinstance(ev, BookStatusChanged) and ev.new is BookStatus.INCONSISTENT and ev.asset_id in self._assets:
                self.sync.lost([ev.asset_id], f"inconsistent here ({ev.reason})")

    # ---- SyncTarget -------------------------------------------------------------------------
    def on_frame(self, data: bytes) -> None:
        self._deliver(data.decode(), self._clock_ns())

    def on_reset(self, assets: Sequence[str], reason: str) -> None:
        self._reset(assets, reason)

    def ask(self, asset: str) -> None:
        if self._nc is None or asset in self._asking:
            return
        self._asking.add(asset)
        self._spawn(self._request(asset))

    # ---- NATS side --------------------------------------------------------------------------
    async def _subscribe(self, assets: Sequence[str]) -> None:
        nc = self._nc
        assert nc is not None
        for asset in assets:
            if asset not in self._subs:
                subject = asset_wildcard(self._prefix, asset, self._conditions.get(asset))
                self._subs[asset] = await nc.subscribe(subject, cb=self._on_msg)
        await nc.flush()  # subscribed at the server before the snapshots are asked for
        self.sync.follow(assets)

    async def _on_msg(self, msg: Msg) -> None:
        now = self._clock_ns()
        self.frames += 1
        self.bytes += len(msg.data)
        self.last_frame_ns = now
        try:
            message = m.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.decode_errors += 1
            log.warning("bus: undecodable message on %s: %s", msg.subject, exc)
            return
        self.meter.on_received(m.KINDS[type(message)], (now - message.recv_ns) / 1e9 if message.recv_ns else None)
        try:
            self.sync.on_message(message)
            self._count()
        except Exception:  # a bug here must not stop the subscription: the book waits instead
            self.apply_errors += 1
            log.exception("bus: applying %s for %s failed", type(message).__name__, message.asset)
            self.sync.lost([message.asset], "apply failed")
        if message.pub_ns:
            lat = self.latency_ns
            lat.append(now - message.pub_ns)
            if len(lat) > 4096:
                del lat[:2048]

    async def _request(self, asset: str) -> None:
        nc = self._nc
        try:
            if nc is None:
                return
            payload = m.encode(m.SnapshotRequest(asset, self._name))
            try:
                answer = await nc.request(
                    snapshot_subject(self._prefix, asset), payload, timeout=self.settings.request_timeout_s
                )
            except Exception as exc:  # no worker answered (yet): BookSync.due asks again
                log.debug("bus: no snapshot for %s: %s", asset, type(exc).__name__)
                return
            try:
                reply = m.decode_as(answer.data, m.SnapshotReply)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("bus: undecodable snapshot answer for %s: %s", asset, exc)
                return
            if reply.error:
                log.debug("bus: snapshot for %s refused: %s", asset, reply.error)
            self.sync.on_reply(reply, asset)
            self._count()
        finally:
            self._asking.discard(asset)

    def _count(self) -> None:
        st = self.sync.stats
        gaps, resyncs = st.gaps, st.replies_applied + st.snapshots_in_stream
        if (gaps, resyncs) != self._counted:
            if gaps > self._counted[0]:
                self.meter.on_gap(gaps - self._counted[0])
            self.meter.resnapshots += resyncs - self._counted[1]
            self._counted = (gaps, resyncs)

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = m.decode_as(msg.data, m.Heartbeat)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        self._beats[beat.epoch] = time.monotonic_ns()
        # what the previous beat of this worker said is a second old: everything it counted has
        # arrived unless lost (this beat's own counts may still be racing their messages)
        previous = self._published.get(beat.shard)
        self._published[beat.shard] = (beat.epoch, beat.seqs)
        if previous is not None and previous[1]:
            self.sync.check_published(previous[0], previous[1])
            self._count()

    async def _disconnected(self) -> None:
        """Messages may be lost while disconnected and nothing would tell: every book waits."""
        if self._stopped:
            return
        self.disconnects += 1
        self._state = ConnectionState.DEAD
        log.warning("bus connection lost: every book waits for a snapshot")
        self.sync.lost(list(self._assets), "bus disconnected")

    async def _reconnected(self) -> None:
        self.reconnects += 1
        self._state = ConnectionState.CONNECTED
        log.info("bus connection back: resnapshotting %d books", len(self._assets))
        self.sync.lost(list(self._assets), "bus reconnected")

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._check_beats()
            self.sync.due()

    def _check_beats(self) -> None:
        """An epoch whose worker stopped beating for ``lease_ttl_s``: its books are not trusted."""
        now = time.monotonic_ns()
        limit = int(self.settings.lease_ttl_s * 1e9)
        for epoch, assets in self.sync.epochs().items():
            last = self._beats.setdefault(epoch, now)  # first seen now: it gets a full ttl
            synced = [a for a in assets if self.sync.synced(a)]
            if synced and now - last > limit:
                self.sync.lost(synced, f"worker epoch {epoch} silent")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
