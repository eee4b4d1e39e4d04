"""The paper relayer's batches: one latency, then every leg against one instant of the books; faults
per leg or for the whole request; the venue's 15-order limit."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.execution.events import EventSink, OrderUpdate, SettlementFailure, TradeUpdate
from core.execution.relayers.paper import FaultPlan, PaperRelayer, StaticBook
from core.execution.types import MAX_BATCH_ORDERS, ErrorClass, Fill, OrderRequest, OrderStatus, Outcome
from core.types import OrderType, Side

TOKENS = ("101", "202", "303")


class MovingBooks:
    """Books whose asks move up one tick on every sleep of the relayer (the market during the latency)."""

    def __init__(self, tokens: tuple[str, ...] = TOKENS, ask: str = "0.40") -> None:
        self.version = 0
        self.books = {t: StaticBook(t, ask_levels=[(D(ask), D("100"))]) for t in tokens}
        self.sleeps: list[float] = []
        self.reads: list[tuple[str, int]] = []  # (token, book version) of every read

    def __call__(self, token_id: str) -> StaticBook | None:
        self.reads.append((token_id, self.version))
        return self.books.get(token_id)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.version += 1
        for book in self.books.values():
            book.ask_levels = [(p + D("0.01"), s) for p, s in book.ask_levels]


class Heard:
    def __init__(self) -> None:
        self.fills: list[Fill] = []

    async def order_update(self, update: OrderUpdate) -> None:
        raise AssertionError(update)

    async def trade(self, update: TradeUpdate) -> None:
        self.fills.append(update.fill)

    async def settlement_failed(self, failure: SettlementFailure) -> None:
        raise AssertionError(failure)


def relayer(books: MovingBooks, latency_s: float = 0.05, **kw: object) -> tuple[PaperRelayer, Heard]:
    heard = Heard()
    sink = EventSink()
    sink.connect(heard)
    paper = PaperRelayer(books, latency_s, events=sink, sleep=books.sleep, clock=lambda: 1_700_000_000.0, **kw)  # type: ignore[arg-type]  # extra relayer options, passed through
    return paper, heard


def leg(token: str, price: str = "0.45", size: str = "10", *, coid: str | None = None) -> OrderRequest:
    return OrderRequest(coid or f"c-{token}", "0xm", token, Side.BUY, D(price), D(size), OrderType.FOK)


async def test_a_batch_waits_once_and_every_leg_meets_the_same_moved_book() -> None:
    books = MovingBooks()
    paper, _ = relayer(books)
    results = await paper.place_batch([leg(t) for t in TOKENS])
    assert books.sleeps == [0.05]  # one latency for the whole request
    assert [r.status for r in results] == [OrderStatus.FILLED] * 3
    # every leg filled at the book as it was after the latency (moved once), none at the book the strategy saw
    assert {f.price for r in results for f in r.fills} == {D("0.41")}
    assert {v for _, v in books.reads} == {1}
    assert paper.batch_calls == 1 and paper.place_calls == 3


async def test_one_by_one_each_order_meets_a_different_book() -> None:
    """The contrast: three single posts wait three latencies and see three books."""
    books = MovingBooks()
    paper, _ = relayer(books)
    results = [await paper.place(leg(t)) for t in TOKENS]
    assert books.sleeps == [0.05, 0.05, 0.05]
    assert [r.fills[0].price for r in results] == [D("0.41"), D("0.42"), D("0.43")]


async def test_a_leg_fails_only_when_its_book_moved_past_the_limit_within_the_latency() -> None:
    books = MovingBooks(ask="0.44")
    paper, _ = relayer(books)
    # limits 0.45, 0.44, 0.46: the ask moves 0.44 -> 0.45 during the latency, the 0.44 leg is killed
    results = await paper.place_batch([leg("101", "0.45"), leg("202", "0.44"), leg("303", "0.46")])
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert results[1].status is OrderStatus.CANCELED and "FOK" in results[1].error
    assert [r.status for r in (results[0], results[2])] == [OrderStatus.FILLED, OrderStatus.FILLED]


async def test_without_latency_the_legs_fill_against_the_book_the_strategy_saw() -> None:
    books = MovingBooks()
    paper, _ = relayer(books, latency_s=0.0)
    results = await paper.place_batch([leg(t) for t in TOKENS])
    assert books.sleeps == [] and {f.price for r in results for f in r.fills} == {D("0.40")}


async def test_legs_of_one_batch_share_the_liquidity_of_one_book() -> None:
    books = MovingBooks(tokens=("101",))
    books.books["101"].ask_levels = [(D("0.40"), D("15"))]
    paper, _ = relayer(books, latency_s=0.0)
    a, b = await paper.place_batch([leg("101", size="10", coid="a"), leg("101", size="10", coid="b")])
    assert a.status is OrderStatus.FILLED and b.outcome is Outcome.REJECTED  # only 5 left for the second


async def test_a_whole_batch_fault_gives_every_leg_the_same_outcome_and_places_nothing() -> None:
    books = MovingBooks()
    plan = FaultPlan().next_batch(Outcome.RETRYABLE, retry_after_s=2.0)
    paper, _ = relayer(books, inject=plan)
    results = await paper.place_batch([leg(t) for t in TOKENS])
    assert {(r.outcome, r.error_class, r.retry_after_s) for r in results} == {
        (Outcome.RETRYABLE, ErrorClass.RATE_LIMITED, 2.0)
    }
    assert await paper.open_orders() == [] and [await paper.lookup(leg(t)) for t in TOKENS] == [None] * 3
    again = await paper.place_batch([leg(t) for t in TOKENS])
    assert [r.status for r in again] == [OrderStatus.FILLED] * 3 and plan.pending == 0


async def test_an_unknown_batch_that_was_accepted_fills_every_leg_and_tells_the_event_sink() -> None:
    books = MovingBooks()
    paper, heard = relayer(books, inject=FaultPlan().next_batch(Outcome.UNKNOWN))
    results = await paper.place_batch([leg(t) for t in TOKENS])
    assert {r.outcome for r in results} == {Outcome.UNKNOWN} and all(r.fills == () for r in results)
    assert sorted(f.client_order_id for f in heard.fills) == sorted(f"c-{t}" for t in TOKENS)
    for t in TOKENS:
        found = await paper.lookup(leg(t))
        assert found is not None and found.size_matched == D("10")


async def test_a_per_order_fault_is_that_leg_s_result_only() -> None:
    books = MovingBooks()
    plan = FaultPlan().next(Outcome.REJECTED, token_id="202", error="not enough balance / allowance")
    paper, _ = relayer(books, inject=plan)
    results = await paper.place_batch([leg(t) for t in TOKENS])
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert results[1].error == "not enough balance / allowance"


async def test_the_venue_limit_of_15_orders_per_request() -> None:
    tokens = tuple(str(1000 + i) for i in range(MAX_BATCH_ORDERS + 1))
    books = MovingBooks(tokens)
    paper, _ = relayer(books, latency_s=0.0)
    assert await paper.place_batch([]) == [] and paper.batch_calls == 0
    with pytest.raises(ValueError, match="at most 15"):
        await paper.place_batch([leg(t) for t in tokens])
    assert paper.place_calls == 0
    full = await paper.place_batch([leg(t) for t in tokens[:MAX_BATCH_ORDERS]])
    assert len(full) == MAX_BATCH_ORDERS and {r.status for r in full} == {OrderStatus.FILLED}
