"""The shard lease on the real NATS JetStream key-value bucket: only one claimant holds it; a
standby takes it over only after the holder stopped renewing for the lease's ttl; the old holder
then finds it taken (its revision is stale) and stands down; a release hands it over at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.kv import KeyValue

from core.app.feed_worker import FeedWorker, plan_worker
from core.bus.lease import ShardLease
from core.bus.subjects import lease_bucket_config, lease_key
from core.settings import load_settings
from tests.integration.bus_world import NATS_URL, BusNames, Doubles, recording_assets, require_nats, write_config
from tests.integration.test_bus_workers import wait_for

TTL_S = 1.0


@pytest.fixture
async def kv() -> AsyncIterator[KeyValue]:
    require_nats()
    names = BusNames()
    nc = await nats.connect(NATS_URL)
    try:
        yield await nc.jetstream().create_key_value(lease_bucket_config(names.bucket, ttl_s=TTL_S * 10))
    finally:
        await nc.close()
        await names.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lease(kv: KeyValue, worker: str, clock: Clock) -> ShardLease:
    return ShardLease(kv, "feed.0of1", worker=worker, shard="0of1", ttl_s=TTL_S, clock=clock)


async def test_one_holder_and_a_takeover_only_after_the_ttl(kv: KeyValue) -> None:
    clock = Clock()
    a, b, c = lease(kv, "a", clock), lease(kv, "b", clock), lease(kv, "c", clock)
    results = await asyncio.gather(a.try_take(), b.try_take(), c.try_take())
    assert sorted(results) == [False, False, True], "exactly one claimant wins the create"
    holder, others = next(x for x in (a, b, c) if x.held), [x for x in (a, b, c) if not x.held]
    epoch = holder.epoch
    # the holder renews: the standbys never see the same revision for a ttl
    for _ in range(4):
        clock.now += 0.6 * TTL_S
        assert await holder.renew()
        assert not await others[0].try_take() and not await others[1].try_take()
    # the holder goes silent: a standby takes over once it has watched one revision for the ttl
    assert not await others[0].try_take()
    clock.now += 0.9 * TTL_S
    assert not await others[0].try_take(), "not before the ttl"
    clock.now += 0.2 * TTL_S
    taken = await asyncio.gather(others[0].try_take(), others[1].try_take())
    assert taken.count(True) == 1, "one standby wins the revision-checked update"
    winner = others[0] if taken[0] else others[1]
    assert winner.epoch > epoch
    assert not await holder.renew(), "the old holder finds its revision gone and stands down"
    assert not holder.held
    await winner.release()
    assert await holder.try_take(), "a released lease is free at once"
    assert holder.epoch > winner.epoch


async def test_a_holder_that_cannot_renew_stops_before_a_standby_may_take_over(kv: KeyValue) -> None:
    clock = Clock()
    a = lease(kv, "a", clock)
    assert await a.try_take()
    clock.now += 0.7 * TTL_S
    assert a.held
    clock.now += 0.2 * TTL_S  # 0.9 ttl without a successful renewal: a standby may take over at 1 ttl
    assert not a.held


async def test_a_worker_whose_lease_is_taken_stops_publishing_and_stands_by(tmp_path: Path) -> None:
    """The feed worker itself: its lease overwritten by another (a takeover it slept through) ends
    its term at the next renewal, nothing more is published in its epoch, and once the lease is
    free again it takes it back in a new epoch with fresh books."""
    require_nats()
    names = BusNames()
    doubles = Doubles(rate_hz=100.0, loop_recording=True)
    stop = asyncio.Event()
    runner: asyncio.Task[None] | None = None
    nc = await nats.connect(NATS_URL)
    try:
        config = tmp_path / "worker.toml"
        write_config(config, doubles, tmp_path / "unused.db", names, [], lease_ttl_s=1.5)
        settings = load_settings(config).settings
        assets = recording_assets()[:4]
        plan = await plan_worker(settings, None, assets)
        worker = FeedWorker(settings, plan, name="solo")
        runner = asyncio.create_task(worker.run(stop))
        await wait_for(lambda: worker.term is not None and worker.term.publisher.stats.sent > 50, 30, "a first term")
        term = worker.term
        assert term is not None
        first_epoch = term.epoch
        kv = await nc.jetstream().key_value(names.bucket)
        await kv.put(lease_key(plan.shard), b"someone else")  # the revision the worker holds is gone
        await wait_for(lambda: worker.term is None, 10, "the worker to stand down")
        assert not term.publisher.active
        sent = term.publisher.stats.sent
        await asyncio.sleep(0.5)
        assert term.publisher.stats.sent == sent, "nothing published after standing down"
        await kv.delete(lease_key(plan.shard))
        await wait_for(lambda: worker.term is not None and worker.terms == 2, 10, "the lease taken back")
        assert worker.term is not None and worker.term.epoch > first_epoch
    finally:
        stop.set()
        if runner is not None:
            await asyncio.wait_for(runner, 30)
        await nc.close()
        doubles.close()
        await names.cleanup()
