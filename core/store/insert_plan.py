"""A precompiled positional INSERT per (table, column set): the batched writer's fast path.

Rows become the driver's tuples through each column's own bind processor (the very values
SQLAlchemy would bind), then go to the database the fastest way each backend offers:

- **PostgreSQL: binary COPY** (asyncpg's ``copy_records_to_table``, 1.5-3x the rows/s of a
  pipelined executemany or of an ``unnest`` INSERT at venue size, docs/soak.md), in chunks of
  :data:`COPY_CHUNK` rows so that encoding a large batch never holds the event loop for long. It
  runs on the driver connection inside the SQLAlchemy transaction, which the asyncpg adapter opens
  only with its first statement: :func:`_copy` makes sure it is open, so a batch still commits or
  rolls back as one. COPY is INSERT for what the writer relies on (defaults and identity filled
  in, constraints and unique indexes checked, rows routed to partitions).
- **SQLite: multi-row INSERT** (:data:`SQLITE_ROWS_PER_STATEMENT` rows per ``VALUES`` list),
  executemany'd by the stdlib driver in aiosqlite's thread. The driver releases the GIL around
  each statement it steps and takes it back after: one statement per row means one GIL handoff
  per row with the event loop's thread, which a busy loop turns into waits. A hundred rows per
  statement make that a hundredth, and cost the driver fewer resets (docs/soak.md: 1.5-1.9x
  the rows/s of a single-row executemany, stdlib driver alone).

Errors raised by the driver itself (COPY bypasses SQLAlchemy's wrapping) are classified by
:func:`driver_error_is_permanent`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

Row = Mapping[str, object]

Params = list[tuple[object, ...]] | None
"""Driver parameters of a precompiled plan (None: the part goes through SQLAlchemy Core)."""

COPY_CHUNK = 5_000
"""Rows per COPY: each chunk is encoded on the event loop (~10-20 ms) and then awaited."""
SQLITE_ROWS_PER_STATEMENT = 100
"""Rows per SQLite INSERT (below SQLite's 500 terms of a compound VALUES and 32,766 parameters)."""
SQLITE_MAX_PARAMS = 32_766


class RowValueError(ValueError):
    """A row holds a value its column refuses (float money, too many decimals, naive datetime)."""


class InsertPlan:
    """A precompiled positional INSERT for one (table, column set): rows become driver tuples.

    SQLAlchemy's executemany path builds and processes a parameter dict per row. Here one
    generated function per plan turns a row dict into the driver's tuple, calling each
    column's own bind processor (so the values are exactly what SQLAlchemy would bind),
    which is several times faster. Built only when the compiled statement needs exactly the
    given columns (no Python-side defaults to evaluate); otherwise the Core path is used.
    """

    __slots__ = ("_multi", "columns", "schema", "sql", "table", "to_tuple")

    def __init__(
        self,
        sql: str,
        to_tuple: Callable[[Row], tuple[object, ...]],
        table: str = "",
        columns: tuple[str, ...] = (),
        schema: str | None = None,
    ) -> None:
        self.sql = sql
        self.to_tuple = to_tuple
        self.table = table  # for COPY: the table and the columns in the tuples' order
        self.columns = columns
        self.schema = schema
        self._multi: dict[int, str] = {}  # SQLite: rows per statement -> its INSERT

    @classmethod
    def build(cls, table: Table, keys: tuple[str, ...], dialect: Dialect) -> InsertPlan | None:
        compiled = table.insert().inline().compile(dialect=dialect, column_keys=list(keys))
        order = list(compiled.positiontup or [])
        if not compiled.positional or sorted(order) != sorted(keys):
            return None
        namespace: dict[str, Any] = {}
        items = []
        for idx, name in enumerate(order):
            proc = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is None:
                items.append(f"r[{name!r}]")
            else:
                namespace[f"p{idx}"] = proc
                items.append(f"p{idx}(r[{name!r}])")
        # names come from our own table metadata (validated in put), never from row data
        to_tuple = eval(f"lambda r: ({', '.join(items)},)", namespace)
        columns = tuple(table.c[name].name for name in order)
        return cls(compiled.string, to_tuple, table.name, columns, table.schema)

    def params(self, rows: Sequence[Row]) -> list[tuple[object, ...]]:
        return list(map(self.to_tuple, rows))

    async def insert(self, conn: AsyncConnection, params: list[tuple[object, ...]]) -> None:
        """Insert the converted rows on ``conn``, inside its transaction."""
        if conn.dialect.name == "postgresql" and self.columns:
            await _copy(conn, self, params)
        elif conn.dialect.paramstyle == "qmark" and self.columns and len(params) > 1:
            await self._insert_multi(conn, params)
        else:
            await conn.exec_driver_sql(self.sql, params)

    async def _insert_multi(self, conn: AsyncConnection, params: list[tuple[object, ...]]) -> None:
        per = max(1, min(SQLITE_ROWS_PER_STATEMENT, SQLITE_MAX_PARAMS // len(self.columns)))
        whole = len(params) - len(params) % per
        flat = chain.from_iterable
        if whole:
            statements = [tuple(flat(params[i : i + per])) for i in range(0, whole, per)]
            await conn.exec_driver_sql(self.multi_sql(per), statements)
        if whole < len(params):
            await conn.exec_driver_sql(self.multi_sql(len(params) - whole), tuple(flat(params[whole:])))

    def multi_sql(self, rows: int) -> str:
        """The plan's INSERT with ``rows`` rows in its VALUES (qmark parameters: SQLite)."""
        sql = self._multi.get(rows)
        if sql is None:
            head, values = self.sql.split(" VALUES ", 1)
            sql = self._multi[rows] = f"{head} VALUES {', '.join([values] * rows)}"
        return sql


async def _copy(conn: AsyncConnection, plan: InsertPlan, params: list[tuple[object, ...]]) -> None:
    driver: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg.Connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with the transaction's first statement; COPY on
        # the driver is not one, so without this each COPY would commit on its own
        await conn.exec_driver_sql("SELECT 1")
        if not driver.is_in_transaction():  # an autocommit engine: keep the batch atomic anyway
            await conn.exec_driver_sql(plan.sql, params)
            return
    for start in range(0, len(params), COPY_CHUNK):
        await driver.copy_records_to_table(
            plan.table, records=params[start : start + COPY_CHUNK], columns=plan.columns, schema_name=plan.schema
        )


def driver_error_is_permanent(exc: BaseException) -> bool:
    """A driver error (outside SQLAlchemy's wrapping) that retrying the same rows cannot cure: the
    database refused the data (SQLSTATE class 22, data exception, or 23, integrity violation), or
    the driver refused a value before sending it (a TypeError or ValueError)."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str):
        return state[:2] in ("22", "23")
    return isinstance(exc, TypeError | ValueError)
