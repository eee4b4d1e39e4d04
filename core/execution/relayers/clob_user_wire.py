"""The user channel's wire (``/ws/user`` frames and REST ``/data/orders`` / ``/data/trades`` items).

Each JSON object is decoded once into a frozen msgspec struct (:class:`OrderWire`,
:class:`TradeWire`); :mod:`.clob_user_translate` turns those into our events. Nothing past the
translator sees a raw dict or a wire struct.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec

from core.types import Side

Scalar = str | int | float | None


class MakerOrderWire(msgspec.Struct, kw_only=True, frozen=True):
    order_id: str
    owner: str = ""
    maker_address: str = ""
    matched_amount: Scalar = None
    price: Scalar = None
    asset_id: str = ""
    outcome: str = ""
    side: str | None = None
    fee_rate_bps: Scalar = None


class OrderWire(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    asset_id: str = ""
    market: str = ""
    side: str = ""
    price: Scalar = None
    original_size: Scalar = None
    size_matched: Scalar = None
    status: str = ""
    type: str = ""
    owner: str = ""
    order_owner: str = ""
    order_type: str = ""
    outcome: str = ""
    maker_address: str = ""
    timestamp: Scalar = None
    created_at: Scalar = None
    expiration: Scalar = None
    associate_trades: tuple[str, ...] | None = None


class TradeWire(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    taker_order_id: str = ""
    market: str = ""
    asset_id: str = ""
    side: str = ""
    size: Scalar = None
    price: Scalar = None
    status: str = ""
    fee_rate_bps: Scalar = None
    outcome: str = ""
    owner: str = ""
    trade_owner: str = ""
    maker_address: str = ""
    maker_orders: tuple[MakerOrderWire, ...] | None = None
    trader_side: str = ""
    transaction_hash: str | None = None
    match_time: Scalar = None
    last_update: Scalar = None
    timestamp: Scalar = None


_ORDER_TYPES = {"PLACEMENT", "UPDATE", "CANCELLATION"}


class BadMessage(ValueError):
    """A user-channel item that is not an order or trade we can read."""


def _kind(item: dict[str, object]) -> str:
    kind = str(item.get("event_type") or "").lower()
    if kind:
        return kind
    typ = str(item.get("type") or "").upper()
    if typ in _ORDER_TYPES:
        return "order"
    if typ == "TRADE" or "taker_order_id" in item:
        return "trade"
    return ""


def decode_item(item: object) -> OrderWire | TradeWire:
    """One JSON object of a user-channel frame (or a REST order/trade) -> typed wire struct."""
    if not isinstance(item, dict):
        raise BadMessage(f"expected an object, got {type(item).__name__}")
    kind = _kind(item)
    try:
        if kind == "order":
            return msgspec.convert(item, OrderWire, strict=False)
        if kind == "trade":
            return msgspec.convert(item, TradeWire, strict=False)
    except msgspec.ValidationError as exc:
        raise BadMessage(f"{kind} message does not match the expected shape: {exc}") from None
    raise BadMessage(f"unknown user-channel message (event_type={item.get('event_type')!r}, type={item.get('type')!r})")


def decode_frame(data: str | bytes) -> list[object]:
    """A frame is one JSON object or an array of them; ``PONG`` and other text yield nothing."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return []
    try:
        decoded: object = msgspec.json.decode(stripped)
    except msgspec.DecodeError as exc:
        raise BadMessage(f"frame is not valid JSON: {exc}") from None
    return list(decoded) if isinstance(decoded, list) else [decoded]


def parse_decimal(value: object) -> Decimal | None:
    """A finite Decimal from a wire number or numeric string; None when absent or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def parse_side(value: object) -> Side | None:
    try:
        return Side(str(value).upper()) if value else None
    except ValueError:
        return None
