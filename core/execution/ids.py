"""Deterministic client order ids: the idempotency key of an order.

The same intent (group, market, token, side, price, size, type, post-only) with the same
sequence number always gives the same id, so a strategy that emits the same intent twice, a
retried Telegram confirmation or a restart never places the order twice: the id is the unique
key of the orders table. A trader who really wants a second identical order passes a new
sequence number.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from core.types import Intent

PREFIX = "pb-"
_HEX_CHARS = 32  # 128 bits: collisions are not a practical concern


def canonical_decimal(value: Decimal) -> str:
    """'0.50', '0.5' and '5E-1' are the same price: normalise before hashing."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def client_order_id(intent: Intent, seq: int | str = 0) -> str:
    parts = (
        intent.group_id or "",
        intent.market,
        intent.token_id,
        str(intent.side),
        canonical_decimal(intent.price),
        canonical_decimal(intent.size),
        str(intent.order_type),
        "post" if intent.post_only else "",
        str(seq),
        # only GTD orders carry an expiry: other ids stay what they always were
        *((f"exp{intent.expiration}",) if intent.expiration else ()),
    )
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return PREFIX + digest[:_HEX_CHARS]


def intent_seq(intent: Intent, seq: int | str | None) -> int | str:
    """The sequence to use: an explicit argument wins, then ``intent.meta['seq']``, then 0."""
    if seq is not None:
        return seq
    return intent.meta.get("seq", 0)
