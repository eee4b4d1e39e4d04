"""Property tests for the spread quoter over random books, inventories and resting quotes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal as D

from hypothesis import event, given, settings
from hypothesis import strategies as st

from core.strategies.spread import QuoteAction, QuoteDecision, Quotes, SpreadConfig, SpreadQuoter
from core.types import BookStatus, MarketInfo, OrderType, Side
from tests.unit.strategy_books import StaticBook, binary_market


@dataclass
class Case:
    market: MarketInfo
    book: StaticBook
    cfg: SpreadConfig
    inventory: D
    armed: bool
    current: Quotes | None


@st.composite
def top_of_book(draw: st.DrawFn, token: str, tick: D) -> StaticBook:
    steps = int(1 / tick)
    bid = draw(st.integers(1, steps - 1))
    ask = draw(st.integers(1, steps - 1))
    if draw(st.integers(0, 9)) != 4:  # mostly a proper book, sometimes crossed or locked
        bid, ask = min(bid, ask), max(bid, ask)
    status = BookStatus.OK if draw(st.integers(0, 9)) != 5 else draw(st.sampled_from(list(BookStatus)))
    return StaticBook(
        asset_id=token,
        tick_size=tick,
        bid_levels=[(D(bid) * tick, D(100))],
        ask_levels=[(D(ask) * tick, D(100))],
        status=status,
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    market_tick = draw(st.sampled_from([D("0.01"), D("0.001")]))
    book_tick = draw(st.sampled_from([market_tick, D("0.01")]))
    market = replace(
        binary_market("0xsq", tick=str(market_tick)),
        min_order_size=D(draw(st.sampled_from([1, 5, 12]))),
    )
    token = market.tokens[0].token_id
    cfg = SpreadConfig(
        min_spread_ticks=draw(st.integers(2, 6)),
        requote_ticks=draw(st.integers(1, 4)),
        size=D(draw(st.integers(500, 5000))) / 100,
        skew_per_share=D(draw(st.integers(0, 50))) / 10_000,
        max_inventory=D(draw(st.integers(0, 200))),
        allow_short=draw(st.booleans()),
    )
    inventory = D(draw(st.integers(-20_000, 20_000))) / 100
    current = None
    if draw(st.booleans()):
        prior = SpreadQuoter(cfg).quote(market, token, draw(top_of_book(token, book_tick)), inventory, True, None)
        current = prior.quotes
    return Case(
        market=market,
        book=draw(top_of_book(token, book_tick)),
        cfg=cfg,
        inventory=inventory,
        armed=draw(st.integers(0, 9)) != 3,
        current=current,
    )


def run(case: Case, current: Quotes | None = None) -> QuoteDecision:
    return SpreadQuoter(case.cfg).quote(
        case.market, case.market.tokens[0], case.book, case.inventory, case.armed, current
    )


@settings(max_examples=600, deadline=None)
@given(cases())
def test_quotes_never_cross_stay_on_tick_and_respect_limits(case: Case) -> None:
    d = run(case, case.current)
    event(str(d.action))
    if not case.armed or case.book.status is not BookStatus.OK:
        assert d.action is QuoteAction.PULL
    if d.action is QuoteAction.PULL:
        assert d.quotes is None
        return
    assert d.quotes is not None
    if d.action is QuoteAction.KEEP:
        assert d.quotes == case.current
    best_bid, best_ask = case.book.best_bid(), case.book.best_ask()
    assert best_bid is not None and best_ask is not None and best_bid < best_ask
    tick = max(case.market.tick_size, case.book.tick_size)
    min_size = max(case.cfg.min_size, case.market.min_order_size)
    bid, ask = d.quotes.bid, d.quotes.ask
    assert bid is not None or ask is not None
    for q in (bid, ask):
        if q is None:
            continue
        assert q.price % case.market.tick_size == 0 and q.price % case.book.tick_size == 0
        assert tick <= q.price <= 1 - tick
        assert q.size >= min_size and q.size == q.size.quantize(D("0.01"))
        assert q.post_only and q.order_type is OrderType.GTC
        assert q.token_id == case.market.tokens[0].token_id
    if bid is not None:
        assert bid.side is Side.BUY
        assert bid.price < best_ask, "bid crosses the book"
        assert case.inventory + bid.size <= case.cfg.max_inventory
    if ask is not None:
        assert ask.side is Side.SELL
        assert ask.price > best_bid, "ask crosses the book"
        if case.cfg.allow_short:
            assert case.inventory - ask.size >= -case.cfg.max_inventory
        else:
            assert ask.size <= case.inventory
    if bid is not None and ask is not None:
        assert bid.price < ask.price


@settings(max_examples=300, deadline=None)
@given(cases())
def test_no_churn_and_deterministic(case: Case) -> None:
    d = run(case, case.current)
    assert d == run(case, case.current)
    if d.action is QuoteAction.QUOTE:
        # placing the new quotes and seeing the same book again changes nothing
        again = run(case, d.quotes)
        assert again.action is QuoteAction.KEEP and again.quotes == d.quotes
