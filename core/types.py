"""Small domain types shared by the feed, strategies, risk, execution and the event bus.

Money is exact: prices, sizes and notionals are ``Decimal``; on-chain amounts are integers
in 10^-6 units (see :mod:`core.money`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    GTC = "GTC"
    GTD = "GTD"
    FOK = "FOK"
    FAK = "FAK"


class BookStatus(enum.StrEnum):
    """Only ``OK`` books may be traded on."""

    OK = "ok"
    STALE = "stale"
    INCONSISTENT = "inconsistent"
    AWAITING_SNAPSHOT = "awaiting_snapshot"
    CLOSED = "closed"  # the market resolved / closed: nothing more to trade, not a fault


class OrderStatus(enum.StrEnum):
    """Life-cycle of an order row (orders.status)."""

    NEW = "new"  # created locally, not yet sent
    DRY_RUN = "dry_run"  # built and signed, never posted
    SUBMITTED_UNKNOWN = "submitted_unknown"  # sent, outcome unknown: reconcile before anything else
    LIVE = "live"  # resting at the venue
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    FAILED = "failed"


class Mode(enum.StrEnum):
    PAPER = "paper"
    DRY_RUN = "dry-run"
    LIVE = "live"


Level = tuple[Decimal, Decimal]
"""(price, size) of one book level."""


class BookView(Protocol):
    """What strategies and the paper relayer read from a book. Levels are best-first."""

    asset_id: str

    @property
    def status(self) -> BookStatus: ...

    @property
    def tick_size(self) -> Decimal: ...

    def best_bid(self) -> Decimal | None: ...

    def best_ask(self) -> Decimal | None: ...

    def bids(self, depth: int | None = None) -> list[Level]: ...

    def asks(self, depth: int | None = None) -> list[Level]: ...


def mark_price(book: BookView | None) -> Decimal | None:
    """What an open position is worth per share: the mid of a usable (OK) book, else its one
    side; None without a usable book. The engine's PnL and the faces' position views use this."""
    if book is None or book.status is not BookStatus.OK:
        return None
    bid, ask = book.best_bid(), book.best_ask()
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return bid if bid is not None else ask


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    outcome: str


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """A market as the strategies and the engine need it (from Gamma / the markets table)."""

    condition_id: str
    question: str
    slug: str
    tokens: tuple[TokenInfo, ...]
    tick_size: Decimal = Decimal("0.01")
    min_order_size: Decimal = Decimal("5")
    neg_risk: bool = False
    neg_risk_market_id: str | None = None
    neg_risk_augmented: bool = False
    fee_rate: Decimal = Decimal("0")
    active: bool = True
    closed: bool = False

    def token(self, outcome: str) -> TokenInfo:
        """The token for an outcome name (case-insensitive) or a token id."""
        want = outcome.strip().lower()
        for tok in self.tokens:
            if tok.outcome.lower() == want or tok.token_id == outcome:
                return tok
        raise KeyError(f"market {self.slug or self.condition_id} has no outcome {outcome!r}")


@dataclass(frozen=True, slots=True)
class Intent:
    """What a strategy (or a trader) wants done; the engine turns it into an order."""

    market: str  # condition id
    token_id: str
    side: Side
    price: Decimal
    size: Decimal
    order_type: OrderType = OrderType.GTC
    post_only: bool = False
    group_id: str | None = None
    reason: str = ""
    expiration: int = 0  # unix seconds, GTD only (the venue wants it at least a minute away)
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def notional(self) -> Decimal:
        return self.price * self.size


@dataclass(frozen=True, slots=True)
class Fill:
    """A (partial) execution of one of our orders. Final only when ``confirmed``."""

    client_order_id: str
    venue_order_id: str | None
    token_id: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal = Decimal("0")
    trade_id: str | None = None
    confirmed: bool = True  # paper fills are final at once; CLOB fills at CONFIRMED
    ts_ms: int = 0
