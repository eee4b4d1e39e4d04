"""The facade's manual trading against the running service: prepare (validate and screen), execute,
close, cancel by id or unique prefix, and the recent fills.

Screening runs what execution would run — the re-check of arm state, mode and book, then the risk
gate's preview — so a refusal is answered when the order is asked for, and a live confirmation
card is only shown for an order that would be sent. Execution runs them again for real.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING

from core.control import closing, orders, views
from core.control import fills as fill_rows
from core.control.types import ActionResult, ControlError, OrderOutcome, OrderRow, OrderTicket
from core.types import MarketInfo, Side

if TYPE_CHECKING:
    from core.control.facade import Runtime
    from core.execution.records import OrderRecord


def _risk_refusal(ticket: OrderTicket, code: object, detail: str) -> orders.OrderRefused:
    return orders.OrderRefused(ticket, f"{detail} ({code})", str(code))


async def screen(rt: Runtime, ticket: OrderTicket) -> OrderTicket:
    """``ticket`` when it would be sent now; otherwise :class:`orders.OrderRefused` saying why."""
    intent = orders.recheck(
        ticket, user=ticket.requested_by, confirmed=True, mode=rt.mode, armed=rt.risk.armed, books=rt.books
    )
    decision = await rt.engine.preview(intent, ticket.market)
    if not decision.ok:
        raise _risk_refusal(ticket, decision.reason_code, decision.detail)
    return ticket


async def prepare(
    rt: Runtime,
    market: MarketInfo,
    outcome: str,
    side: Side,
    price: Decimal,
    size: Decimal,
    *,
    user: str,
    options: orders.OrderOptions | None,
) -> OrderTicket:
    token = orders.token_of(market, outcome)
    taking = orders.marketable(side, price, rt.books.get(token.token_id))
    ticket = orders.new_ticket(
        market, outcome, side, price, size, mode=rt.mode, user=user, options=options, now=time.time(), marketable=taking
    )
    return await screen(rt, ticket)


async def prepare_close(
    rt: Runtime, market: MarketInfo, outcome: str, price: Decimal | None, *, user: str
) -> OrderTicket:
    token = orders.token_of(market, outcome)
    position = rt.engine.positions.get(token.token_id)
    ticket = closing.close_ticket(
        market,
        token,
        price,
        held=position.shares if position is not None else Decimal(0),
        settling=rt.engine.settling_shares(token.token_id),
        open_orders=rt.engine.open_orders(),
        book=rt.books.get(token.token_id),
        mode=rt.mode,
        user=user,
    )
    return await screen(rt, ticket)


async def execute(rt: Runtime, ticket: OrderTicket, *, user: str, confirmed: bool) -> OrderOutcome:
    """Send a prepared order through the risk gate and the engine (re-checked now, not at prepare time)."""
    intent = orders.recheck(ticket, user=user, confirmed=confirmed, mode=rt.mode, armed=rt.risk.armed, books=rt.books)
    result = await rt.engine.submit(intent, ticket.market, seq=ticket.ticket_id)
    if result.reason_code is not None:
        raise _risk_refusal(ticket, result.reason_code, result.detail)
    message = result.detail
    if result.duplicate:
        message = "duplicate: this order was already sent; nothing new was placed"
    rec = rt.engine.order(result.client_order_id)
    avg = (rec.avg_price if rec is not None else None) if result.filled else None
    return OrderOutcome(
        client_order_id=result.client_order_id,
        status=result.status.value if result.status is not None else "refused",
        mode=rt.mode.value,
        filled=result.filled,
        avg_price=avg,
        message=message,
        signed_order=result.signed_order,
        ticket=ticket,
    )


def _record(rt: Runtime, order_id: str) -> OrderRecord:
    engine = rt.engine
    wanted = order_id.strip()
    open_ids = [o.client_order_id for o in engine.open_orders()]
    coid = orders.resolve_order_id(wanted, open_ids, known=engine.order(wanted) is not None)
    rec = engine.order(coid)
    if rec is None:  # an open id the engine forgot between two reads: say so rather than guess
        raise ControlError(f"no order {wanted!r} (see /orders)", "unknown_order")
    return rec


def find(rt: Runtime, order_id: str) -> OrderRow:
    """The order an id or a unique prefix (>= 8 characters) of an open order's id names."""
    return views.order_row(rt.registry, _record(rt, order_id))


async def cancel(rt: Runtime, order_id: str) -> ActionResult:
    rec = _record(rt, order_id)
    coid = rec.client_order_id
    market, outcome = views.order_names(rt.registry, rec)
    what = orders.order_line(rec, outcome, market)
    result = await rt.engine.cancel(coid)
    after = rt.engine.order(coid)
    return orders.cancel_one_result(coid, result, after.status.value if after is not None else None, what)


async def fills(rt: Runtime, limit: int) -> list[fill_rows.FillRow]:
    if not 1 <= limit <= fill_rows.MAX_FILLS:
        raise ControlError(f"N must be between 1 and {fill_rows.MAX_FILLS}, got {limit}", "usage")
    if rt.sessions is not None:
        return await fill_rows.from_database(rt.sessions, rt.registry, limit)
    return await fill_rows.from_store(rt.engine.store, rt.registry, rt.mode.value, limit)
