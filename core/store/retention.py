"""Retention of the feed tables: what ``[db.retention]`` says to remove, planned and then removed.

Per table (``receive_ts``, our ns clock at receipt, is the time that counts):

- rows older than the table's window go (``0`` days: kept forever);
- book_snapshots older than their raw window but inside ``book_snapshots_thinned_days`` are
  thinned to one per asset per ``book_snapshots_every_minutes`` (the first of each epoch-aligned
  bucket); the thinned range only ever grows, so how far it has got is kept in the ``state`` table
  and each run thins only what aged out of the raw window since.

On PostgreSQL with partitioned feed tables (migration 0005), a day partition wholly older than the
window is dropped (:mod:`core.store.partitions`) and only the boundary day (and the DEFAULT
partition) is deleted from row by row. Everything else is deleted in batches of ``batch_rows``,
each its own short transaction, with ``pause_ms`` between them: the batched writer's commits wait
for one batch at most, never for the whole prune. SQLite never shrinks its file by deleting; the
freed pages are reused by the rows that follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import TextClause

from core.settings.retention import RetentionSettings
from core.store import partitions as parts
from core.store.models import FEED_TABLES
from core.store.retention_thin import Thinning, thin_range, thin_state

log = logging.getLogger(__name__)

Progress = Callable[[str, str, int], None]
"""Told (table, what, rows so far) after each batch: ``what`` is deleted, thinned or dropped."""


@dataclass(frozen=True, slots=True)
class TablePlan:
    """What a prune of one table removes (or removed) and what it keeps."""

    table: str
    keep_days: int  # 0: forever
    delete_before_ns: int | None  # None: nothing is old enough to go
    rows: int = 0  # rows to delete one by one (older than the window, outside dropped partitions)
    partitions: tuple[str, ...] = ()  # whole day partitions to drop (PostgreSQL)
    partition_rows: int = 0  # rows inside them (estimated by the job, counted by a dry run)
    thin: Thinning | None = None  # book_snapshots beyond the raw window
    thin_rows: int = 0  # snapshots the thinning removes
    oldest_kept_ns: int | None = None
    newest_kept_ns: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def removes(self) -> int:
        return self.rows + self.partition_rows + self.thin_rows


def delete_before(settings: RetentionSettings, table: str, now_ns: int) -> int | None:
    """Rows of ``table`` older than this go; None: none (the table is kept forever)."""
    days = settings.days_of(table)
    if days == 0:
        return None
    if table == "book_snapshots" and settings.book_snapshots_every_minutes:
        thinned = settings.book_snapshots_thinned_days
        return None if thinned == 0 else now_ns - thinned * parts.DAY_NS
    return now_ns - days * parts.DAY_NS


class Pruner:
    """Plans and runs the prune of the feed tables on one engine (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: RetentionSettings,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        progress: Progress | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._progress = progress

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def plan(self, *, exact: bool = True) -> list[TablePlan]:
        """What a prune would remove now, per feed table; removes nothing."""
        now = self._clock_ns()
        return [await self._plan_table(table, now, exact=exact) for table in FEED_TABLES]

    async def _plan_table(self, table: str, now: int, *, exact: bool) -> TablePlan:
        cut = delete_before(self.settings, table, now)
        plan = TablePlan(table, self.settings.days_of(table), cut)
        async with self.engine.connect() as conn:
            if cut is not None:
                plan = await self._plan_deletes(conn, plan, cut, exact=exact)
            if table == "book_snapshots":
                thin = await thin_state(conn, self.settings, now, cut)
                if thin is not None:
                    plan = replace(plan, thin=thin, thin_rows=await thin.count(conn) if exact else 0)
            first = cut if cut is not None else 0
            row = (
                await conn.execute(
                    text(f"SELECT min(receive_ts), max(receive_ts) FROM {table} WHERE receive_ts >= :c"), {"c": first}
                )
            ).one()
        return replace(plan, oldest_kept_ns=row[0], newest_kept_ns=row[1])

    async def _plan_deletes(self, conn: AsyncConnection, plan: TablePlan, cut: int, *, exact: bool) -> TablePlan:
        table, doomed = plan.table, []
        if await parts.is_partitioned(conn, table):
            doomed = [p for p in await parts.partitions(conn, table) if p.hi_ns is not None and p.hi_ns <= cut]
        whole = sum([await parts.partition_rows(conn, p, exact=exact) for p in doomed])
        # rows outside the partitions that go whole: the boundary day, DEFAULT, or an unpartitioned table
        spared = " AND ".join(f"NOT (receive_ts >= {p.lo_ns} AND receive_ts < {p.hi_ns})" for p in doomed)
        where = "receive_ts < :c" + (f" AND {spared}" if spared else "")
        rows = int(await conn.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}"), {"c": cut}) or 0)
        return replace(plan, rows=rows, partitions=tuple(p.name for p in doomed), partition_rows=whole)

    async def run(self) -> list[TablePlan]:
        """Prune every feed table; returns what was removed (partition rows as the job's estimate).

        PostgreSQL: the day partitions of today and ``partitions_ahead_days`` after are made first.
        """
        if self.is_postgres:
            await self.ensure_partitions()
        plans = await self.plan(exact=False)
        done: list[TablePlan] = []
        for plan in plans:
            done.append(await self._prune_table(plan))
        return done

    async def ensure_partitions(self) -> list[str]:
        """PostgreSQL: create the coming days' partitions of every partitioned feed table."""
        made: list[str] = []
        today = parts.day_of(self._clock_ns())
        for table in FEED_TABLES:
            async with self.engine.begin() as conn:
                if await parts.is_partitioned(conn, table):
                    made += await parts.ensure_days(conn, table, today, self.settings.partitions_ahead_days + 1)
        if made:
            log.info("created feed partitions %s", ", ".join(made))
        return made

    async def _prune_table(self, plan: TablePlan) -> TablePlan:
        table, dropped, dropped_rows = plan.table, [], 0
        if plan.partitions:
            async with self.engine.connect() as conn:
                doomed = [p for p in await parts.partitions(conn, table) if p.name in plan.partitions]
            for p in doomed:
                try:
                    async with self.engine.begin() as conn:
                        rows = await parts.partition_rows(conn, p, exact=False)
                        await parts.drop_partition(conn, p)
                except Exception as exc:  # a lock timeout: the next run drops it
                    log.warning("could not drop partition %s (next run retries): %s", p.name, exc)
                    continue
                dropped.append(p.name)
                dropped_rows += rows
                self._tell(table, "dropped", dropped_rows)
        deleted = await self._delete_older(table, plan.delete_before_ns) if plan.delete_before_ns is not None else 0
        thinned = await self._thin(plan.thin) if plan.thin is not None else 0
        if deleted or dropped or thinned:
            log.info(
                "pruned %s: %d rows deleted, %d partitions dropped (~%d rows), %d snapshots thinned",
                table,
                deleted,
                len(dropped),
                dropped_rows,
                thinned,
            )
        return replace(plan, rows=deleted, partitions=tuple(dropped), partition_rows=dropped_rows, thin_rows=thinned)

    async def _delete_older(self, table: str, cut: int) -> int:
        sql = text(
            f"DELETE FROM {table} WHERE receive_ts < :c AND id IN "
            f"(SELECT id FROM {table} WHERE receive_ts < :c LIMIT :n)"
        )
        return await self._batches(table, "deleted", sql, {"c": cut})

    async def _thin(self, thin: Thinning) -> int:
        total = 0
        for lo, hi in thin.chunks():
            total += await self._batches(
                "book_snapshots", "thinned", thin_range(), {**thin.params(), "lo": lo, "hi": hi}
            )
            async with self.engine.begin() as conn:
                await thin.advance(conn, hi)
        return total

    async def _batches(self, table: str, what: str, sql: TextClause, params: dict[str, int]) -> int:
        total, batch = 0, self.settings.batch_rows
        while True:
            async with self.engine.begin() as conn:
                n = (await conn.execute(sql, {**params, "n": batch})).rowcount
            total += max(n, 0)
            if n:
                self._tell(table, what, total)
            if n < batch:
                return total
            # between batches the writer's commit gets the database (SQLite's one write lock)
            await self._sleep(self.settings.pause_ms / 1000)

    def _tell(self, table: str, what: str, rows: int) -> None:
        if self._progress is not None:
            self._progress(table, what, rows)
