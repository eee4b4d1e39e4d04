"""Failover on the real NATS JetStream (issue 20): two ``polybot feed-worker`` claim one shard, the
lease makes one active; ``kill -9`` of the active one hands the shard to the standby within 5 s,
the trader (the real service, ``feed.source = "bus"``) drops the dead epoch's books and
resnapshots from the new one, and never holds a book of the dead worker as ``ok`` once that worker
is known silent; when the market is then frozen its books equal the double's and a single
process's.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.bus.reader import BusFeed
from core.service import Service, ServiceOptions
from core.settings import load_settings
from core.types import BookStatus
from polybot.cli.main import main
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
from tests.integration.test_bus_workers import stored_markets, wait_for
from tests.procs import kill9, stop_group

pytestmark = pytest.mark.slow(seconds=33)

START_S = 60.0
TAKEOVER_S = 5.0  # the requirement
LEASE_TTL_S = 3.0  # the default


def _books(service: Service, assets: list[str]) -> dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
    return {a: (service.processor.books[a].bids_units(), service.processor.books[a].asks_units()) for a in assets}


async def test_kill9_of_the_active_worker_hands_the_shard_to_the_standby(tmp_path: Path) -> None:
    require_nats()
    names = BusNames()
    doubles = Doubles(rate_hz=60.0, loop_recording=True)
    procs = []
    service: Service | None = None
    reference: Reference | None = None
    try:
        db_path = tmp_path / "bus.db"
        argv = ["refresh-markets", doubles.gamma.url, "--db-url", f"sqlite:///{db_path}", "--migrate"]
        assert await asyncio.to_thread(main, argv) == 0
        config = tmp_path / "service.toml"
        write_config(
            config, doubles, db_path, names, stored_markets(db_path, recording_markets()), lease_ttl_s=LEASE_TTL_S
        )

        service = Service(load_settings(config), ServiceOptions(with_bot=False))
        await service.start()
        feed = service.feed
        assert isinstance(feed, BusFeed)
        assets = list(service.processor.books)
        reference = Reference(doubles.ws.url, assets)
        await reference.feed.start()

        active, active_lines = start_worker(config, "0/1", "alpha")
        procs.append(active)
        active_lines.wait_for("held by alpha", START_S)
        standby, standby_lines = start_worker(config, "0/1", "beta")
        procs.append(standby)
        standby_lines.wait_for("standby", START_S)
        await wait_for(lambda: all(feed.sync.synced(a) for a in assets), START_S, "the trader in sync")
        await wait_for(lambda: feed.sync.stats.applied > 300, START_S, "deltas through the bus")
        old_epoch = feed.sync.epoch_of(assets[0])
        assert {feed.sync.epoch_of(a) for a in assets} == {old_epoch}
        moved = doubles.ws.frames_streamed

        applied = feed.sync.stats.applied
        kill9(active)
        killed = time.monotonic()
        silent_by = killed + LEASE_TTL_S + 1.0  # the dead epoch is known silent by then
        taken: float | None = None
        wrong: list[str] = []
        deadline = killed + 30.0
        while time.monotonic() < deadline:
            if taken is None and "held by beta" in standby_lines.text:
                taken = time.monotonic()
            if time.monotonic() > silent_by:
                wrong += [
                    a
                    for a in assets
                    if service.processor.books[a].status is BookStatus.OK and feed.sync.epoch_of(a) == old_epoch
                ]
            if taken is not None and all(feed.sync.synced(a) and feed.sync.epoch_of(a) > old_epoch for a in assets):
                break
            await asyncio.sleep(0.05)
        assert taken is not None, standby_lines.text
        assert taken - killed < TAKEOVER_S, f"takeover after {taken - killed:.2f}s"
        assert not wrong, f"books of the dead worker still ok: {sorted(set(wrong))}"
        assert all(feed.sync.synced(a) and feed.sync.epoch_of(a) > old_epoch for a in assets), feed.sync.stats
        assert feed.sync.stats.epoch_changes >= len(assets)
        assert doubles.ws.frames_streamed > moved + 60, "the market moved while the shard changed hands"
        await wait_for(lambda: feed.sync.stats.applied > applied + 300, START_S, "deltas from the new worker")
        doubles.freeze()

        def settled() -> bool:
            assert service is not None and reference is not None
            truth = doubles.server_books(assets)
            return _books(service, assets) == truth and reference.books(assets) == truth

        await wait_for(settled, 60.0, "the trader's books to equal the double's and the single process's")
        assert integrity(db_path) == "ok"
        assert stop_group(standby) == 0
        text = standby_lines.close()
        assert "Traceback" not in text, text
        print(
            f"\nfailover: kill -9 at 0.00s, lease taken by the standby at {taken - killed:.2f}s; "
            f"trader: {feed.sync.stats}"
        )
    finally:
        for proc in procs:
            stop_group(proc)
        if reference is not None:
            await reference.feed.stop()
        if service is not None:
            await service.stop()
        doubles.close()
        await names.cleanup()
