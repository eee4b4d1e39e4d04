"""What the engine writes down: order rows, exec_audit rows, fills, and the changes an order goes through."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypedDict

from core.execution.types import Fill, OrderRequest, OrderStatus
from core.types import MarketInfo, OrderType, Side

ZERO = Decimal(0)

FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.DRY_RUN}
)
OPEN_STATUSES = frozenset(set(OrderStatus) - FINAL_STATUSES)


class OrderFacts(TypedDict, total=False):
    """What the venue's answers add to an order row (besides its status and fills)."""

    venue_order_id: str
    order_hash: str
    signed_order: dict[str, object]
    error: str | None


class OrderChanges(OrderFacts, total=False):
    """The columns of an order row that change after it is written."""

    status: OrderStatus
    filled_size: Decimal
    avg_price: Decimal
    updated_ts: float


def trade_key(fill: Fill) -> str:
    """The fill's trade id, or a deterministic stand-in when the source gave none."""
    if fill.trade_id:
        return fill.trade_id
    raw = f"{fill.client_order_id}|{fill.venue_order_id}|{fill.price}|{fill.size}|{fill.ts_ms}"
    return "anon-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass(slots=True)
class OrderRecord:
    client_order_id: str
    market: str
    token_id: str
    side: Side
    price: Decimal
    size: Decimal
    order_type: OrderType = OrderType.GTC
    post_only: bool = False
    status: OrderStatus = OrderStatus.NEW
    mode: str = "paper"
    group_id: str | None = None
    reason: str = ""
    venue_order_id: str | None = None
    order_hash: str | None = None  # CLOB: the signed order's hash (= venue id), known before posting
    filled_size: Decimal = ZERO
    avg_price: Decimal | None = None
    error: str | None = None
    signed_order: dict[str, object] | None = None
    created_ts: float = 0.0
    updated_ts: float = 0.0

    @classmethod
    def from_request(cls, req: OrderRequest, *, mode: str, group_id: str | None, reason: str, ts: float) -> OrderRecord:
        return cls(
            client_order_id=req.client_order_id,
            market=req.market,
            token_id=req.token_id,
            side=req.side,
            price=req.price,
            size=req.size,
            order_type=req.order_type,
            post_only=req.post_only,
            mode=mode,
            group_id=group_id,
            reason=reason,
            created_ts=ts,
            updated_ts=ts,
        )

    def request(self, market: MarketInfo | None = None) -> OrderRequest:
        """The order request again (tick, neg-risk and fee rate from ``market`` when known)."""
        plain = OrderRequest(
            client_order_id=self.client_order_id,
            market=self.market,
            token_id=self.token_id,
            side=self.side,
            price=self.price,
            size=self.size,
            order_type=self.order_type,
            post_only=self.post_only,
        )
        if market is None:
            return plain
        return replace(plain, tick_size=market.tick_size, neg_risk=market.neg_risk, fee_rate=market.fee_rate)


@dataclass(slots=True)
class AuditRecord:
    action: str  # place | refused | cancel | cancel_all | lookup | reconcile | arm | disarm | kill | reset
    outcome: str  # an Outcome value, "refused", or the state reached (armed, disarmed ...)
    client_order_id: str | None = None
    attempt: int = 1
    request: dict[str, object] | None = None
    error_class: str | None = None  # ErrorClass value, or the ReasonCode of a refusal
    error: str | None = None
    latency_ms: float | None = None
    mode: str = "paper"
    ts: float | None = None


@dataclass(slots=True)
class StoredFill:
    fill: Fill
    market: str
    failed: bool = False  # its trade failed to settle: it never happened
