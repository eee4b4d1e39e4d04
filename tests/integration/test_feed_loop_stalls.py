"""A stalled event loop must not turn a burst into a false ``mismatch``.

One match arrives as several frames with the same timestamp; the book is checked against the best
prices they carry once the burst is quiet. Here the second frame of a burst reaches its socket while
the client's event loop is blocked (as a long callback or a starved process blocks it), and is still
unread when the loop resumes: the staleness timer (or a frame of another socket) runs first. The
live pipeline (``IngestPipeline(live=True)``, :mod:`core.feed.stalls`) holds the quiet judgement
until the loop has read its sockets; the same run with a plain pipeline reports the false fault.

The venue double is a websockets server on its own thread (its own loop), so it keeps sending
while the client's loop is blocked; every step waits on a condition, not a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.ws import MarketFeed
from core.types import BookStatus
from tests.loop_thread import LoopThread

Y = "1" * 70 + "111"  # the asset whose burst straddles the stall
X = "2" * 70 + "222"  # another asset, on its own socket
MARKET = "0x" + "ab" * 32
STALL_S = 3 * LIVE_BURST_QUIET_MS / 1000  # well past the quiet window


@dataclass
class Venue:
    """Sockets by the asset they subscribed; frames are sent on request (from the test's thread)."""

    sockets: dict[str, ServerConnection] = field(default_factory=dict)
    server: Server | None = None

    async def handler(self, ws: ServerConnection) -> None:
        sub = json.loads(await ws.recv())
        for asset in sub["assets_ids"]:
            self.sockets[asset] = ws
        async for message in ws:
            if message == "PING":
                await ws.send("PONG")

    async def send(self, asset: str, frame: dict[str, object]) -> None:
        await self.sockets[asset].send(json.dumps(frame))


def book(asset: str) -> dict[str, object]:
    return {
        "event_type": "book",
        "market": MARKET,
        "asset_id": asset,
        "timestamp": "1000",
        "tick_size": "0.01",
        "bids": [{"price": "0.48", "size": "100"}],
        "asks": [{"price": "0.52", "size": "100"}],
    }


def change(asset: str, ts: int, side: str, price: str, size: str, best_bid: str, best_ask: str) -> dict[str, object]:
    entry = {"asset_id": asset, "price": price, "size": size, "side": side, "best_bid": best_bid, "best_ask": best_ask}
    return {"event_type": "price_change", "market": MARKET, "timestamp": str(ts), "price_changes": [entry]}


# one match on Y: a bid at 0.50 and an ask at 0.51; both frames carry the top AFTER the match
Y_PART_1 = change(Y, 2000, "BUY", "0.50", "10", "0.50", "0.51")
Y_PART_2 = change(Y, 2000, "SELL", "0.51", "5", "0.50", "0.51")
X_NEXT = change(X, 2001, "BUY", "0.49", "7", "0.49", "0.52")


@pytest.fixture
async def venue() -> AsyncIterator[tuple[Venue, LoopThread, str]]:
    thread = LoopThread()
    v = Venue()

    async def start() -> str:
        v.server = await serve(v.handler, "127.0.0.1", 0, compression=None)
        port = next(iter(v.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def stop() -> None:
        assert v.server is not None
        v.server.close()
        await v.server.wait_closed()

    url = thread.call(start())
    try:
        yield v, thread, url
    finally:
        thread.call(stop())
        thread.close()


async def wait_until(pred: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s}s waiting for {what}")
        await asyncio.sleep(0.01)


async def tick_until_judged(pipeline: IngestPipeline, processor: FeedProcessor, limit_s: float = 30.0) -> None:
    """The staleness job, every 50 ms, until Y's burst was judged (once the loop has kept up for a
    quiet window, a live pipeline judges it too)."""
    deadline = time.monotonic() + limit_s
    while processor.books[Y].burst_open:
        if time.monotonic() > deadline:
            raise AssertionError(f"Y's burst still open after {limit_s}s")
        pipeline.tick()
        await asyncio.sleep(0.05)


async def _stalled_burst(
    venue: tuple[Venue, LoopThread, str], *, live: bool, timer_first: bool
) -> tuple[FeedProcessor, IngestPipeline]:
    """Y's burst is cut by a stall: its second frame (and a frame for X) reach the sockets while
    this loop is blocked; then either the staleness timer runs before the sockets are read
    (``timer_first``) or the loop resumes with its reads (X's frame was sent first)."""
    v, thread, url = venue
    processor = FeedProcessor(known_assets={Y, X}, staleness_ms=60_000, burst_quiet_ms=LIVE_BURST_QUIET_MS)
    pipeline = IngestPipeline(processor, live=live)
    feed = MarketFeed(url, [Y, X], pipeline.on_frame, max_assets_per_connection=1, compression=None)
    await feed.start()
    try:
        await wait_until(lambda: len(v.sockets) == 2, "both sockets subscribed")
        thread.call(v.send(Y, book(Y)))
        thread.call(v.send(X, book(X)))
        await wait_until(lambda: all(b.status is BookStatus.OK for b in processor.books.values()), "books seeded")
        thread.call(v.send(Y, Y_PART_1))
        await wait_until(lambda: processor.books[Y].burst_open, "the burst's first frame applied")
        # the stall: this loop blocked while the venue sends (on its own thread)
        thread.call(v.send(X, X_NEXT))
        thread.call(v.send(Y, Y_PART_2))
        time.sleep(STALL_S)  # noqa: ASYNC251  # blocking the loop is the point
        if timer_first:
            pipeline.tick()  # the service's staleness job, run before the waiting reads
        await wait_until(lambda: processor.books[Y].best_ask_units() == 510_000, "the burst's second frame applied")
        await wait_until(lambda: processor.books[X].best_bid_units() == 490_000, "X's frame applied")
        await tick_until_judged(pipeline, processor)
    finally:
        await feed.stop()
        pipeline.close()
    return processor, pipeline


@pytest.mark.parametrize("timer_first", [True, False], ids=["timer-before-reads", "other-socket-first"])
async def test_a_live_pipeline_judges_no_burst_across_a_loop_stall(
    venue: tuple[Venue, LoopThread, str], timer_first: bool
) -> None:
    processor, pipeline = await _stalled_burst(venue, live=True, timer_first=timer_first)
    assert processor.faults.as_dict() == {}
    assert processor.books[Y].status is BookStatus.OK
    assert (processor.books[Y].best_bid_units(), processor.books[Y].best_ask_units()) == (500_000, 510_000)
    assert pipeline.stalls is not None and pipeline.stalls.stalls >= 1  # the stall was seen
    assert pipeline.stalls.worst_ms >= STALL_S * 1000 * 0.8


@pytest.mark.parametrize("timer_first", [True, False], ids=["timer-before-reads", "other-socket-first"])
async def test_without_the_guard_the_stall_makes_a_false_mismatch(
    venue: tuple[Venue, LoopThread, str], timer_first: bool
) -> None:
    """The failure the guard prevents, reproduced: the half-applied burst is judged after the stall."""
    processor, _ = await _stalled_burst(venue, live=False, timer_first=timer_first)
    assert processor.faults.as_dict() == {"mismatch": 1}
