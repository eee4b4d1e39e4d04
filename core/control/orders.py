"""Manual orders and cancels: what is checked when a trader asks, what is re-checked when it runs,
and how the outcome reads.

A ticket is validated against the market when the order is asked for (:func:`new_ticket`); when it
is executed — at once in paper and dry-run mode, at the Confirm tap in live mode — the mode, the
arm state and the book are checked again (:func:`recheck`), because any of them may have changed
while the card waited.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from core.control.types import ActionResult, ControlError, OrderTicket
from core.fees import taker_fee
from core.money import on_tick
from core.types import BookStatus, BookView, Intent, MarketInfo, Mode, OrderType, Side

if TYPE_CHECKING:
    from core.execution.risk_gate import KillResult
    from core.execution.types import CancelResult

MAX_ORDER_SHARES = Decimal(1_000_000)
SIZE_PLACES = Decimal("0.01")
VENUE_CLOSED = "already closed at the venue (filled, canceled or expired there)"


def new_ticket(
    market: MarketInfo, outcome: str, side: Side, price: Decimal, size: Decimal, *, mode: Mode, user: str
) -> OrderTicket:
    """Validate a manual order against its market; live mode's ticket needs the user's confirmation."""
    try:
        token = market.token(outcome)
    except KeyError:
        names = "/".join(t.outcome for t in market.tokens)
        raise ControlError(f"outcome must be one of {names}, got {outcome!r}", "unknown_outcome") from None
    tick = market.tick_size
    if not (tick <= price <= 1 - tick):
        raise ControlError(f"price must be within [{tick}, {1 - tick}], got {price}", "price_range")
    if not on_tick(price, tick):
        raise ControlError(f"price {price} is not on this market's tick {tick}", "price_off_tick")
    if size <= 0 or size > MAX_ORDER_SHARES:
        raise ControlError(f"size must be > 0 and <= {MAX_ORDER_SHARES}, got {size}", "invalid_size")
    if size != size.quantize(SIZE_PLACES):
        raise ControlError(f"size has at most 2 decimals, got {size}", "invalid_size")
    if size < market.min_order_size:
        raise ControlError(f"size {size} is below this market's minimum of {market.min_order_size}", "size_below_min")
    return OrderTicket(
        market=market,
        token_id=token.token_id,
        outcome=token.outcome,
        side=side,
        price=price,
        size=size,
        mode=mode,
        order_type=OrderType.GTC,
        est_fee=taker_fee(size, price, market.fee_rate),
        requested_by=user,
        needs_confirmation=mode is Mode.LIVE,
    )


def recheck(
    ticket: OrderTicket, *, user: str, confirmed: bool, mode: Mode, armed: bool, books: Mapping[str, BookView]
) -> Intent:
    """The checks at execution time; the intent to submit when they all pass."""
    if ticket.needs_confirmation and not confirmed:
        raise ControlError("a live order needs an explicit confirmation", "needs_confirmation")
    if ticket.mode is not mode:
        raise ControlError(f"the mode changed to {mode.value} since this order was prepared", "mode_changed")
    if not armed:
        raise ControlError("not armed: /arm first", "not_armed")
    book = books.get(ticket.token_id)
    if book is None or book.status is not BookStatus.OK:
        state = book.status.value if book else "no book"
        raise ControlError(f"the book for this outcome is not ok ({state}); not sent", "book_not_ok")
    return Intent(
        market=ticket.market.condition_id,
        token_id=ticket.token_id,
        side=ticket.side,
        price=ticket.price,
        size=ticket.size,
        order_type=ticket.order_type,
        post_only=False,
        group_id=None,
        reason=f"manual by {user}",
    )


def kill_result(result: KillResult) -> ActionResult:
    msg = f"killed: disarmed, {result.canceled} order(s) canceled"
    if result.gone:
        msg += f", {result.gone} were {VENUE_CLOSED}"
    if result.not_canceled:
        msg += f", {len(result.not_canceled)} NOT canceled: " + ", ".join(
            f"{k}: {v}" for k, v in list(result.not_canceled.items())[:5]
        )
    if result.error:
        msg += f" (error: {result.error})"
    return ActionResult(not result.not_canceled and not result.error, msg)


def cancel_one_result(client_order_id: str, result: CancelResult, status_now: str | None) -> ActionResult:
    """``status_now``: the order's status after the cancel (None when it is no longer known)."""
    if client_order_id in result.gone:
        return ActionResult(True, f"{client_order_id} was no longer open at the venue: it is {status_now or 'closed'}")
    if client_order_id in result.canceled or (not result.not_canceled and not result.error):
        return ActionResult(True, f"canceled {client_order_id}")
    why = result.not_canceled.get(client_order_id) or result.error or "not canceled"
    return ActionResult(False, f"cancel of {client_order_id} failed: {why}", str(result.error_class))


def cancel_all_result(result: CancelResult) -> ActionResult:
    msg = f"canceled {len(result.canceled)} order(s)"
    if result.gone:
        msg += f"; {len(result.gone)} were {VENUE_CLOSED}"
    if result.not_canceled:
        msg += f"; {len(result.not_canceled)} not canceled"
    if result.error:
        msg += f"; error: {result.error}"
    return ActionResult(not result.not_canceled and not result.error, msg)
