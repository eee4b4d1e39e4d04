"""Bad frames from the server over real sockets: garbage, oversized (below and above the
library's hard limit), binary. Each is counted and the client keeps streaming."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.feed.connection import ConnectionEvent, ConnectionState
from core.feed.processor import FeedProcessor
from core.feed.ws import MarketFeed
from core.sim.mock_ws import MockMarketServer
from core.types import BookStatus


async def wait_until(pred: Callable[[], bool], limit_s: float = 5.0, what: str = "condition") -> None:
    """Poll ``pred`` until true; fail after ``limit_s`` seconds."""
    for _ in range(int(limit_s / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {limit_s}s waiting for {what}")


async def test_garbage_is_counted_by_the_processor_and_the_stream_goes_on() -> None:
    async with MockMarketServer(assets=2, seed=21, rate_hz=200) as server:
        processor = FeedProcessor(set(server.asset_ids))
        feed = MarketFeed(server.url, server.asset_ids, processor.process)
        await feed.start()
        try:
            await wait_until(lambda: feed.stats().frames >= 5)
            assert server.send_garbage("this is not json {") == 1
            assert server.send_garbage('{"event_type": "book", "asset_id": 12}') == 1
            await wait_until(lambda: processor.counters.total >= 2, what="garbage counted")
            after = feed.stats().frames
            await wait_until(lambda: feed.stats().frames >= after + 20, what="stream continues")
        finally:
            await feed.stop()
    assert processor.counters["malformed_json"] == 1
    assert processor.counters["wrong_type"] == 1
    stats = feed.stats()
    assert stats.dead == 0 and stats.reconnects == 0
    assert all(b.status is BookStatus.OK for b in processor.books.values())


async def test_frame_above_the_cap_is_skipped_without_dropping_the_socket() -> None:
    delivered: list[str] = []
    async with MockMarketServer(assets=2, seed=22, rate_hz=200) as server:
        feed = MarketFeed(
            server.url,
            server.asset_ids,
            lambda t, n: delivered.append(t),
            max_frame_bytes=64 * 1024,
            hard_max_frame_bytes=256 * 1024,
        )
        await feed.start()
        try:
            await wait_until(lambda: feed.stats().frames >= 5)
            server.send_raw('{"event_type":"book","pad":"' + "x" * 100_000 + '"}')
            await wait_until(lambda: feed.stats().dropped.get("oversized", 0) == 1, what="oversized counted")
            after = feed.stats().frames
            await wait_until(lambda: feed.stats().frames >= after + 20, what="stream continues")
        finally:
            await feed.stop()
    assert all(len(t) <= 64 * 1024 for t in delivered)
    stats = feed.stats()
    assert stats.dead == 0 and stats.reconnects == 0


async def test_frame_above_the_hard_limit_costs_a_reconnect_not_the_client() -> None:
    events: list[ConnectionEvent] = []
    async with MockMarketServer(assets=2, seed=23, rate_hz=200) as server:
        processor = FeedProcessor(set(server.asset_ids))

        def on_state(event: ConnectionEvent) -> None:
            events.append(event)
            if event.state in (ConnectionState.DEAD, ConnectionState.RECONNECTED):
                processor.mark_awaiting_snapshot(event.asset_ids)

        feed = MarketFeed(
            server.url,
            server.asset_ids,
            processor.process,
            on_state=on_state,
            max_frame_bytes=64 * 1024,
            hard_max_frame_bytes=128 * 1024,
            reconnect_initial_s=0.05,
        )
        await feed.start()
        try:
            await wait_until(lambda: feed.stats().frames >= 5)
            server.send_raw("y" * 1_000_000)
            await wait_until(lambda: any(e.state is ConnectionState.RECONNECTED for e in events), what="reconnect")
            await wait_until(lambda: all(b.status is BookStatus.OK for b in processor.books.values()))
        finally:
            await feed.stop()
    stats = feed.stats()
    assert stats.dropped == {"oversized_disconnect": 1}
    dead = [e for e in events if e.state is ConnectionState.DEAD]
    assert len(dead) == 1 and "1009" in dead[0].reason


async def test_binary_frames_are_decoded_or_counted() -> None:
    delivered: list[str] = []
    async with MockMarketServer(assets=2, seed=24, rate_hz=50) as server:
        feed = MarketFeed(server.url, server.asset_ids, lambda t, n: delivered.append(t))
        await feed.start()
        try:
            await wait_until(lambda: feed.stats().frames >= 2)
            server.send_raw(b'{"event_type":"binary-ok"}')
            server.send_raw(b"\xff\xfe not utf-8")
            await wait_until(lambda: feed.stats().dropped.get("binary_not_utf8", 0) == 1)
            await wait_until(lambda: '{"event_type":"binary-ok"}' in delivered)
        finally:
            await feed.stop()
    assert feed.stats().dead == 0
