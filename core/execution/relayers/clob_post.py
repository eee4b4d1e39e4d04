"""How an answer to ``POST /order`` maps to the relayer contract (:class:`PlaceResult`).

====================================  =========  ===============  ============================
answer                                outcome    error class      order status
====================================  =========  ===============  ============================
200 ``success: true``                 ACCEPTED   none             live / filled / partially
200 ``success: false`` or 4xx         REJECTED   400              rejected
425 (matching-engine restart)         RETRYABLE  425              new (Retry-After kept)
429 (throttled)                       RETRYABLE  429              new (Retry-After kept)
503 (cancel-only / unavailable)       RETRYABLE  5xx              new
other 5xx                             UNKNOWN    5xx              submitted_unknown
connect error / connect timeout       RETRYABLE  network/timeout  new (nothing was sent)
read timeout, connection lost         UNKNOWN    unknown-outcome  submitted_unknown
====================================  =========  ===============  ============================

Every result carries the signed body and the order hash, the UNKNOWN ones included: the venue's
order id is that hash, so reconciliation can look the order up even when the answer was lost.
"""

from __future__ import annotations

from collections import Counter

from core.execution.relayers.clob_http import VenueError
from core.execution.relayers.clob_signing import SignedClobOrder
from core.execution.relayers.clob_user_translate import map_order_status
from core.execution.relayers.clob_user_wire import parse_decimal
from core.execution.types import ErrorClass, OrderRequest, OrderStatus, Outcome, PlaceResult, VenueOrder
from core.types import OrderType, Side


def _status_of_accepted(resp: dict[str, object], order: OrderRequest) -> OrderStatus:
    status = str(resp.get("status") or "").lower()
    if status == "matched":
        if order.order_type is OrderType.FOK:
            return OrderStatus.FILLED
        shares = parse_decimal(resp.get("takingAmount") if order.side is Side.BUY else resp.get("makingAmount"))
        if shares is not None and shares >= order.size:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED
    return OrderStatus.LIVE


def answered(
    resp: object, order: OrderRequest, signed: SignedClobOrder, latency_ms: float, stats: Counter[str]
) -> PlaceResult:
    """A 2xx answer: accepted, refused (``success: false``), or unreadable (then UNKNOWN)."""
    if not isinstance(resp, dict):
        stats["place_unreadable_answer"] += 1
        return PlaceResult(
            Outcome.UNKNOWN,
            status=OrderStatus.SUBMITTED_UNKNOWN,
            error_class=ErrorClass.UNKNOWN_OUTCOME,
            error=f"unreadable answer to POST /order: {str(resp)[:200]}",
            signed_order=signed.body,
            order_hash=signed.order_hash,
            latency_ms=latency_ms,
        )
    status_text = str(resp.get("status") or "").lower()
    if not resp.get("success") or status_text == "unmatched":
        stats["place_rejected_400"] += 1
        return PlaceResult(
            Outcome.REJECTED,
            status=OrderStatus.REJECTED,
            error_class=ErrorClass.BAD_REQUEST,
            error=str(resp.get("errorMsg") or resp.get("error") or f"order {status_text or 'not accepted'}"),
            signed_order=signed.body,
            order_hash=signed.order_hash,
            latency_ms=latency_ms,
        )
    stats["place_accepted"] += 1
    return PlaceResult(
        Outcome.ACCEPTED,
        venue_order_id=str(resp.get("orderID") or signed.order_hash),
        status=_status_of_accepted(resp, order),
        signed_order=signed.body,
        order_hash=signed.order_hash,
        latency_ms=latency_ms,
    )


def is_duplicate(err: VenueError) -> bool:
    """The venue already holds this very order (same hash): find it instead of failing."""
    return err.outcome is Outcome.REJECTED and "duplicat" in err.message.lower()


def already_placed(
    existing: VenueOrder, signed: SignedClobOrder, latency_ms: float, stats: Counter[str]
) -> PlaceResult:
    stats["place_duplicate_found"] += 1
    return PlaceResult(
        Outcome.ACCEPTED,
        venue_order_id=existing.venue_order_id,
        status=map_order_status(existing.status, existing.original_size, existing.size_matched) or OrderStatus.LIVE,
        signed_order=signed.body,
        order_hash=signed.order_hash,
        latency_ms=latency_ms,
    )


def failed(err: VenueError, signed: SignedClobOrder, latency_ms: float, stats: Counter[str]) -> PlaceResult:
    """No 2xx answer: the error's outcome decides (see the table)."""
    stats[f"place_{err.outcome.value}_{err.error_class.value}"] += 1
    status = {
        Outcome.REJECTED: OrderStatus.REJECTED,
        Outcome.UNKNOWN: OrderStatus.SUBMITTED_UNKNOWN,
    }.get(err.outcome, OrderStatus.NEW)
    return PlaceResult(
        err.outcome,
        status=status,
        error_class=err.error_class,
        error=err.message,
        retry_after_s=err.retry_after_s,
        signed_order=signed.body,
        order_hash=signed.order_hash,
        latency_ms=latency_ms,
    )
