"""SQLite's per-asset index of book_deltas (migration 0007, core.store.delta_index), on real SQLite
and PostgreSQL: whatever part of the rows is indexed, the per-asset reads (status's book replay,
the chart's history, the tracked assets) give what a plain query over book_deltas gives; deletes
take their entries with them; a populated database is indexed by the migration."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.control.chart_data import OutcomeSeries, _history
from core.settings.retention import RetentionSettings
from core.store import delta_index
from core.store.db import create_engine, session_factory
from core.store.delta_index import DeltaIndexer, asset_deltas, index_slice, last_delta_ids
from core.store.migrate import alembic_config, current_revision, upgrade_engine
from core.store.models import DELTA_INDEX_SLICES, Base
from core.store.retention import Pruner
from core.store.status import gather_status
from core.store.writer import BatchedWriter
from tests.integration.retention_rows import NOW_NS, ago, row
from tests.migrated_databases import MigratedDatabases

DELTAS = Base.metadata.tables["book_deltas"]
ASSETS = [str(10**76 + i * 7919) for i in range(5)]
COLUMNS = (DELTAS.c.receive_ts, DELTAS.c.side, DELTAS.c.price, DELTAS.c.size, DELTAS.c.best_bid, DELTAS.c.market)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


def _rows(n: int, seed: int, start_ns: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        asset = rnd.choice(ASSETS)
        r = {**row("book_deltas", start_ns + i * 10**6, asset), "market": f"m{ASSETS.index(asset)}"}
        r.update(side=rnd.choice(("BUY", "SELL")), price=Decimal(rnd.randrange(1, 99)) / 100, best_bid=Decimal("0.4"))
        r["size"] = Decimal(rnd.randrange(0, 500))
        out.append(r)
    return out


async def _write(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with BatchedWriter(engine) as writer:
        for r in rows:
            writer.put("book_deltas", r)


async def _index(engine: AsyncEngine) -> int:
    if engine.dialect.name != "sqlite":
        return 0
    async with engine.connect() as conn, conn.begin():  # every slice, in one transaction
        return sum([await index_slice(conn, k) for k in range(DELTA_INDEX_SLICES)])


async def _plain(engine: AsyncEngine, asset: str, since_ns: int | None, limit: int) -> list[tuple[Any, ...]]:
    stmt = asset_deltas("postgresql", COLUMNS, asset, since_ns=since_ns, limit=limit)  # the plain query
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(stmt)]


async def _read(engine: AsyncEngine, asset: str, since_ns: int | None, limit: int) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        stmt = asset_deltas(engine.dialect.name, COLUMNS, asset, since_ns=since_ns, limit=limit)
        return [tuple(r) for r in await conn.execute(stmt)]


async def _last_ids(engine: AsyncEngine) -> dict[str, int]:
    out: dict[str, int] = {}
    async with engine.connect() as conn:
        for query in last_delta_ids(engine.dialect.name):
            for asset, last in await conn.execute(query):
                out[asset] = max(out.get(asset, 0), last)
    return out


async def _index_entries(engine: AsyncEngine) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """SQLite: (asset, id) of every index entry, and of every row at or below its slice's mark."""
    async with engine.connect() as conn:
        entries = await conn.execute(
            text(
                "SELECT a.asset_id, s.id FROM book_deltas_by_asset s "
                "JOIN book_delta_assets a ON a.asset_key = s.asset_key"
            )
        )
        rows = await conn.execute(
            text(
                "SELECT d.asset_id, d.id FROM book_deltas d JOIN book_deltas_indexed m "
                "ON m.slice = coalesce(unicode(substr(d.asset_id, -1)), 0) % 10 WHERE d.id <= m.upto"
            )
        )
        return {(a, i) for a, i in entries}, {(a, i) for a, i in rows}


async def _check_reads(engine: AsyncEngine) -> None:
    for asset in ASSETS:
        for since, limit in ((None, 10_000), (NOW_NS + 150 * 10**6, 10_000), (None, 7), (NOW_NS, 1)):
            assert await _read(engine, asset, since, limit) == await _plain(engine, asset, since, limit)
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT asset_id, max(id) FROM book_deltas GROUP BY asset_id"))
        plain = {asset: last for asset, last in found}
    assert await _last_ids(engine) == plain
    if engine.dialect.name == "sqlite":
        entries, indexed_rows = await _index_entries(engine)
        assert entries == indexed_rows  # every row up to the index's end is in it, nothing else


async def test_reads_are_the_same_whatever_part_is_indexed(engine: AsyncEngine) -> None:
    await _write(engine, _rows(300, 1, NOW_NS))
    await _check_reads(engine)  # nothing indexed yet: all of it is the tail
    assert await _index(engine) == (300 if engine.dialect.name == "sqlite" else 0)
    await _check_reads(engine)  # all indexed
    await _write(engine, _rows(120, 2, NOW_NS + 300 * 10**6))
    await _check_reads(engine)  # indexed, and a tail after it
    assert await _index(engine) == (120 if engine.dialect.name == "sqlite" else 0)
    assert await _index(engine) == 0
    await _check_reads(engine)


async def test_the_writer_indexes_every_so_many_rows(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delta_index, "MOVE_ROWS", 400)  # a slice every 40 rows
    async with BatchedWriter(engine, max_batch=20, min_interval_s=0) as writer:
        for i, r in enumerate(_rows(230, 3, NOW_NS)):
            writer.put("book_deltas", r)
            if i % 20 == 19:
                await writer.flush()
    if engine.dialect.name == "sqlite":  # batches of 20 rows: a slice indexed after every second batch
        indexer = writer._indexer
        assert indexer is not None and indexer.runs == 5 and 0 < indexer.indexed < 230
        entries, _ = await _index_entries(engine)
        assert len(entries) == indexer.indexed
    else:
        assert writer._indexer is None
    await _check_reads(engine)


async def test_status_and_chart_over_an_index_and_a_tail(engine: AsyncEngine, db_url: str) -> None:
    await _write(engine, _rows(200, 4, NOW_NS))
    await _index(engine)
    await _write(engine, _rows(60, 5, NOW_NS + 200 * 10**6))
    status = await gather_status(db_url, max_assets=10)
    shown = {a["asset_id"]: a for a in status["assets"]}
    assert set(shown) == set(ASSETS) and status["assets_tracked"] == len(ASSETS)
    sessions = session_factory(engine)
    for asset in ASSETS:
        plain = list(reversed(await _plain(engine, asset, None, 10_000)))
        book: dict[str, dict[Decimal, Decimal]] = {"BUY": {}, "SELL": {}}
        for _, side, price, size, _, _ in plain:
            if size:
                book[side][price] = size
            else:
                book[side].pop(price, None)
        best_bid = max(book["BUY"]) if book["BUY"] else None
        assert shown[asset]["deltas_since_snapshot"] == len(plain)
        assert shown[asset]["best_bid"] == (None if best_bid is None else format(best_bid.normalize(), "f"))
        series = OutcomeSeries("Yes")
        await _history(sessions, asset, NOW_NS + 100 * 10**6, series)
        since = [r for r in plain if r[0] >= NOW_NS + 100 * 10**6]
        assert series.times == [r[0] / 1e9 for r in since]
        assert series.best_bid == [0.4] * len(since)


async def test_deleted_rows_leave_the_index(engine: AsyncEngine) -> None:
    old = [{**r, "receive_ts": ago(9, minutes=i)} for i, r in enumerate(_rows(150, 6, 0))]
    await _write(engine, old)
    await _write(engine, _rows(100, 7, NOW_NS))
    await _index(engine)
    await _write(engine, [{**r, "receive_ts": ago(8, minutes=i)} for i, r in enumerate(_rows(40, 8, 0))])  # tail
    settings = RetentionSettings(book_deltas_days=7, trades_days=0, book_snapshots_days=0, batch_rows=100, pause_ms=0)
    await Pruner(engine, settings, clock_ns=lambda: NOW_NS).run()
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM book_deltas")) == 100
    await _check_reads(engine)
    # the newest rows deleted, their ids given again to new rows: nothing stale, nothing missed
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM book_deltas WHERE id > (SELECT max(id) - 30 FROM book_deltas)"))
    await _write(engine, _rows(50, 9, NOW_NS + 10**9))
    await _check_reads(engine)
    await _index(engine)
    await _check_reads(engine)


def _to(revision: str, *, down: bool = False) -> Any:
    def go(sync_conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        (command.downgrade if down else command.upgrade)(cfg, revision)

    return go


async def _indexes(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            found = await conn.execute(text("SELECT name FROM sqlite_master WHERE type IN ('index', 'table')"))
        else:
            found = await conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'book_deltas'"))
        return {r[0] for r in found}


@pytest.mark.empty_db
async def test_0007_indexes_a_populated_database_and_goes_back(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_to("0006"))
        await conn.execute(DELTAS.insert(), _rows(500, 10, NOW_NS))
    async with engine.begin() as conn:
        await conn.run_sync(_to("head"))
    assert await current_revision(engine) == "0007"
    sqlite = engine.dialect.name == "sqlite"
    assert ("ix_book_deltas_asset_id_id" in await _indexes(engine)) == (not sqlite)
    if sqlite:
        entries, _ = await _index_entries(engine)
        async with engine.connect() as conn:
            assert entries == {(a, i) for a, i in await conn.execute(text("SELECT asset_id, id FROM book_deltas"))}
    await _check_reads(engine)
    await _write(engine, _rows(30, 11, NOW_NS + 10**9))  # a tail after the migrated rows
    await _check_reads(engine)
    async with engine.begin() as conn:
        await conn.run_sync(_to("0006", down=True))
    found = await _indexes(engine)
    assert "ix_book_deltas_asset_id_id" in found and "book_deltas_by_asset" not in found
    assert (await upgrade_engine(engine)).before == "0006"
    await _check_reads(engine)


async def test_create_all_on_sqlite_makes_the_index_too(tmp_path: Any) -> None:
    """``create_all`` (the in-memory databases of metric replays) makes what migration 0007 makes."""
    engine = create_engine(f"sqlite:///{tmp_path / 'made.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(Base.metadata.create_all)  # a second time changes nothing
        found = await _indexes(engine)
        assert {"book_deltas_by_asset", "book_deltas_indexed", "ix_book_deltas_slice_id"} <= found
        assert "ix_book_deltas_asset_id_id" not in found
        await _write(engine, _rows(80, 12, NOW_NS))
        assert await _index(engine) == 80
        await _write(engine, _rows(20, 13, NOW_NS + 80 * 10**6))
        await _check_reads(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path, _migrated_databases: MigratedDatabases) -> str:
    """SQLite alone (the indexer's schedule and plans), at the schema's head, empty."""
    _migrated_databases.copy_sqlite(tmp_path / "polybot.db")  # (migrates once, outside the event loop)
    return f"sqlite:///{tmp_path / 'polybot.db'}"


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(sqlite_url, busy_timeout_ms=20)
    yield eng
    await eng.dispose()


async def _marks(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return [
            upto for _, upto in await conn.execute(text("SELECT slice, upto FROM book_deltas_indexed ORDER BY slice"))
        ]


async def test_the_tail_is_read_through_the_slice_index(sqlite_engine: AsyncEngine) -> None:
    """SQLite puts ``asset_id = ?`` into the slice's expression and then scans every row above the
    mark by rowid; the read compares ``+asset_id`` so that the slice's index is used."""
    await _write(sqlite_engine, _rows(300, 14, NOW_NS))
    for since in (None, NOW_NS):
        stmt = asset_deltas("sqlite", COLUMNS, ASSETS[0], since_ns=since, limit=100)
        async with sqlite_engine.connect() as conn:
            compiled = stmt.compile(dialect=conn.dialect)
            params = tuple(compiled.params[k] for k in compiled.positiontup or ())
            plan = [r[3] for r in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)]
        searched = [p for p in plan if p.startswith(("SEARCH book_deltas ", "SCAN book_deltas "))]
        assert "SEARCH book_deltas USING INDEX ix_book_deltas_slice_id (<expr>=? AND id>?)" in searched, plan
        assert not [p for p in searched if "rowid>" in p or p.startswith("SCAN")], plan


async def test_a_writer_starts_at_the_slice_most_behind(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that stops before its tenth run leaves later slices behind: the next one starts there."""
    monkeypatch.setattr(delta_index, "MOVE_ROWS", 400)  # a slice every 40 rows
    for n, seed in enumerate((15, 16), start=1):
        async with BatchedWriter(sqlite_engine, max_batch=20, min_interval_s=0) as writer:
            for i, r in enumerate(_rows(120, seed, NOW_NS + n * 10**9)):
                writer.put("book_deltas", r)
                if i % 20 == 19:
                    await writer.flush()
        assert writer._indexer is not None and writer._indexer.runs == 3
        marks = await _marks(sqlite_engine)
        assert [k for k, upto in enumerate(marks) if upto] == list(range(3 * n)), marks  # 0-2, then 3-5
    await _check_reads(sqlite_engine)


class _Connect:
    """The writer's connection, or a failure while ``fail`` is set."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.fail: Exception | None = None
        self.calls = 0

    async def __call__(self) -> AsyncConnection:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return self.conn


async def test_a_failed_run_is_retried_after_the_interval_and_logged_boundedly(
    sqlite_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await _write(sqlite_engine, _rows(50, 17, NOW_NS))
    now = [0.0]
    indexer = DeltaIndexer(every_rows=100, every_s=10, clock=lambda: now[0], log_interval_s=3600)  # 10 rows, 1 s
    caplog.set_level(logging.WARNING)
    async with sqlite_engine.connect() as conn, sqlite_engine.connect() as other:
        connect = _Connect(conn)
        indexer.wrote([(DELTAS, [{}] * 10)])
        assert indexer.due()
        await indexer.run(connect)  # the first look, then slice 0
        assert indexer.runs == 1
        await other.begin()
        await other.execute(DELTAS.insert(), _rows(1, 18, NOW_NS)[0])  # another connection holds the write lock
        batches = 0
        for _ in range(30):  # a batch of 3 rows, 0.1 s apart
            indexer.wrote([(DELTAS, [{}] * 3)])
            now[0] += 0.1
            if indexer.due():
                batches += 1
                await indexer.run(connect)  # busy: fails after busy_timeout (20 ms)
        await other.rollback()
        # due after ~10 rows (every fourth batch), not after every batch once one failed
        assert indexer.failures == batches == 7 and indexer.runs == 1
        failed = [r for r in caplog.records if "indexing book_deltas failed" in r.getMessage()]
        assert len(failed) == 1 and "database is locked" in failed[0].getMessage()
        indexer.wrote([(DELTAS, [{}] * 10)])
        await indexer.run(connect)  # the lock is free again: the slice it failed on is indexed
        assert indexer.runs == 2 and indexer.failures == 7
    assert (await _marks(sqlite_engine))[:2] == [50, 50]
