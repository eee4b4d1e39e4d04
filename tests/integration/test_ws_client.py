"""MarketFeed against the mock market channel over real loopback sockets: subscribe, stream,
heartbeat, connection split, clean stop."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import pytest

from core.feed.connection import ConnectionEvent, ConnectionState, split_assets, subscribe_message
from core.feed.ws import MarketFeed
from core.sim.mock_ws import MockMarketServer


async def wait_until(pred: Callable[[], bool], limit_s: float = 5.0, what: str = "condition") -> None:
    """Poll ``pred`` until true; fail after ``limit_s`` seconds."""
    for _ in range(int(limit_s / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {limit_s}s waiting for {what}")


def test_subscribe_message_is_the_venue_shape() -> None:
    assert subscribe_message(["1", "2"]) == '{"type":"market","assets_ids":["1","2"],"custom_feature_enabled":true}'
    assert json.loads(subscribe_message(["9"], custom_feature_enabled=False)) == {
        "type": "market",
        "assets_ids": ["9"],
        "custom_feature_enabled": False,
    }


def test_split_assets_dedupes_and_caps() -> None:
    assert split_assets(["a", "b", "a", "c", "d", "e"], 2) == [("a", "b"), ("c", "d"), ("e",)]
    assert split_assets(["a"], 200) == [("a",)]
    with pytest.raises(ValueError):
        split_assets(["a"], 0)


def test_reconnect_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    plain = MarketFeed("ws://127.0.0.1:9", ["a"], lambda text, ns: None, jitter=0.0).backoff
    rng = random.Random(1)
    delays = [plain.delay(n, rng) for n in range(10)]
    assert delays[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert delays[7:] == [30.0] * 3
    backoff = MarketFeed("ws://127.0.0.1:9", ["a"], lambda text, ns: None).backoff  # jitter 0.2
    jittered = [backoff.delay(3, rng) for _ in range(200)]
    assert all(3.2 <= d <= 4.8 for d in jittered)
    assert len({round(d, 6) for d in jittered}) > 100  # jitter really spreads reconnects
    assert all(backoff.delay(60, rng) <= 30.0 for _ in range(50))


async def test_subscribes_then_gets_books_then_price_changes() -> None:
    frames: list[str] = []
    events: list[ConnectionEvent] = []
    async with MockMarketServer(assets=4, seed=5, rate_hz=200) as server:
        assets = server.asset_ids
        feed = MarketFeed(server.url, assets, lambda text, ns: frames.append(text), on_state=events.append)
        stats = await feed.run_until(max_messages=30, timeout_s=5)
        assert server.subscribe_messages == [
            '{"type":"market","assets_ids":'
            + json.dumps(assets, separators=(",", ":"))
            + ',"custom_feature_enabled":true}'
        ]
    assert stats.frames >= 30
    decoded = [json.loads(f) for f in frames[:30]]
    books = decoded[: len(assets)]
    assert [b["event_type"] for b in books] == ["book"] * len(assets)
    assert {b["asset_id"] for b in books} == set(assets)
    for book in books:  # the venue's order: bids ascending, asks descending (best level last)
        bids = [float(level["price"]) for level in book["bids"]]
        asks = [float(level["price"]) for level in book["asks"]]
        assert bids == sorted(bids) and asks == sorted(asks, reverse=True)
        assert bids[-1] < asks[-1]
    rest = decoded[len(assets) :]
    assert {e["event_type"] for e in rest} <= {"price_change", "last_trade_price"}
    assert any(e["event_type"] == "price_change" for e in rest)
    states = [e.state for e in events]
    assert states[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
    assert states[-1] is ConnectionState.CLOSED
    assert ConnectionState.DEAD not in states


async def test_text_ping_is_answered_and_pongs_keep_a_quiet_socket_alive(tmp_path) -> None:
    # a recording of books only: after the snapshots the market is silent, the socket is not
    rec = tmp_path / "books_only.jsonl"
    book = {"event_type": "book", "market": "0xm", "asset_id": "111", "timestamp": "1", "bids": [], "asks": []}
    rec.write_text(json.dumps({"recv_ns": 1, "frame": json.dumps(book)}) + "\n")
    events: list[ConnectionEvent] = []
    frames: list[str] = []
    async with MockMarketServer(recording=rec) as server:
        feed = MarketFeed(
            server.url,
            ["111"],
            lambda t, n: frames.append(t),
            ping_interval_s=0.1,
            dead_after_s=0.5,
            on_state=events.append,
        )
        await feed.start()
        try:
            await asyncio.sleep(1.5)  # three times the dead-after window, with no market data
            stats = feed.stats()
        finally:
            await feed.stop()
        assert server.pings >= 5
    assert stats.pongs >= 5
    conn = stats.connections[0]
    assert conn.last_frame_ns is not None and conn.last_pong_ns is not None
    assert conn.last_pong_ns - conn.last_frame_ns > 1_000_000_000  # quiet market, live socket
    assert stats.dead == 0 and stats.reconnects == 0
    assert len(frames) == 1 and "PONG" not in frames  # PONG is counted, not delivered
    assert [e.state for e in events] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED, ConnectionState.CLOSED]


async def test_assets_are_split_across_connections() -> None:
    per_conn: dict[int, set[str]] = {}
    async with MockMarketServer(assets=5, seed=2, rate_hz=100) as server:
        assets = server.asset_ids  # 5 requested -> 6 (the odd one gets a complement)
        assert len(assets) == 6
        got: set[str] = set()

        def on_frame(text: str, ns: int) -> None:
            event = json.loads(text)
            if isinstance(event, dict) and event.get("event_type") == "book":
                got.add(event["asset_id"])

        feed = MarketFeed(server.url, assets, on_frame, max_assets_per_connection=4)
        assert feed.connection_count == 2
        await feed.start()
        try:
            await wait_until(lambda: got == set(assets), what="a book for every asset")
            await wait_until(lambda: len(server.subscribe_messages) == 2)
        finally:
            await feed.stop()
        for i, text in enumerate(server.subscribe_messages):
            per_conn[i] = set(json.loads(text)["assets_ids"])
    assert sorted(len(s) for s in per_conn.values()) == [2, 4]
    assert set.union(*per_conn.values()) == set(assets)
    assert server.total_connections == 2
    assert [c.asset_count for c in feed.stats().connections] == [4, 2]


async def test_stop_leaves_no_tasks_behind() -> None:
    async with MockMarketServer(assets=2, seed=1, rate_hz=100) as server:
        feed = MarketFeed(server.url, server.asset_ids, lambda t, n: None, ping_interval_s=0.05)
        await feed.start()
        await wait_until(lambda: feed.stats().frames >= 5)
        await feed.stop()
        await feed.stop()  # idempotent
        mine = [t for t in asyncio.all_tasks() if t.get_name().startswith("market-feed")]
        assert mine == []
        assert all(c.state is ConnectionState.CLOSED for c in feed.stats().connections)
        await wait_until(lambda: server.connections == 0, what="server saw the close")


async def test_unreachable_url_keeps_retrying_without_crashing() -> None:
    events: list[ConnectionEvent] = []
    # a port nobody listens on: bind one, note it, close it
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    feed = MarketFeed(
        f"ws://127.0.0.1:{port}/ws/market",
        ["1"],
        lambda t, n: None,
        reconnect_initial_s=0.02,
        reconnect_max_s=0.05,
        on_state=events.append,
    )
    stats = await feed.run_until(timeout_s=0.5)
    dead = [e for e in events if e.state is ConnectionState.DEAD]
    assert len(dead) >= 3
    assert all(e.reason.startswith("connect failed") for e in dead)
    assert stats.frames == 0 and stats.dead == len(dead)


async def test_a_raising_callback_is_counted_and_the_socket_survives() -> None:
    calls = [0]

    def on_frame(text: str, ns: int) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("consumer bug")

    async with MockMarketServer(assets=2, seed=4, rate_hz=200) as server:
        feed = MarketFeed(server.url, server.asset_ids, on_frame)
        stats = await feed.run_until(max_messages=10, timeout_s=5)
    assert stats.callback_errors == 1
    assert calls[0] >= 10
    assert stats.dead == 0
