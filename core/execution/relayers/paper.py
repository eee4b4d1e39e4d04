"""Paper relayer (mode PAPER, config ``type = "fake"``): fills against the live local book.

Fill model:
- A marketable order takes liquidity from the current book, best level first, at each
  level's price (partial fills across levels). FOK fills all or nothing; FAK fills what it can
  and cancels the rest; GTC/GTD rest the remainder.
- Our takes are not in the real book, so we remember how much of a level we consumed and do
  not take it again until the book shows that level with a different size (an update).
- A resting order fills, at its own price and without fee (maker), when the book trades
  through it: for a BUY at p, asks at or below p appear (strictly below with
  ``fill_on_touch=False``); for a SELL, bids at or above p. :meth:`PaperRelayer.on_book_update`
  is what the service calls after applying book updates; those fills go to the event sink as
  confirmed trades (:mod:`core.execution.events`).
- post-only orders that would cross are rejected, as the venue does.
- Taker fee per fill: :func:`core.fees.taker_fee` (``shares x rate x p x (1 - p)``, 5 decimals down).
- Latency (``relayer.paper_latency_ms``): a request meets the books as they are ``latency_s`` later.
  A batch (``POST /orders``) waits once, then every leg fills against one read of the books (no
  await between legs), so a leg fails only when its book moved within the latency.
- Faults can be injected for tests: ``relayer.inject.next(Outcome.UNKNOWN)`` makes the next
  order report UNKNOWN although it was accepted (its fills then arrive through the event sink,
  as they would from the venue's user channel); in a batch such a fault is that order's result.
  ``relayer.inject.next_batch(...)`` fails a whole batch request instead (every leg the same).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TypedDict, Unpack

from core.execution.events import EventSink, TradeStatus, TradeUpdate
from core.execution.types import (
    MAX_BATCH_ORDERS,
    CancelResult,
    ErrorClass,
    Fill,
    OrderRequest,
    OrderStatus,
    Outcome,
    PlaceResult,
    VenueOrder,
)
from core.fees import MAKER_FEE, taker_fee
from core.money import on_tick
from core.types import BookStatus, BookView, Level, Mode, OrderType, Side

ZERO = Decimal(0)
ONE = Decimal(1)

BookProvider = Callable[[str], BookView | None]

_DEFAULT_ERRORS = {
    Outcome.REJECTED: (ErrorClass.BAD_REQUEST, "injected rejection"),
    Outcome.RETRYABLE: (ErrorClass.SERVER, "injected server error"),
    Outcome.UNKNOWN: (ErrorClass.TIMEOUT, "injected timeout after the request was sent"),
}


class FaultOptions(TypedDict, total=False):
    error_class: ErrorClass | None
    error: str
    retry_after_s: float | None
    accept: bool | None  # UNKNOWN only: did the order really reach the (simulated) venue?
    token_id: str | None  # only orders on this token (None: any order)


@dataclass(frozen=True, slots=True)
class Fault:
    outcome: Outcome
    error_class: ErrorClass
    error: str
    retry_after_s: float | None = None
    accept: bool = False  # UNKNOWN only: did the order really reach the (simulated) venue?
    token_id: str | None = None  # only orders on this token (None: any order)


@dataclass
class FaultPlan:
    """Scripted and random faults for place/cancel calls."""

    _place: deque[Fault] = field(default_factory=deque)
    _cancel: deque[Fault] = field(default_factory=deque)
    _batch: deque[Fault] = field(default_factory=deque)
    _random: list[tuple[Fault, float]] = field(default_factory=list)

    @staticmethod
    def make(
        outcome: Outcome,
        *,
        error_class: ErrorClass | None = None,
        error: str = "",
        retry_after_s: float | None = None,
        accept: bool | None = None,
        token_id: str | None = None,
    ) -> Fault:
        if outcome is Outcome.ACCEPTED:
            raise ValueError("ACCEPTED is not a fault")
        default_class, default_msg = _DEFAULT_ERRORS[outcome]
        if error_class is None:
            error_class = ErrorClass.RATE_LIMITED if retry_after_s is not None else default_class
        return Fault(
            outcome=outcome,
            error_class=error_class,
            error=error or default_msg,
            retry_after_s=retry_after_s,
            accept=(outcome is Outcome.UNKNOWN) if accept is None else accept,
            token_id=token_id,
        )

    def next(self, outcome: Outcome, *, times: int = 1, **kw: Unpack[FaultOptions]) -> FaultPlan:
        """The next ``times`` place calls (on ``token_id=`` only, if given) end with ``outcome``.

        UNKNOWN accepts the order by default (``accept=False``: it never reached the venue).
        """
        fault = self.make(outcome, **kw)
        self._place.extend([fault] * times)
        return self

    def next_batch(self, outcome: Outcome, *, times: int = 1, **kw: Unpack[FaultOptions]) -> FaultPlan:
        """The next ``times`` batch requests fail as a whole: every leg gets ``outcome``."""
        fault = self.make(outcome, **kw)
        self._batch.extend([fault] * times)
        return self

    def next_cancel(self, outcome: Outcome, *, times: int = 1, **kw: Unpack[FaultOptions]) -> FaultPlan:
        fault = self.make(outcome, **kw)
        self._cancel.extend([fault] * times)
        return self

    def randomly(self, outcome: Outcome, probability: float, **kw: Unpack[FaultOptions]) -> FaultPlan:
        """Each place call (with no scripted fault) fails with ``probability`` (seeded rng)."""
        self._random.append((self.make(outcome, **kw), probability))
        return self

    def clear(self) -> None:
        self._place.clear()
        self._cancel.clear()
        self._batch.clear()
        self._random.clear()

    def pop_place(self, rng: random.Random, order: OrderRequest | None = None) -> Fault | None:
        for i, fault in enumerate(self._place):
            if fault.token_id is None or (order is not None and fault.token_id == order.token_id):
                del self._place[i]
                return fault
        for fault, p in self._random:
            if rng.random() < p:
                return fault
        return None

    def pop_cancel(self) -> Fault | None:
        return self._cancel.popleft() if self._cancel else None

    def pop_batch(self) -> Fault | None:
        return self._batch.popleft() if self._batch else None

    @property
    def pending(self) -> int:
        return len(self._place) + len(self._cancel) + len(self._batch)


@dataclass(slots=True)
class _PaperOrder:
    req: OrderRequest
    venue_order_id: str
    remaining: Decimal
    matched: Decimal = ZERO
    status: OrderStatus = OrderStatus.LIVE

    def view(self) -> VenueOrder:
        venue_status = {
            OrderStatus.LIVE: "LIVE",
            OrderStatus.PARTIALLY_FILLED: "LIVE",
            OrderStatus.FILLED: "MATCHED",
            OrderStatus.CANCELED: "CANCELED",
        }.get(self.status, str(self.status).upper())
        return VenueOrder(
            venue_order_id=self.venue_order_id,
            client_order_id=self.req.client_order_id,
            token_id=self.req.token_id,
            side=self.req.side,
            price=self.req.price,
            original_size=self.req.size,
            size_matched=self.matched,
            status=venue_status,
        )

    @property
    def open(self) -> bool:
        return self.status in (OrderStatus.LIVE, OrderStatus.PARTIALLY_FILLED)


class PaperRelayer:
    mode = Mode.PAPER

    def __init__(
        self,
        book_provider: BookProvider,
        latency_s: float = 0.0,
        seed: int | None = 0,
        inject: FaultPlan | None = None,
        *,
        latency_jitter: float = 0.0,
        events: EventSink | None = None,
        fill_on_touch: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._books = book_provider
        self.latency_s = latency_s
        self.latency_jitter = latency_jitter
        self.rng = random.Random(seed)
        self.inject = inject if inject is not None else FaultPlan()
        self.events = events if events is not None else EventSink()
        self.fill_on_touch = fill_on_touch
        self._clock = clock
        self._sleep = sleep
        self._orders: dict[str, _PaperOrder] = {}
        self._by_client: dict[str, str] = {}
        self._taken: dict[tuple[str, Side, Decimal], tuple[Decimal, Decimal]] = {}
        self._seq = 0
        self._trade_seq = 0
        self.place_calls = 0  # orders placed, one by one or in batches
        self.batch_calls = 0  # batch requests (place_batch calls)
        self.cancel_calls = 0
        self.lookup_calls = 0
        self.open_orders_calls = 0

    # -- Relayer protocol ----------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def place(self, order: OrderRequest) -> PlaceResult:
        self.place_calls += 1
        started = time.perf_counter()
        await self._latency()
        fault = self.inject.pop_place(self.rng, order)
        result, unheard = self._answer(order, fault, self._books(order.token_id), started)
        for fill in unheard:
            await self._deliver(fill)
        return result

    async def place_batch(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        """One request for up to :data:`MAX_BATCH_ORDERS` orders: one latency, one instant of the books."""
        if len(orders) > MAX_BATCH_ORDERS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_ORDERS} orders, got {len(orders)}")
        if not orders:
            return []
        self.batch_calls += 1
        self.place_calls += len(orders)
        started = time.perf_counter()
        await self._latency()
        fault = self.inject.pop_batch()
        if fault is not None and not (fault.outcome is Outcome.UNKNOWN and fault.accept):
            return [_fault_result(fault, started)] * len(orders)
        # the one instant: every book read once, every leg matched with no await in between
        books = {o.token_id: self._books(o.token_id) for o in orders}
        results: list[PlaceResult] = []
        unheard: list[Fill] = []
        for order in orders:
            leg_fault = fault if fault is not None else self.inject.pop_place(self.rng, order)
            result, lost = self._answer(order, leg_fault, books[order.token_id], started)
            results.append(result)
            unheard.extend(lost)
        for fill in unheard:
            await self._deliver(fill)
        return results

    async def cancel(self, venue_order_id: str) -> CancelResult:
        self.cancel_calls += 1
        await self._latency()
        fault = self.inject.pop_cancel()
        if fault is not None:
            return CancelResult(outcome=fault.outcome, error_class=fault.error_class, error=fault.error)
        po = self._orders.get(venue_order_id)
        if po is None or not po.open:
            return CancelResult(not_canceled={venue_order_id: "order can't be found - already canceled or matched"})
        po.status = OrderStatus.CANCELED
        return CancelResult(canceled=(venue_order_id,))

    async def cancel_all(self) -> CancelResult:
        self.cancel_calls += 1
        await self._latency()
        fault = self.inject.pop_cancel()
        if fault is not None:
            return CancelResult(outcome=fault.outcome, error_class=fault.error_class, error=fault.error)
        canceled = []
        for po in self._orders.values():
            if po.open:
                po.status = OrderStatus.CANCELED
                canceled.append(po.venue_order_id)
        return CancelResult(canceled=tuple(canceled))

    async def open_orders(self) -> list[VenueOrder]:
        self.open_orders_calls += 1
        return [po.view() for po in self._orders.values() if po.open]

    async def lookup(self, order: OrderRequest) -> VenueOrder | None:
        self.lookup_calls += 1
        venue_id = self._by_client.get(order.client_order_id)
        return self._orders[venue_id].view() if venue_id else None

    # -- the service's hook --------------------------------------------------------------------

    async def on_book_update(self, token_id: str) -> list[Fill]:
        """Fill resting orders on ``token_id`` that the current book trades through."""
        book = self._books(token_id)
        if book is None or book.status is not BookStatus.OK:
            return []
        fills: list[Fill] = []
        for po in list(self._orders.values()):
            if not po.open or po.req.token_id != token_id:
                continue
            levels = self._crossing_levels(book, po.req.side, po.req.price, strict=not self.fill_on_touch)
            got = self._take(token_id, po, levels, at_own_price=True)
            fills.extend(got)
        for fill in fills:
            await self._deliver(fill)
        return fills

    # -- internals -----------------------------------------------------------------------------

    async def _latency(self) -> None:
        if self.latency_s <= 0:
            return
        delay = self.latency_s
        if self.latency_jitter:
            delay *= 1 + self.rng.uniform(-self.latency_jitter, self.latency_jitter)
        await self._sleep(max(0.0, delay))

    def _answer(
        self, order: OrderRequest, fault: Fault | None, book: BookView | None, started: float
    ) -> tuple[PlaceResult, list[Fill]]:
        """One order's result, and the fills the caller will not hear of (to deliver as trades)."""
        if fault is not None and not (fault.outcome is Outcome.UNKNOWN and fault.accept):
            return _fault_result(fault, started), []
        result = replace(self._execute(order, book), latency_ms=_ms(started))
        if fault is None:
            return result, []
        # Accepted, but the caller never hears it: fills travel the "user channel" instead.
        unknown = PlaceResult(
            outcome=Outcome.UNKNOWN, error_class=fault.error_class, error=fault.error, latency_ms=_ms(started)
        )
        return unknown, list(result.fills)

    async def _deliver(self, fill: Fill) -> None:
        await self.events.trade(TradeUpdate(fill, TradeStatus.CONFIRMED, source="paper"))

    @staticmethod
    def _reject(msg: str) -> PlaceResult:
        return PlaceResult(Outcome.REJECTED, status=OrderStatus.REJECTED, error_class=ErrorClass.BAD_REQUEST, error=msg)

    @staticmethod
    def _killed(msg: str) -> PlaceResult:
        # a kill is a market outcome, not an error
        return PlaceResult(Outcome.REJECTED, status=OrderStatus.CANCELED, error_class=ErrorClass.NONE, error=msg)

    def _execute(self, req: OrderRequest, book: BookView | None) -> PlaceResult:
        if req.client_order_id in self._by_client:
            # the venue refuses a second order with the same hash; so do we
            return self._reject(f"duplicate order {req.client_order_id}")
        if req.size <= 0:
            return self._reject(f"invalid order size {req.size}")
        if not on_tick(req.price, req.tick_size) or not req.tick_size <= req.price <= ONE - req.tick_size:
            return self._reject(f"invalid price {req.price} for tick size {req.tick_size}")
        if req.post_only and req.order_type in (OrderType.FOK, OrderType.FAK):
            return self._reject("post-only orders must be GTC or GTD")
        usable = book is not None and book.status is BookStatus.OK
        levels = self._crossing_levels(book, req.side, req.price, strict=False) if usable and book else []
        if req.post_only and levels:
            return self._reject("invalid post-only order: order crosses book")
        if req.order_type in (OrderType.FOK, OrderType.FAK) and not usable:
            return self._reject(f"no usable book for {req.token_id}: cannot match a {req.order_type} order")
        if req.order_type is OrderType.FOK:
            available = sum((self._available(req.token_id, req.side, p, s) for p, s in levels), ZERO)
            if available < req.size:
                return self._killed("order couldn't be fully filled. FOK orders are fully filled or killed.")
        self._seq += 1
        po = _PaperOrder(req=req, venue_order_id=f"paper-{self._seq:08d}", remaining=req.size)
        fills = self._take(req.token_id, po, levels, at_own_price=False)
        if req.order_type is OrderType.FAK and not fills:
            return self._killed(
                "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
            )
        if po.remaining > 0 and req.order_type in (OrderType.FOK, OrderType.FAK):
            po.status = OrderStatus.CANCELED
        self._orders[po.venue_order_id] = po
        self._by_client[req.client_order_id] = po.venue_order_id
        return PlaceResult(Outcome.ACCEPTED, venue_order_id=po.venue_order_id, status=po.status, fills=tuple(fills))

    @staticmethod
    def _crossing_levels(book: BookView | None, side: Side, price: Decimal, *, strict: bool) -> list[Level]:
        """Opposite-side levels (best first) that a ``side`` order at ``price`` would take."""
        if book is None:
            return []
        if side is Side.BUY:
            return [(p, s) for p, s in book.asks() if (p < price if strict else p <= price)]
        return [(p, s) for p, s in book.bids() if (p > price if strict else p >= price)]

    def _available(self, token_id: str, side: Side, price: Decimal, size: Decimal) -> Decimal:
        taken = self._taken.get((token_id, side, price))
        if taken is None or taken[0] != size:
            return size  # the level changed since we took from it: treat it as fresh
        return max(ZERO, size - taken[1])

    def _take(self, token_id: str, po: _PaperOrder, levels: list[Level], *, at_own_price: bool) -> list[Fill]:
        fills: list[Fill] = []
        req = po.req
        for level_price, level_size in levels:
            if po.remaining <= 0:
                break
            avail = self._available(token_id, req.side, level_price, level_size)
            qty = min(avail, po.remaining)
            if qty <= 0:
                continue
            key = (token_id, req.side, level_price)
            prev = self._taken.get(key)
            already = prev[1] if prev is not None and prev[0] == level_size else ZERO
            self._taken[key] = (level_size, already + qty)
            price = req.price if at_own_price else level_price
            fee = MAKER_FEE if at_own_price else taker_fee(qty, price, req.fee_rate)
            self._trade_seq += 1
            fills.append(
                Fill(
                    client_order_id=req.client_order_id,
                    venue_order_id=po.venue_order_id,
                    token_id=token_id,
                    side=req.side,
                    price=price,
                    size=qty,
                    fee=fee,
                    trade_id=f"paper-trade-{self._trade_seq:08d}",
                    confirmed=True,
                    ts_ms=int(self._clock() * 1000),
                )
            )
            po.remaining -= qty
            po.matched += qty
        if po.matched > 0:
            po.status = OrderStatus.FILLED if po.remaining <= 0 else OrderStatus.PARTIALLY_FILLED
        return fills


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _fault_result(fault: Fault, started: float) -> PlaceResult:
    """The answer to a request an injected fault stopped before the (simulated) venue took it."""
    return PlaceResult(
        outcome=fault.outcome,
        status=OrderStatus.REJECTED if fault.outcome is Outcome.REJECTED else OrderStatus.NEW,
        error_class=fault.error_class,
        error=fault.error,
        retry_after_s=fault.retry_after_s,
        latency_ms=_ms(started),
    )


@dataclass
class StaticBook:
    """A plain book (levels best-first) for tests, benchmarks and the offline demo."""

    asset_id: str
    bid_levels: list[Level] = field(default_factory=list)
    ask_levels: list[Level] = field(default_factory=list)
    book_status: BookStatus = BookStatus.OK
    tick: Decimal = Decimal("0.01")

    @property
    def status(self) -> BookStatus:
        return self.book_status

    @property
    def tick_size(self) -> Decimal:
        return self.tick

    def best_bid(self) -> Decimal | None:
        return self.bid_levels[0][0] if self.bid_levels else None

    def best_ask(self) -> Decimal | None:
        return self.ask_levels[0][0] if self.ask_levels else None

    def bids(self, depth: int | None = None) -> list[Level]:
        return list(self.bid_levels[:depth] if depth is not None else self.bid_levels)

    def asks(self, depth: int | None = None) -> list[Level]:
        return list(self.ask_levels[:depth] if depth is not None else self.ask_levels)
