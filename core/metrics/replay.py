"""A small, real ingest rig for the metrics commands: frames -> processor -> pipeline -> writer.

A standalone ``polybot metrics`` process has nothing to report unless something runs in it, so
the metrics commands can feed a recording (and/or a live market-channel websocket) through the
same :class:`~core.feed.processor.FeedProcessor`, :class:`~core.feed.pipeline.IngestPipeline`
and :class:`~core.store.writer.BatchedWriter` the service uses, into a throwaway in-memory
SQLite database. Every value the metrics then show was produced by that code.

Replayed frames are stamped with the wall clock as they are fed (not their recorded receive
times), so receive-to-apply and receive-to-commit are this machine's real latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import PolybotError
from core.metrics.collect import Metrics

if TYPE_CHECKING:  # imported where used: a metrics command that replays nothing loads none of them
    from sqlalchemy.ext.asyncio import AsyncEngine

    from core.feed.pipeline import IngestPipeline
    from core.feed.processor import FeedProcessor
    from core.feed.ws import MarketFeed
    from core.store.writer import BatchedWriter

log = logging.getLogger(__name__)

RECORDINGS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "recordings"
PREFERRED_RECORDING = "demo_market.jsonl"
IN_MEMORY_DB = "sqlite:///:memory:"


def default_recording() -> Path | None:
    """The project's own recording (fixtures/recordings/), or None when there is none."""
    preferred = RECORDINGS_DIR / PREFERRED_RECORDING
    if preferred.is_file():
        return preferred
    found = sorted(RECORDINGS_DIR.glob("*.jsonl")) if RECORDINGS_DIR.is_dir() else []
    return found[0] if found else None


@dataclass
class ReplayResult:
    frames: int = 0
    passes: int = 0
    bad_lines: int = 0
    seconds: float = 0.0


@dataclass
class IngestRig:
    """Processor, pipeline and writer bound to a :class:`Metrics`; optionally a live feed."""

    metrics: Metrics
    processor: FeedProcessor
    pipeline: IngestPipeline
    writer: BatchedWriter
    db: AsyncEngine
    feed: MarketFeed | None = None
    ticker: asyncio.Task[None] | None = None
    bad_lines: list[str] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        metrics: Metrics,
        *,
        known_assets: Sequence[str] | None = None,
        staleness_ms: int = 60_000,
    ) -> IngestRig:
        from core.feed.pipeline import IngestPipeline
        from core.feed.processor import FeedProcessor
        from core.store.db import create_engine
        from core.store.models import Base
        from core.store.writer import BatchedWriter

        db = create_engine(IN_MEMORY_DB)
        try:
            async with db.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
        except Exception:
            await db.dispose()
            raise
        processor = FeedProcessor(known_assets=set(known_assets) if known_assets else None, staleness_ms=staleness_ms)
        writer = BatchedWriter(db)
        writer.start()
        pipeline = IngestPipeline(processor, writer)
        metrics.bind(processor=processor, pipeline=pipeline, writer=writer)
        rig = cls(metrics, processor, pipeline, writer, db)
        rig.ticker = asyncio.create_task(rig._tick_forever(), name="metrics-rig-tick")
        return rig

    async def _tick_forever(self, period_s: float = 1.0) -> None:
        # what the service's timer does: close quiet bursts, mark stale books
        while True:
            await asyncio.sleep(period_s)
            self.pipeline.tick()

    async def replay(
        self,
        path: Path,
        *,
        rate_hz: float = 0.0,
        loop: bool = False,
        stop: asyncio.Event | None = None,
    ) -> ReplayResult:
        """Feed a recording (JSONL or a JSON capture) through the pipeline. ``rate_hz`` 0 = as fast
        as possible (yielding to the loop every 100 frames so scrapes are answered)."""
        from core.feed.replay import iter_frames

        result = ReplayResult()
        started = time.monotonic()
        interval = 1.0 / rate_hz if rate_hz > 0 else 0.0
        next_at = time.monotonic()

        def bad_line(line_no: int, reason: str) -> None:
            result.bad_lines += 1
            log.warning("replay %s: line %d skipped: %s", path, line_no, reason)

        while True:
            result.passes += 1
            fed = 0
            for _recv_ns, frame in iter_frames(path, on_bad_line=bad_line):
                self.pipeline.on_frame(frame, time.time_ns())
                fed += 1
                if interval:
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif fed % 100 == 0:
                        await asyncio.sleep(0)
                elif fed % 100 == 0:
                    await asyncio.sleep(0)
                if stop is not None and stop.is_set():
                    break
            result.frames += fed
            if fed == 0:
                raise PolybotError(f"recording {path} holds no frames")
            if not loop or (stop is not None and stop.is_set()):
                break
        self.pipeline.tick()
        result.seconds = time.monotonic() - started
        return result

    async def start_feed(self, url: str, assets: Sequence[str], **feed_options: Any) -> None:
        """Connect to a market-channel websocket and feed its frames through the pipeline."""
        from core.feed.ws import MarketFeed

        self.processor.track(assets)
        pipeline = self.pipeline

        def on_frame(frame: str, recv_ns: int) -> None:  # the feed wants no answer
            pipeline.on_frame(frame, recv_ns)

        self.feed = MarketFeed(
            url,
            list(assets),
            on_frame,
            on_state=self.pipeline.on_connection_event,
            **feed_options,
        )
        self.metrics.bind(feed=self.feed)
        await self.feed.start()

    async def flush(self, timeout_s: float = 10.0) -> None:
        await self.writer.flush(timeout_s)

    async def close(self) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        if self.feed is not None:
            await self.feed.stop()
        try:
            await self.writer.close(timeout_s=10)
        finally:
            await self.db.dispose()
