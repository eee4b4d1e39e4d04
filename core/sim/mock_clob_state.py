"""State of the local CLOB double: markets, books, API keys, orders, trades, matching.

Pure bookkeeping (no I/O): :mod:`core.sim.mock_clob` exposes it over HTTP and the user channel.
Prices and sizes are ``Decimal``; on-chain amounts integers in 10^-6 units.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from core.money import UNIT, from_units
from core.types import OrderType, Side

ZERO = Decimal(0)
MAX_ALLOWANCE = 2**256 - 1


def fmt(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


@dataclass(slots=True)
class MockMarket:
    condition_id: str
    tokens: tuple[tuple[str, str], ...]  # (token id, outcome)
    tick_size: Decimal = Decimal("0.01")
    min_order_size: Decimal = Decimal("5")
    neg_risk: bool = False
    fee_rate: Decimal = ZERO  # taker fee rate (0.07 = 700 bps)
    fee_exponent: int = 1
    question: str = "Mock market"
    accepting_orders: bool = True

    def outcome_of(self, token_id: str) -> str:
        return next((o for t, o in self.tokens if t == token_id), "")

    def clob_market_info(self) -> dict[str, Any]:
        """``GET /clob-markets/{condition_id}``: the compact shape the client caches from."""
        return {
            "c": self.condition_id,
            "t": [{"t": t, "o": o} for t, o in self.tokens],
            "mts": float(self.tick_size),
            "mos": float(self.min_order_size),
            "nr": self.neg_risk,
            "fd": {"r": float(self.fee_rate), "e": self.fee_exponent, "to": True},
        }

    def market_info(self) -> dict[str, Any]:
        """``GET /markets/{condition_id}``: the full shape."""
        return {
            "enable_order_book": True,
            "active": True,
            "closed": False,
            "archived": False,
            "accepting_orders": self.accepting_orders,
            "minimum_order_size": float(self.min_order_size),
            "minimum_tick_size": float(self.tick_size),
            "condition_id": self.condition_id,
            "question": self.question,
            "market_slug": self.question.lower().replace(" ", "-").strip("?"),
            "neg_risk": self.neg_risk,
            "maker_base_fee": 0,
            "taker_base_fee": int(self.fee_rate * 10_000),
            "tokens": [{"token_id": t, "outcome": o, "price": 0.5, "winner": False} for t, o in self.tokens],
        }


@dataclass(slots=True)
class ApiKey:
    api_key: str
    secret: str
    passphrase: str
    address: str  # the EOA (POLY_ADDRESS)


def derive_api_key(address: str, seed: str) -> ApiKey:
    """Deterministic credentials per address, so derive-api-key always returns the same."""
    digest = hashlib.sha256(f"{seed}:{address.lower()}".encode()).digest()
    api_key = str(uuid.UUID(bytes=digest[:16]))
    secret = base64.urlsafe_b64encode(hashlib.sha256(digest + b"secret").digest()).decode()
    passphrase = hashlib.sha256(digest + b"passphrase").hexdigest()[:32]
    return ApiKey(api_key, secret, passphrase, address)


@dataclass(slots=True)
class MockOrder:
    id: str
    owner: str
    maker_address: str
    market: str
    asset_id: str
    outcome: str
    side: Side
    price: Decimal
    original_size: Decimal
    order_type: OrderType
    expiration: str
    body: dict[str, Any]
    size_matched: Decimal = ZERO
    status: str = "LIVE"
    created_at: int = field(default_factory=lambda: int(time.time()))
    associate_trades: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.original_size - self.size_matched

    @property
    def is_open(self) -> bool:
        return self.status == "LIVE" and self.remaining > 0

    def item(self) -> dict[str, Any]:
        """REST shape (``/data/orders``, ``/data/order/{id}``)."""
        return {
            "id": self.id,
            "status": self.status,
            "owner": self.owner,
            "maker_address": self.maker_address,
            "market": self.market,
            "asset_id": self.asset_id,
            "side": self.side.value,
            "original_size": fmt(self.original_size),
            "size_matched": fmt(self.size_matched),
            "price": fmt(self.price),
            "outcome": self.outcome,
            "expiration": self.expiration,
            "order_type": self.order_type.value,
            "associate_trades": list(self.associate_trades),
            "created_at": self.created_at,
        }

    def event(self, kind: str) -> dict[str, Any]:
        """User-channel ``order`` event (PLACEMENT / UPDATE / CANCELLATION)."""
        return {
            **self.item(),
            "event_type": "order",
            "type": kind,
            "order_owner": self.owner,
            "created_at": str(self.created_at),
            "timestamp": str(int(time.time() * 1000)),
        }


@dataclass(slots=True)
class MockTrade:
    id: str
    market: str
    asset_id: str
    outcome: str
    side: Side  # the taker's side
    price: Decimal
    size: Decimal
    taker_order_id: str
    taker_owner: str
    taker_address: str
    maker_orders: list[dict[str, Any]]
    fee_rate_bps: int = 0
    status: str = "MATCHED"
    # the ledger moves this trade made: (address, side, token, price, size, fee), undone if it fails
    moves: list[tuple[str, Side, str, Decimal, Decimal, Decimal]] = field(default_factory=list)
    match_time: int = field(default_factory=lambda: int(time.time()))
    last_update: int = field(default_factory=lambda: int(time.time()))
    transaction_hash: str = ""

    def owners(self) -> set[str]:
        return {self.taker_owner} | {str(m.get("owner")) for m in self.maker_orders}

    def item_for(self, owner: str) -> dict[str, Any]:
        """The trade as ``owner`` sees it (REST ``/data/trades`` item)."""
        return {
            "id": self.id,
            "taker_order_id": self.taker_order_id,
            "market": self.market,
            "asset_id": self.asset_id,
            "side": self.side.value,
            "size": fmt(self.size),
            "fee_rate_bps": str(self.fee_rate_bps),
            "price": fmt(self.price),
            "status": self.status,
            "match_time": str(self.match_time),
            "last_update": str(self.last_update),
            "outcome": self.outcome,
            "bucket_index": 0,
            "owner": self.taker_owner,
            "trade_owner": self.taker_owner,
            "maker_address": self.taker_address,
            "transaction_hash": self.transaction_hash,
            "maker_orders": [dict(m) for m in self.maker_orders],
            "trader_side": "TAKER" if owner == self.taker_owner else "MAKER",
        }

    def event_for(self, owner: str) -> dict[str, Any]:
        return {
            **self.item_for(owner),
            "event_type": "trade",
            "type": "TRADE",
            "timestamp": str(int(time.time() * 1000)),
        }


@dataclass(slots=True)
class Book:
    """External liquidity per token: price -> size (our own orders are kept apart)."""

    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)

    def set(self, bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]) -> None:
        self.bids = {Decimal(p): Decimal(s) for p, s in bids if Decimal(s) > 0}
        self.asks = {Decimal(p): Decimal(s) for p, s in asks if Decimal(s) > 0}

    def crossing(self, side: Side, price: Decimal) -> list[tuple[Decimal, Decimal]]:
        """Levels a ``side`` order at ``price`` would take, best first."""
        if side is Side.BUY:
            return sorted((p, s) for p, s in self.asks.items() if p <= price)
        return sorted(((p, s) for p, s in self.bids.items() if p >= price), reverse=True)

    def take(self, side: Side, price: Decimal, size: Decimal) -> None:
        levels = self.asks if side is Side.BUY else self.bids
        left = levels[price] - size
        if left > 0:
            levels[price] = left
        else:
            del levels[price]


def order_price_and_size(side: Side, maker_amount: int, taker_amount: int) -> tuple[Decimal, Decimal]:
    """(price, shares) implied by the signed amounts: BUY pays maker pUSD for taker shares."""
    if maker_amount <= 0 or taker_amount <= 0:
        raise ValueError("amounts must be positive")
    with localcontext() as ctx:
        ctx.prec = 60
        if side is Side.BUY:
            return Decimal(maker_amount) / Decimal(taker_amount), from_units(taker_amount)
        return Decimal(taker_amount) / Decimal(maker_amount), from_units(maker_amount)


def price_on_tick(price: Decimal, tick: Decimal) -> bool:
    return price % tick == 0 and tick <= price <= 1 - tick


def notional_units(price: Decimal, size: Decimal) -> int:
    return int(price * size * UNIT)


@dataclass(slots=True)
class Ledger:
    """Collateral and outcome shares per address, moved by every trade (what ``GET /balance-allowance``
    answers and what the venue checks an order against). A failed settlement undoes its trade."""

    default_collateral: Decimal
    collateral: dict[str, Decimal] = field(default_factory=dict)
    shares: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def cash(self, address: str) -> Decimal:
        return self.collateral.get(address, self.default_collateral)

    def held(self, address: str, token_id: str) -> Decimal:
        return self.shares.get((address, token_id), ZERO)

    def set_cash(self, address: str, amount: Decimal) -> None:
        self.collateral[address] = amount

    def give(self, address: str, token_id: str, size: Decimal) -> None:
        self.shares[(address, token_id)] = self.held(address, token_id) + size

    def trade(self, address: str, side: Side, token_id: str, price: Decimal, size: Decimal, fee: Decimal) -> None:
        """``address`` bought or sold ``size`` shares at ``price``, paying ``fee`` in pUSD."""
        sign = 1 if side is Side.BUY else -1
        self.collateral[address] = self.cash(address) - sign * price * size - fee
        self.shares[(address, token_id)] = self.held(address, token_id) + sign * size

    def undo(self, address: str, side: Side, token_id: str, price: Decimal, size: Decimal, fee: Decimal) -> None:
        self.trade(address, side.opposite, token_id, price, size, -fee)
