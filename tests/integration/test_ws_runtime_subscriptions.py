"""MarketFeed.set_assets against the market-channel double over real loopback sockets: assets
added and removed on live sockets (no reconnect), the per-socket cap, sockets opened and closed,
and a reconnect that subscribes the current set."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable

from core.feed.ws import MarketFeed
from core.sim.mock_ws import MockMarketServer


async def wait_until(pred: Callable[[], bool], limit_s: float = 30.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s}s waiting for {what}")
        await asyncio.sleep(0.01)


class Tally:
    """Frames per asset and snapshots per asset, as the feed delivered them."""

    def __init__(self) -> None:
        self.frames: Counter[str] = Counter()
        self.books: Counter[str] = Counter()
        self.total = 0

    def __call__(self, text: str, recv_ns: int) -> None:
        self.total += 1
        decoded = json.loads(text)
        for ev in decoded if isinstance(decoded, list) else [decoded]:
            assets = [ev.get("asset_id")] + [c.get("asset_id") for c in ev.get("price_changes", [])]
            for asset in {a for a in assets if a}:
                self.frames[asset] += 1
                if ev.get("event_type") == "book":
                    self.books[asset] += 1


async def test_assets_added_and_removed_on_live_sockets_within_the_cap() -> None:
    tally = Tally()
    async with MockMarketServer(assets=8, seed=3, rate_hz=400) as server:
        assets = server.asset_ids
        feed = MarketFeed(server.url, assets[:2], tally, max_assets_per_connection=3)
        await feed.start()
        try:
            await wait_until(lambda: all(tally.books[a] for a in assets[:2]), what="the first books")
            assert server.total_connections == 1

            change = await feed.set_assets(assets[:6])  # one fits socket 0, three need a new socket
            assert change.added == tuple(assets[2:6]) and change.opened == 1
            await wait_until(lambda: all(tally.books[a] for a in assets[:6]), what="books of the added assets")
            assert server.total_connections == 2  # the existing socket was not reconnected
            assert server.stats().subscribe_operations == 1
            assert all(len(held) <= 3 for held in server.client_assets())
            assert [c.asset_count for c in feed.stats().connections] == [3, 3]

            change = await feed.set_assets(assets[:2] + assets[3:5])  # drops assets[2] and assets[5]
            assert set(change.removed) == {assets[2], assets[5]}
            await wait_until(lambda: server.stats().unsubscribe_operations == 2, what="the unsubscribes")
            seen = tally.total
            await wait_until(lambda: tally.total > seen + 200, what="frames after the unsubscribe")  # queues drained
            before = Counter(tally.frames)
            await wait_until(lambda: tally.total > seen + 600, what="more frames")
            assert tally.frames[assets[2]] == before[assets[2]] and tally.frames[assets[5]] == before[assets[5]]
            assert tally.frames[assets[3]] > before[assets[3]]  # the others still stream
            assert server.total_connections == 2 and feed.stats().reconnects == 0
        finally:
            await feed.stop()


async def test_an_emptied_socket_closes_and_a_full_set_opens_sockets() -> None:
    tally = Tally()
    async with MockMarketServer(assets=8, seed=4, rate_hz=200) as server:
        assets = server.asset_ids
        feed = MarketFeed(server.url, assets[:4], tally, max_assets_per_connection=2)
        await feed.start()
        try:
            await wait_until(lambda: server.connections == 2, what="two sockets")
            change = await feed.set_assets(assets[:2])
            assert change.closed == 1
            await wait_until(lambda: server.connections == 1, what="the emptied socket closed")
            change = await feed.set_assets(assets)  # 8 assets, 2 a socket: 3 new sockets
            assert change.opened == 3
            await wait_until(lambda: server.connections == 4, what="four sockets")
            await wait_until(lambda: all(tally.books[a] for a in assets), what="every book")
            assert sorted(len(h) for h in server.client_assets()) == [2, 2, 2, 2]
            assert feed.connection_count == 4
        finally:
            await feed.stop()


async def test_a_reconnect_subscribes_the_current_set() -> None:
    tally = Tally()
    async with MockMarketServer(assets=6, seed=5, rate_hz=200) as server:
        assets = server.asset_ids
        feed = MarketFeed(server.url, assets[:2], tally, max_assets_per_connection=10, reconnect_initial_s=0.05)
        await feed.start()
        try:
            # subscribed, not only connected: a change made before the first subscribe rides on it
            # (no operation to wait for), which a busy machine's accept-to-subscribe gap allowed
            await wait_until(lambda: all(tally.books[a] for a in assets[:2]), what="the first books")
            await feed.set_assets([assets[1], *assets[3:6]])
            await wait_until(lambda: server.stats().unsubscribe_operations == 1, what="the operations")
            first = len(server.subscribe_messages)
            server.drop_connections()
            await wait_until(lambda: len(server.subscribe_messages) > first, what="the resubscribe")
            resubscribed = json.loads(server.subscribe_messages[-1])
            assert resubscribed["type"] == "market"
            assert resubscribed["assets_ids"] == [assets[1], *assets[3:6]]
            await wait_until(lambda: feed.stats().reconnects == 1, what="the reconnect")
            assert server.client_assets() == [{assets[1], *assets[3:6]}]
        finally:
            await feed.stop()
