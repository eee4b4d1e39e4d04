"""SQLite's per-asset index of ``book_deltas``, filled in sorted batches (migration 0007).

At the venue's 20,000 assets an ``(asset_id, id)`` index on ``book_deltas`` costs about one page
write per row on SQLite (each row lands on the last leaf page of its own asset, so a commit of a
few hundred rows dirties a few hundred pages, each written to the WAL and again at the checkpoint).
SQLite keeps that index apart instead: ``book_deltas_by_asset`` holds ``(asset_key, id)`` pairs
(``asset_key``: a small integer per asset, ``book_delta_assets``), and the batched writer adds the
newest rows to it in sorted batches, so that each page takes many rows per batch.

The assets are cut into :data:`~core.store.models.DELTA_INDEX_SLICES` slices (:func:`slice_of`:
the code of the id's last character), indexed in turn, one slice every ``MOVE_ROWS / slices`` rows
written (or ``MOVE_INTERVAL_S / slices`` seconds): each slice's rows are indexed every ~MOVE_ROWS
rows (~5 rows per asset per batch at 20,000 assets), and the writer pauses for a tenth of that
work at a time instead of all of it every ten seconds. ``book_deltas_indexed`` keeps, per slice,
the id up to which its rows are indexed; rows above it (the *tail*) are the newest, found by id
range through ``ix_book_deltas_slice_id`` (slice, id). Every per-asset read here reads both parts
in one statement (one snapshot: a row is in exactly one of them). Triggers remove a deleted row's
entry and keep every mark at or below the highest id (SQLite gives the ids of deleted newest rows
again). PostgreSQL keeps its ``(asset_id, id)`` index and the plain queries.

A writer starts at the slice with the lowest mark (the most behind: a writer that lived for fewer
than ten runs left the later slices' tails long), and indexes nothing at close. A failed run (busy
beyond the timeout: each attempt may wait ``busy_timeout`` inside the writer's loop) is retried
after the usual interval, not after every batch, and logged at most once per the writer's log
interval.

Known limits (nothing in this code base reaches them):

- A row inserted by hand with an id at or below its slice's mark would be missed by the readers
  here; every writer of this code base lets the database assign ids (always above every existing one).
- ``Base.metadata.drop_all`` drops ``book_deltas`` (its slice index and triggers with it) but not the
  SQLite-only tables of :data:`~core.store.models.SQLITE_ONLY`: a ``create_all`` after it would keep
  the old marks and entries, and new rows, given the old ids again, would be missed or read as
  another asset's. Drop ``SQLITE_ONLY``'s tables too (nothing here calls ``drop_all``).
- An in-memory database is one connection shared by every user of its engine (``StaticPool``):
  the indexer's transaction runs on it like the writer's batches, so a task that begins a
  transaction on that engine while one is open would fail (the in-memory stores are replays, each
  used by one task at a time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Select, Table, func, literal, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from core.store.models import (
    DELTA_ASSETS,
    DELTA_INDEX_SLICES,
    DELTAS_BY_ASSET,
    DELTAS_INDEXED,
    DELTAS_SLICE_SQL,
    Base,
    deltas_slice_sql,
)
from core.store.writer_stats import BoundedLog, one_line

log = logging.getLogger(__name__)

DELTAS: Table = Base.metadata.tables["book_deltas"]
MOVE_ROWS = 100_000
"""Rows written to book_deltas between two indexings of one slice (~10 s at the venue's rate)."""
MOVE_INTERVAL_S = 10.0
"""A trickle of rows is indexed at least this often (it keeps the unindexed tail short)."""

_ADD_ASSETS = (  # the slice's tail through ix_book_deltas_slice_id (its expression spelt the same)
    "INSERT OR IGNORE INTO book_delta_assets (asset_id) SELECT DISTINCT asset_id FROM book_deltas "
    f"WHERE {DELTAS_SLICE_SQL} = ? AND id > (SELECT upto FROM book_deltas_indexed WHERE slice = ?)"
)
_MARK = "SELECT upto FROM book_deltas_indexed WHERE slice = ?"
_END = "SELECT coalesce(max(id), 0) FROM book_deltas"
_ADD_ENTRIES = (
    "INSERT INTO book_deltas_by_asset (asset_key, id) SELECT a.asset_key, d.id FROM book_deltas AS d "
    "JOIN book_delta_assets AS a ON a.asset_id = d.asset_id "
    f"WHERE {deltas_slice_sql('d.asset_id')} = ? AND d.id > ? AND d.id <= ? "
    "ORDER BY a.asset_key, d.id"
)
_SET_MARK = "UPDATE book_deltas_indexed SET upto = ? WHERE slice = ?"
_PRESENT = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
_MOST_BEHIND = "SELECT slice FROM book_deltas_indexed ORDER BY upto, slice LIMIT 1"


def slice_of(asset_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """The slice of an asset id (the SQL the writer uses; empty or odd ids land in slice 0)."""
    return func.coalesce(func.unicode(func.substr(asset_id, -1)), 0) % DELTA_INDEX_SLICES


def uses_delta_index(dialect_name: str, tables: Sequence[str] | None = None) -> bool:
    """True when per-asset reads of book_deltas go through the index table (SQLite at 0007 or later;
    ``tables``: the database's table names when it may be older, None when it is at head)."""
    return dialect_name == "sqlite" and (tables is None or DELTAS_BY_ASSET.name in tables)


async def index_slice(conn: AsyncConnection, k: int) -> int:
    # a write first (the transaction's first statement): the write lock is taken now, waiting
    # busy_timeout for it, and no row is inserted behind our back
    await conn.exec_driver_sql(_ADD_ASSETS, (k, k))
    upto = int((await conn.exec_driver_sql(_MARK, (k,))).scalar_one())
    end = int((await conn.exec_driver_sql(_END)).scalar_one())
    if end <= upto:
        return 0
    added = (await conn.exec_driver_sql(_ADD_ENTRIES, (k, upto, end))).rowcount
    await conn.exec_driver_sql(_SET_MARK, (end, k))
    return max(int(added), 0)


class DeltaIndexer:
    """When the writer indexes: :meth:`wrote` after each committed batch, :meth:`run` when :meth:`due`."""

    def __init__(
        self,
        *,
        every_rows: int | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_interval_s: float = 5.0,
    ) -> None:
        self.every_rows = (MOVE_ROWS if every_rows is None else every_rows) / DELTA_INDEX_SLICES
        self.every_s = (MOVE_INTERVAL_S if every_s is None else every_s) / DELTA_INDEX_SLICES
        self._clock = clock
        self._pending = 0  # rows written since the last run
        self._last = clock()
        self._next = 0  # the slice indexed next (the first run starts at the most behind)
        self._present: bool | None = None  # the index table exists (unknown until the first run)
        self._failed_log = BoundedLog(log_interval_s)
        self.runs = 0  # slices indexed
        self.failures = 0  # runs that failed (each retried after the usual interval)
        self.indexed = 0

    def wrote(self, parts: Sequence[tuple[Table, Sequence[object]]]) -> None:
        """Count the book_deltas rows of a committed batch."""
        for table, rows in parts:
            if table.name == DELTAS.name:
                self._pending += len(rows)

    def due(self) -> bool:
        if self._present is False or not self._pending:
            return False
        return self._pending >= self.every_rows or self._clock() - self._last >= self.every_s

    async def run(self, connect: Callable[[], Awaitable[AsyncConnection]]) -> None:
        """Index the next slice; a failure is logged and left for a later run (the rows stay readable)."""
        self._last = self._clock()
        self._pending = 0  # the next run, failed or not, after the usual interval
        try:
            conn = await connect()
            if self._present is None and not await self._first_look(conn):
                return
            async with conn.begin():
                self.indexed += await index_slice(conn, self._next)
        except Exception as exc:  # busy beyond the timeout, or the connection went: next time
            self.failures += 1
            self._failed_log(logging.WARNING, "writer: indexing book_deltas failed (retried later): %s", one_line(exc))
            return
        self._next = (self._next + 1) % DELTA_INDEX_SLICES
        self.runs += 1

    async def _first_look(self, conn: AsyncConnection) -> bool:
        """Whether the index table exists, and the slice to start at; in a read transaction of its own
        (a read before the write in the indexing transaction would make SQLite refuse that write at
        once, without waiting, if another connection committed in between)."""
        async with conn.begin():
            present = bool((await conn.exec_driver_sql(_PRESENT, (DELTAS_INDEXED.name,))).scalar_one())
            if present:  # the most behind first: an earlier writer may have stopped before reaching it
                self._next = int((await conn.exec_driver_sql(_MOST_BEHIND)).scalar_one_or_none() or 0)
        self._present = present
        if not present:
            log.warning("book_deltas_indexed is missing (schema before 0007?): not indexing deltas")
        return present


def asset_deltas(
    dialect_name: str,
    columns: Sequence[ColumnElement[Any] | QueryableAttribute[Any]],
    asset_id: str,
    *,
    since_ns: int | None,
    limit: int,
    tables: Sequence[str] | None = None,
) -> Select[Any]:
    """``columns`` of the newest ``limit`` book_deltas of ``asset_id`` (received at or after
    ``since_ns``, if given), newest first."""
    d = DELTAS.c
    if not uses_delta_index(dialect_name, tables):
        stmt = select(*columns).where(d.asset_id == asset_id)
        if since_ns is not None:
            stmt = stmt.where(d.receive_ts >= since_ns)
        return stmt.order_by(d.id.desc()).limit(limit)
    names = [f"c{i}" for i in range(len(columns))]
    mark = select(DELTAS_INDEXED.c.upto).where(DELTAS_INDEXED.c.slice == slice_of(literal(asset_id)))
    tail = select(*[c.label(n) for c, n in zip(columns, names, strict=True)], d.id.label("row_id")).where(
        # the asset's slice above its mark, through ix_book_deltas_slice_id (its expression spelt the
        # same). The asset is compared as ``+asset_id``: given ``asset_id = ?``, SQLite puts the asset
        # into the slice's expression (constant propagation, it seems) and scans every row above the
        # mark by rowid instead (all slices' rows: ~11 ms of CPU, not ~8, with a 100,000-row tail)
        literal_column(deltas_slice_sql("book_deltas.asset_id")) == slice_of(literal(asset_id)),
        d.id > func.coalesce(mark.scalar_subquery(), 0),
        literal_column("+book_deltas.asset_id", d.asset_id.type) == asset_id,
    )
    key = select(DELTA_ASSETS.c.asset_key).where(DELTA_ASSETS.c.asset_id == asset_id).scalar_subquery()
    s = DELTAS_BY_ASSET.c
    indexed = (
        select(*[c.label(n) for c, n in zip(columns, names, strict=True)], s.id.label("row_id"))
        .select_from(DELTAS_BY_ASSET.join(DELTAS, d.id == s.id))
        .where(s.asset_key == key)
    )
    if since_ns is not None:
        tail = tail.where(d.receive_ts >= since_ns)
        indexed = indexed.where(d.receive_ts >= since_ns)
    # the index part is read backwards along its key, the tail by id: merged, stopped at the limit
    both = union_all(tail, indexed).order_by(literal_column("row_id").desc()).limit(limit).subquery()
    return select(*[both.c[n] for n in names]).order_by(both.c.row_id.desc())


def last_delta_ids(dialect_name: str, tables: Sequence[str] | None = None) -> list[Select[Any]]:
    """Selects of ``(asset_id, highest book_deltas id)`` whose union covers every asset (an asset
    may appear in more than one: take the highest)."""
    d = DELTAS.c
    if not uses_delta_index(dialect_name, tables):
        return [select(d.asset_id, func.max(d.id)).group_by(d.asset_id)]
    s, a = DELTAS_BY_ASSET.c, DELTA_ASSETS.c
    indexed = (
        select(a.asset_id, func.max(s.id))
        .select_from(DELTAS_BY_ASSET.join(DELTA_ASSETS, a.asset_key == s.asset_key))
        .group_by(s.asset_key)
    )
    lowest_mark = select(func.coalesce(func.min(DELTAS_INDEXED.c.upto), 0)).scalar_subquery()
    tail = select(d.asset_id, func.max(d.id)).where(d.id > lowest_mark).group_by(d.asset_id)
    return [indexed, tail]
