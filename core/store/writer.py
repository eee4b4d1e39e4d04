"""Batched, bounded, retrying writer: the feed's (and anyone's) path to the database.

``put(table, row)`` never blocks: it appends to a bounded in-memory queue and returns
``False`` (counted, and logged at a bounded rate) when the queue is full; the caller decides
what to do then. A background task drains whatever is queued, up to ``max_batch`` rows at a
time, into ONE transaction of bulk inserts, at most one commit per ``min_interval_s`` (50 ms)
while nobody waits for a flush. When the database is slower than the producers, the queue grows
between commits and so do the batches (up to ``max_batch``: under a backlog, larger transactions
amortise each commit and, on SQLite, each index page they touch). Rows are converted to driver
values in chunks that yield to the event loop, then go through the backend's fastest bulk path
(:mod:`core.store.insert_plan`: COPY on PostgreSQL, executemany on SQLite).

Failures:
- transient (locked database, dropped connection, timeouts, anything unexpected): the whole
  batch was rolled back, so it is retried as is, with capped exponential backoff and jitter
  (:func:`core.retry.retry_call`), until it commits. Rows are neither lost nor duplicated.
  (One case no client can settle: the connection dropping during COMMIT itself may leave a
  committed batch that is then retried.)
- permanent, row-level (integrity violation, invalid value such as a float or an over-precise
  decimal): the batch is split in halves until the offending rows are isolated; every good row
  is written, every bad row is counted in ``rejected`` and logged. Nothing vanishes silently.

Rows belong to the writer once ``put`` returns True: do not mutate them afterwards. Call
``put`` from the event loop's thread. For the fast path, give every column that has a default
(rows missing one are inserted through SQLAlchemy Core, which fills it in, more slowly).
A row with an integer ``receive_ts`` (ns epoch, see :mod:`core.store.models`) contributes its
receive-to-commit latency to a sliding window (p50/p99 in :attr:`BatchedWriter.stats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.retry import EQUAL_JITTER, Backoff, Retry, Sleep, retry_call
from core.store.delta_index import DeltaIndexer
from core.store.insert_plan import InsertPlan, Params, RowValueError, driver_error_is_permanent
from core.store.models import Base
from core.store.writer_stats import BoundedLog, WriterStats, one_line, pct_ms

__all__ = ["BatchObserver", "BatchedWriter", "CommittedParts", "Row", "WriterError", "WriterStats"]

log = logging.getLogger(__name__)

PREPARE_CHUNK = 4_000
"""Rows converted between two turns of the event loop (a few ms of work)."""

Row = Mapping[str, object]
"""One row: column name -> value. The writer keeps it until committed: do not mutate it."""


class WriterError(Exception):
    """The writer cannot do what was asked (stopped, or rows still unwritten at close)."""


# parts are the writer's (Table, rows) pairs of a committed batch; rows of one part share their keys
CommittedParts = Sequence[tuple[object, Sequence[Mapping[str, object]]]]
BatchObserver = Callable[[CommittedParts, int], None]
"""Told of each committed batch (its parts and the commit time in ns): what exists only the moment
a batch commits (batch size, receive-to-commit latency) reaches metrics this way."""


class BatchedWriter:
    """Bounded queue + background batching task. Use ``async with`` or ``start()``/``close()``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_queue: int = 200_000,
        max_batch: int = 50_000,
        min_interval_s: float = 0.05,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        latency_window: int = 50_000,
        receive_ts_key: str = "receive_ts",
        log_interval_s: float = 5.0,
        tables: Mapping[str, Table] | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``min_interval_s``: after a commit, the next batch gathers rows for this long before it is
        taken (unless it is full, or a flush or close waits): a trickle of rows becomes a few
        commits a second instead of one per row, for at most that much added latency.
        ``rng`` and ``sleep`` drive the retry waits (tests pass a seeded source and a recorder)."""
        if max_queue < 1 or max_batch < 1 or min_interval_s < 0:
            raise ValueError("max_queue and max_batch must be >= 1, min_interval_s >= 0")
        self.engine = engine
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.min_interval_s = min_interval_s
        self._batch_due = 0.0  # monotonic time before which the next batch waits for more rows
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._backoff = Backoff(retry_initial_s, retry_max_s, jitter=EQUAL_JITTER)
        self._rng = rng
        self._sleep = sleep
        self.receive_ts_key = receive_ts_key
        self._tables: dict[str, Table] = dict(tables if tables is not None else Base.metadata.tables)
        self._columns = {name: frozenset(t.c.keys()) for name, t in self._tables.items()}
        self._queue: deque[tuple[str, Row]] = deque()
        self._plans: dict[tuple[str, tuple[str, ...]], InsertPlan | None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._latency_ns: deque[int] = deque(maxlen=latency_window)
        self._full_log = BoundedLog(log_interval_s)
        self._error_log = BoundedLog(log_interval_s)
        self._reject_log = BoundedLog(log_interval_s)
        self._enqueued = 0
        self._done = 0  # rows finished (written + rejected), in enqueue order
        self._written = 0
        self._rejected = 0
        self._batches = 0
        self._max_batch_seen = 0
        self._last_batch = 0
        self._full = 0
        self._errors = 0
        self._retries = 0
        self._last_commit_s = 0.0
        self._observers: list[BatchObserver] = []
        self._conn: AsyncConnection | None = None
        # SQLite: book_deltas' per-asset index is filled in sorted batches (core.store.delta_index)
        self._indexer = DeltaIndexer(log_interval_s=log_interval_s) if engine.dialect.name == "sqlite" else None
        self._failed_observers: set[int] = set()

    # -- producer side -------------------------------------------------------------------------

    def put(self, table: str, row: Row) -> bool:
        """Queue one row for ``table``. False when the queue is full (counted and logged)."""
        if self._closing:
            raise WriterError("writer is closed")
        cols = self._columns.get(table)
        if cols is None:
            raise ValueError(f"unknown table {table!r} (known: {', '.join(sorted(self._columns))})")
        if not row.keys() <= cols:
            raise ValueError(f"unknown column(s) {sorted(set(row) - cols)} for table {table!r}")
        if len(self._queue) >= self.max_queue:
            self._full += 1
            self._full_log(
                logging.WARNING,
                "writer queue full (%d rows): row for %s refused; %d refusals so far",
                self.max_queue,
                table,
                self._full,
            )
            return False
        self._queue.append((table, row))
        self._enqueued += 1
        if not self._wake.is_set():
            self._wake.set()
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def stats(self) -> WriterStats:
        lat = sorted(self._latency_ns)
        return WriterStats(
            enqueued=self._enqueued,
            written=self._written,
            rejected=self._rejected,
            pending=self._enqueued - self._done,
            batches=self._batches,
            max_batch=self._max_batch_seen,
            last_batch=self._last_batch,
            queue_full_count=self._full,
            errors=self._errors,
            retries=self._retries,
            last_commit_latency_s=self._last_commit_s,
            latency_samples=len(lat),
            latency_p50_ms=pct_ms(lat, 0.50),
            latency_p99_ms=pct_ms(lat, 0.99),
            latency_max_ms=lat[-1] / 1e6 if lat else None,
        )

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task (needs a running event loop). Idempotent."""
        if self._closing:
            raise WriterError("writer is closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="store-writer")
            self._task.add_done_callback(self._on_task_done)

    async def __aenter__(self) -> BatchedWriter:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every row accepted so far is committed (or rejected and counted)."""
        target = self._enqueued
        if self._done >= target:
            return
        if not self.running:
            raise WriterError(f"writer is not running; {target - self._done} rows not written")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            raise WriterError(
                f"flush timed out after {timeout_s}s with {self._enqueued - self._done} rows not written"
            ) from None

    async def close(self, timeout_s: float | None = None) -> None:
        """Flush everything, then stop. Raises :class:`WriterError` if rows remain unwritten.

        A writer retries a busy or unreachable database indefinitely, so a service shutting
        down should pass ``timeout_s``: when it expires, the task is cancelled and the number
        of rows not written is reported in the error (and nothing is silently dropped).
        """
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        task = self._task
        if task is None:
            self._closed = True
            if self._queue:
                raise WriterError(f"writer closed before start; {len(self._queue)} rows not written")
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise WriterError(
                f"writer close timed out after {timeout_s}s; {self._enqueued - self._done} rows not written"
            ) from None
        finally:
            self._closed = True

    # -- background task -----------------------------------------------------------------------

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("store writer stopped by an unexpected error: %r", exc)
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(WriterError(f"writer stopped; {self._enqueued - self._done} rows not written"))
        self._waiters.clear()

    async def _run(self) -> None:
        try:
            await self._drain()
        finally:
            await self._drop_connection()

    async def _drain(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._batch_due - time.monotonic()
            if wait > 0 and len(queue) < self.max_batch and not self._closing and not self._waiters:
                await asyncio.sleep(wait)  # gather a batch: one commit per min_interval_s at most
            n = min(len(queue), self.max_batch)
            batch = [queue.popleft() for _ in range(n)]
            await self._write_batch(batch)
            self._batch_due = time.monotonic() + self.min_interval_s
            self._done += n
            self._release_waiters()
            if self._indexer is not None and self._indexer.due():
                await self._indexer.run(self._connection)

    def _release_waiters(self) -> None:
        if not self._waiters:
            return
        still = []
        for target, fut in self._waiters:
            if self._done >= target:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((target, fut))
        self._waiters = still

    def _group(self, batch: list[tuple[str, Row]]) -> list[tuple[Table, list[Row]]]:
        # rows of one table with the same keys share one executemany; first-seen order is kept
        # so parents queued before children (markets before tokens) are inserted first
        groups: dict[tuple[str, tuple[str, ...]], list[Row]] = {}
        for table, row in batch:
            key = (table, tuple(row))
            rows = groups.get(key)
            if rows is None:
                groups[key] = [row]
            else:
                rows.append(row)
        return [(self._tables[table], rows) for (table, _), rows in groups.items()]

    async def _write_batch(self, batch: list[tuple[str, Row]]) -> None:
        parts = self._group(batch)
        try:
            await self._commit(parts)
        except Exception as exc:  # permanent, row-level: isolate the offending rows
            self._error_log(
                logging.WARNING, "batch of %d rows refused (%s); isolating bad rows", len(batch), one_line(exc)
            )
            for table, rows in parts:
                await self._isolate(table, rows)

    async def _isolate(self, table: Table, rows: list[Row]) -> None:
        stack = [rows]
        while stack:
            part = stack.pop()
            try:
                await self._commit([(table, part)])
            except Exception as exc:
                if len(part) == 1:
                    self._rejected += 1
                    self._reject_log(
                        logging.ERROR,
                        "row rejected by the database (table %s): %s; %d rejected so far",
                        table.name,
                        one_line(exc),
                        self._rejected,
                    )
                    continue
                mid = len(part) // 2
                stack.append(part[mid:])
                stack.append(part[:mid])

    def _plan(self, table: Table, keys: tuple[str, ...], dialect: Dialect) -> InsertPlan | None:
        cache_key = (table.name, keys)
        if cache_key not in self._plans:
            self._plans[cache_key] = InsertPlan.build(table, keys, dialect)
        return self._plans[cache_key]

    async def _prepare(
        self, parts: list[tuple[Table, list[Row]]]
    ) -> list[tuple[Table, list[Row], InsertPlan | None, Params]]:
        """Convert rows to driver parameters once (not again on every retry), a chunk at a time
        with a turn of the event loop between chunks (a large batch must not stall the feed)."""
        dialect = self.engine.dialect
        prepared = []
        for table, rows in parts:
            plan = self._plan(table, tuple(rows[0]), dialect)
            params: Params = None
            if plan is not None:
                params = []
                try:
                    for start in range(0, len(rows), PREPARE_CHUNK):
                        if start:
                            await asyncio.sleep(0)
                        params += plan.params(rows[start : start + PREPARE_CHUNK])
                except (ValueError, TypeError, ArithmeticError) as exc:
                    raise RowValueError(f"{table.name}: {exc}") from exc
            prepared.append((table, rows, plan, params))
        return prepared

    async def _commit(self, parts: list[tuple[Table, list[Row]]]) -> None:
        """Insert ``parts`` in one transaction, retrying transient failures until it commits.

        Raises only permanent (row-level) errors, after the transaction was rolled back.
        """
        try:
            prepared = await self._prepare(parts)
        except RowValueError:
            self._errors += 1
            raise
        nrows = sum(len(rows) for _, rows in parts)

        async def attempt() -> float:
            t0 = time.perf_counter()
            try:
                conn = await self._connection()
                async with conn.begin():
                    for table, rows, plan, params in prepared:
                        if plan is not None and params is not None:
                            await plan.insert(conn, params)
                        else:
                            await conn.execute(table.insert(), rows)
            except Exception:
                self._errors += 1
                await self._drop_connection()  # it may be broken: the next attempt takes a fresh one
                raise
            return time.perf_counter() - t0

        def on_retry(retry: Retry[float]) -> None:
            self._retries += 1
            self._error_log(
                logging.WARNING,
                "writer: batch of %d rows failed (attempt %d: %s); retrying in %.2fs",
                nrows,
                retry.attempt,
                one_line(retry.outcome.error),
                retry.delay_s,
            )

        # the whole batch was rolled back: retry it as is (rows neither lost nor duplicated)
        self._last_commit_s = await retry_call(
            attempt,
            backoff=self._backoff,
            retry_error=_is_transient,
            on_retry=on_retry,
            rng=self._rng,
            sleep=self._sleep,
        )
        self._written += nrows
        if self._indexer is not None:
            self._indexer.wrote(parts)
        self._batches += 1
        self._last_batch = nrows
        if nrows > self._max_batch_seen:
            self._max_batch_seen = nrows
        self._record_latency(parts)

    async def _connection(self) -> AsyncConnection:
        """The writer's own connection, kept between batches: no pool checkout per batch (on
        PostgreSQL a checkout pings the server, three round trips each waiting for the loop)."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = await self.engine.connect()
        return conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _record_latency(self, parts: list[tuple[Table, list[Row]]]) -> None:
        now = time.time_ns()
        key = self.receive_ts_key
        lat = self._latency_ns
        for _, rows in parts:
            if key in rows[0]:  # rows of one part share their keys
                lat.extend(now - ts for r in rows if type(ts := r[key]) is int)
        self._tell_observers(parts, now)  # metrics: batch size and receive->commit histogram

    def watch(self, observer: BatchObserver) -> None:
        """Tell ``observer`` of every committed batch (metrics); an observer never breaks the writer."""
        if observer not in self._observers:
            self._observers.append(observer)

    def unwatch(self, observer: BatchObserver) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def _tell_observers(self, parts: CommittedParts, now_ns: int) -> None:
        for observer in self._observers:
            try:
                observer(parts, now_ns)
            except Exception:
                if id(observer) not in self._failed_observers:
                    self._failed_observers.add(id(observer))
                    log.exception("writer observer %r failed (logged once)", observer)


def _is_transient(exc: Exception) -> bool:
    """A busy or lost database, which retrying the same rows can outlast (anything unexpected too).

    Permanent: an integrity violation, a value the database refuses, and a StatementError that
    is not a DBAPIError, which failed before reaching the database: a value our column types
    refused (float money, too many decimals, naive datetime).
    """
    if isinstance(exc, IntegrityError | DataError | RowValueError):
        return False
    if isinstance(exc, StatementError):
        return isinstance(exc, DBAPIError)
    return not driver_error_is_permanent(exc)  # raised by the driver itself (PostgreSQL's COPY)
