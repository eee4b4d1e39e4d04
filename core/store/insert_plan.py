"""A precompiled positional INSERT per (table, column set): the batched writer's fast path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect

Row = Mapping[str, object]

Params = list[tuple[object, ...]] | None
"""Driver parameters of a precompiled plan (None: the part goes through SQLAlchemy Core)."""


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

    __slots__ = ("sql", "to_tuple")

    def __init__(self, sql: str, to_tuple: Callable[[Row], tuple[object, ...]]) -> None:
        self.sql = sql
        self.to_tuple = to_tuple

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
        return cls(compiled.string, to_tuple)

    def params(self, rows: list[Row]) -> list[tuple[object, ...]]:
        return list(map(self.to_tuple, rows))
