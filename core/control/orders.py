"""Manual orders and cancels: what is checked when a trader asks, what is re-checked when it runs,
and how the outcome reads.

A ticket is validated against the market when the order is asked for (:func:`new_ticket`) and
screened against the arm state, the book and the risk gate at once (:func:`screen` and the
engine's preview), so a confirmation card is only ever shown for an order that would be sent.
When it is executed — at once in paper and dry-run mode, at the Confirm tap in live mode — the
mode, the arm state and the book are checked again (:func:`recheck`), because any of them may
have changed while the card waited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from core.control.types import ActionResult, ControlError, OrderTicket
from core.execution.rules import GTD_MIN_LIFETIME_S, MARKETABLE_TYPES, crosses_book
from core.fees import taker_fee
from core.money import on_tick
from core.types import BookStatus, BookView, Intent, MarketInfo, Mode, OrderType, Side, TokenInfo

if TYPE_CHECKING:
    from core.execution.records import OrderRecord
    from core.execution.risk_gate import KillResult
    from core.execution.types import CancelResult

MAX_ORDER_SHARES = Decimal(1_000_000)
SIZE_PLACES = Decimal("0.01")
VENUE_CLOSED = "already closed at the venue (filled, canceled or expired there)"
MIN_ID_PREFIX = 8
"""The shortest order id prefix accepted wherever an id is (``pb-`` and five hex digits)."""
MAX_GTD_LIFETIME_S = 7 * 86400

MODE_LABELS = {Mode.PAPER.value: "PAPER", Mode.DRY_RUN.value: "DRY-RUN (not sent)", Mode.LIVE.value: "LIVE"}
"""How a reply names the mode: never a word that could be read as a status (an order is "live")."""

STATUS_WORDS = {
    "new": "not sent yet",
    "dry_run": "signed, not sent",
    "submitted_unknown": "sent, answer unknown (being reconciled)",
    "live": "open (resting on the book)",
    "partially_filled": "partly filled, the rest open",
    "filled": "filled",
    "canceled": "canceled",
    "rejected": "rejected",
    "failed": "failed",
    "refused": "refused, not sent",
}


def gtd_ends(expiration: int) -> int:
    """When the venue ends a GTD order sent with ``expiration`` (a minute before it: its safety margin)."""
    return expiration - GTD_MIN_LIFETIME_S


def mode_label(mode: str) -> str:
    return MODE_LABELS.get(mode, mode.upper())


def status_words(status: str) -> str:
    return STATUS_WORDS.get(status, status)


@dataclass(frozen=True)
class OrderOptions:
    """What follows PRICE SIZE in ``/order``: the time in force and post-only."""

    order_type: OrderType = OrderType.GTC
    post_only: bool = False
    lifetime_s: int | None = None
    """GTD only: how long the order should rest, in seconds."""


class OrderRefused(ControlError):
    """An order that will not be sent (disarmed, a risk limit, the book): answered at once, with
    the order it refused, instead of a confirmation card that could only fail."""

    def __init__(self, ticket: OrderTicket, message: str, reason_code: str) -> None:
        super().__init__(message, reason_code)
        self.ticket = ticket


def type_text(order_type: OrderType | str, post_only: bool) -> str:
    return f"{order_type}{' post-only' if post_only else ''}"


def describe(side: Side | str, size: Decimal, outcome: str, price: Decimal, kind: str, market: str) -> str:
    """One line a trader reads: ``BUY 10 Yes @ 0.30 GTC, demo-btc-above-150k-2026``."""
    return f"{side} {plain(size)} {outcome} @ {plain(price)} {kind}, {market}"


def token_of(market: MarketInfo, outcome: str) -> TokenInfo:
    try:
        return market.token(outcome)
    except KeyError:
        names = "/".join(t.outcome for t in market.tokens)
        raise ControlError(f"outcome must be one of {names}, got {outcome!r}", "unknown_outcome") from None


def marketable(side: Side, price: Decimal, book: BookView | None) -> bool:
    """Whether a limit order at ``price`` would trade on arrival against ``book``."""
    return book is not None and crosses_book(side, price, book.best_bid(), book.best_ask())


def _check_type(options: OrderOptions) -> None:
    if options.post_only and options.order_type in MARKETABLE_TYPES:
        raise ControlError("post-only is only allowed with GTC or GTD orders", "invalid_order_type")
    if options.order_type is OrderType.GTD:
        life = options.lifetime_s
        if life is None or not 0 < life <= MAX_GTD_LIFETIME_S:
            raise ControlError("a GTD order needs a lifetime between 1s and 7d, e.g. gtd 1h", "invalid_expiration")
    elif options.lifetime_s is not None:
        raise ControlError("only a GTD order takes a lifetime", "invalid_order_type")


def new_ticket(
    market: MarketInfo,
    outcome: str,
    side: Side,
    price: Decimal,
    size: Decimal,
    *,
    mode: Mode,
    user: str,
    options: OrderOptions | None = None,
    now: float = 0.0,
    note: str = "",
    marketable: bool = False,
) -> OrderTicket:
    """Validate a manual order against its market; live mode's ticket needs the user's confirmation.

    A GTD order's expiration is ``now`` + the lifetime + the venue's one-minute safety margin (the
    venue ends a GTD order a minute before its expiration), fixed here so the ticket stays one order.
    ``marketable``: the order crosses the book now, so the venue's $1 minimum applies instead of the
    market's minimum size (the risk gate checks that one)."""
    opts = options or OrderOptions()
    token = token_of(market, outcome)
    tick = market.tick_size
    if not (tick <= price <= 1 - tick):
        raise ControlError(f"price must be within [{tick}, {1 - tick}], got {price}", "price_range")
    if not on_tick(price, tick):
        raise ControlError(f"price {price} is not on this market's tick {tick}", "price_off_tick")
    if size <= 0 or size > MAX_ORDER_SHARES:
        raise ControlError(f"size must be > 0 and <= {MAX_ORDER_SHARES}, got {size}", "invalid_size")
    if size != size.quantize(SIZE_PLACES):
        raise ControlError(f"size has at most 2 decimals, got {size}", "invalid_size")
    _check_type(opts)
    taking = marketable or opts.order_type in MARKETABLE_TYPES
    if not taking and size < market.min_order_size:
        raise ControlError(f"size {size} is below this market's minimum of {market.min_order_size}", "size_below_min")
    lifetime = opts.lifetime_s if opts.order_type is OrderType.GTD else None
    return OrderTicket(
        market=market,
        token_id=token.token_id,
        outcome=token.outcome,
        side=side,
        price=price,
        size=size,
        mode=mode,
        order_type=opts.order_type,
        est_fee=taker_fee(size, price, market.fee_rate),
        requested_by=user,
        needs_confirmation=mode is Mode.LIVE,
        post_only=opts.post_only,
        expiration=int(now) + GTD_MIN_LIFETIME_S + lifetime if lifetime is not None else 0,
        note=note,
    )


def recheck(
    ticket: OrderTicket, *, user: str, confirmed: bool, mode: Mode, armed: bool, books: Mapping[str, BookView]
) -> Intent:
    """The checks at execution time; the intent to submit when they all pass."""
    if ticket.needs_confirmation and not confirmed:
        raise ControlError("a live order needs an explicit confirmation", "needs_confirmation")
    if ticket.mode is not mode:
        raise OrderRefused(ticket, f"the mode changed to {mode.value} since this order was prepared", "mode_changed")
    if not armed:
        raise OrderRefused(ticket, "not armed: /arm first", "not_armed")
    book = books.get(ticket.token_id)
    if book is None or book.status is not BookStatus.OK:
        state = book.status.value if book else "no book"
        raise OrderRefused(ticket, f"the book for this outcome is not ok ({state})", "book_not_ok")
    if ticket.post_only and crosses_book(ticket.side, ticket.price, book.best_bid(), book.best_ask()):
        best = book.best_ask() if ticket.side is Side.BUY else book.best_bid()
        raise OrderRefused(
            ticket, f"a post-only order must not cross the book (best {_far_side(ticket.side)} {best})", "post_only"
        )
    return Intent(
        market=ticket.market.condition_id,
        token_id=ticket.token_id,
        side=ticket.side,
        price=ticket.price,
        size=ticket.size,
        order_type=ticket.order_type,
        post_only=ticket.post_only,
        group_id=None,
        reason=f"manual by {user}",
        expiration=ticket.expiration,
    )


def _far_side(side: Side) -> str:
    return "ask" if side is Side.BUY else "bid"


def resolve_order_id(text: str, open_ids: Iterable[str], known: bool) -> str:
    """The order an id or a unique prefix (>= 8 characters) of an open order's id names.

    ``known``: whether ``text`` is itself the id of an order the engine knows (open or not)."""
    wanted = text.strip()
    if known:
        return wanted
    if len(wanted) < MIN_ID_PREFIX:
        raise ControlError(
            f"order id {wanted!r} is too short: give at least {MIN_ID_PREFIX} characters (see /orders)", "unknown_order"
        )
    matches = sorted(i for i in open_ids if i.startswith(wanted))
    if not matches:
        raise ControlError(f"no open order {wanted!r} (see /orders)", "unknown_order")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (" …" if len(matches) > 5 else "")
        raise ControlError(
            f"{wanted!r} is the start of {len(matches)} open orders ({shown}): type more of the id", "ambiguous_order"
        )
    return matches[0]


def short_ids(ids: Iterable[str], minimum: int = 12) -> dict[str, str]:
    """The shortest prefix (at least ``minimum`` characters) that names each id uniquely among ``ids``."""
    pool = sorted(set(ids))
    out: dict[str, str] = {}
    for n, coid in enumerate(pool):
        neighbours = pool[max(0, n - 1) : n] + pool[n + 1 : n + 2]
        common = max((_common_prefix(coid, other) for other in neighbours), default=0)
        out[coid] = coid[: max(minimum, common + 1)]
    return out


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def order_line(rec: OrderRecord, outcome: str, market: str) -> str:
    return f"{mode_label(rec.mode)} order " + describe(
        rec.side, rec.size, outcome, rec.price, type_text(rec.order_type, rec.post_only), market
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


def cancel_one_result(client_order_id: str, result: CancelResult, status_now: str | None, what: str) -> ActionResult:
    """``status_now``: the order's status after the cancel (None when it is no longer known);
    ``what``: the order as a trader reads it (:func:`order_line`)."""
    if client_order_id in result.gone:
        return ActionResult(
            True, f"{client_order_id} was no longer open at the venue: it is {status_now or 'closed'} ({what})"
        )
    if client_order_id in result.canceled or (not result.not_canceled and not result.error):
        return ActionResult(True, f"canceled {client_order_id}: {what}")
    why = result.not_canceled.get(client_order_id) or result.error or "not canceled"
    return ActionResult(False, f"cancel of {client_order_id} failed: {why} ({what})", str(result.error_class))


def cancel_all_result(result: CancelResult) -> ActionResult:
    msg = f"canceled {len(result.canceled)} order(s)"
    if result.gone:
        msg += f"; {len(result.gone)} were {VENUE_CLOSED}"
    if result.not_canceled:
        msg += f"; {len(result.not_canceled)} not canceled"
    if result.error:
        msg += f"; error: {result.error}"
    return ActionResult(not result.not_canceled and not result.error, msg)


def plain(amount: Decimal) -> str:
    """10.00 -> "10" (whole numbers without decimals), 0.30 stays "0.30": exact, never an exponent."""
    return f"{amount.to_integral():f}" if amount == amount.to_integral() else f"{amount:f}"
