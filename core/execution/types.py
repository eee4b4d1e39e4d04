"""The contract between the engine and every relayer (paper, CLOB dry-run, CLOB live).

The engine builds an :class:`OrderRequest` (with a deterministic ``client_order_id``) and calls
a :class:`Relayer`. A relayer never retries on its own beyond what it is told to; it reports
what happened with an :class:`Outcome` so the engine can decide: ``ACCEPTED`` / ``REJECTED``
are final, ``RETRYABLE`` may be retried (the request certainly did not take effect, or the
venue said "try later"), and ``UNKNOWN`` means the request may have reached the venue: it is
never resubmitted blindly, only reconciled via ``lookup``/``open_orders``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Protocol, runtime_checkable

from core.execution.events import EventSink
from core.execution.venue_link import VenueStatus

# Fill and OrderStatus are domain types (the event bus carries them); named from here by execution code
from core.types import Fill as Fill
from core.types import Intent, MarketInfo, Mode, OrderType, Side
from core.types import OrderStatus as OrderStatus

MAX_BATCH_ORDERS: Final = 15
"""The most orders one ``POST /orders`` request may carry (the venue's limit)."""


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"  # the venue (or simulator) holds the order; it may have filled already
    REJECTED = "rejected"  # final refusal (4xx with a venue message, invalid order ...)
    RETRYABLE = "retryable"  # definitely not placed: 425, 429, 5xx before acceptance, timeout before send
    UNKNOWN = "unknown"  # may or may not be placed: timeout / error after the request was sent


class ErrorClass(enum.StrEnum):
    """Bounded set of error classes (also a metrics label)."""

    NONE = "none"
    BAD_REQUEST = "400"
    MAINTENANCE = "425"
    RATE_LIMITED = "429"
    SERVER = "5xx"
    TIMEOUT = "timeout"
    UNKNOWN_OUTCOME = "unknown-outcome"
    NETWORK = "network"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    market: str  # condition id
    token_id: str
    side: Side
    price: Decimal
    size: Decimal
    order_type: OrderType = OrderType.GTC
    post_only: bool = False
    tick_size: Decimal = Decimal("0.01")
    neg_risk: bool = False
    fee_rate: Decimal = Decimal("0")
    expiration: int = 0  # unix seconds, GTD only

    @property
    def notional(self) -> Decimal:
        return self.price * self.size


def order_request(intent: Intent, market: MarketInfo, coid: str) -> OrderRequest:
    """The order ``intent`` makes on ``market`` under client order id ``coid`` (its tick, neg-risk, fees)."""
    return OrderRequest(
        client_order_id=coid,
        market=intent.market,
        token_id=intent.token_id,
        side=intent.side,
        price=intent.price,
        size=intent.size,
        order_type=intent.order_type,
        post_only=intent.post_only,
        tick_size=market.tick_size,
        neg_risk=market.neg_risk,
        fee_rate=market.fee_rate,
        expiration=intent.expiration,
    )


@dataclass(frozen=True, slots=True)
class PlaceResult:
    outcome: Outcome
    venue_order_id: str | None = None
    status: OrderStatus = OrderStatus.NEW
    error_class: ErrorClass = ErrorClass.NONE
    error: str = ""  # the venue's message, as given (never a secret)
    retry_after_s: float | None = None  # from Retry-After on 429/425
    fills: tuple[Fill, ...] = ()  # immediate fills (paper relayer, marketable orders)
    signed_order: dict[str, object] | None = None  # the exact order body (dry-run and live)
    latency_ms: float = 0.0
    # CLOB: EIP-712 hash of the signed order = the venue's order id, known before posting; set
    # even when the outcome is UNKNOWN so reconciliation can look the order up.
    order_hash: str | None = None


@dataclass(frozen=True, slots=True)
class CancelResult:
    canceled: tuple[str, ...] = ()
    not_canceled: dict[str, str] = field(default_factory=dict)
    outcome: Outcome = Outcome.ACCEPTED
    error_class: ErrorClass = ErrorClass.NONE
    error: str = ""
    # orders we believed open that the venue no longer had (filled, canceled or expired there):
    # reconciled to their final status instead of being left "live"
    gone: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue (or simulator) reports it: used for reconciliation."""

    venue_order_id: str
    client_order_id: str | None
    token_id: str
    side: Side
    price: Decimal
    original_size: Decimal
    size_matched: Decimal
    status: str


class Relayer(Protocol):
    """Places and cancels orders. Implementations: paper, CLOB (dry-run / live).

    What happens to orders later (venue status changes, trades, failed settlements) goes to
    ``events``, the sink the relayer was built with (:mod:`core.execution.events`)."""

    mode: Mode

    @property
    def events(self) -> EventSink: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def place(self, order: OrderRequest) -> PlaceResult: ...

    async def place_batch(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        """Place up to :data:`MAX_BATCH_ORDERS` orders in one request (ValueError beyond): one
        result per order, in the same order.

        A failure of the whole request gives every order the same outcome and error class:
        ``RETRYABLE`` when it was refused before acceptance (425, 429, 5xx), ``UNKNOWN`` (with each
        order's ``order_hash`` where the relayer signs) when it may have been accepted (timeout
        after send, dropped connection). An order refused inside an accepted batch is that
        order's ``REJECTED`` result; the others stand."""
        ...

    async def cancel(self, venue_order_id: str) -> CancelResult: ...

    async def cancel_all(self) -> CancelResult: ...

    async def open_orders(self) -> list[VenueOrder]: ...

    async def lookup(self, order: OrderRequest) -> VenueOrder | None:
        """Find an order we may have placed (by venue id / order hash / client id) for reconciliation."""
        ...


# -- optional capabilities: checked with isinstance, never probed with getattr ---------------------


@runtime_checkable
class TradeResync(Protocol):
    """A relayer that can re-read our orders and trades from the venue (the CLOB relayer), so an
    order the venue no longer lists is settled from its trades, never assumed canceled."""

    async def resync(self) -> None: ...


@runtime_checkable
class TickAware(Protocol):
    """A relayer that signs with a per-token tick and must hear of a ``tick_size_change``."""

    def update_tick_size(self, token_id: str, tick_size: Decimal) -> None: ...


@runtime_checkable
class OrderMemory(Protocol):
    """A relayer that finds an order by the hash it was signed with: told the hashes of the orders
    loaded after a restart, so it can look them up."""

    def remember_order(self, client_order_id: str, order_hash: str) -> None: ...


@runtime_checkable
class BookFills(Protocol):
    """The paper relayer: resting orders fill when the local book trades through them, so it must
    hear of every book update of a token it has orders on."""

    async def on_book_update(self, token_id: str) -> list[Fill]: ...


@runtime_checkable
class Presigner(Protocol):
    """A relayer that signs before it posts (the CLOB relayer): the engine has a group's legs signed
    first, so every intent row is written with its order hash (the venue's id for the order) before
    anything is posted, and an order whose answer a crash lost is found by hash at restart.
    ``place_batch`` then posts the orders as signed here (same client order ids: same bodies)."""

    async def sign_orders(self, orders: Sequence[OrderRequest]) -> list[str | None]:
        """Each order's hash, in order (None: it could not be signed; ``place_batch`` will say why)."""
        ...


class SigningJob(Protocol):
    """A group's signing, prepared on the event loop (the orders' hashes known from then on), run in
    any one worker thread (the signatures), finished on the loop."""

    @property
    def pending(self) -> bool:
        """Whether :meth:`run` has signatures to make."""
        ...

    @property
    def hashes(self) -> list[str | None]:
        """Each order's hash, None where it cannot be signed (known before :meth:`run`)."""
        ...

    def run(self) -> list[str | None]:
        """Sign (in a worker thread): each order's hash, None where it cannot be signed; never raises."""
        ...

    def finish(self) -> None:
        """On the loop, after :meth:`run`: the signed orders kept for ``place_batch``."""
        ...


@runtime_checkable
class JobPresigner(Presigner, Protocol):
    """A presigner whose orders' hashes are known before they are signed: the write-ahead is written
    with them while the signatures are made beside it, in a worker thread of their own."""

    def signing_job(self, orders: Sequence[OrderRequest]) -> SigningJob: ...


@runtime_checkable
class MarketPrewarm(Protocol):
    """A relayer that signs with market parameters (tick, neg-risk, fees) it is told in advance."""

    def prewarm_market(self, market: MarketInfo) -> object: ...


@runtime_checkable
class VenueReporter(Protocol):
    """A relayer with a venue link to report on (REST reachability, user channel, heartbeat)."""

    def venue_status(self) -> VenueStatus: ...
