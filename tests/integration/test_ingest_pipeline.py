"""mock-ws -> MarketFeed -> FeedProcessor -> IngestPipeline -> BatchedWriter -> SQLite / PostgreSQL.

Over real sockets and real databases: every row the pipeline produced is stored exactly once,
including across a server-side drop (reconnect, resubscribe, fresh snapshots)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import func, select

from core.feed.pipeline import IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.ws import MarketFeed
from core.sim.mock_ws import MockMarketServer
from core.store import models as m
from core.store.db import create_engine
from core.store.migrate import upgrade_engine
from core.store.writer import BatchedWriter
from core.types import BookStatus


async def _until(pred: Callable[[], bool], limit_s: float = 10.0) -> None:
    async with asyncio.timeout(limit_s):
        while not pred():  # noqa: ASYNC110 - set by socket callbacks
            await asyncio.sleep(0.01)


async def _counts(engine: object) -> dict[str, int]:
    out = {}
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        for name, model in (("book_snapshots", m.BookSnapshot), ("book_deltas", m.BookDelta), ("trades", m.Trade)):
            out[name] = int((await conn.execute(select(func.count()).select_from(model))).scalar_one())
        dup = (
            select(m.BookDelta.asset_id, m.BookDelta.receive_ts, m.BookDelta.side, m.BookDelta.price)
            .group_by(m.BookDelta.asset_id, m.BookDelta.receive_ts, m.BookDelta.side, m.BookDelta.price)
            .having(func.count() > 1)
        )
        out["duplicate_deltas"] = len((await conn.execute(dup)).all())
    return out


async def test_every_produced_row_is_stored_once_across_a_reconnect(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await upgrade_engine(engine)
        async with MockMarketServer(assets=4, seed=3, rate_hz=400) as server:
            assets = server.asset_ids
            processor = FeedProcessor(known_assets=set(assets))
            async with BatchedWriter(engine) as writer:
                pipeline = IngestPipeline(processor, writer)
                feed = MarketFeed(
                    server.url,
                    assets,
                    pipeline.on_frame,
                    on_state=pipeline.on_connection_event,
                    reconnect_initial_s=0.05,
                    reconnect_max_s=0.2,
                )
                await feed.start()
                try:
                    await _until(lambda: pipeline.stats.deltas >= 100)
                    snapshots_before = pipeline.stats.snapshots
                    server.drop_connections()
                    await _until(lambda: pipeline.stats.reconnect_resets >= 1)
                    await _until(lambda: pipeline.stats.snapshots >= snapshots_before + len(assets))
                    await _until(lambda: all(b.status is BookStatus.OK for b in processor.books.values()))
                    deltas_after = pipeline.stats.deltas
                    await _until(lambda: pipeline.stats.deltas >= deltas_after + 50)
                finally:
                    await feed.stop()
                pipeline.tick()
                await writer.flush()
                assert writer.stats.queue_full_count == 0 and writer.stats.rejected == 0
        stored = await _counts(engine)
    finally:
        await engine.dispose()
    assert stored["book_snapshots"] == pipeline.stats.snapshots
    assert stored["book_deltas"] == pipeline.stats.deltas
    assert stored["trades"] == pipeline.stats.trades
    assert stored["duplicate_deltas"] == 0
    assert pipeline.stats.rows_refused == 0
    assert sum(processor.faults.values()) == 0, dict(processor.faults)


class _FullWriter:
    """A writer whose queue is always full: the pipeline must count every refused row."""

    def __init__(self) -> None:
        self.calls = 0

    def put(self, table: str, row: dict[str, object]) -> bool:
        self.calls += 1
        return False


def test_rows_the_writer_cannot_take_are_counted_not_silently_dropped() -> None:
    from core.feed.synth import FrameGenerator

    gen = FrameGenerator(["1", "2"], seed=5, levels=5)
    processor = FeedProcessor(known_assets={"1", "2"})
    writer = _FullWriter()
    pipeline = IngestPipeline(processor, writer)
    for n, frame in enumerate(gen.snapshot_frames(ts_ms=1)):
        pipeline.on_frame(frame, 1_000 + n)
    for n in range(50):
        pipeline.on_frame(gen.next_frame(10 + n), 2_000_000 + n * 1_000_000)
    produced = pipeline.stats.snapshots + pipeline.stats.deltas + pipeline.stats.trades
    assert produced > 0
    assert pipeline.stats.rows_refused == writer.calls == produced
