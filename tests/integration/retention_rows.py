"""Feed rows at chosen ages, for the retention tests (real SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.store.models import Base
from core.store.partitions import DAY_NS

NOW_NS = time.time_ns()
MINUTE_NS = 60 * 10**9


def ago(days: float = 0, minutes: float = 0) -> int:
    return NOW_NS - int(days * DAY_NS) - int(minutes * MINUTE_NS)


def row(table: str, receive_ts: int, asset: str = "a1") -> dict[str, Any]:
    base: dict[str, Any] = {
        "asset_id": asset,
        "market": "m",
        "exchange_ts": receive_ts // 10**6,
        "receive_ts": receive_ts,
    }
    if table == "book_snapshots":
        return {**base, "bids": [["0.4", "10"]], "asks": [["0.6", "10"]], "tick_size": Decimal("0.01"), "hash": "h"}
    if table == "book_deltas":
        return {**base, "side": "BUY", "price": Decimal("0.4"), "size": Decimal("10"), "best_bid": None,
                "best_ask": None, "hash": None}  # fmt: skip
    return {**base, "price": Decimal("0.5"), "size": Decimal("1"), "side": "BUY", "fee_rate_bps": 0,
            "transaction_hash": None}  # fmt: skip


async def insert(engine: AsyncEngine, table: str, stamps: list[int], asset: str = "a1") -> None:
    model: Table = Base.metadata.tables[table]
    async with engine.begin() as conn:
        await conn.execute(model.insert(), [row(table, ts, asset) for ts in stamps])


async def stamps(engine: AsyncEngine, table: str, asset: str | None = None) -> list[int]:
    where = "" if asset is None else " WHERE asset_id = :a"
    async with engine.connect() as conn:
        res = await conn.execute(text(f"SELECT receive_ts FROM {table}{where} ORDER BY receive_ts"), {"a": asset})
        return [int(r[0]) for r in res]


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
