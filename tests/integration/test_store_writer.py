"""BatchedWriter against real SQLite and PostgreSQL: batching, bounds, retries, isolation."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.store.db import create_engine, parse_db_url, session_factory, sqlite_path
from core.store.insert_plan import InsertPlan
from core.store.migrate import upgrade_to_head
from core.store.models import BookDelta, ExecAudit, Fill, Order, Trade
from core.store.writer import BatchedWriter, WriterError

ASSET = "7" * 77


def delta(i: int) -> dict[str, Any]:
    return {
        "asset_id": ASSET if i % 2 else "8" * 77,
        "market": "0xmarket",
        "side": "BUY" if i % 3 else "SELL",
        "price": Decimal(i % 999 + 1).scaleb(-3),
        "size": Decimal(i).scaleb(-2),
        "best_bid": Decimal("0.48"),
        "best_ask": Decimal("0.52"),
        "hash": f"h{i}",
        "exchange_ts": 1_700_000_000_000 + i,
        "receive_ts": time.time_ns(),
    }


def trade(i: int, price: Any = None) -> dict[str, Any]:
    return {
        "asset_id": ASSET,
        "market": "0xmarket",
        "price": Decimal("0.5") if price is None else price,
        "size": Decimal(i + 1),
        "side": "BUY",
        "fee_rate_bps": 0,
        "transaction_hash": f"tx{i}",
        "exchange_ts": 1_700_000_000_000 + i,
        "receive_ts": time.time_ns(),
    }


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_to_head(db_url)
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


async def count(engine: AsyncEngine, model: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model.__table__))).scalar_one())


async def test_rows_written_equal_rows_put_across_many_batches(engine: AsyncEngine) -> None:
    n = 12_000
    writer = BatchedWriter(engine, max_queue=n, max_batch=500, retry_initial_s=0.01)
    async with writer:
        for i in range(n):
            assert writer.put("book_deltas", delta(i))
            if i % 700 == 0:
                await asyncio.sleep(0)  # let the writer drain while we produce, as the feed does
        await writer.flush(timeout_s=60)
        st = writer.stats
        assert st.written == st.enqueued == n and st.pending == 0
        assert st.batches >= n // 500 and 0 < st.max_batch <= 500
        assert st.queue_full_count == 0 and st.rejected == 0
        assert st.latency_samples > 0 and st.latency_p50_ms is not None and st.latency_p99_ms >= st.latency_p50_ms
    async with engine.connect() as conn:
        hashes = (await conn.execute(select(BookDelta.hash).order_by(BookDelta.id))).scalars().all()
        total = (await conn.execute(select(func.sum(BookDelta.size)))).scalar_one()
    assert hashes == [f"h{i}" for i in range(n)]  # nothing lost, nothing doubled, order kept
    assert total == sum(Decimal(i).scaleb(-2) for i in range(n))  # exact, summed in SQL


async def test_sqlite_inserts_a_hundred_rows_per_statement(sqlite_url: str) -> None:
    """SQLite's driver hands the GIL back and forth once per statement: rows go a hundred to a
    statement, the remainder in one more, in the order they were put."""
    await upgrade_to_head(sqlite_url)
    engine = create_engine(sqlite_url)
    seen: list[tuple[int, bool]] = []  # (rows in the statement, executemany)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count_rows(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("INSERT INTO book_deltas"):
            seen.append((statement.count("(?"), executemany))

    try:
        async with BatchedWriter(engine) as writer:
            for i in range(257):
                writer.put("book_deltas", delta(i))
            await writer.flush(timeout_s=60)
        async with engine.connect() as conn:
            hashes = (await conn.execute(select(BookDelta.hash).order_by(BookDelta.id))).scalars().all()
    finally:
        await engine.dispose()
    assert seen == [(100, True), (57, False)]  # one executemany of two statements, then the rest
    assert hashes == [f"h{i}" for i in range(257)]


async def test_values_roundtrip_through_the_fast_path(engine: AsyncEngine) -> None:
    ts = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    async with BatchedWriter(engine) as writer:
        writer.put(
            "orders",
            {
                "client_order_id": "c1",
                "market": "m",
                "token_id": "t",
                "side": "BUY",
                "price": Decimal("0.123456"),
                "size": Decimal("123456789.000001"),
                "order_type": "GTC",
                "post_only": False,
                "status": "new",
                "mode": "paper",
                "reason": "",
                "filled_size": Decimal("0"),
                "signed_order": {"amount": Decimal("1.5"), "salt": 7},
                "created_at": ts,
                "updated_at": ts,
            },
        )
        writer.put("exec_audit", {"ts": ts, "action": "place", "attempt": 1, "outcome": "accepted", "mode": "paper"})
        # a row without defaulted columns takes the generic path and still gets its defaults
        writer.put("book_deltas", {"asset_id": ASSET, "side": "SELL", "price": "0.5", "size": 10, "receive_ts": 1})
    async with session_factory(engine)() as s:
        order = (await s.execute(select(Order))).scalars().one()
        audit = (await s.execute(select(ExecAudit))).scalars().one()
        d = (await s.execute(select(BookDelta))).scalars().one()
    assert (order.price, order.size) == (Decimal("0.123456"), Decimal("123456789.000001"))
    assert order.signed_order == {"amount": "1.5", "salt": 7}  # decimals in JSON become exact strings
    assert order.created_at == ts and order.created_at.tzinfo == UTC
    assert audit.ts == ts and audit.attempt == 1
    assert (d.market, d.price, d.size) == ("", Decimal("0.5"), Decimal("10"))


async def test_flush_waits_for_everything_queued_so_far(engine: AsyncEngine) -> None:
    writer = BatchedWriter(engine, max_batch=50)
    writer.start()
    try:
        for round_ in range(3):
            for i in range(120):
                writer.put("trades", trade(round_ * 1000 + i))
            await writer.flush(timeout_s=30)
            assert await count(engine, Trade) == 120 * (round_ + 1)
        await writer.flush()  # nothing pending: returns at once
    finally:
        await writer.close()


async def test_queue_bound_is_counted_and_logged(engine: AsyncEngine, caplog: pytest.LogCaptureFixture) -> None:
    writer = BatchedWriter(engine, max_queue=10, log_interval_s=60)
    with caplog.at_level(logging.WARNING, logger="core.store.writer"):
        results = [writer.put("trades", trade(i)) for i in range(15)]
    assert results == [True] * 10 + [False] * 5
    st = writer.stats
    assert (st.enqueued, st.queue_full_count, st.pending) == (10, 5, 10)
    full_lines = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(full_lines) == 1  # logged once, the rest counted (bounded log rate)
    writer.start()
    await writer.close(timeout_s=30)
    assert writer.stats.written == 10
    assert await count(engine, Trade) == 10


def fail_inserts(monkeypatch: pytest.MonkeyPatch, table: str, when: Callable[[int], bool]) -> dict[str, int]:
    """Make the bulk insert of ``table`` (executemany on SQLite, COPY on PostgreSQL) raise a dropped
    connection on the calls ``when`` picks (1-based), after the batch's earlier parts went in."""
    calls = {"n": 0, "failed": 0}
    real = InsertPlan.insert

    async def insert(self: InsertPlan, conn: Any, params: Any) -> None:
        if self.table == table:
            calls["n"] += 1
            if when(calls["n"]):
                calls["failed"] += 1
                raise ConnectionResetError("injected: connection dropped mid-batch")
        await real(self, conn, params)

    monkeypatch.setattr(InsertPlan, "insert", insert)
    return calls


async def test_batch_failing_once_is_retried_without_loss_or_duplicates(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rows are put in (trade, delta) pairs and batches hold an even number of rows, so every
    # batch inserts trades first, then deltas: the third batch's deltas insert fails after its
    # trades are already in the transaction (COPY included), which must roll back
    statements = fail_inserts(monkeypatch, "book_deltas", lambda n: n == 3)

    writer = BatchedWriter(engine, max_batch=40, retry_initial_s=0.01)
    async with writer:
        for i in range(400):
            writer.put("trades", trade(i))
            writer.put("book_deltas", delta(i))
            if i % 20 == 19:
                await asyncio.sleep(0.005)
        await writer.flush(timeout_s=60)
        st = writer.stats
    assert statements["failed"] == 1
    assert st.errors >= 1 and st.retries >= 1 and st.rejected == 0
    assert st.written == 800
    async with engine.connect() as conn:
        trade_tx = (await conn.execute(select(Trade.transaction_hash).order_by(Trade.id))).scalars().all()
        delta_h = (await conn.execute(select(BookDelta.hash).order_by(BookDelta.id))).scalars().all()
    assert trade_tx == [f"tx{i}" for i in range(400)]
    assert delta_h == [f"h{i}" for i in range(400)]


async def test_locked_database_is_retried_until_it_frees(db_url: str) -> None:
    await upgrade_to_head(db_url)
    url = parse_db_url(db_url)
    blocker: Any
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, busy_timeout_ms=20)
        blocker = sqlite3.connect(str(sqlite_path(url)), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    else:
        engine = create_engine(url, connect_args={"timeout": 10, "server_settings": {"lock_timeout": "50"}})
        blocker = await asyncpg.connect(db_url)
        await blocker.execute("BEGIN; LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
    writer = BatchedWriter(engine, retry_initial_s=0.01, retry_max_s=0.05)
    try:
        writer.start()
        for i in range(50):
            writer.put("trades", trade(i))
        for _ in range(500):  # up to 10 s
            if writer.stats.retries >= 2:
                break
            await asyncio.sleep(0.02)
        assert writer.stats.retries >= 2 and writer.stats.written == 0
        if isinstance(blocker, sqlite3.Connection):
            blocker.execute("COMMIT")
        else:
            await blocker.execute("COMMIT")
        await writer.flush(timeout_s=30)
        assert writer.stats.written == 50 and writer.stats.rejected == 0
        assert await count(engine, Trade) == 50
    finally:
        if isinstance(blocker, sqlite3.Connection):
            blocker.close()
        else:
            await blocker.close()
        await writer.close(timeout_s=30)
        await engine.dispose()


async def test_bad_rows_are_isolated_counted_and_the_rest_written(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    fill = {
        "client_order_id": "c",
        "trade_id": "dup",
        "token_id": "t",
        "side": "BUY",
        "price": Decimal("0.4"),
        "size": Decimal("1"),
        "status": "confirmed",
        "ts": datetime.now(UTC),
    }
    with caplog.at_level(logging.ERROR, logger="core.store.writer"):
        async with BatchedWriter(engine, max_batch=1000) as writer:
            for i in range(30):
                writer.put("trades", trade(i, price=0.5 if i == 17 else None))  # one float price
            writer.put("fills", fill)
            writer.put("fills", dict(fill))  # the same trade fill twice
            writer.put("fills", {**fill, "trade_id": "other"})
            await writer.flush(timeout_s=30)
            st = writer.stats
    assert st.rejected == 2 and st.written == 31 and st.pending == 0
    assert await count(engine, Trade) == 29 and await count(engine, Fill) == 2
    assert any("rejected" in r.getMessage() for r in caplog.records)


async def test_put_validates_and_close_is_final(engine: AsyncEngine) -> None:
    writer = BatchedWriter(engine)
    with pytest.raises(ValueError, match="unknown table"):
        writer.put("nope", {})
    with pytest.raises(ValueError, match="unknown column"):
        writer.put("trades", {**trade(1), "bogus": 1})
    writer.start()
    writer.put("trades", trade(1))
    await writer.close(timeout_s=30)
    await writer.close()  # idempotent
    assert writer.stats.written == 1
    with pytest.raises(WriterError):
        writer.put("trades", trade(2))


async def test_unstarted_writer_reports_unwritten_rows(engine: AsyncEngine) -> None:
    writer = BatchedWriter(engine)
    writer.put("trades", trade(1))
    with pytest.raises(WriterError, match="not running"):
        await writer.flush()
    with pytest.raises(WriterError, match="1 rows not written"):
        await writer.close()


async def test_retry_waits_follow_the_shared_backoff_exactly(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_inserts(monkeypatch, "trades", lambda n: n <= 4)

    waits: list[float] = []

    async def recording_sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    writer = BatchedWriter(engine, retry_initial_s=0.05, retry_max_s=0.3, rng=random.Random(3), sleep=recording_sleep)
    async with writer:
        for i in range(10):
            writer.put("trades", trade(i))
        await writer.flush(timeout_s=30)
    ref = random.Random(3)
    # 0.05 doubling, capped at 0.3, times U[0.5, 1] drawn from the same seeded source
    assert waits == [min(0.3, 0.05 * 2**n) * (0.5 + ref.random() / 2) for n in range(4)]
    st = writer.stats
    assert (st.retries, st.errors, st.written, st.rejected) == (4, 4, 10, 0)
    assert await count(engine, Trade) == 10


async def test_a_permanent_error_is_not_retried(engine: AsyncEngine) -> None:
    waits: list[float] = []

    async def recording_sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    fill = {
        "client_order_id": "c",
        "trade_id": "dup",
        "token_id": "t",
        "side": "BUY",
        "price": Decimal("0.4"),
        "size": Decimal("1"),
        "status": "confirmed",
        "ts": datetime.now(UTC),
    }
    writer = BatchedWriter(engine, sleep=recording_sleep)
    writer.start()
    try:
        writer.put("fills", fill)
        writer.put("fills", dict(fill))  # the database refuses the second for good (unique trade)
        await writer.flush(timeout_s=10)
        st = writer.stats
    finally:
        await writer.close(timeout_s=10)
    assert waits == [] and st.retries == 0
    assert (st.rejected, st.written) == (1, 1)
