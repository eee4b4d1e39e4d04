"""Paper relayer fill model: marketable, partial, FOK/FAK, resting-then-filled, post-only, faults, fees."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.execution.events import EventSink, OrderUpdate, SettlementFailure, TradeStatus, TradeUpdate
from core.execution.relayers.paper import FaultPlan, PaperRelayer, StaticBook
from core.execution.types import ErrorClass, Fill, OrderRequest, OrderStatus, Outcome
from core.types import BookStatus, Mode, OrderType, Side

TOKEN = "7111"


def book(asks: list[tuple[str, str]] = (), bids: list[tuple[str, str]] = ()) -> StaticBook:  # type: ignore[assignment]
    return StaticBook(
        TOKEN,
        bid_levels=[(D(p), D(s)) for p, s in bids],
        ask_levels=[(D(p), D(s)) for p, s in asks],
    )


class Books:
    def __init__(self, b: StaticBook | None) -> None:
        self.book = b

    def __call__(self, token_id: str) -> StaticBook | None:
        return self.book if self.book is not None and token_id == self.book.asset_id else None


def req(
    side: Side,
    price: str,
    size: str,
    order_type: OrderType = OrderType.GTC,
    *,
    coid: str = "c1",
    post_only: bool = False,
    fee_rate: str = "0",
) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        market="0xm",
        token_id=TOKEN,
        side=side,
        price=D(price),
        size=D(size),
        order_type=order_type,
        post_only=post_only,
        fee_rate=D(fee_rate),
    )


class Heard:
    """The engine's end of the paper relayer's event sink: every fill it is told of."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []

    async def order_update(self, update: OrderUpdate) -> None:
        raise AssertionError(f"the paper relayer pushes no order updates: {update}")

    async def trade(self, update: TradeUpdate) -> None:
        assert update.status is TradeStatus.CONFIRMED and update.fill.confirmed and update.source == "paper"
        self.fills.append(update.fill)

    async def settlement_failed(self, failure: SettlementFailure) -> None:
        raise AssertionError(f"paper trades always settle: {failure}")


def make(b: StaticBook | None, **kw: object) -> tuple[PaperRelayer, Books, list[Fill]]:
    books = Books(b)
    heard = Heard()
    sink = EventSink()
    sink.connect(heard)
    relayer = PaperRelayer(books, events=sink, clock=lambda: 1_700_000_000.0, **kw)  # type: ignore[arg-type]
    return relayer, books, heard.fills


async def test_marketable_buy_walks_levels_at_their_prices_with_taker_fee() -> None:
    relayer, _, _ = make(book(asks=[("0.50", "10"), ("0.52", "20"), ("0.60", "100")]))
    assert relayer.mode is Mode.PAPER
    res = await relayer.place(req(Side.BUY, "0.55", "25", OrderType.FOK, fee_rate="0.05"))
    assert res.outcome is Outcome.ACCEPTED and res.status is OrderStatus.FILLED
    assert [(f.price, f.size) for f in res.fills] == [(D("0.50"), D("10")), (D("0.52"), D("15"))]
    # 10 x 0.05 x 0.5 x 0.5 = 0.125; 15 x 0.05 x 0.52 x 0.48 = 0.1872
    assert [f.fee for f in res.fills] == [D("0.12500"), D("0.18720")]
    assert len({f.trade_id for f in res.fills}) == 2
    assert await relayer.open_orders() == []


async def test_partial_fill_rests_the_remainder_for_gtc() -> None:
    relayer, _, _ = make(book(asks=[("0.50", "10"), ("0.55", "50")]))
    res = await relayer.place(req(Side.BUY, "0.52", "30"))
    assert res.status is OrderStatus.PARTIALLY_FILLED
    assert sum(f.size for f in res.fills) == D("10")
    [open_order] = await relayer.open_orders()
    assert open_order.size_matched == D("10") and open_order.original_size == D("30")
    assert open_order.status == "LIVE" and open_order.client_order_id == "c1"


async def test_fok_that_cannot_fill_completely_is_killed_and_leaves_nothing() -> None:
    relayer, _, _ = make(book(asks=[("0.50", "10")]))
    res = await relayer.place(req(Side.BUY, "0.50", "11", OrderType.FOK))
    assert res.outcome is Outcome.REJECTED
    assert res.status is OrderStatus.CANCELED
    assert res.error_class is ErrorClass.NONE and "FOK" in res.error
    assert res.fills == ()
    # the killed order did not consume the level: a fitting order still fills
    res2 = await relayer.place(req(Side.BUY, "0.50", "10", OrderType.FOK, coid="c2"))
    assert res2.status is OrderStatus.FILLED


async def test_fak_fills_what_it_can_and_cancels_the_rest() -> None:
    relayer, _, _ = make(book(bids=[("0.48", "7"), ("0.40", "100")]))
    res = await relayer.place(req(Side.SELL, "0.45", "10", OrderType.FAK))
    assert res.outcome is Outcome.ACCEPTED and res.status is OrderStatus.CANCELED
    assert [(f.price, f.size) for f in res.fills] == [(D("0.48"), D("7"))]
    assert await relayer.open_orders() == []
    nothing = await relayer.place(req(Side.SELL, "0.45", "10", OrderType.FAK, coid="c2"))
    assert nothing.outcome is Outcome.REJECTED and nothing.fills == ()


async def test_consumed_liquidity_is_not_taken_twice_until_the_level_changes() -> None:
    b = book(asks=[("0.50", "10")])
    relayer, _, _ = make(b)
    first = await relayer.place(req(Side.BUY, "0.50", "6", OrderType.FAK))
    second = await relayer.place(req(Side.BUY, "0.50", "6", OrderType.FAK, coid="c2"))
    assert sum(f.size for f in first.fills) == D("6")
    assert sum(f.size for f in second.fills) == D("4")
    b.ask_levels = [(D("0.50"), D("12"))]  # a book update: the level is fresh again
    third = await relayer.place(req(Side.BUY, "0.50", "6", OrderType.FAK, coid="c3"))
    assert sum(f.size for f in third.fills) == D("6")


async def test_resting_order_fills_when_the_book_trades_through_it() -> None:
    b = book(asks=[("0.60", "100")], bids=[("0.40", "100")])
    relayer, _, got = make(b)
    res = await relayer.place(req(Side.BUY, "0.50", "20"))
    assert res.status is OrderStatus.LIVE and res.fills == ()
    assert await relayer.on_book_update(TOKEN) == []  # nothing crosses yet
    b.ask_levels = [(D("0.49"), D("5")), (D("0.50"), D("8")), (D("0.55"), D("50"))]
    fills = await relayer.on_book_update(TOKEN)
    assert got == fills
    # filled at our own price as maker (no fee), quantity from the crossing levels only
    assert [(f.price, f.size, f.fee) for f in fills] == [(D("0.50"), D("5"), D(0)), (D("0.50"), D("8"), D(0))]
    [vo] = await relayer.open_orders()
    assert vo.size_matched == D("13")
    b.ask_levels = [(D("0.45"), D("50"))]
    more = await relayer.on_book_update(TOKEN)
    assert sum(f.size for f in more) == D("7")
    assert await relayer.open_orders() == []
    found = await relayer.lookup(req(Side.BUY, "0.50", "20"))
    assert found is not None and found.status == "MATCHED" and found.size_matched == D("20")


async def test_strict_trade_through_does_not_fill_on_touch() -> None:
    b = book(asks=[("0.60", "100")])
    relayer, _, _ = make(b, fill_on_touch=False)
    await relayer.place(req(Side.SELL, "0.55", "10"))
    b.bid_levels = [(D("0.55"), D("50"))]
    assert await relayer.on_book_update(TOKEN) == []
    b.bid_levels = [(D("0.56"), D("50"))]
    assert sum(f.size for f in await relayer.on_book_update(TOKEN)) == D("10")


async def test_post_only_that_would_cross_is_rejected_and_one_that_rests_is_live() -> None:
    relayer, _, _ = make(book(asks=[("0.50", "10")], bids=[("0.45", "10")]))
    crossing = await relayer.place(req(Side.BUY, "0.50", "5", post_only=True))
    assert crossing.outcome is Outcome.REJECTED and "post-only" in crossing.error
    assert crossing.error_class is ErrorClass.BAD_REQUEST
    resting = await relayer.place(req(Side.BUY, "0.49", "5", post_only=True, coid="c2"))
    assert resting.outcome is Outcome.ACCEPTED and resting.status is OrderStatus.LIVE


async def test_invalid_orders_and_missing_books() -> None:
    relayer, books, _ = make(book(asks=[("0.50", "10")]))
    off_tick = await relayer.place(req(Side.BUY, "0.505", "5"))
    assert off_tick.outcome is Outcome.REJECTED and "tick" in off_tick.error
    books.book = None
    no_book = await relayer.place(req(Side.BUY, "0.50", "5", OrderType.FOK, coid="c9"))
    assert no_book.outcome is Outcome.REJECTED and "no usable book" in no_book.error
    rests = await relayer.place(req(Side.BUY, "0.50", "5", coid="c10"))
    assert rests.status is OrderStatus.LIVE
    stale = StaticBook(TOKEN, ask_levels=[(D("0.40"), D("10"))], book_status=BookStatus.STALE)
    books.book = stale
    assert await relayer.on_book_update(TOKEN) == []  # a stale book never fills anything


async def test_duplicate_client_id_is_refused_like_the_venue_does() -> None:
    relayer, _, _ = make(book(asks=[("0.60", "10")]))
    assert (await relayer.place(req(Side.BUY, "0.50", "5"))).outcome is Outcome.ACCEPTED
    dup = await relayer.place(req(Side.BUY, "0.50", "5"))
    assert dup.outcome is Outcome.REJECTED and "duplicate" in dup.error
    assert len(await relayer.open_orders()) == 1


async def test_cancel_and_cancel_all() -> None:
    relayer, _, _ = make(book(asks=[("0.90", "10")]))
    a = await relayer.place(req(Side.BUY, "0.50", "5", coid="a"))
    b = await relayer.place(req(Side.BUY, "0.51", "5", coid="b"))
    c = await relayer.place(req(Side.BUY, "0.52", "5", coid="c"))
    assert a.venue_order_id and b.venue_order_id and c.venue_order_id
    res = await relayer.cancel(a.venue_order_id)
    assert res.canceled == (a.venue_order_id,)
    again = await relayer.cancel(a.venue_order_id)
    assert a.venue_order_id in again.not_canceled
    res_all = await relayer.cancel_all()
    assert set(res_all.canceled) == {b.venue_order_id, c.venue_order_id}
    assert await relayer.open_orders() == []


async def test_injected_faults_in_order() -> None:
    plan = FaultPlan().next(Outcome.RETRYABLE, retry_after_s=1.5).next(Outcome.REJECTED, error="bad order")
    relayer, _, _ = make(book(asks=[("0.50", "10")]), inject=plan)
    r1 = await relayer.place(req(Side.BUY, "0.50", "5", OrderType.FOK))
    assert (r1.outcome, r1.error_class, r1.retry_after_s) == (Outcome.RETRYABLE, ErrorClass.RATE_LIMITED, 1.5)
    r2 = await relayer.place(req(Side.BUY, "0.50", "5", OrderType.FOK))
    assert (r2.outcome, r2.error) == (Outcome.REJECTED, "bad order")
    assert await relayer.lookup(req(Side.BUY, "0.50", "5")) is None  # neither reached the "venue"
    r3 = await relayer.place(req(Side.BUY, "0.50", "5", OrderType.FOK))
    assert r3.outcome is Outcome.ACCEPTED
    assert relayer.place_calls == 3 and plan.pending == 0


async def test_unknown_after_accepting_delivers_fills_through_the_event_sink() -> None:
    plan = FaultPlan().next(Outcome.UNKNOWN)
    relayer, _, got = make(book(asks=[("0.50", "10")]), inject=plan)
    res = await relayer.place(req(Side.BUY, "0.50", "4", OrderType.FOK))
    assert res.outcome is Outcome.UNKNOWN and res.venue_order_id is None and res.fills == ()
    assert [f.size for f in got] == [D("4")]
    found = await relayer.lookup(req(Side.BUY, "0.50", "4"))
    assert found is not None and found.size_matched == D("4")


async def test_unknown_without_accepting_places_nothing() -> None:
    relayer, _, got = make(book(asks=[("0.50", "10")]), inject=FaultPlan().next(Outcome.UNKNOWN, accept=False))
    res = await relayer.place(req(Side.BUY, "0.50", "4", OrderType.FOK))
    assert res.outcome is Outcome.UNKNOWN
    assert got == [] and await relayer.lookup(req(Side.BUY, "0.50", "4")) is None


async def test_cancel_faults_and_accepted_is_not_a_fault() -> None:
    relayer, _, _ = make(book(), inject=FaultPlan().next_cancel(Outcome.RETRYABLE))
    res = await relayer.cancel_all()
    assert res.outcome is Outcome.RETRYABLE and res.error_class is ErrorClass.SERVER
    with pytest.raises(ValueError, match="not a fault"):
        FaultPlan().next(Outcome.ACCEPTED)


async def test_random_faults_are_reproducible_with_a_seed() -> None:
    async def run(seed: int) -> list[Outcome]:
        relayer, _, _ = make(book(), seed=seed, inject=FaultPlan().randomly(Outcome.RETRYABLE, 0.5))
        return [(await relayer.place(req(Side.BUY, "0.10", "5", coid=f"c{i}"))).outcome for i in range(20)]

    a, b = await run(7), await run(7)
    assert a == b
    assert Outcome.RETRYABLE in a and Outcome.ACCEPTED in a


async def test_simulated_latency_uses_the_injected_sleep() -> None:
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    relayer, _, _ = make(book(asks=[("0.50", "10")]), latency_s=0.05, latency_jitter=0.2, sleep=fake_sleep)
    await relayer.place(req(Side.BUY, "0.50", "5"))
    await relayer.cancel_all()
    assert len(slept) == 2 and all(0.04 <= s <= 0.06 for s in slept)
