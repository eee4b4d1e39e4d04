"""Migration 0005 on a populated database: every feed row survives the move into day partitions
(PostgreSQL), lands in its day's partition, keeps its id, and comes back on downgrade."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from core.store import partitions as parts
from core.store.db import create_engine
from core.store.migrate import alembic_config, current_revision
from core.store.models import FEED_TABLES
from tests.integration.retention_rows import ago, insert

pytestmark = pytest.mark.empty_db  # these tests watch migrations happen

DAYS = (0.0, 1.0, 2.0, 3.5, 10.0, 40.0)


async def _to(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    def go(sync_conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        (command.downgrade if down else command.upgrade)(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(go)


async def _rows(engine: AsyncEngine, table: str) -> list[tuple[int, str, int]]:
    async with engine.connect() as conn:
        res = await conn.execute(text(f"SELECT id, asset_id, receive_ts FROM {table} ORDER BY id"))
        return [(int(r[0]), str(r[1]), int(r[2])) for r in res]


async def _where(engine: AsyncEngine, table: str) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        res = await conn.execute(text(f"SELECT tableoid::regclass::text, receive_ts FROM {table}"))
        return [(str(r[0]), int(r[1])) for r in res]


def _pk(sync_conn: Connection, table: str) -> list[str]:
    return list(inspect(sync_conn).get_pk_constraint(table)["constrained_columns"])


async def test_0005_moves_every_row_into_its_day_and_back(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await _to(engine, "0004")
        for table in FEED_TABLES:
            for i, days in enumerate(DAYS):
                await insert(engine, table, [ago(days, minutes=m) for m in range(25)], asset=f"a{i}")
        before = {t: await _rows(engine, t) for t in FEED_TABLES}
        assert all(len(rows) == 25 * len(DAYS) for rows in before.values())

        await _to(engine, "0005")
        postgres = engine.dialect.name == "postgresql"
        for table in FEED_TABLES:
            assert await _rows(engine, table) == before[table]  # every row, same id
            if postgres:
                for name, ts in await _where(engine, table):
                    assert name == parts.partition_name(table, parts.day_of(ts))
                async with engine.connect() as conn:
                    assert await parts.is_partitioned(conn, table)
                    assert await conn.run_sync(_pk, table) == ["id", "receive_ts"]
            await insert(engine, table, [ago(0)], asset="new")  # ids go on from the same sequence
            assert (await _rows(engine, table))[-1][0] > before[table][-1][0]

        await _to(engine, "0004", down=True)
        assert await current_revision(engine) == "0004"
        for table in FEED_TABLES:
            rows = await _rows(engine, table)
            assert rows[:-1] == before[table] and rows[-1][1] == "new"
            async with engine.connect() as conn:
                assert await conn.run_sync(_pk, table) == ["id"]
                assert not await parts.is_partitioned(conn, table)
            await insert(engine, table, [ago(0)], asset="after")
    finally:
        await engine.dispose()
