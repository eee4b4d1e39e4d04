"""Reconnect paths over real sockets: server drops connections, server stalls, server goes away
and comes back; the books behind the feed go awaiting_snapshot and are re-seeded."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
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


class Recorder:
    """Frames and connection events in arrival order, with a processor wired like ingest does."""

    def __init__(self, assets: list[str]) -> None:
        self.log: list[tuple[str, object]] = []
        self.processor = FeedProcessor(set(assets))
        self.awaiting_seen: set[str] = set()

    def on_frame(self, text: str, ns: int) -> None:
        self.log.append(("frame", text))
        self.processor.process(text, ns)

    def on_state(self, event: ConnectionEvent) -> None:
        self.log.append(("event", event))
        if event.state in (ConnectionState.DEAD, ConnectionState.RECONNECTED):
            for change in self.processor.mark_awaiting_snapshot(event.asset_ids):
                if change.new is BookStatus.AWAITING_SNAPSHOT:
                    self.awaiting_seen.add(change.asset_id)

    def events(self, state: ConnectionState) -> list[ConnectionEvent]:
        return [e for kind, e in self.log if kind == "event" and e.state is state]  # type: ignore[union-attr]

    def books_after(self, state: ConnectionState) -> set[str]:
        """Assets with a ``book`` frame after the first event of ``state``."""
        out: set[str] = set()
        seen = False
        for kind, item in self.log:
            if kind == "event" and item.state is state:  # type: ignore[union-attr]
                seen = True
            elif kind == "frame" and seen:
                data = json.loads(item)  # type: ignore[arg-type]
                for event in data if isinstance(data, list) else [data]:
                    if event.get("event_type") == "book":
                        out.add(event["asset_id"])
        return out


async def test_dropped_connections_reconnect_resubscribe_and_resnapshot() -> None:
    async with MockMarketServer(assets=4, seed=11, rate_hz=300) as server:
        assets = server.asset_ids
        rec = Recorder(assets)
        feed = MarketFeed(
            server.url,
            assets,
            rec.on_frame,
            on_state=rec.on_state,
            max_assets_per_connection=2,
            reconnect_initial_s=0.05,
        )
        await feed.start()
        try:
            await wait_until(lambda: all(b.status is BookStatus.OK for b in rec.processor.books.values()))
            frames_before = feed.stats().frames
            assert server.drop_connections() == 2
            await wait_until(lambda: len(rec.events(ConnectionState.RECONNECTED)) == 2, what="both reconnected")
            await wait_until(lambda: rec.books_after(ConnectionState.RECONNECTED) == set(assets), what="fresh books")
            await wait_until(lambda: all(b.status is BookStatus.OK for b in rec.processor.books.values()))
            await wait_until(lambda: feed.stats().frames > frames_before + 50, what="stream resumed")
        finally:
            await feed.stop()
        subs = [json.loads(s) for s in server.subscribe_messages]
    dead = rec.events(ConnectionState.DEAD)
    assert len(dead) == 2 and all("1006" in e.reason for e in dead)
    assert {e.conn_id for e in rec.events(ConnectionState.RECONNECTED)} == {0, 1}
    assert rec.awaiting_seen == set(assets)  # every book went awaiting_snapshot, then ok again
    # resubscribed with exactly the same assets per connection
    assert len(subs) == 4
    assert sorted(tuple(s["assets_ids"]) for s in subs[:2]) == sorted(tuple(s["assets_ids"]) for s in subs[2:])
    stats = feed.stats()
    assert stats.reconnects == 2 and stats.dead == 2
    assert rec.processor.faults.total == 0, rec.processor.faults.as_dict()


async def test_stalled_server_is_declared_dead_and_the_client_reconnects() -> None:
    async with MockMarketServer(assets=2, seed=3, rate_hz=100) as server:
        rec = Recorder(server.asset_ids)
        feed = MarketFeed(
            server.url,
            server.asset_ids,
            rec.on_frame,
            on_state=rec.on_state,
            ping_interval_s=0.1,
            dead_after_s=0.4,
            reconnect_initial_s=0.05,
        )
        await feed.start()
        try:
            await wait_until(lambda: feed.stats().frames >= 5)
            server.stall(0.8)
            await wait_until(lambda: rec.events(ConnectionState.DEAD), what="declared dead")
            await wait_until(lambda: rec.events(ConnectionState.RECONNECTED), what="reconnected")
            await wait_until(lambda: rec.books_after(ConnectionState.RECONNECTED) == set(server.asset_ids))
            await wait_until(lambda: all(b.status is BookStatus.OK for b in rec.processor.books.values()))
        finally:
            await feed.stop()
    reason = rec.events(ConnectionState.DEAD)[0].reason
    assert reason.startswith("no frame or PONG for")


async def test_backoff_grows_while_the_server_is_away_then_recovers() -> None:
    server = MockMarketServer(assets=2, seed=8, rate_hz=100)
    await server.start()
    port, assets = server.port, server.asset_ids
    connecting: list[float] = []
    rec = Recorder(assets)

    def on_state(event: ConnectionEvent) -> None:
        if event.state is ConnectionState.CONNECTING:
            connecting.append(time.monotonic())
        rec.on_state(event)

    feed = MarketFeed(
        server.url,
        assets,
        rec.on_frame,
        on_state=on_state,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
        jitter=0.0,
    )
    await feed.start()
    restarted: MockMarketServer | None = None
    try:
        await wait_until(lambda: feed.stats().frames >= 3)
        await server.stop()
        await wait_until(lambda: len(connecting) >= 6, what="several failed attempts")
        gaps = [b - a for a, b in itertools.pairwise(connecting[1:])]
        # first retry after a healthy socket waits `initial`; failed attempts double up to the cap
        for gap, expected in zip(gaps, [0.1, 0.2, 0.2, 0.2], strict=False):
            assert gap >= expected * 0.95, (gaps, expected)
        assert max(gaps) < 0.2 + 1.0
        restarted = MockMarketServer(port=port, assets=2, seed=8, rate_hz=100)
        await restarted.start()
        await wait_until(lambda: rec.events(ConnectionState.RECONNECTED), limit_s=3, what="back after restart")
        await wait_until(lambda: all(b.status is BookStatus.OK for b in rec.processor.books.values()))
    finally:
        await feed.stop()
        if restarted is not None:
            await restarted.stop()
    failed = [e for e in rec.events(ConnectionState.DEAD) if e.reason.startswith("connect failed")]
    assert len(failed) >= 4
