"""The write-ahead on a SQLite file in one thread hop, or none: a group's order rows inserted and
committed by one function on a connection of its own.

Through SQLAlchemy and aiosqlite the same transaction costs some eighteen hops between the event
loop and the driver's thread (pool checkout, BEGIN, the INSERT, its rows, COMMIT, the reset on
return: a cursor call each), which is most of its 1-2 ms. Here the whole transaction is one
``asyncio.to_thread`` call. The values are converted by the columns' own bind processors (the
configured engine's dialect: the same integer units for money, the same UTC text for times, the
same JSON), so a row is byte for byte what the ORM would write; the connection takes the engine's
``synchronous`` (and, in the worker, its ``busy_timeout``), so a commit here is exactly as durable.
WAL lets it write beside the engine's pool (SQLite serialises writers; ``BEGIN IMMEDIATE`` takes
the lock). The rows go in as one ``executemany`` (see :meth:`SqliteWriteAhead._transaction`). The
group's signatures are made in the worker thread (:class:`core.execution.batches.Presigned`).

Measured (``bench/engine.py --only groups``, load ~1.4, p50 / p99): a 10-leg group's rows in one
commit 0.37 / 0.57 ms, against 1.85 / 6.9 ms through SQLAlchemy (one row: 0.18 / 0.33 ms).

On the loop when it costs less than the hop. With ``synchronous=NORMAL`` a WAL commit is a write
to the page cache, never an fsync (this connection never checkpoints: ``wal_autocheckpoint=0``),
so a group's transaction (~0.25 ms of mostly SQLite for 10 rows) costs about what the hop around
it does: the hand-over to the worker, its wake-up and the loop's wake-up when it is done cost
~0.15 ms at p50 and most of the tail (a thread waiting for a core, or for the GIL back). So
:meth:`SqliteWriteAhead.insert_new` commits on the loop when the write lock is free at once
(``BEGIN IMMEDIATE`` with no busy wait), while the worker signs the group (libsecp256k1 and
SQLite both let go of the GIL, so the two run side by side on two cores); the loop signs what the
worker has not started by the time its commit is done. When another connection holds the lock
(the engine's status writes, a recorder on the same file), or the worker is writing an earlier
group, or ``synchronous=FULL`` (an fsync per commit, never on the loop), or the connection is not
open yet (the first write opens it in the worker), the write goes to the worker thread, which
waits its turn as before. The figures, before and after in the same minutes, are in
``bench/tick_to_wire.py`` (third pass).
"""

from __future__ import annotations

import asyncio
import operator
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.store import models as m
from core.store.db import SQLITE_BUSY_TIMEOUT_MS, sqlite_path, sqlite_synchronous_of

Processor = Callable[[Any], Any] | None


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (and their extended codes): another connection has the lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(exc)
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqliteWriteAhead:
    """Insert-if-new of order rows, one transaction per call, on its own connection to ``engine``'s file."""

    def __init__(self, engine: AsyncEngine, path: Path, synchronous: str) -> None:
        dialect = engine.dialect
        table = m.Order.__table__
        self._columns = [c.name for c in table.columns if c.name != "id"]
        self._processors: list[Processor] = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self._columns
        ]
        self._pick = operator.itemgetter(*self._columns)
        self._converted = [(i, p) for i, p in enumerate(self._processors) if p is not None]
        self._marks = "(" + ", ".join("?" for _ in self._columns) + ")"
        self._coid = self._columns.index("client_order_id")
        self._insert = (
            f"INSERT INTO orders ({', '.join(self._columns)}) VALUES {self._marks} "
            "ON CONFLICT (client_order_id) DO NOTHING"
        )
        self._sql: dict[int, str] = {}  # row count -> its statement (one statement per transaction)
        # rows per statement within SQLite's oldest bound-parameter limit (999; 32766 since 3.32)
        self._per_statement = max(1, 999 // len(self._columns))
        self._path = path
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._lock = threading.Lock()  # one transaction at a time on the connection (the loop's or the worker's)
        self._executor: ThreadPoolExecutor | None = None
        self._on_loop = synchronous == "NORMAL"  # FULL: an fsync per commit, never on the loop
        self.writes = {"loop": 0, "worker": 0}
        """Transactions committed on the loop and in the worker thread (tests, diagnostics)."""

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> SqliteWriteAhead | None:
        """One for a SQLite file database; None for PostgreSQL or an in-memory database (no second connection)."""
        url = engine.url
        if url.get_backend_name() != "sqlite":
            return None
        path = sqlite_path(url)
        if path is None:
            return None
        return cls(engine, path.expanduser(), sqlite_synchronous_of(engine))

    def _statement(self, count: int) -> str:
        """``INSERT ... VALUES (...), (...) ... ON CONFLICT DO NOTHING RETURNING`` for ``count`` rows:
        the whole group in one statement (one step of the driver instead of one per row)."""
        sql = self._sql.get(count)
        if sql is None:
            sql = self._sql[count] = (
                f"INSERT INTO orders ({', '.join(self._columns)}) VALUES {', '.join([self._marks] * count)} "
                "ON CONFLICT (client_order_id) DO NOTHING RETURNING client_order_id"
            )
        return sql

    def _rows(self, rows: Sequence[dict[str, object]]) -> list[tuple[object, ...]]:
        """The rows as the driver takes them. A group's rows share their timestamps and mostly their
        price, size and flags, and a converted timestamp costs ~7 us: each distinct value of a
        column is converted once per call (a 10-row group: ~60 us instead of ~300 us)."""
        pick = self._pick
        seen: dict[tuple[int, type, object], object] = {}
        out: list[tuple[object, ...]] = []
        for values in rows:
            row = list(pick(values))
            for i, convert in self._converted:
                v = row[i]
                try:
                    key = (i, type(v), v)
                    row[i] = seen[key]
                except KeyError:
                    row[i] = seen[key] = convert(v)
                except TypeError:  # unhashable (a JSON document): converted each time
                    row[i] = convert(v)
            out.append(tuple(row))
        return out

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # no busy wait by default: the loop's attempt gives way at once; the worker sets its own wait
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA journal_mode=WAL")  # the engine's already (it persists in the file): a no-op
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        # no checkpoint on the way to the wire: the engine's other connections commit after every
        # answer (statuses, fills) and run the automatic checkpoints, with their fsyncs, off this path
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def _write(self, rows: list[tuple[object, ...]]) -> set[str]:
        """In the worker thread: the transaction, waiting its turn for the write lock (up to the
        store's busy timeout); the ids written."""
        with self._lock:
            if self._closed:  # the service stopped: no intent row (so no order) after that
                raise RuntimeError("the order write-ahead is closed (the service is stopping)")
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            try:
                written = self._transaction(conn, rows)
            finally:  # back to none before the lock is let go: the loop's attempt never waits
                conn.execute("PRAGMA busy_timeout=0")
            self.writes["worker"] += 1
            return written

    def _write_on_loop(self, rows: list[tuple[object, ...]]) -> set[str] | None:
        """On the loop: the same transaction if the write lock is free at once; None (nothing
        written, nothing left open) when it is not, or the worker holds the connection, or it is
        not open yet."""
        if not self._lock.acquire(blocking=False):  # the worker is writing an earlier group
            return None
        try:
            if self._closed:
                raise RuntimeError("the order write-ahead is closed (the service is stopping)")
            conn = self._conn
            if conn is None:  # the first write opens the file in the worker, off the loop
                return None
            try:
                written = self._transaction(conn, rows)  # busy_timeout 0: SQLITE_BUSY at once if taken
            except sqlite3.OperationalError as exc:
                if _busy(exc):  # rolled back: the worker does it all again, waiting its turn
                    return None
                raise
            self.writes["loop"] += 1
            return written
        finally:
            self._lock.release()

    def _transaction(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> set[str]:
        """BEGIN IMMEDIATE, the rows inserted, COMMIT; the ids written (rolled back on any error).
        An ``executemany`` of the one-row statement (SQLite runs it faster than a multi-row
        ``VALUES``, which it stages in a temporary table) counted by ``total_changes``; only when
        some id exists already are the rows rolled back to the savepoint and inserted again with
        ``RETURNING`` to learn which are new, in the same transaction (the lock is never let go)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("SAVEPOINT rows")
            before = conn.total_changes
            conn.executemany(self._insert, rows)
            if conn.total_changes - before == len(rows):  # every row new: the common case
                written = {str(row[self._coid]) for row in rows}
            else:  # some id is there already: again, learning which rows are new
                conn.execute("ROLLBACK TO rows")
                written = self._insert_returning(conn, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return written

    def _insert_returning(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> set[str]:
        written: set[str] = set()
        step = self._per_statement
        for at in range(0, len(rows), step):
            chunk = rows[at : at + step]
            values = [v for row in chunk for v in row]
            written.update(str(got[0]) for got in conn.execute(self._statement(len(chunk)), values).fetchall())
        return written

    async def insert_new(self, rows: Sequence[dict[str, object]], then: Callable[[], None] | None = None) -> set[str]:
        """Insert the rows whose client order id is new, in one transaction; their ids. The rows are
        converted here, on the loop. ``then`` (blocking: the group's signing; thread-safe and done
        once however often it is called, as :meth:`core.execution.batches.Presigned.run`) runs
        outside the transaction and is done when this returns. The transaction runs on the loop when
        the write lock is free at once, ``then`` meanwhile in the worker thread (libsecp256k1 and
        SQLite both let go of the GIL: the two overlap), and the loop calls it too once its commit is
        done: it signs what the worker has not started (a worker slow to wake) or waits for the
        worker to finish. Otherwise both go to the worker, ``then`` first (see the module docstring)."""
        converted = self._rows(rows) if rows else []
        if not converted and then is None:
            return set()
        if self._on_loop and converted and self._conn is not None:
            beside = self._thread().submit(then) if then is not None else None
            try:
                written = self._write_on_loop(converted)
            finally:
                if then is not None and beside is not None and not beside.done():
                    # not started (a worker slow to wake, or busy with an earlier write): signed
                    # here; started: its lock is waited for, a signing's time at most
                    beside.cancel()
                    then()
            if written is not None:
                return written
            then = None  # signed beside the attempt: the worker writes once the lock is free
        done = self._thread().submit(self._then_write, then, converted)
        return await asyncio.wrap_future(done)

    def _then_write(self, then: Callable[[], None] | None, rows: list[tuple[object, ...]]) -> set[str]:
        if then is not None:
            then()
        return self._write(rows) if rows else set()

    def _thread(self) -> ThreadPoolExecutor:
        """The write-ahead's own worker thread (kept warm: the next group finds it waiting)."""
        if self._closed:  # the service stopped: no intent row (so no order) after that
            raise RuntimeError("the order write-ahead is closed (the service is stopping)")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="write-ahead")
            weakref.finalize(self, self._executor.shutdown, wait=False)  # a store never closed: its thread ends
        return self._executor

    def close(self) -> None:
        """Waits for a write in progress, then closes; later writes raise."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
