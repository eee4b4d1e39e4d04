"""Two feed workers (shards 0/2 and 1/2) and a trader on the real NATS JetStream (issue 20).

The workers are real ``polybot feed-worker`` processes on the market websocket double (the demo
recording, looped); the trader is the real service with ``feed.source = "bus"``, started in this
test's loop so its books can be read. Once deltas have flowed through the bus the market is frozen,
and every book the trader holds equals the book a single process on the websocket built (:class:`tests.integration.bus_world.Reference`) and the
double's own book; each worker published only its shard's markets, and the stream kept it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from core.bus.shard import shard_of
from core.metrics.bus_stats import BusStats
from core.service import Service, ServiceOptions
from core.settings import load_settings
from polybot.cli.main import main
from tests.e2e.test_run_service import start_service
from tests.integration.bus_world import (
    BusNames,
    Doubles,
    Reference,
    integrity,
    recording_markets,
    require_nats,
    start_worker,
    write_config,
)
from tests.procs import Lines, stop_group

pytestmark = pytest.mark.slow(seconds=25)

START_S = 60.0  # ceilings: every wait returns as soon as its condition holds
SETTLE_S = 60.0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}


def stored_markets(db_path: Path, wanted: list[str]) -> list[str]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
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
    cli_trader: tuple[subprocess.Popen[str], Lines] | None = None
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
        cli_db = tmp_path / "cli-trader.db"  # a second trader: `polybot run-service`, its own database
        shutil.copy(db_path, cli_db)
        cli_config = tmp_path / "cli-trader.toml"
        write_config(cli_config, doubles, cli_db, names, markets)

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
        cli_trader = start_service(cli_config, _env())
        cli_trader[1].wait_for("polybot: running in paper mode", START_S)

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
        assert integrity(db_path) == "ok"
        trader = {a: (service.processor.books[a].bids_units(), service.processor.books[a].asks_units()) for a in assets}
        assert trader == reference.books(assets)
        assert all(bids or asks for bids, asks in trader.values()), "every book has levels"
        statuses = {service.processor.books[a].status.value for a in assets}
        assert statuses <= {"ok", "stale"}, statuses
        stats = feed.sync.stats
        assert stats.applied > 500, stats  # the deltas came through the bus, not only snapshots
        meter = feed.meter  # what /metrics reads (polybot_bus_received_total, _sequence_gaps_total, ...)
        assert isinstance(meter, BusStats) and sum(meter.received.values()) >= stats.applied and meter.gaps == 0
        assert meter.received.get("delta", 0) > 500 and meter.resnapshots >= len(assets)
        lat = sorted(feed.latency_ns)
        print(
            f"\nbus: {stats.applied} messages applied at the trader; worker publish -> trader receive "
            f"p50 {lat[len(lat) // 2] / 1e6:.2f} ms, p99 {lat[len(lat) * 99 // 100] / 1e6:.2f} ms ({len(lat)} samples)"
        )
        assert stats.gaps == 0 and stats.old_epoch == 0, stats

        # each worker published its shard's markets only (both tokens of a market on one shard)
        registry = service.registry
        by_shard: dict[int, set[str]] = {0: set(), 1: set()}
        for a in assets:
            market = registry.for_token(a)
            assert market is not None
            by_shard[shard_of(market.neg_risk_market_id or market.condition_id, 2)].add(a)
        assert by_shard[0] and by_shard[1], "the demo markets fall in both shards"
        # the CLI trader stored what it read from the bus, as a websocket service stores its feed
        assert stop_group(cli_trader[0]) == 0
        cli_text = cli_trader[1].close()
        assert "Traceback" not in cli_text and "stopped cleanly" in cli_text, cli_text
        with contextlib.closing(sqlite3.connect(cli_db)) as conn:
            snapshots = conn.execute("select count(distinct asset_id) from book_snapshots").fetchone()[0]
            deltas = conn.execute("select count(*) from book_deltas").fetchone()[0]
        assert snapshots == len(assets) and deltas > 100, (snapshots, deltas)
        for index, (proc, lines) in enumerate(workers):
            assert stop_group(proc) == 0
            text = lines.close()
            assert f"{len(by_shard[index])} assets" in text, text
            assert "Traceback" not in text, text
    finally:
        for proc, _lines in workers:
            stop_group(proc)
        if cli_trader is not None:
            stop_group(cli_trader[0])
        if reference is not None:
            await reference.feed.stop()
        if service is not None:
            await service.stop()
        doubles.close()
        await names.cleanup()
