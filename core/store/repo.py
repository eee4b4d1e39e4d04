"""Small query helpers shared by the feed, the engine, the control facade and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core.store.columns import utcnow
from core.store.models import ARMED_KEY, State


def dialect_name(conn: AsyncConnection | AsyncSession) -> str:
    if isinstance(conn, AsyncSession):
        return conn.get_bind().dialect.name
    return conn.dialect.name


def upsert_stmt(conn: AsyncConnection | AsyncSession | str, table: Table) -> Any:
    """A dialect-specific ``INSERT`` that has ``on_conflict_do_update``/``_do_nothing``."""
    name = conn if isinstance(conn, str) else dialect_name(conn)
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"upsert not supported for dialect {name}")


async def upsert_rows(
    conn: AsyncConnection | AsyncSession,
    table: Table,
    rows: Iterable[dict[str, Any]],
    key_cols: Sequence[str],
    *,
    update_cols: Sequence[str] | None = None,
) -> int:
    """Insert rows, updating existing ones (matched on ``key_cols``). Returns the row count.

    Idempotent: running it twice with the same rows leaves the table unchanged.
    """
    batch = list(rows)
    if not batch:
        return 0
    stmt = upsert_stmt(conn, table)
    cols = update_cols if update_cols is not None else [c for c in batch[0] if c not in key_cols]
    if cols:
        stmt = stmt.on_conflict_do_update(index_elements=list(key_cols), set_={c: stmt.excluded[c] for c in cols})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key_cols))
    await conn.execute(stmt, batch)
    return len(batch)


async def get_state(session: AsyncSession, key: str, default: Any = None) -> Any:
    row = await session.get(State, key)
    return default if row is None else row.value


async def set_state(session: AsyncSession, key: str, value: Any) -> None:
    """Set a state value (insert or update) in the session's transaction; the caller commits."""
    table = cast(Table, State.__table__)  # a declarative model's table is a Table
    await upsert_rows(session, table, [{"key": key, "value": value, "updated_at": utcnow()}], ["key"])


def armed_from_value(value: Any) -> bool:
    """Interpret the ``armed`` state value: a bool, or a dict with an ``armed`` bool."""
    if isinstance(value, dict):
        value = value.get("armed")
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "armed"}
    return value is True


async def is_armed(session: AsyncSession) -> bool:
    return armed_from_value(await get_state(session, ARMED_KEY))


async def count_rows(conn: AsyncConnection | AsyncSession, table: Table) -> int:
    return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
