"""PostgreSQL day partitions of the feed tables (made partitioned by migration 0005).

Each feed table is ``PARTITION BY RANGE (receive_ts)``: one partition per UTC day of our receipt
clock (nanoseconds), named ``feed_partitions.<table>_pYYYYMMDD``, plus
``feed_partitions.<table>_default`` for any row no day partition covers, so an insert never
fails for want of a partition. The partitions live in their own schema so that the application
schema lists exactly the tables the models declare.

:func:`ensure_days` creates the partitions of the coming days; if the DEFAULT partition already
holds rows of such a day (the service was down when the day should have been made), they are moved
into the new partition in the same transaction. :func:`drop_partition` removes a whole day at
once, which is what makes retention cheap here. DDL runs with a short ``lock_timeout`` so that it
gives up (and is retried on the next run) rather than queue behind a long query with the writer
queued behind it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SCHEMA = "feed_partitions"
DAY_NS = 86_400 * 10**9
DDL_LOCK_TIMEOUT = "2s"
_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str  # schema-qualified
    lo_ns: int | None  # None: the DEFAULT partition
    hi_ns: int | None

    @property
    def is_default(self) -> bool:
        return self.lo_ns is None


def day_of(ns: int) -> date:
    return datetime.fromtimestamp(ns // 10**9, UTC).date()


def day_start_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 10**9


def partition_name(table: str, day: date) -> str:
    return f"{SCHEMA}.{table}_p{day:%Y%m%d}"


async def is_partitioned(conn: AsyncConnection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = await conn.scalar(
        text(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid WHERE c.oid = to_regclass(:t)"
        ),
        {"t": table},
    )
    return found is not None


async def partitions(conn: AsyncConnection, table: str) -> list[Partition]:
    """The table's partitions, day partitions in time order, the DEFAULT one last."""
    rows = await conn.execute(
        text(
            "SELECT n.nspname || '.' || c.relname, pg_get_expr(c.relpartbound, c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    )
    days: list[Partition] = []
    default: list[Partition] = []
    for name, bound in rows:
        match = _BOUNDS.search(bound or "")
        if match is None:
            default.append(Partition(name, None, None))
        else:
            days.append(Partition(name, int(match[1]), int(match[2])))
    return sorted(days, key=lambda p: p.lo_ns or 0) + default


async def _ddl_timeout(conn: AsyncConnection) -> None:
    await conn.execute(text(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'"))


async def ensure_days(conn: AsyncConnection, table: str, first: date, count: int) -> list[str]:
    """Create the day partitions of ``first`` and the ``count - 1`` days after it that are missing.

    Run inside a transaction (the caller's): the partitions made, or none. Returns their names.
    """
    existing = await partitions(conn, table)
    have = {p.lo_ns for p in existing if not p.is_default}
    default = next((p.name for p in existing if p.is_default), None)
    made: list[str] = []
    await _ddl_timeout(conn)
    for offset in range(count):
        day = first + timedelta(days=offset)
        lo, hi = day_start_ns(day), day_start_ns(day + timedelta(days=1))
        if lo in have:
            continue
        name = partition_name(table, day)
        stray = default is not None and await conn.scalar(
            text(f"SELECT 1 FROM {default} WHERE receive_ts >= :lo AND receive_ts < :hi LIMIT 1"),
            {"lo": lo, "hi": hi},
        )
        if stray:
            await _adopt_from_default(conn, table, name, default or "", lo, hi)
        else:
            await conn.execute(text(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ({lo}) TO ({hi})"))
        made.append(name)
    return made


async def _adopt_from_default(conn: AsyncConnection, table: str, name: str, default: str, lo: int, hi: int) -> None:
    # the day's rows leave DEFAULT for the new partition before it is attached (ATTACH refuses a
    # range DEFAULT still holds); the lock keeps the writer from adding one in between
    await conn.execute(text(f"LOCK TABLE {default} IN EXCLUSIVE MODE"))
    await conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    where = "receive_ts >= :lo AND receive_ts < :hi"
    await conn.execute(text(f"INSERT INTO {name} SELECT * FROM {default} WHERE {where}"), {"lo": lo, "hi": hi})
    await conn.execute(text(f"DELETE FROM {default} WHERE {where}"), {"lo": lo, "hi": hi})
    await conn.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})"))


async def drop_partition(conn: AsyncConnection, partition: Partition) -> None:
    """Drop a whole day partition (never the DEFAULT one). Run inside a transaction."""
    if partition.is_default:
        raise ValueError("the DEFAULT partition is never dropped")
    await _ddl_timeout(conn)
    await conn.execute(text(f"DROP TABLE {partition.name}"))


async def partition_rows(conn: AsyncConnection, partition: Partition, *, exact: bool) -> int:
    """Rows of a partition: counted, or the planner's estimate (cheap; -1 before any ANALYZE)."""
    if not exact:
        estimate = await conn.scalar(
            text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)"), {"t": partition.name}
        )
        if estimate is not None and estimate >= 0:
            return int(estimate)
    return int(await conn.scalar(text(f"SELECT count(*) FROM {partition.name}")) or 0)
