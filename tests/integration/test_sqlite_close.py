"""An aiosqlite connection's close always ends (core/store/aiosqlite_close.py): SQLAlchemy's terminate
starts a graceful close and, cancelled again, force-closes; with aiosqlite 0.22.1 alone the graceful
close then waited for ever and so did the event loop's shutdown (a hung test run, 2026-12-05)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from core.store.aiosqlite_close import ClosingConnection
from core.store.db import create_engine

CEILING_S = 30.0  # generous: the close takes microseconds; a hang never ends


async def test_graceful_close_racing_a_force_close_ends(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            adapter = raw.dbapi_connection
            assert isinstance(raw.driver_connection, ClosingConnection)
            # SQLAlchemy's terminate, step by step: the graceful close in its own task ...
            graceful = asyncio.ensure_future(adapter._terminate_graceful_close())  # type: ignore[union-attr]  # the dialect's adapter
            await asyncio.sleep(0)  # ... under way (its close queued to the worker) ...
            adapter._terminate_force_close()  # type: ignore[union-attr]  # ... when a second cancel force-closes
            await asyncio.wait_for(graceful, CEILING_S)
            conn.sync_connection.invalidate()  # type: ignore[union-attr]  # the pool must not reuse it
    finally:
        await engine.dispose()


async def test_rows_written_before_a_close_are_kept(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        await conn.execute(text("INSERT INTO t VALUES (1), (2)"))
    await asyncio.wait_for(engine.dispose(), CEILING_S)
    again = create_engine(url)
    try:
        async with again.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2
    finally:
        await again.dispose()
