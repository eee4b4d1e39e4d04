"""Migration 0006 (the bus key of recorded feed rows) on real SQLite and PostgreSQL: a second copy of
a recorded message is refused, rows without a bus key repeat freely, and on PostgreSQL the key is
enforced inside every day partition, present and future."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.store import partitions as parts
from core.store.db import create_engine
from core.store.migrate import alembic_config, current_revision, upgrade_engine
from core.store.models import Base
from tests.integration.retention_rows import ago, row

pytestmark = pytest.mark.empty_db  # these tests watch migrations happen


async def _put(engine: AsyncEngine, table: str, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(Base.metadata.tables[table].insert(), rows)


def _keyed(table: str, ts: int, seq: int | None, *, epoch: int = 7, idx: int = 0) -> dict[str, Any]:
    r = {**row(table, ts), "bus_epoch": None if seq is None else epoch, "bus_seq": seq}
    if table == "book_deltas":
        r["bus_idx"] = None if seq is None else idx
    return r


@pytest.mark.parametrize("table", ["book_snapshots", "book_deltas", "trades"])
async def test_a_recorded_message_is_stored_once(db_url: str, table: str) -> None:
    engine = create_engine(db_url)
    try:
        await upgrade_engine(engine)
        ts, later = ago(0), ago(-3)  # today, and a day a partition is made for later
        await _put(engine, table, [_keyed(table, ts, 1), _keyed(table, ts, 2), _keyed(table, later, 1)])
        await _put(engine, table, [_keyed(table, ts, None), _keyed(table, ts, None)])  # single-process rows
        await _put(engine, table, [_keyed(table, ts, 1, epoch=8)])  # the same seq in a new epoch
        for ts_, seq in ((ts, 1), (later, 1)):
            with pytest.raises(IntegrityError):
                await _put(engine, table, [_keyed(table, ts_, seq)])
        if table == "book_deltas":  # another level of the same message is another row
            await _put(engine, table, [_keyed(table, ts, 2, idx=1)])
        async with engine.connect() as conn:
            n = await conn.scalar(text(f"SELECT count(*) FROM {table}"))
            if engine.dialect.name == "postgresql":
                where = {r[0] for r in await conn.execute(text(f"SELECT tableoid::regclass::text FROM {table}"))}
                assert parts.partition_name(table, parts.day_of(ts)) in where
        assert n == (7 if table == "book_deltas" else 6)
    finally:
        await engine.dispose()


async def test_0006_down_and_up_again_keeps_the_rows(db_url: str) -> None:
    engine = create_engine(db_url)

    def to(revision: str, down: bool) -> Any:
        def go(sync_conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = sync_conn
            (command.downgrade if down else command.upgrade)(cfg, revision)

        return go

    try:
        await upgrade_engine(engine)
        await _put(engine, "trades", [_keyed("trades", ago(0), 1), _keyed("trades", ago(0), None)])
        async with engine.begin() as conn:
            await conn.run_sync(to("0005", True))
        assert await current_revision(engine) == "0005"
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM trades")) == 2
        async with engine.begin() as conn:
            await conn.run_sync(to("head", False))
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM trades WHERE bus_seq IS NULL")) == 2
    finally:
        await engine.dispose()
