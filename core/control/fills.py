"""``/fills [N]``: the most recent executions of our orders, newest first, as a trader reads them.

Read from the ``fills`` table (every mode's orders share it, so each row names its order's mode),
with a trade that is still settling or failed to settle shown as such; a service without a
database (tests over the in-memory store) lists the confirmed fills its store holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from core.execution.store import ExecutionStore
    from core.registry import MarketRegistry

DEFAULT_FILLS = 10
MAX_FILLS = 50


@dataclass(frozen=True)
class FillRow:
    market: str  # slug, else condition id
    outcome: str
    side: str
    price: Decimal
    size: Decimal
    fee: Decimal
    mode: str  # the mode of the order it filled ("?" when we hold no row for that order)
    status: str  # matched (settling) | confirmed | failed
    client_order_id: str
    at: datetime | None = None


def _names(registry: MarketRegistry, market: str | None, token_id: str) -> tuple[str, str]:
    info = registry.get(market) if market else registry.for_token(token_id)
    token = registry.token(token_id)
    return (info.slug if info and info.slug else market or "?"), (token.outcome if token else token_id[:10])


async def from_database(
    sessions: async_sessionmaker[AsyncSession], registry: MarketRegistry, limit: int
) -> list[FillRow]:
    from sqlalchemy import select

    from core.store import models as m

    stmt = (
        select(m.Fill, m.Order.market, m.Order.mode)
        .join(m.Order, m.Order.client_order_id == m.Fill.client_order_id, isouter=True)
        .order_by(m.Fill.id.desc())
        .limit(limit)
    )
    async with sessions() as s:
        rows = (await s.execute(stmt)).all()
    out = []
    for fill, market, mode in rows:
        slug, outcome = _names(registry, market, fill.token_id)
        out.append(
            FillRow(
                market=slug,
                outcome=outcome,
                side=fill.side,
                price=fill.price,
                size=fill.size,
                fee=fill.fee,
                mode=mode or "?",
                status=fill.status,
                client_order_id=fill.client_order_id,
                at=fill.ts,
            )
        )
    return out


async def from_store(store: ExecutionStore, registry: MarketRegistry, mode: str, limit: int) -> list[FillRow]:
    stored = await store.load_fills(mode)
    out = []
    for sf in reversed(stored[-limit:]):
        f = sf.fill
        slug, outcome = _names(registry, sf.market, f.token_id)
        at = datetime.fromtimestamp(f.ts_ms / 1000, UTC) if f.ts_ms else None
        out.append(
            FillRow(slug, outcome, str(f.side), f.price, f.size, f.fee, mode, "confirmed", f.client_order_id, at)
        )
    return out
