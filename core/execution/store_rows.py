"""The SQL store's rows read back as records, and what it reads at start-up beyond the open orders.

A trade the venue matched settles seconds to minutes later: a restart in between must find it
again. :func:`settling_fills` and :func:`settling_orders` say what is still settling on record (the
rule of :meth:`.MemoryExecutionStore.load_settling` too): the fills still "matched", and the orders
they may still move, final or not: those with such a fill, and those the venue matched (filled)
short of the fills confirmed for them (their trade not reported yet).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, and_, or_, select

from core.execution.records import OrderRecord, StoredFill
from core.execution.types import Fill, OrderStatus
from core.store import models as m
from core.types import OrderType, Side


class Settling(NamedTuple):
    """What a restart finds still settling: the orders to track again and their matched fills."""

    orders: list[OrderRecord]
    fills: list[StoredFill]


def ts_of(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def order_record(row: m.Order) -> OrderRecord:
    return OrderRecord(
        client_order_id=row.client_order_id,
        market=row.market,
        token_id=row.token_id,
        side=Side(row.side),
        price=row.price,
        size=row.size,
        order_type=OrderType(row.order_type),
        post_only=row.post_only,
        status=OrderStatus(row.status),
        mode=row.mode,
        group_id=row.group_id,
        reason=row.reason,
        venue_order_id=row.venue_order_id,
        order_hash=row.order_hash,
        filled_size=row.filled_size,
        avg_price=row.avg_price,
        error=row.error,
        signed_order=row.signed_order,
        created_ts=ts_of(row.created_at),
        updated_ts=ts_of(row.updated_at),
    )


def stored_fill(row: m.Fill, market: str | None) -> StoredFill:
    fill = Fill(
        client_order_id=row.client_order_id,
        venue_order_id=row.venue_order_id,
        token_id=row.token_id,
        side=Side(row.side),
        price=row.price,
        size=row.size,
        fee=row.fee,
        trade_id=row.trade_id,
        confirmed=row.status == "confirmed",
        ts_ms=int(row.ts.timestamp() * 1000) if row.ts else 0,
    )
    return StoredFill(fill, market or "", failed=row.status == "failed")


def fills_with_status(status: str, mode: str | None) -> Select[m.Fill, str]:
    """The fill rows in ``status`` with their order's market, oldest first; of ``mode``'s orders,
    and of no order we hold a row for (the venue's word: kept)."""
    stmt = (
        select(m.Fill, m.Order.market)
        .join(m.Order, m.Order.client_order_id == m.Fill.client_order_id, isouter=True)
        .where(m.Fill.status == status)
        .order_by(m.Fill.id)
    )
    if mode is not None:
        stmt = stmt.where(or_(m.Order.mode == mode, m.Order.client_order_id.is_(None)))
    return stmt


def settling_fills(mode: str | None) -> Select[m.Fill, str]:
    return fills_with_status("matched", mode)


def settling_orders(mode: str | None) -> Select[m.Order]:
    matched_short: ColumnElement[bool] = and_(
        m.Order.status == str(OrderStatus.FILLED), m.Order.filled_size < m.Order.size
    )
    with_matched_fill = m.Order.client_order_id.in_(select(m.Fill.client_order_id).where(m.Fill.status == "matched"))
    stmt = select(m.Order).where(or_(matched_short, with_matched_fill)).order_by(m.Order.id)
    return stmt.where(m.Order.mode == mode) if mode is not None else stmt
