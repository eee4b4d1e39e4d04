"""Two feed workers (shards 0/2 and 1/2) and a trader on the real NATS JetStream (issue 20).

The workers are real ``polybot feed-worker`` processes on the market websocket double (the demo
recording, looped); the trader is the real service with ``feed.source = "bus"``, started in this
test's loop so its books can be read. Once deltas have flowed through the bus the market is frozen,
and every book the trader holds equals the book a single process on the websocket built (:class:`tests.integration.bus_world.Reference`) and the
double's own book; each worker published only its shard's markets, and the stream kept it all.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from core.bus.shard import shard_of
from core.service import Service, ServiceOptions
from core.settings import load_settings
from polybot.cli.main import main
from tests.integration.bus_world import (
    BusNames,
    Doubles,
    Reference,
    recording_markets,
    require_nats,
    start_worker,
    write_config,
)
from tests.procs import stop_group

pytestmark = pytest.mark.slow

START_S = 60.0  # ceilings: every wait returns as soon as its condition holds
SETTLE_S = 60.0


def stored_markets(db_path: Path, wanted: list[str]) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        known = {row[0] for row in conn.execute("select condition_id from markets")}
    return [m for m in wanted if m in known]


async def wait_for(pred: object, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:g}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_two_shards_and_a_trader_hold_the_books_a_single_process_builds(tmp_path: Path) -> None:
    require_nats()
    names = BusNames()
    doubles = Doubles(rate_hz=100.0, loop_recording=True)
    workers = []
    service: Service | None = None
    reference: Reference | None = None
    try:
        db_path = tmp_path / "bus.db"
        argv = ["refresh-markets", doubles.gamma.url, "--db-url", f"sqlite:///{db_path}", "--migrate"]
        assert await asyncio.to_thread(main, argv) == 0
        markets = stored_markets(db_path, recording_markets())
        assert len(markets) >= 4
        config = tmp_path / "service.toml"
        write_config(config, doubles, db_path, names, markets)

        service = Service(load_settings(config), ServiceOptions(with_bot=False))
        await service.start()
        assets = list(service.processor.books)
        assert len(assets) >= 8
        reference = Reference(doubles.ws.url, assets)
        await reference.feed.start()
        for shard in ("0/2", "1/2"):
            workers.append(start_worker(config, shard, f"w{shard[0]}"))
        for _proc, lines in workers:
            lines.wait_for("held by", START_S)

        feed = service.feed
        from core.bus.reader import BusFeed

        assert isinstance(feed, BusFeed)
        await wait_for(lambda: all(feed.sync.synced(a) for a in assets), START_S, "the trader in sync on every asset")
        await wait_for(lambda: feed.sync.stats.applied > 1000, START_S, "deltas through the bus")
        doubles.freeze()

        def settled() -> bool:
            truth = doubles.server_books(assets)
            assert service is not None and reference is not None
            mine = {
                a: (service.processor.books[a].bids_units(), service.processor.books[a].asks_units()) for a in assets
            }
            return mine == truth and reference.books(assets) == truth

        await wait_for(settled, SETTLE_S, "the trader's and the single process's books to equal the double's")
        trader = {a: (service.processor.books[a].bids_units(), service.processor.books[a].asks_units()) for a in assets}
        assert trader == reference.books(assets)
        assert all(bids or asks for bids, asks in trader.values()), "every book has levels"
        statuses = {service.processor.books[a].status.value for a in assets}
        assert statuses <= {"ok", "stale"}, statuses
        stats = feed.sync.stats
        assert stats.applied > 500, stats  # the deltas came through the bus, not only snapshots
        assert stats.gaps == 0 and stats.old_epoch == 0, stats

        # each worker published its shard's markets only (both tokens of a market on one shard)
        registry = service.registry
        by_shard: dict[int, set[str]] = {0: set(), 1: set()}
        for a in assets:
            market = registry.for_token(a)
            assert market is not None
            by_shard[shard_of(market.neg_risk_market_id or market.condition_id, 2)].add(a)
        assert by_shard[0] and by_shard[1], "the demo markets fall in both shards"
        for index, (proc, lines) in enumerate(workers):
            assert stop_group(proc) == 0
            text = lines.close()
            assert f"{len(by_shard[index])} assets" in text, text
            assert "Traceback" not in text, text
    finally:
        for proc, _lines in workers:
            stop_group(proc)
        if reference is not None:
            await reference.feed.stop()
        if service is not None:
            await service.stop()
        doubles.close()
        await names.cleanup()
