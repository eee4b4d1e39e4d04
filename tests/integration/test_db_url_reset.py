"""``db_url``'s PostgreSQL database is reused by one worker's tests (tests/migrated_databases.py): each
test must still find it as freshly migrated, or a fresh one when the last test changed its schema."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar, cast

import asyncpg
import pytest
from sqlalchemy import Table, insert

from core.store.db import create_engine
from core.store.migrate import current_revision, head_revision
from core.store.models import Alert, Market, Token
from core.store.partitions import ensure_days
from tests.conftest import PG_ADMIN_URL, _pg_url_of, _require_pg
from tests.migrated_databases import MigratedDatabases

pytestmark = pytest.mark.pg
MARKETS, TOKENS, ALERTS = (cast(Table, model.__table__) for model in (Market, Token, Alert))
T = TypeVar("T")


@pytest.fixture
def databases(tmp_path: Path) -> MigratedDatabases:
    _require_pg()
    return MigratedDatabases(tmp_path, PG_ADMIN_URL, _pg_url_of)


async def _leave_traces(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(MARKETS).values(condition_id="0xaa"))
            await conn.execute(insert(TOKENS).values(token_id="1", condition_id="0xaa", outcome="Yes"))
            await conn.execute(insert(ALERTS).values(kind="k"))
            await ensure_days(conn, "trades", date(2031, 1, 1), 1)  # a partition the migration did not make
    finally:
        await engine.dispose()


async def _look(url: str) -> tuple[int, int, list[str], str | None]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval("SELECT (SELECT count(*) FROM markets) + (SELECT count(*) FROM alerts)")
        first_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('alerts', 'id'))")
        names = [r[0] for r in await conn.fetch("SELECT relname FROM pg_class WHERE relname LIKE 'trades_p2031%'")]
    finally:
        await conn.close()
    engine = create_engine(url)
    try:
        revision = await current_revision(engine)
    finally:
        await engine.dispose()
    return rows, first_id, names, revision


async def test_the_next_test_finds_no_rows_no_new_partition_and_ids_from_the_start(
    databases: MigratedDatabases,
) -> None:
    try:
        url = await _in_thread(databases.pg_at_head)
        await _leave_traces(url)
        # a connection the last test left open (a process that outlived it) does not block the reset
        straggler = await asyncpg.connect(url)
        assert await _in_thread(databases.pg_at_head) == url  # the same database, emptied
        assert await _look(url) == (0, 1, [], head_revision())
        assert straggler.is_closed() or not await _answers(straggler)
    finally:
        await _in_thread(databases.close)


async def test_a_schema_the_last_test_changed_is_replaced_by_a_fresh_migration(databases: MigratedDatabases) -> None:
    try:
        url = await _in_thread(databases.pg_at_head)
        conn = await asyncpg.connect(url)
        await conn.execute("ALTER TABLE markets ADD COLUMN stray integer")
        await conn.close()
        fresh = await _in_thread(databases.pg_at_head)
        assert fresh != url
        conn = await asyncpg.connect(fresh)
        try:
            columns = [
                r[0] for r in await conn.fetch("SELECT attname FROM pg_attribute WHERE attrelid = 'markets'::regclass")
            ]
            gone = await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", url.rsplit("/", 1)[1])
        finally:
            await conn.close()
        assert "stray" not in columns and gone == 0
    finally:
        await _in_thread(databases.close)


async def _answers(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
        return True
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError):
        return False


async def _in_thread(fn: Callable[[], T]) -> T:
    """``MigratedDatabases`` runs its own event loops (it serves synchronous fixtures)."""
    return await asyncio.to_thread(fn)
