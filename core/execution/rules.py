"""The venue's rules for a single order, checked before anything is signed or sent.

One place for them: the risk gate applies them to every order the engine places, and
``polybot relayer-dry-run`` / ``polybot smoke-live`` apply them to the order they sign, so a
dry run never signs what live mode would refuse. The venue's own rules (2026, CLOB V2):

- price on the market's tick grid, within ``[tick, 1 - tick]``; size positive, 2 decimals;
- a resting order (a GTC/GTD that does not cross the book) is at least the market's minimum size
  (normally 5 shares); when we cannot tell whether it crosses, it must meet that minimum;
- a marketable order — FOK/FAK, and a GTC/GTD that crosses the book — is at least $1 notional;
- a GTD order expires at least a minute from now (the venue's safety threshold);
- post-only only with GTC/GTD.

Our own per-order ceiling (``max_order_notional``) is checked here too, because it is a rule of
the order itself; exposure, balance and rate limits need state and live in :mod:`core.execution.risk_gate`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from core.execution.types import OrderRequest
from core.money import on_tick
from core.types import OrderType, Side

ONE = Decimal(1)
MIN_MARKETABLE_NOTIONAL = Decimal(1)
GTD_MIN_LIFETIME_S = 60
SIZE_PLACES = 2
MARKETABLE_TYPES = frozenset({OrderType.FOK, OrderType.FAK})
SIZE_QUANTUM = Decimal(1).scaleb(-SIZE_PLACES)


class ReasonCode(enum.StrEnum):
    """Why an order was refused before it left (also a metrics label and exec_audit's error_class)."""

    NOT_ARMED = "not_armed"
    MARKET_CLOSED = "market_closed"
    BOOK_NOT_OK = "book_not_ok"
    PRICE_OFF_TICK = "price_off_tick"
    INVALID_SIZE = "invalid_size"
    SIZE_BELOW_MIN = "size_below_min"
    INVALID_EXPIRATION = "invalid_expiration"
    INVALID_ORDER_TYPE = "invalid_order_type"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    ERROR_RATE_BREAKER = "error_rate_breaker"
    MAX_MARKET_NOTIONAL = "max_market_notional"
    MAX_EVENT_NOTIONAL = "max_event_notional"
    MAX_TOTAL_EXPOSURE = "max_total_exposure"
    INSUFFICIENT_POSITION = "insufficient_position"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    ORDER_RATE_LIMITED = "order_rate_limited"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    ok: bool
    reason_code: ReasonCode | None = None
    detail: str = ""

    @classmethod
    def allow(cls) -> RiskDecision:
        return cls(True)

    @classmethod
    def refuse(cls, code: ReasonCode, detail: str) -> RiskDecision:
        return cls(False, code, detail)


def crosses_book(side: Side, price: Decimal, best_bid: Decimal | None, best_ask: Decimal | None) -> bool:
    """Would a limit order at ``price`` trade on arrival (take liquidity)?"""
    if side is Side.BUY:
        return best_ask is not None and price >= best_ask
    return best_bid is not None and price <= best_bid


def order_rules(
    req: OrderRequest,
    *,
    tick: Decimal,
    min_order_size: Decimal,
    now: float,
    marketable: bool | None = None,
    max_order_notional: Decimal | None = None,
) -> RiskDecision:
    """The venue's rules for ``req`` (and our per-order ceiling); ``allow()`` when it may be sent.

    ``marketable``: whether a GTC/GTD order crosses the book now (None: unknown — then only
    FOK/FAK count as marketable, and the venue has the last word on a crossing GTC).
    """
    if not on_tick(req.price, tick) or not tick <= req.price <= ONE - tick:
        return RiskDecision.refuse(
            ReasonCode.PRICE_OFF_TICK, f"price {req.price} is not on the {tick} tick grid within [{tick}, {ONE - tick}]"
        )
    if req.size <= 0 or req.size != req.size.quantize(SIZE_QUANTUM):
        return RiskDecision.refuse(
            ReasonCode.INVALID_SIZE, f"size {req.size} must be positive with at most {SIZE_PLACES} decimals"
        )
    if req.post_only and req.order_type in MARKETABLE_TYPES:
        return RiskDecision.refuse(ReasonCode.INVALID_ORDER_TYPE, "post-only is only allowed with GTC/GTD orders")
    if req.order_type is OrderType.GTD:
        earliest = int(now) + GTD_MIN_LIFETIME_S
        if req.expiration < earliest:
            return RiskDecision.refuse(
                ReasonCode.INVALID_EXPIRATION,
                f"a GTD order must expire at least {GTD_MIN_LIFETIME_S}s from now (expiration >= {earliest}, "
                f"got {req.expiration})",
            )
    taking = req.order_type in MARKETABLE_TYPES or bool(marketable)
    if taking and req.notional < MIN_MARKETABLE_NOTIONAL:
        what = req.order_type.value if req.order_type in MARKETABLE_TYPES else f"marketable {req.order_type.value}"
        return RiskDecision.refuse(
            ReasonCode.SIZE_BELOW_MIN,
            f"{what} order notional {req.notional} is below the venue's ${MIN_MARKETABLE_NOTIONAL} minimum",
        )
    if not taking and req.size < min_order_size:
        return RiskDecision.refuse(
            ReasonCode.SIZE_BELOW_MIN, f"size {req.size} is below the market's minimum {min_order_size}"
        )
    if max_order_notional is not None and req.notional > max_order_notional:
        return RiskDecision.refuse(
            ReasonCode.MAX_ORDER_NOTIONAL, f"order notional {req.notional} exceeds {max_order_notional}"
        )
    return RiskDecision.allow()
