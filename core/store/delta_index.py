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
range. Every per-asset read here reads both parts in one statement (one snapshot: a row is in
exactly one of them). Triggers remove a deleted row's entry and keep every mark at or below the
highest id (SQLite gives the ids of deleted newest rows again). PostgreSQL keeps its
``(asset_id, id)`` index and the plain queries.

A row inserted by hand with an id at or below its slice's mark would be missed by the readers
here; every writer of this code base lets the database assign ids (always above every existing one).
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
)

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
    f"WHERE {DELTAS_SLICE_SQL.replace('asset_id', 'd.asset_id')} = ? AND d.id > ? AND d.id <= ? "
    "ORDER BY a.asset_key, d.id"
)
_SET_MARK = "UPDATE book_deltas_indexed SET upto = ? WHERE slice = ?"


def slice_of(asset_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """The slice of an asset id (the SQL the writer uses; empty or odd ids land in slice 0)."""
    return func.coalesce(func.unicode(func.substr(asset_id, -1)), 0) % DELTA_INDEX_SLICES


def uses_delta_index(dialect_name: str, tables: Sequence[str] | None = None) -> bool:
    """True when per-asset reads of book_deltas go through the index table (SQLite at 0007 or later;
    ``tables``: the database's table names when it may be older, None when it is at head)."""
    return dialect_name == "sqlite" and (tables is None or DELTAS_BY_ASSET.name in tables)


async def index_new_deltas(conn: AsyncConnection) -> int:
    """Index every row not yet indexed (all slices), in one transaction on ``conn``; rows added."""
    async with conn.begin():
        return sum([await _index_slice(conn, k) for k in range(DELTA_INDEX_SLICES)])


async def _index_slice(conn: AsyncConnection, k: int) -> int:
    # a write first: the write lock is taken now, so no row is inserted behind our back
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
    ) -> None:
        self.every_rows = (MOVE_ROWS if every_rows is None else every_rows) / DELTA_INDEX_SLICES
        self.every_s = (MOVE_INTERVAL_S if every_s is None else every_s) / DELTA_INDEX_SLICES
        self._clock = clock
        self._pending = 0  # rows written since the last run
        self._last = clock()
        self._next = 0  # the slice indexed next
        self._present: bool | None = None  # the index table exists (unknown until the first run)
        self.runs = 0
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
        try:
            conn = await connect()
            async with conn.begin():
                if self._present is None:
                    found = await conn.exec_driver_sql(
                        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (DELTAS_INDEXED.name,)
                    )
                    self._present = bool(found.scalar_one())
                    if not self._present:
                        log.warning("book_deltas_indexed is missing (schema before 0007?): not indexing deltas")
                        return
                self.indexed += await _index_slice(conn, self._next)
        except Exception as exc:  # busy beyond the timeout, or the connection went: next time
            log.warning("indexing book_deltas failed (retried later): %s", exc)
            return
        self._next = (self._next + 1) % DELTA_INDEX_SLICES
        self._pending = 0
        self.runs += 1


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
        # the asset's slice through ix_book_deltas_slice_id (its expression spelt the same), above its mark
        literal_column(DELTAS_SLICE_SQL.replace("asset_id", "book_deltas.asset_id")) == slice_of(literal(asset_id)),
        d.id > func.coalesce(mark.scalar_subquery(), 0),
        d.asset_id == asset_id,
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
