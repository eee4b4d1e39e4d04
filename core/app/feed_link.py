"""The market feed's sockets as the service runs them.

Frames go to the ingest pipeline; a connection's state changes go to the pipeline (a dead or
re-established socket may have missed updates: its books wait for a snapshot) and to the
feed-dead alert policy, with the time the socket was last heard from; the control facade reads
the connections from here (/status, /health).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from core.app.alerts import FeedDeadAlerts
from core.control.types import FeedConnection
from core.feed.connection import ConnectionEvent
from core.feed.pipeline import IngestPipeline
from core.feed.ws import MarketFeed
from core.settings import FeedSettings


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
    ) -> None:
        self._pipeline = pipeline
        self._on_started = on_started
        self._alerts = alerts
        self._clock_ns = clock_ns
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
            out.append(FeedConnection(f"ws#{c.conn_id}", c.state.value, c.asset_count, age, c.reconnects))
        return out

    def _on_state(self, event: ConnectionEvent) -> None:
        self._pipeline.on_connection_event(event)
        self._alerts.on_connection_event(event, self._last_heard_ns(event.conn_id))

    def _last_heard_ns(self, conn_id: int) -> int | None:
        return next(
            (c.last_frame_ns or c.last_pong_ns for c in self.feed.stats().connections if c.conn_id == conn_id),
            None,
        )
