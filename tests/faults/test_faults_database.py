"""Database faults while the service ingests: locked/slow database, connection killed mid-batch.

The rows the pipeline received (counted from the raw frames) must all be stored exactly once;
the writer's counters show the stall or the retries; the service keeps running throughout.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from core.store.db import create_engine
from core.store.migrate import upgrade_engine
from core.store.writer import BatchedWriter
from tests.faults.fault_harness import (
    WAIT_S,
    FaultRecord,
    Rig,
    count_rows,
    expected_feed_rows,
    running_service,
    wait_for,
)

FEED_TABLES = ("book_snapshots", "book_deltas", "trades")


async def _finish(rig: Rig, rec: FaultRecord) -> None:
    assets = rig.assets
    writer = rig.service.writer.stats
    await asyncio.wait_for(rig.service.stop(), WAIT_S)
    want = expected_feed_rows(rig.frames, assets)
    got = await count_rows(rig.db_url, FEED_TABLES)
    rec.rows_expected = sum(want.values())
    rec.rows_stored = sum(got.values())
    rec.counters.update(
        {
            "frames_received": len(rig.frames),
            "writer_errors": writer.errors,
            "writer_retries": writer.retries,
            "writer_max_batch": writer.max_batch,
            "writer_rejected": writer.rejected,
            "queue_full": writer.queue_full_count,
            "latency_max_ms": round(writer.latency_max_ms or 0, 1),
        }
    )
    assert got == want, f"rows stored {got} != rows received {want}"


def _sqlite_file(url: str) -> Path:
    return Path(str(make_url(url).database))


async def _pg_admin(url: str) -> object:
    import asyncpg

    return await asyncpg.connect(url)


async def test_db_locked_or_slow_during_a_batch(
    db_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    is_pg = db_url.startswith("postgresql")
    fault_record.scenario = (
        "database slow: book_deltas locked by another session for 2 s"
        if is_pg
        else "database locked: another connection holds the SQLite write lock for 2 s"
    )
    async with running_service(db_url, monkeypatch, rate_hz=300.0) as rig:
        await rig.wait_books_ok()
        await rig.frames_advance(50)
        writer = rig.service.writer
        written_before = writer.stats.written
        if is_pg:
            conn = await _pg_admin(db_url)
            tx = conn.transaction()  # type: ignore[attr-defined]
            await tx.start()
            await conn.execute("LOCK TABLE book_deltas IN ACCESS EXCLUSIVE MODE")  # type: ignore[attr-defined]
        else:
            # taken off the loop: the writer may be mid-batch (aiosqlite waits on this loop to commit),
            # and a busy wait here would block the very commit it waits for until the timeout
            lock = sqlite3.connect(_sqlite_file(db_url), isolation_level=None, timeout=WAIT_S, check_same_thread=False)
            await asyncio.to_thread(lock.execute, "BEGIN EXCLUSIVE")
        held_at = time.monotonic()
        # Once the lock is ours no batch can commit; one that committed just before may still be
        # counting itself, hence "at most one batch" below, with no sleep racing it.
        stalled_at = writer.stats.written
        await rig.frames_advance(200)  # ingest goes on while the database is stuck
        assert writer.stats.pending > 0, "rows must wait in the writer's queue while the database is locked"
        # the fault lasts at least 2 s (longer when the 200 frames took longer): not a race
        await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - held_at)))
        assert writer.stats.written - stalled_at <= writer.stats.max_batch  # at most the batch in flight
        if is_pg:
            await tx.rollback()
            await conn.close()  # type: ignore[attr-defined]
        else:
            await asyncio.to_thread(lock.execute, "ROLLBACK")
            lock.close()
        await wait_for(lambda: writer.stats.written > stalled_at, WAIT_S, "the writer to commit after the lock")
        await writer.flush(timeout_s=WAIT_S)
        await rig.frames_advance(50)
        fault_record.alerts = "none (a stall shorter than the busy timeout is not an outage)"
        assert writer.stats.written > written_before
        assert (await rig.service.control.health()).ok
        await _finish(rig, fault_record)


async def test_pg_connection_killed_during_a_batch(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, fault_record: FaultRecord
) -> None:
    fault_record.backend = "postgresql"
    fault_record.scenario = "database connection dropped mid-batch (pg_terminate_backend of the writer)"
    async with running_service(pg_url, monkeypatch, rate_hz=300.0) as rig:
        await rig.wait_books_ok()
        await rig.frames_advance(50)
        writer = rig.service.writer
        conn = await _pg_admin(pg_url)
        try:
            # hold the writer inside a batch (waiting on a lock), then kill its backend
            tx = conn.transaction()  # type: ignore[attr-defined]
            await tx.start()
            await conn.execute("LOCK TABLE book_deltas IN ACCESS EXCLUSIVE MODE")  # type: ignore[attr-defined]

            async def blocked() -> list[int]:
                rows = await conn.fetch(  # type: ignore[attr-defined]
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
                )
                return [r["pid"] for r in rows]

            pids = await wait_for(blocked, WAIT_S, "the writer to block inside a batch")
            for pid in pids:
                await conn.execute("SELECT pg_terminate_backend($1)", pid)  # type: ignore[attr-defined]
            await tx.rollback()
        finally:
            await conn.close()  # type: ignore[attr-defined]
        await wait_for(lambda: writer.stats.retries >= 1, WAIT_S, "the writer to retry the killed batch")
        await writer.flush(timeout_s=WAIT_S)
        await rig.frames_advance(50)
        fault_record.alerts = "none (the batch is retried on a fresh connection)"
        assert writer.stats.rejected == 0
        assert (await rig.service.control.health()).ok
        await _finish(rig, fault_record)


async def test_sqlite_locked_past_the_busy_timeout_is_retried(sqlite_url: str, fault_record: FaultRecord) -> None:
    """Component level: a lock outlasting busy_timeout makes commits fail; the writer retries them."""
    fault_record.scenario = "SQLite locked past the busy timeout (writer component): batches retried"
    fault_record.backend = "sqlite"
    engine = create_engine(sqlite_url, busy_timeout_ms=50)
    await upgrade_engine(engine)
    writer = BatchedWriter(engine, retry_initial_s=0.02, retry_max_s=0.2)
    writer.start()
    lock = sqlite3.connect(_sqlite_file(sqlite_url), isolation_level=None, timeout=WAIT_S)
    sent = 0
    try:
        lock.execute("BEGIN EXCLUSIVE")
        for i in range(2_000):
            row = {
                "asset_id": "a1",
                "market": "m",
                "side": "BUY",
                "price": "0.5",
                "size": str(i + 1),
                "receive_ts": time.time_ns(),
            }
            assert writer.put("book_deltas", row)
            sent += 1
            if i % 200 == 0:
                await asyncio.sleep(0.05)
        await wait_for(lambda: writer.stats.retries >= 3, WAIT_S, "failed commits to be retried")
        assert writer.stats.written == 0
        lock.execute("ROLLBACK")
        await writer.flush(timeout_s=WAIT_S)
    finally:
        lock.close()
        await writer.close(timeout_s=WAIT_S)
        await engine.dispose()
    stats = writer.stats
    got = await count_rows(sqlite_url, ["book_deltas"])
    fault_record.rows_expected = sent
    fault_record.rows_stored = got["book_deltas"]
    fault_record.alerts = "n/a (component)"
    fault_record.counters = {"writer_errors": stats.errors, "writer_retries": stats.retries, "rejected": stats.rejected}
    assert got["book_deltas"] == sent
    assert stats.rejected == 0 and stats.written == sent
