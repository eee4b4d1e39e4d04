"""The SQLite write-ahead commits on the loop when the write lock is free at once, and gives way to
its worker thread (which waits its turn) when it is not (core/execution/sqlite_ahead.py).

Whichever way, every intent row is committed before ``save_orders`` returns, the signing given as
``then`` runs exactly once and is done by then, an id already written is not written again, and
the loop is never held while another connection has the lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from core.execution.sqlite_ahead import SqliteWriteAhead
from core.execution.store import OrderRecord, SqlExecutionStore
from core.store.db import SQLITE_BUSY_TIMEOUT_MS, create_engine, session_factory
from core.store.migrate import upgrade_engine
from core.types import Side

CEILING_S = 30.0
HOLD_S = 2 * CEILING_S  # what a held stand-in waits at most: longer than any ceiling, so a regression fails, not hangs


def _rec(coid: str) -> OrderRecord:
    return OrderRecord(coid, "0xbin", "1", Side.BUY, D("0.5"), D("10"), mode="paper")


class _Signing:
    """A stand-in for the group's signing job, with :class:`core.execution.batches.Presigned.run`'s
    contract (thread-safe, its work done once however often it is called): counts the calls, the
    work and the thread that did it. ``hold`` keeps the work waiting (a worker slow to get a core)."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.calls = 0
        self.runs = 0
        self.threads: list[str] = []
        self._hold = hold
        self._lock = threading.Lock()

    def __call__(self) -> None:
        self.calls += 1
        if self._hold is not None and threading.current_thread() is not threading.main_thread():
            self._hold.wait(HOLD_S)
        with self._lock:
            if self.runs:
                return
            self.runs += 1
            self.threads.append(threading.current_thread().name)


@pytest.fixture
async def store_at(tmp_path: Path) -> AsyncIterator[tuple[SqlExecutionStore, SqliteWriteAhead, Path]]:
    path = tmp_path / "ahead.db"
    engine = create_engine(f"sqlite:///{path}")
    await upgrade_engine(engine)
    store = SqlExecutionStore(session_factory(engine))
    ahead = store._ahead
    assert ahead is not None
    try:
        yield store, ahead, path
    finally:
        await store.close()
        await engine.dispose()


async def _stored(store: SqlExecutionStore, *coids: str) -> list[bool]:
    return [await store.get_order(c) is not None for c in coids]


async def test_a_free_lock_commits_on_the_loop_with_the_signing_beside_it(
    store_at: tuple[SqlExecutionStore, SqliteWriteAhead, Path],
) -> None:
    store, ahead, _ = store_at
    assert await store.save_orders([_rec("a-1")]) == [True]  # the first opens the connection, in the worker
    assert ahead.writes == {"loop": 0, "worker": 1}
    signing = _Signing()
    assert await store.save_orders([_rec("a-2"), _rec("a-3")], signing) == [True, True]
    assert ahead.writes == {"loop": 1, "worker": 1}
    # signed once: by the worker, or by the loop if its commit was done before the worker started
    assert signing.runs == 1 and signing.threads[0] in ("write-ahead_0", threading.main_thread().name)
    assert await _stored(store, "a-1", "a-2", "a-3") == [True, True, True]


async def test_the_loop_signs_what_a_slow_worker_has_not_started(
    store_at: tuple[SqlExecutionStore, SqliteWriteAhead, Path],
) -> None:
    store, ahead, _ = store_at
    assert await store.save_orders([_rec("s-1")]) == [True]
    hold = threading.Event()
    signing = _Signing(hold)  # the worker's call waits; the loop's does not
    try:
        assert await asyncio.wait_for(store.save_orders([_rec("s-2")], signing), CEILING_S) == [True]
        # done on return, by the loop, while the worker had not started
        assert signing.runs == 1 and signing.threads == [threading.main_thread().name]
        assert signing.calls in (1, 2)  # the loop's, and the worker's if it had begun
        assert ahead.writes == {"loop": 1, "worker": 1}
    finally:
        hold.set()


async def test_an_id_written_already_is_not_written_again_on_the_loop(
    store_at: tuple[SqlExecutionStore, SqliteWriteAhead, Path],
) -> None:
    store, ahead, _ = store_at
    assert await store.save_orders([_rec("d-1")]) == [True]
    assert await store.save_orders([_rec("d-1"), _rec("d-2")]) == [False, True]
    assert ahead.writes["loop"] == 1
    assert await _stored(store, "d-1", "d-2") == [True, True]


class _Probing:
    """The write-ahead's connection, watched: after any rollback, another connection tries to take
    the write lock at once and records whether it could."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self.others_got_in: list[bool] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        cur = self._conn.execute(sql, *args)
        if sql.startswith("ROLLBACK"):
            other = sqlite3.connect(self._path, timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                self.others_got_in.append(True)
            except sqlite3.OperationalError:
                self.others_got_in.append(False)
            finally:
                other.close()
        return cur


async def test_an_id_written_already_keeps_the_lock_while_the_new_rows_are_found(
    store_at: tuple[SqlExecutionStore, SqliteWriteAhead, Path],
) -> None:
    """No other writer can get in between the first try and the one that learns which rows are new
    (it would fail the group's write: the loop's connection does not wait for the lock)."""
    store, ahead, path = store_at
    assert await store.save_orders([_rec("k-1")]) == [True]
    assert ahead._conn is not None
    probing = _Probing(ahead._conn, path)
    ahead._conn = probing  # type: ignore[assignment]
    try:
        assert await store.save_orders([_rec("k-1"), _rec("k-2")]) == [False, True]
    finally:
        ahead._conn = probing._conn
    assert probing.others_got_in == [False]  # one rollback, to the savepoint, with the lock kept
    assert ahead.writes["loop"] == 1
    assert await _stored(store, "k-1", "k-2") == [True, True]


async def test_a_lock_held_elsewhere_sends_the_write_to_the_worker_and_the_loop_runs_on(
    store_at: tuple[SqlExecutionStore, SqliteWriteAhead, Path],
) -> None:
    store, ahead, path = store_at
    assert await store.save_orders([_rec("w-1")]) == [True]
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another writer (a recorder, the engine's pool) holds the lock
    signing = _Signing()
    try:
        write = asyncio.create_task(store.save_orders([_rec("w-2")], signing))
        ticks, longest = 0, 0.0
        loop = asyncio.get_running_loop()
        while ahead.writes["worker"] == 1 and not write.done() and ticks < 20:
            before = loop.time()
            await asyncio.sleep(0.01)  # the loop turns while the worker waits for the lock
            longest = max(longest, loop.time() - before)
            ticks += 1
        assert ticks == 20 and not write.done()
        # never held for the store's busy timeout (10 s): the loop's attempt gave way at once
        assert longest < SQLITE_BUSY_TIMEOUT_MS / 2000
        assert signing.runs == 1  # signed beside the refused attempt, not again
    finally:
        other.execute("COMMIT")
        other.close()
    assert await asyncio.wait_for(write, CEILING_S) == [True]
    assert ahead.writes == {"loop": 0, "worker": 2}
    assert signing.runs == 1
    assert await _stored(store, "w-1", "w-2") == [True, True]


async def test_a_write_under_way_in_the_worker_is_waited_for_in_the_worker(
    store_at: tuple[SqlExecutionStore, SqliteWriteAhead, Path],
) -> None:
    store, ahead, _ = store_at
    assert await store.save_orders([_rec("b-1")]) == [True]
    taken, release = threading.Event(), threading.Event()

    def earlier_write() -> None:  # as if the worker were committing an earlier group
        with ahead._lock:
            taken.set()
            release.wait(HOLD_S)

    holder = threading.Thread(target=earlier_write, daemon=True)
    holder.start()
    assert await asyncio.to_thread(taken.wait, CEILING_S)
    loop = asyncio.get_running_loop()
    try:
        before = loop.time()
        write = asyncio.create_task(store.save_orders([_rec("b-2")]))
        done, _ = await asyncio.wait({write}, timeout=0.2)
        assert not done
        assert loop.time() - before < HOLD_S / 2  # the loop did not wait for the lock
    finally:
        release.set()
    assert await asyncio.wait_for(write, CEILING_S) == [True]
    assert ahead.writes == {"loop": 0, "worker": 2}
    await asyncio.to_thread(holder.join, CEILING_S)


async def test_synchronous_full_never_commits_on_the_loop(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'full.db'}", sqlite_synchronous="FULL")
    store = SqlExecutionStore(session_factory(engine))
    try:
        await upgrade_engine(engine)
        signings = [_Signing() for _ in range(3)]
        for n, signing in enumerate(signings):
            assert await store.save_orders([_rec(f"f-{n}")], signing) == [True]
        assert store._ahead is not None and store._ahead.writes == {"loop": 0, "worker": 3}
        assert all(s.runs == 1 and s.threads[0].startswith("write-ahead") for s in signings)
    finally:
        await store.close()
        await engine.dispose()
