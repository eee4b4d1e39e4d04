"""Feed-table retention on real SQLite and PostgreSQL: exactly the old rows go, thinning keeps one
snapshot per asset per bucket, a dry run removes nothing, PostgreSQL drops whole day partitions,
and the batched writer keeps writing (every row) while a prune runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings.retention import RetentionSettings
from core.store import partitions as parts
from core.store.db import create_engine
from core.store.migrate import upgrade_to_head
from core.store.retention import Pruner
from core.store.writer import BatchedWriter
from tests.integration.retention_rows import MINUTE_NS, NOW_NS, ago, count, insert, row, stamps

OLD_DAYS = (0.1, 2.5, 6.9, 7.5, 9.0, 12.0)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_to_head(db_url)
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


def _settings(**kw: int) -> RetentionSettings:
    base = {"book_deltas_days": 7, "trades_days": 10, "book_snapshots_days": 0, "batch_rows": 100, "pause_ms": 0}
    return RetentionSettings(**{**base, **kw})


def _pruner(engine: AsyncEngine, settings: RetentionSettings) -> Pruner:
    return Pruner(engine, settings, clock_ns=lambda: NOW_NS)


async def _fill_days(engine: AsyncEngine, table: str, days: tuple[float, ...], per_day: int) -> list[int]:
    stamps_ = [ago(d, minutes=i) for d in days for i in range(per_day)]
    await insert(engine, table, stamps_)
    return stamps_


async def test_rows_older_than_the_window_go_and_the_rest_stay(engine: AsyncEngine) -> None:
    deltas = await _fill_days(engine, "book_deltas", OLD_DAYS, 150)
    trades = await _fill_days(engine, "trades", OLD_DAYS, 30)
    snaps = await _fill_days(engine, "book_snapshots", OLD_DAYS, 5)  # kept forever (0 days)
    result = {p.table: p for p in await _pruner(engine, _settings()).run()}

    assert await stamps(engine, "book_deltas") == sorted(ts for ts in deltas if ts >= ago(7))
    assert await stamps(engine, "trades") == sorted(ts for ts in trades if ts >= ago(10))
    assert await stamps(engine, "book_snapshots") == sorted(snaps)
    assert result["book_deltas"].rows + result["book_deltas"].partition_rows == sum(ts < ago(7) for ts in deltas)
    assert result["trades"].removes == 30
    assert result["book_snapshots"].removes == 0
    assert (await _pruner(engine, _settings()).plan())[1].removes == 0  # nothing left to remove


async def test_a_dry_run_says_what_goes_and_removes_nothing(engine: AsyncEngine) -> None:
    deltas = await _fill_days(engine, "book_deltas", OLD_DAYS, 40)
    plan = {p.table: p for p in await _pruner(engine, _settings()).plan()}
    assert await count(engine, "book_deltas") == len(deltas)
    assert plan["book_deltas"].removes == sum(ts < ago(7) for ts in deltas) == 120
    assert plan["book_deltas"].oldest_kept_ns == min(ts for ts in deltas if ts >= ago(7))
    assert plan["book_deltas"].newest_kept_ns == max(deltas)
    done = {p.table: p for p in await _pruner(engine, _settings()).run()}
    assert done["book_deltas"].rows + done["book_deltas"].partition_rows == 120


async def test_thinning_keeps_exactly_one_snapshot_per_asset_per_bucket(engine: AsyncEngine) -> None:
    settings = _settings(book_snapshots_days=1, book_snapshots_every_minutes=5, book_snapshots_thinned_days=4)
    # every 20 s for 3 hours, 1.5 days ago (thinned), 0.5 day ago (raw) and 5 days ago (deleted)
    for asset in ("a1", "a2"):
        for days in (0.5, 1.5, 5.0):
            await insert(engine, "book_snapshots", [ago(days) + i * MINUTE_NS // 3 for i in range(540)], asset)
    await _pruner(engine, settings).run()

    bucket = 5 * MINUTE_NS
    raw_from = (NOW_NS - parts.DAY_NS) // bucket * bucket
    for asset in ("a1", "a2"):
        kept = await stamps(engine, "book_snapshots", asset)
        assert all(ts >= ago(4) for ts in kept)
        thinned = [ts for ts in kept if ts < raw_from]
        buckets = [ts // bucket for ts in thinned]
        first: dict[int, int] = {}
        for i in range(540):
            first.setdefault((ago(1.5) + i * MINUTE_NS // 3) // bucket, ago(1.5) + i * MINUTE_NS // 3)
        assert len(buckets) == len(set(buckets)) == len(first) >= 36  # 3 h: one per 5-min bucket
        assert thinned == sorted(first.values())  # the first of each bucket is the one kept
        assert len([ts for ts in kept if ts >= raw_from]) == 540  # the raw window is untouched
    again = await _pruner(engine, settings).run()
    assert again[0].removes == 0  # thinning twice removes nothing more


async def test_the_writer_keeps_writing_while_a_prune_runs(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":  # so that the prune drops day partitions under the writer too
        async with engine.begin() as conn:
            await parts.ensure_days(conn, "book_deltas", parts.day_of(ago(12)), 4)
    await insert(engine, "book_deltas", [ago(9, minutes=i / 100) for i in range(20_000)])
    await insert(engine, "book_deltas", [ago(11, minutes=i) for i in range(3_000)])
    writer = BatchedWriter(engine, max_batch=500, min_interval_s=0)  # commit as soon as rows wait
    writer.start()
    written = 0
    pruner = Pruner(engine, _settings(batch_rows=1000, pause_ms=5), clock_ns=lambda: NOW_NS)
    task = asyncio.create_task(pruner.run())
    while not task.done():  # a row every ms or so for as long as the prune runs
        assert writer.put("book_deltas", row("book_deltas", NOW_NS + written))
        written += 1
        await asyncio.sleep(0.001)
    result = await task
    during = writer.stats.batches
    await writer.close()
    assert during >= 3  # the writer committed while the prune ran, not only after it
    assert writer.stats.written == written and writer.stats.rejected == 0
    assert await count(engine, "book_deltas") == written
    assert sum(p.rows + p.partition_rows for p in result) == 23_000
    if engine.dialect.name == "postgresql":
        assert result[1].partitions  # a whole day went while the writer wrote


async def test_postgres_drops_whole_day_partitions_and_moves_strays_out_of_default(pg_url: str) -> None:
    await upgrade_to_head(pg_url)
    engine = create_engine(pg_url)
    try:
        deltas = await _fill_days(engine, "book_deltas", OLD_DAYS, 50)  # all in DEFAULT: no such days yet
        first = parts.day_of(ago(12))
        async with engine.begin() as conn:
            made = await parts.ensure_days(conn, "book_deltas", first, 13)
        assert len(made) == 12  # the 12 past days; today (and 3 days ahead) came with the migration
        async with engine.connect() as conn:
            where = (await conn.execute(text("SELECT tableoid::regclass::text, receive_ts FROM book_deltas"))).all()
        assert len(where) == len(deltas)
        for name, ts in where:
            assert name == parts.partition_name("book_deltas", parts.day_of(ts)), (name, ts)

        plan = (await _pruner(engine, _settings()).plan())[1]
        boundary = parts.day_of(ago(7))  # its partition stays: part of that day is inside the window
        expected = [parts.partition_name("book_deltas", first + timedelta(days=i)) for i in range(5)]
        assert parts.partition_name("book_deltas", boundary) not in expected
        assert sorted(plan.partitions) == expected  # empty old days go too
        assert plan.partition_rows == sum(parts.day_of(ts) < boundary for ts in deltas) > 0
        assert plan.rows == sum(parts.day_of(ts) == boundary and ts < ago(7) for ts in deltas)
        await _pruner(engine, _settings()).run()
        async with engine.connect() as conn:
            left = {p.name for p in await parts.partitions(conn, "book_deltas")}
        assert not left & set(expected)
        assert parts.partition_name("book_deltas", parts.day_of(NOW_NS) + timedelta(days=3)) in left
        assert await stamps(engine, "book_deltas") == sorted(ts for ts in deltas if ts >= ago(7))
    finally:
        await engine.dispose()
