"""Thinning of book_snapshots beyond their raw window: one snapshot per asset per bucket.

Buckets are ``book_snapshots_every_minutes`` long and aligned to the epoch, so a bucket is the same
whichever run thins it, and a run keeps the first snapshot of each (asset, bucket): thinning twice
removes nothing more. The range thinned ends at the last bucket boundary before the raw window, so
no bucket is half raw, half thinned. How far thinning has got (and with which bucket) is kept in the
``state`` table, so each run only reads what aged out of the raw window since the last one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from core.settings.retention import RetentionSettings
from core.store.columns import utcnow
from core.store.models import State
from core.store.partitions import DAY_NS
from core.store.repo import upsert_rows

STATE_KEY = "retention.thinned.book_snapshots"
MINUTE_NS = 60 * 10**9
HOUR_NS = 60 * MINUTE_NS

_RANKED = (
    "SELECT id, row_number() OVER (PARTITION BY asset_id, receive_ts / :bucket ORDER BY receive_ts, id) AS rn "
    "FROM book_snapshots WHERE receive_ts >= :lo AND receive_ts < :hi"
)


def thin_range() -> TextClause:
    """Delete up to ``:n`` snapshots of ``[:lo, :hi)`` that are not the first of their (asset, bucket)."""
    return text(
        "DELETE FROM book_snapshots WHERE receive_ts >= :lo AND receive_ts < :hi AND id IN "
        f"(SELECT id FROM ({_RANKED}) AS ranked WHERE rn > 1 LIMIT :n)"
    )


@dataclass(frozen=True, slots=True)
class Thinning:
    lo_ns: int  # bucket-aligned
    hi_ns: int  # bucket-aligned, the end of the last bucket wholly beyond the raw window
    bucket_ns: int

    @property
    def every_minutes(self) -> int:
        return self.bucket_ns // MINUTE_NS

    def params(self) -> dict[str, int]:
        return {"bucket": self.bucket_ns}

    def chunks(self) -> Iterator[tuple[int, int]]:
        """``[lo, hi)`` in whole buckets of about an hour, so each window query stays small."""
        step = self.bucket_ns * max(1, -(-HOUR_NS // self.bucket_ns))
        lo = self.lo_ns
        while lo < self.hi_ns:
            yield lo, min(lo + step, self.hi_ns)
            lo += step

    async def count(self, conn: AsyncConnection) -> int:
        sql = text(f"SELECT count(*) FROM ({_RANKED}) AS ranked WHERE rn > 1")
        found = await conn.scalar(sql, {"bucket": self.bucket_ns, "lo": self.lo_ns, "hi": self.hi_ns})
        return int(found or 0)

    async def advance(self, conn: AsyncConnection, done_to_ns: int) -> None:
        """Remember that ``[.., done_to_ns)`` is thinned with this bucket."""
        value = {"before_ns": done_to_ns, "every_minutes": self.every_minutes}
        table = cast(Table, State.__table__)
        await upsert_rows(conn, table, [{"key": STATE_KEY, "value": value, "updated_at": utcnow()}], ["key"])


async def _watermark(conn: AsyncConnection, every_minutes: int) -> int | None:
    value: Any = await conn.scalar(select(State.value).where(State.key == STATE_KEY))
    if isinstance(value, dict) and value.get("every_minutes") == every_minutes:
        before = value.get("before_ns")
        return before if isinstance(before, int) else None
    return None  # never thinned, or with another bucket: start again from the oldest snapshot


async def thin_state(
    conn: AsyncConnection, settings: RetentionSettings, now_ns: int, delete_before_ns: int | None
) -> Thinning | None:
    """What the next thinning covers, or None (thinning off, or nothing new beyond the raw window)."""
    minutes, raw_days = settings.book_snapshots_every_minutes, settings.book_snapshots_days
    if not minutes or not raw_days:
        return None
    bucket = minutes * MINUTE_NS
    hi = (now_ns - raw_days * DAY_NS) // bucket * bucket
    lo = await _watermark(conn, minutes)
    if lo is None:
        lo = await conn.scalar(text("SELECT min(receive_ts) FROM book_snapshots"))
        if lo is None:
            return None
    if delete_before_ns is not None:
        lo = max(lo, delete_before_ns)
    lo = lo // bucket * bucket
    return Thinning(lo, hi, bucket) if lo < hi else None
