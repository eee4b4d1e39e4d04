"""A read-then-write transaction on SQLite next to another writer (the feed's).

Begun deferred, the transaction reads a snapshot; when another connection commits before its
first write, SQLite refuses the upgrade at once ("database is locked"), busy_timeout or not. That
failed a Gamma refresh under load in CI. ``writing_sessions`` begins such transactions with
``BEGIN IMMEDIATE``: the other writer waits its turn instead, and both commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from core.store.db import create_engine, session_factory, writing_sessions


async def _read_then_write(tmp_path: Path, *, immediate: bool) -> list[int]:
    path = tmp_path / "lock.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        sessions = session_factory(engine)
        if immediate:
            sessions = writing_sessions(sessions)
        other_done = asyncio.Event()

        def other_writer() -> None:  # the feed writer's connection, with a busy timeout of its own
            con = sqlite3.connect(path, timeout=10, isolation_level=None)
            try:
                con.execute("INSERT INTO t VALUES (2)")
            finally:
                con.close()

        async with sessions() as session, session.begin():
            await session.execute(text("SELECT count(*) FROM t"))  # the read: a snapshot is taken
            if immediate:  # the write lock is ours from BEGIN: a writer that does not wait is refused
                probe = sqlite3.connect(path, timeout=0, isolation_level=None)
                try:
                    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                        probe.execute("INSERT INTO t VALUES (3)")
                finally:
                    probe.close()
            other = asyncio.create_task(asyncio.to_thread(other_writer))
            other.add_done_callback(lambda _t: other_done.set())
            if not immediate:
                await asyncio.wait_for(other_done.wait(), 30)  # it commits between our read and write
            await session.execute(text("INSERT INTO t VALUES (1)"))
        await asyncio.wait_for(other, 30)
        async with engine.connect() as conn:
            return sorted(v for (v,) in await conn.execute(text("SELECT v FROM t")))
    finally:
        await engine.dispose()


async def test_a_deferred_read_then_write_is_refused_when_another_writer_commits_between(tmp_path: Path) -> None:
    with pytest.raises(OperationalError, match="database is locked"):
        await _read_then_write(tmp_path, immediate=False)


async def test_writing_sessions_wait_their_turn_and_both_writes_commit(tmp_path: Path) -> None:
    assert await _read_then_write(tmp_path, immediate=True) == [1, 2]
