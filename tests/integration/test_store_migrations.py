"""Alembic migrations on real SQLite and PostgreSQL databases (fresh per test)."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from core.store.db import create_engine, session_factory
from core.store.migrate import (
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    offline_sql,
    upgrade_engine,
    upgrade_to_head,
    user_tables,
)
from core.store.models import SQLITE_ONLY, TABLES, Base
from core.store.repo import get_state, set_state

pytestmark = [
    pytest.mark.empty_db,  # these tests watch migrations happen
    # SQLite's ix_book_deltas_slice_id (0007) indexes an expression, which reflection skips
    pytest.mark.filterwarnings(
        "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning"
    ),
]


def _diff(sync_conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    if sync_conn.dialect.name != "sqlite":
        return list(compare_metadata(ctx, Base.metadata))
    # SQLite: its own tables too, and book_deltas' (asset_id, id) index is PostgreSQL's only (0007)
    found = list(compare_metadata(ctx, [Base.metadata, SQLITE_ONLY]))  # type: ignore[arg-type]  # alembic takes a sequence
    pg_only = [
        d for d in found if isinstance(d, tuple) and d[0] == "add_index" and d[1].name == "ix_book_deltas_asset_id_id"
    ]
    assert len(pg_only) == 1, found
    return [d for d in found if d not in pg_only]


def _tables_of(url: str) -> list[str]:
    """What migrations make: the models' tables, and on SQLite the per-asset index of book_deltas."""
    return sorted([*TABLES, *(SQLITE_ONLY.tables if url.startswith("sqlite") else ())])


def _indexes(sync_conn: Connection) -> set[str]:
    insp = inspect(sync_conn)
    return {ix["name"] for t in TABLES for ix in insp.get_indexes(t) if ix["name"]}


async def test_empty_to_head_then_second_apply_is_a_noop(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert await current_revision(engine) is None
        assert await user_tables(engine) == []

        first = await upgrade_engine(engine)
        assert (first.before, first.after, first.changed) == (None, head_revision(), True)
        assert await current_revision(engine) == head_revision()
        assert sorted(await user_tables(engine)) == _tables_of(db_url)

        async with engine.connect() as conn:
            indexes_before = await conn.run_sync(_indexes)
            # the migration creates exactly what the models declare (types, nullability, indexes)
            assert await conn.run_sync(_diff) == []
        assert ("ix_book_deltas_asset_id_id" in indexes_before) == (not db_url.startswith("sqlite"))
        assert "ix_orders_status" in indexes_before
        assert "ix_control_requests_status_expires" in indexes_before

        second = await upgrade_engine(engine)
        assert (second.before, second.after, second.changed) == (head_revision(), head_revision(), False)
        async with engine.connect() as conn:
            assert await conn.run_sync(_indexes) == indexes_before
            versions = (await conn.exec_driver_sql(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar()
        assert versions == 1
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    await upgrade_to_head(db_url)
    engine = create_engine(db_url)

    def down(sync_conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, "base")

    try:
        async with engine.begin() as conn:
            await conn.run_sync(down)
        assert await user_tables(engine) == []
        assert await current_revision(engine) is None
        assert (await upgrade_engine(engine)).changed
        assert sorted(await user_tables(engine)) == _tables_of(db_url)
    finally:
        await engine.dispose()


def test_offline_sql_for_each_dialect_needs_no_server() -> None:
    # a host that cannot resolve: rendering must not try to connect
    pg = offline_sql("postgresql://nobody:pw@no-such-host.invalid:5432/nothing")
    lite = offline_sql("sqlite:////nonexistent-dir/never-created.db")
    for sql in (pg, lite):
        for table in TABLES:
            assert f"CREATE TABLE {table} " in sql
        assert "CREATE INDEX ix_book_deltas_asset_id_id" in sql
        assert f"INSERT INTO {VERSION_TABLE}" in sql
    for sql in (pg, lite):
        assert "CREATE INDEX ix_control_requests_status_expires ON control_requests (status, expires)" in sql
        assert "IN ('control_request', 'control_ack')" in sql and "DELETE FROM state" in sql
    assert "NUMERIC(20, 6)" in pg and "JSONB" in pg and "TIMESTAMP WITH TIME ZONE" in pg and "BIGSERIAL" in pg
    assert "NUMERIC" not in lite and "JSONB" not in lite
    assert "uq_orders_client_order_id" in pg and "uq_orders_client_order_id" in lite


async def test_0002_deletes_the_old_state_key_requests(db_url: str) -> None:
    """A request stored the old way (a ``state`` key nothing retired) must not survive into 0002."""
    engine = create_engine(db_url)

    def to_0001(sync_conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "0001")

    try:
        async with engine.begin() as conn:
            await conn.run_sync(to_0001)
        assert await current_revision(engine) == "0001"
        sessions = session_factory(engine)
        async with sessions() as s, s.begin():
            await set_state(s, "control_request", {"id": "abc", "action": "kill", "by": "cli:x", "reason": ""})
            await set_state(s, "control_ack", {"id": "abc", "ok": True, "message": "killed"})
            await set_state(s, "armed", {"armed": False, "by": "system"})
        result = await upgrade_engine(engine)
        assert (result.before, result.after) == ("0001", head_revision())
        async with sessions() as s:
            assert await get_state(s, "control_request") is None
            assert await get_state(s, "control_ack") is None
            assert await get_state(s, "armed") == {"armed": False, "by": "system"}
    finally:
        await engine.dispose()
