"""The market feed as the service runs it: its own websockets, or the feed workers on the bus.

``feed.source = "ws"`` (the default): :class:`core.feed.ws.MarketFeed`. ``"bus"``:
:class:`core.bus.reader.BusFeed` (NATS JetStream, ``[bus]``), which hands the pipeline the same
frames and resets books it cannot vouch for; everything downstream is the same.

Frames go to the ingest pipeline; a connection's state changes go to the pipeline (a dead or
re-established socket may have missed updates: its books wait for a snapshot) and to the
feed-dead alert policy, with the time the socket was last heard from; the control facade reads
the connections from here (/status, /health).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from core.app.alerts import FeedDeadAlerts
from core.app.reseed import BookUnavailable
from core.control.types import FeedConnection
from core.feed.connection import ConnectionEvent, ConnectionState
from core.feed.pipeline import IngestPipeline
from core.feed.ws import MarketFeed
from core.metrics.bus_stats import BusStats
from core.settings import BusSettings, FeedSettings

if TYPE_CHECKING:
    from core.bus.reader import BusFeed  # imported when used: a websocket service never loads the NATS client


class FromFeedWorker:
    """The re-seed source of a service on the bus: none of its own. A book found inconsistent is
    resnapshotted from its feed worker (:meth:`core.bus.reader.BusFeed.on_events`), in the bus's
    sequence; a ``GET /book`` applied beside that sequence could be older than the deltas after it."""

    async def fetch_book(self, token_id: str) -> bytes:
        raise BookUnavailable("feed.source = bus: the book is resnapshotted from its feed worker")


class FeedLink:
    def __init__(
        self,
        settings: FeedSettings,
        assets: Sequence[str],
        pipeline: IngestPipeline,
        alerts: FeedDeadAlerts,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        on_started: Callable[[], Awaitable[object]] | None = None,
        bus: BusSettings | None = None,
        conditions: Mapping[str, str] | None = None,
        name: str = "polybot",
    ) -> None:
        """``bus``: with ``settings.source == "bus"``, read the books from the feed workers there
        (``conditions``: each asset's market, for its subjects); None: always the websockets."""
        self._pipeline = pipeline
        self._on_started = on_started
        self._alerts = alerts
        self._clock_ns = clock_ns
        self.feed: MarketFeed | BusFeed
        self.bus_stats: BusStats | None = None  # the bus's figures (/metrics), with feed.source = "bus"
        if bus is not None and settings.source == "bus":
            from core.bus.reader import BusFeed

            self.bus_stats = BusStats()
            self.feed = BusFeed(
                bus, assets, pipeline.on_frame, self._reset, conditions=conditions, name=name, meter=self.bus_stats
            )
            pipeline.add_sink(self.feed.on_events)  # a book found inconsistent here is resnapshotted
            return
        self.feed = MarketFeed(
            settings.ws_url,
            assets,
            pipeline.on_frame,
            max_assets_per_connection=settings.max_assets_per_connection,
            ping_interval_s=settings.ping_interval_s,
            dead_after_s=settings.dead_after_s,
            reconnect_initial_s=settings.reconnect_initial_ms / 1000.0,
            reconnect_max_s=settings.reconnect_max_ms / 1000.0,
            jitter=settings.reconnect_jitter,
            max_frame_bytes=settings.max_frame_bytes,
            on_state=self._on_state,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """The supervised component: connect, bring the followed set up to date (the watch list,
        what we hold once the engine has rebuilt it), then run until the service stops."""
        await self.feed.start()
        if self._on_started is not None:
            await self._on_started()
        await stop.wait()

    def connections(self) -> list[FeedConnection]:
        now = self._clock_ns()
        out = []
        for c in self.feed.stats().connections:
            last = c.last_frame_ns or c.last_pong_ns
            age = None if last is None else max(0.0, (now - last) / 1e9)
            name = "bus" if self.bus_stats is not None else f"ws#{c.conn_id}"
            out.append(FeedConnection(name, c.state.value, c.asset_count, age, c.reconnects))
        return out

    def _reset(self, assets: Sequence[str], reason: str) -> None:
        """The bus feed cannot vouch for these books: they wait for a snapshot (as after a reconnect)."""
        self._pipeline.on_connection_event(ConnectionEvent(0, ConnectionState.RECONNECTED, tuple(assets), reason))

    def _on_state(self, event: ConnectionEvent) -> None:
        self._pipeline.on_connection_event(event)
        self._alerts.on_connection_event(event, self._last_heard_ns(event.conn_id))

    def _last_heard_ns(self, conn_id: int) -> int | None:
        return next(
            (c.last_frame_ns or c.last_pong_ns for c in self.feed.stats().connections if c.conn_id == conn_id),
            None,
        )
