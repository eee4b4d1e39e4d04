"""A market's signing parameters (tick size, neg-risk, fees) as the CLOB describes them.

Two shapes, each decoded once into frozen msgspec structs: ``GET /clob-markets/{condition_id}``
(compact: ``t``, ``mts``, ``nr``, ``fd``, ``mos``) and ``GET /markets/{condition_id}`` (full:
``tokens[]``, ``minimum_tick_size`` ...). Both become :class:`MarketParams`; anything unreadable
raises ``ValueError`` with what was wrong.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

import msgspec

from core.execution.relayers.clob_signing import MarketParams
from core.execution.relayers.clob_user_wire import Scalar, parse_decimal

DEFAULT_MIN_ORDER_SIZE = Decimal("5")


class _CompactToken(msgspec.Struct, frozen=True):
    t: Scalar = None  # token id
    o: str = ""  # outcome


class _CompactFees(msgspec.Struct, frozen=True):
    r: Scalar = None  # rate
    e: Scalar = None  # exponent


class ClobMarketWire(msgspec.Struct, frozen=True):
    """``GET /clob-markets/{condition_id}``."""

    t: tuple[_CompactToken | None, ...] | None = None
    mts: Scalar = None
    nr: bool = False
    fd: _CompactFees | None = None
    mos: Scalar = None


class _Token(msgspec.Struct, frozen=True):
    token_id: Scalar = None
    outcome: str = ""


class MarketWire(msgspec.Struct, frozen=True):
    """``GET /markets/{condition_id}``."""

    minimum_tick_size: Scalar = None
    neg_risk: bool = False
    condition_id: str | None = None
    minimum_order_size: Scalar = None
    tokens: tuple[_Token, ...] | None = None


W = TypeVar("W", bound=msgspec.Struct)


def _decode(payload: object, wire: type[W]) -> W:
    try:
        return msgspec.convert(payload, wire, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"unexpected market info: {exc}") from None


def market_params_from_clob_market(condition_id: str, payload: object) -> list[MarketParams]:
    """Parse ``GET /clob-markets/{condition_id}``."""
    wire = _decode(payload, ClobMarketWire)
    tick = parse_decimal(wire.mts)
    tokens = [t for t in wire.t or () if t is not None and t.t]
    if not tokens or tick is None:
        raise ValueError(f"market info for {condition_id} has no tokens or tick size")
    fees = wire.fd or _CompactFees()
    min_size = parse_decimal(wire.mos) or DEFAULT_MIN_ORDER_SIZE
    return [
        MarketParams(
            token_id=str(token.t),
            tick_size=tick,
            neg_risk=wire.nr,
            condition_id=condition_id,
            outcome=token.o,
            min_order_size=min_size,
            fee_rate=parse_decimal(fees.r) or Decimal(0),
            fee_exponent=parse_decimal(fees.e) or Decimal(0),
        )
        for token in tokens
    ]


def market_params_from_market(payload: object) -> list[MarketParams]:
    """Parse ``GET /markets/{condition_id}``."""
    wire = _decode(payload, MarketWire)
    tick = parse_decimal(wire.minimum_tick_size)
    if tick is None:
        raise ValueError("market has no minimum_tick_size")
    return [
        MarketParams(
            token_id=str(token.token_id),
            tick_size=tick,
            neg_risk=wire.neg_risk,
            condition_id=wire.condition_id or None,
            outcome=token.outcome,
            min_order_size=parse_decimal(wire.minimum_order_size) or DEFAULT_MIN_ORDER_SIZE,
        )
        for token in wire.tokens or ()
        if token.token_id
    ]
