"""The mock market channel, driven by a plain websockets client: protocol, routing,
determinism, recordings and fault controls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from core.feed.connection import ConnectionEvent, ConnectionState, subscribe_message
from core.feed.demo_recording import demo_recording_lines
from core.feed.processor import FeedProcessor
from core.feed.synth import write_recording
from core.feed.ws import MarketFeed
from core.sim.mock_ws import MockMarketServer
from core.types import BookStatus

TIMEOUT = 30.0  # a ceiling, not a pace: waits end as soon as their condition holds
# A burst (the frames of one match, one timestamp) is checked when the book's next timestamp
# arrives, or after this long without frames: generous, so that a client starved of CPU between
# two frames of one burst does not check it half-applied.
QUIET_MS = 5_000


async def wait_until(pred: Callable[[], bool], limit_s: float = TIMEOUT, what: str = "condition") -> None:
    """Poll ``pred`` until true; fail after ``limit_s`` seconds."""
    for _ in range(int(limit_s / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {limit_s}s waiting for {what}")


async def recv_json(ws: ClientConnection) -> Any:
    async with asyncio.timeout(TIMEOUT):
        while True:
            text = await ws.recv()
            if text != "PONG":
                return json.loads(text)


async def first_frames(server: MockMarketServer, count: int) -> list[str]:
    out: list[str] = []
    async with connect(server.url, proxy=None) as ws:
        await ws.send(subscribe_message(server.asset_ids))
        async with asyncio.timeout(TIMEOUT):
            while len(out) < count:
                out.append(str(await ws.recv()))
    return out


def write_jsonl(path: Path, frames: list[Any]) -> Path:
    lines = [
        json.dumps({"recv_ns": i, "frame": f if isinstance(f, str) else json.dumps(f)}) for i, f in enumerate(frames)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def book(asset: str, bid: str, ask: str, market: str = "0xm") -> dict[str, Any]:
    return {
        "event_type": "book",
        "market": market,
        "asset_id": asset,
        "timestamp": "100",
        "bids": [{"price": bid, "size": "10"}],
        "asks": [{"price": ask, "size": "10"}],
        "tick_size": "0.01",
    }


def change(ts: int, *entries: tuple[str, str, str, str]) -> dict[str, Any]:
    return {
        "event_type": "price_change",
        "market": "0xm",
        "timestamp": str(ts),
        "price_changes": [
            {"asset_id": a, "price": p, "size": s, "side": side, "hash": "h", "best_bid": "0", "best_ask": "1"}
            for a, p, s, side in entries
        ],
    }


async def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    runs = []
    for seed in (9, 9, 10):
        async with MockMarketServer(assets=4, seed=seed, rate_hz=500, start_ts_ms=1_700_000_000_000) as server:
            runs.append(await first_frames(server, 40))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    kinds = [json.loads(f)["event_type"] for f in runs[0]]
    assert kinds[:4] == ["book"] * 4 and "price_change" in kinds[4:]


async def test_ping_gets_pong_and_bad_messages_are_counted() -> None:
    async with MockMarketServer(assets=2, seed=1, rate_hz=10) as server, connect(server.url, proxy=None) as ws:
        await ws.send("PING")
        async with asyncio.timeout(TIMEOUT):
            assert await ws.recv() == "PONG"
        await ws.send("hello")
        await ws.send('{"type": "market"}')
        await wait_until(lambda: server.bad_messages == 2)
        assert server.subscribe_messages == []
        assert server.pings == 1


async def test_unknown_path_is_refused() -> None:
    async with MockMarketServer(assets=2, seed=1) as server:
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.url.replace("/ws/market", "/ws/user"), proxy=None):
                pass
        assert info.value.response.status_code == 404


async def test_recording_is_streamed_in_order_and_routed_per_asset(tmp_path: Path) -> None:
    rec = write_jsonl(
        tmp_path / "rec.jsonl",
        [
            book("A", "0.40", "0.60"),
            book("B", "0.30", "0.70"),
            change(101, ("A", "0.41", "5", "BUY"), ("B", "0.69", "7", "SELL")),
            change(102, ("B", "0.31", "3", "BUY")),
            "PONG",
            change(103, ("A", "0.59", "2", "SELL")),
        ],
    )
    async with MockMarketServer(recording=rec, rate_hz=1000) as server, connect(server.url, proxy=None) as ws:
        assert server.asset_ids == ["A", "B"]
        await ws.send(subscribe_message(["A"]))
        snapshot = await recv_json(ws)
        assert snapshot["event_type"] == "book" and snapshot["asset_id"] == "A"
        first = await recv_json(ws)
        assert first["timestamp"] == "101"
        assert [e["asset_id"] for e in first["price_changes"]] == ["A"]  # B's entry filtered out
        second = await recv_json(ws)
        assert second["timestamp"] == "103"  # the B-only frame and the PONG line are not sent
        await wait_until(lambda: server.exhausted.is_set())
        assert server.stats().frames_streamed == 3


async def test_reconnecting_client_gets_the_current_book(tmp_path: Path) -> None:
    rec = write_jsonl(
        tmp_path / "rec.jsonl",
        [book("A", "0.40", "0.60"), change(101, ("A", "0.41", "5", "BUY")), change(102, ("A", "0.40", "0", "BUY"))],
    )
    async with MockMarketServer(recording=rec, rate_hz=1000) as server:
        async with connect(server.url, proxy=None) as ws:
            await ws.send(subscribe_message(["A"]))
            await recv_json(ws)
            await recv_json(ws)
            await recv_json(ws)
        async with connect(server.url, proxy=None) as ws:
            await ws.send(subscribe_message(["A"]))
            snapshot = await recv_json(ws)
        assert snapshot["bids"] == [{"price": "0.41", "size": "5"}]
        server.set_book("A", [("0.20", "1"), ("0.25", "2")], [{"price": "0.90", "size": "3"}])
        async with connect(server.url, proxy=None) as ws:
            await ws.send(subscribe_message(["A"]))
            snapshot = await recv_json(ws)
        # bids ascending, asks descending: the best level is last, as the venue sends them
        assert snapshot["bids"] == [{"price": "0.20", "size": "1"}, {"price": "0.25", "size": "2"}]
        assert snapshot["asks"] == [{"price": "0.90", "size": "3"}]


async def test_dynamic_subscribe_unsubscribe_and_books_as_array() -> None:
    async with (
        MockMarketServer(assets=4, seed=2, rate_hz=200, books_as_array=True) as server,
        connect(server.url, proxy=None) as ws,
    ):
        a, b, c, _d = server.asset_ids
        await ws.send(subscribe_message([a, b]))
        books = await recv_json(ws)
        assert isinstance(books, list) and [x["asset_id"] for x in books] == [a, b]
        await ws.send(json.dumps({"assets_ids": [c], "operation": "subscribe"}))
        await ws.send(json.dumps({"assets_ids": [a, b], "operation": "unsubscribe"}))
        seen_book_c = False
        async with asyncio.timeout(TIMEOUT):
            while not seen_book_c:
                data = await recv_json(ws)
                seen_book_c = isinstance(data, list) and data[0]["asset_id"] == c
        # after the unsubscribe is processed only c's changes arrive
        for _ in range(20):
            data = await recv_json(ws)
            for event in data if isinstance(data, list) else [data]:
                assets = {e["asset_id"] for e in event.get("price_changes", [])} or {event.get("asset_id")}
                assert assets == {c}


async def test_generated_stream_keeps_books_consistent_across_reconnects() -> None:
    async with MockMarketServer(assets=6, seed=31, rate_hz=1000) as server:
        processor = FeedProcessor(set(server.asset_ids), burst_quiet_ms=QUIET_MS)

        def on_state(event: ConnectionEvent) -> None:
            if event.state in (ConnectionState.DEAD, ConnectionState.RECONNECTED):
                processor.mark_awaiting_snapshot(event.asset_ids)

        feed = MarketFeed(
            server.url,
            server.asset_ids,
            processor.process,
            on_state=on_state,
            max_assets_per_connection=4,
            reconnect_initial_s=0.02,
        )
        await feed.start()
        try:
            for _ in range(3):
                target = feed.stats().frames + 300
                await wait_until(lambda t=target: feed.stats().frames >= t)
                server.drop_connections()
            await wait_until(lambda: feed.stats().reconnects >= 6, what="six reconnects")
            target = feed.stats().frames + 300
            await wait_until(lambda: feed.stats().frames >= target)
        finally:
            await feed.stop()
    # every burst the stream closed was checked as it closed; the one stopping may have cut is not
    assert processor.faults.total == 0, processor.faults.as_dict()
    assert processor.counters.total == 0, processor.counters.as_dict()
    assert all(b.status is BookStatus.OK for b in processor.books.values())


async def test_serves_the_demo_recording(tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    write_recording(path, demo_recording_lines(frames=120))
    async with MockMarketServer(recording=path, rate_hz=0) as server:
        assert len(server.asset_ids) == 8
        processor = FeedProcessor(set(server.asset_ids), burst_quiet_ms=QUIET_MS)
        feed = MarketFeed(server.url, server.asset_ids, processor.process)
        await feed.start()
        try:
            await wait_until(lambda: server.exhausted.is_set())
            # everything the double sent has been processed: the recording's last burst is whole
            await wait_until(lambda: feed.stats().frames >= server.stats().frames_sent, 30, "the last frame")
        finally:
            await feed.stop()
        processor.finish(0)
    assert processor.faults.total == 0, processor.faults.as_dict()
    assert all(b.status is BookStatus.OK for b in processor.books.values())


async def test_bad_events_in_a_recording_are_counted_and_forwarded(tmp_path: Path) -> None:
    rec = write_jsonl(
        tmp_path / "faulty.jsonl",
        [
            book("A", "0.40", "0.60"),
            "not json at all",
            {"event_type": "book", "market": "0xm", "bids": []},  # no asset_id
            {"event_type": "price_change", "market": "0xm", "timestamp": "5", "price_changes": [{"asset_id": "A"}]},
            {"event_type": "price_change", "asset_id": "A", "price": "0.45", "size": "4", "side": "BUY"},  # 2024 shape
            {"event_type": "book", "asset_id": ["x"], "bids": [], "asks": []},
            change(7, ("A", "0.40", "0", "BUY")),
        ],
    )
    async with MockMarketServer(recording=rec, rate_hz=1000) as server:
        processor = FeedProcessor({"A"})
        feed = MarketFeed(server.url, ["A"], processor.process)
        await feed.start()
        try:
            await wait_until(lambda: server.exhausted.is_set())
            await wait_until(lambda: feed.stats().frames >= 7, what="every frame forwarded")
        finally:
            await feed.stop()
        assert server.bad_source_events == 3
        async with connect(server.url, proxy=None) as ws:
            await ws.send(subscribe_message(["A"]))
            snapshot = await recv_json(ws)
    # the 2024 per-level change applied, the last change removed 0.40
    assert snapshot["bids"] == [{"price": "0.45", "size": "4"}]
    assert processor.counters["malformed_json"] == 1
    assert processor.counters.total >= 3


async def test_missing_recording_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="recording not found"):
        await MockMarketServer(recording=tmp_path / "nope.jsonl").start()


async def test_a_looped_recording_stays_consistent_across_its_wraps(tmp_path: Path) -> None:
    # the stream rewinds to deltas that assume the recording's opening books: each wrap sends
    # those books again, so a client never sees deltas contradict their own carried best prices
    path = tmp_path / "demo.jsonl"
    write_recording(path, demo_recording_lines(frames=120))
    async with MockMarketServer(recording=path, rate_hz=2000, loop_recording=True) as server:
        processor = FeedProcessor(set(server.asset_ids), burst_quiet_ms=QUIET_MS)
        feed = MarketFeed(server.url, server.asset_ids, processor.process)
        await feed.start()
        try:
            await wait_until(lambda: server.stats().frames_streamed >= 3 * 120 + 20, 30, "three wraps")
            target = server.stats().frames_sent
            await wait_until(lambda: feed.stats().frames >= target, 30, "the frames of three wraps")
        finally:
            await feed.stop()
    # every burst the stream closed was checked as it closed; the one stopping may have cut is not
    assert processor.faults.total == 0, processor.faults.as_dict()
    assert processor.counters.total == 0, processor.counters.as_dict()
    assert all(b.status is BookStatus.OK for b in processor.books.values())


async def test_book_snapshots_have_the_venues_shape(shared_fixtures: Path) -> None:
    capture = json.loads((shared_fixtures / "ws_market" / "ws_book_snapshot_captured.json").read_text())
    async with MockMarketServer(assets=1, seed=5) as server, connect(server.url, proxy=None) as ws:
        await ws.send(subscribe_message(server.asset_ids))
        book = await recv_json(ws)
    assert sorted(book) == sorted(capture)
    assert {k: type(v).__name__ for k, v in book.items()} == {k: type(v).__name__ for k, v in capture.items()}
    assert sorted(book["bids"][0]) == sorted(capture["bids"][0]) == ["price", "size"]
    # the best level is the last element: bids ascending, asks descending
    for side, best in (("bids", max), ("asks", min)):
        prices = [float(level["price"]) for level in book[side]]
        assert len(prices) > 1 and prices[-1] == best(prices), (side, prices)
