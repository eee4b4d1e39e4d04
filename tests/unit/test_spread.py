"""Spread quoter on worked examples (prices computed by hand in the comments)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.strategies.spread import QuoteAction, QuoteDecision, Quotes, SpreadConfig, SpreadQuoter
from core.types import BookStatus, OrderType, Side
from tests.unit.strategy_books import StaticBook, binary_market, book

CFG = SpreadConfig(
    min_spread_ticks=3,
    requote_ticks=2,
    size=D(10),
    skew_per_share=D("0.001"),
    max_inventory=D(100),
)
MARKET = binary_market("0xq")
TOKEN = MARKET.tokens[0]


def top(bid: str, ask: str, **kw: object) -> StaticBook:
    return book(TOKEN.token_id, bids=[(bid, "100")], asks=[(ask, "100")], **kw)


def run(
    b: StaticBook, inventory: str = "20", armed: bool = True, current: Quotes | None = None, cfg: SpreadConfig = CFG
) -> QuoteDecision:
    return SpreadQuoter(cfg).quote(MARKET, TOKEN, b, D(inventory), armed, current)


def prices(d: QuoteDecision) -> tuple[D | None, D | None]:
    assert d.quotes is not None
    return (
        d.quotes.bid.price if d.quotes.bid else None,
        d.quotes.ask.price if d.quotes.ask else None,
    )


def test_quotes_one_tick_inside_with_inventory_skew() -> None:
    # book 0.40 / 0.50 (10 ticks), inventory 20: fair = 0.45 - 0.001 x 20 = 0.43
    # half = 0.10/2 - 0.01 = 0.04 -> bid floor(0.39) = 0.39, ask ceil(0.47) = 0.47 (both lower: long)
    d = run(top("0.40", "0.50"))
    assert d.action is QuoteAction.QUOTE
    assert "spread 10 ticks" in d.reason
    assert d.quotes is not None and d.quotes.fair == D("0.43")
    assert prices(d) == (D("0.39"), D("0.47"))
    bid, ask = d.quotes.bid, d.quotes.ask
    assert bid is not None and ask is not None
    assert (bid.side, ask.side) == (Side.BUY, Side.SELL)
    assert bid.size == ask.size == D(10)
    assert bid.post_only and ask.post_only
    assert bid.order_type is ask.order_type is OrderType.GTC
    assert bid.token_id == TOKEN.token_id and bid.market == MARKET.condition_id
    assert bid.group_id == ask.group_id


def test_flat_inventory_quotes_one_tick_inside_each_side_allowing_short() -> None:
    # inventory 0, shorting allowed: fair 0.45 -> 0.41 / 0.49
    d = run(top("0.40", "0.50"), inventory="0", cfg=replace(CFG, allow_short=True))
    assert prices(d) == (D("0.41"), D("0.49"))
    # odd spread 0.40 / 0.45: mid 0.425, half 0.015 -> floor(0.41) = 0.41, ceil(0.44) = 0.44
    d = run(top("0.40", "0.45"), inventory="0", cfg=replace(CFG, allow_short=True))
    assert prices(d) == (D("0.41"), D("0.44"))


def test_without_shares_there_is_no_ask() -> None:
    # Polymarket sells only held shares: flat -> bid only; 7 held -> ask of 7 shares
    d = run(top("0.40", "0.50"), inventory="0")
    assert d.action is QuoteAction.QUOTE and d.quotes is not None
    assert d.quotes.ask is None and d.quotes.bid is not None
    assert "under 5 shares to sell" in d.reason
    d = run(top("0.40", "0.50"), inventory="7.009")
    assert d.quotes is not None and d.quotes.ask is not None and d.quotes.ask.size == D("7.00")
    d = run(top("0.40", "0.50"), inventory="4.99")
    assert d.quotes is not None and d.quotes.ask is None


def test_two_tick_spread_joins_the_best_prices() -> None:
    # 0.40 / 0.42 with min 2 ticks: half = max(0.01 - 0.01, 0.005) -> floor(0.405) = 0.40, ceil(0.415) = 0.42
    cfg = replace(CFG, min_spread_ticks=2, allow_short=True)
    d = run(top("0.40", "0.42"), inventory="0", cfg=cfg)
    assert prices(d) == (D("0.40"), D("0.42"))


def test_narrow_spread_pulls() -> None:
    d = run(top("0.40", "0.42"))
    assert d.action is QuoteAction.PULL and d.quotes is None
    assert "spread 2 ticks < 3" in d.reason


def test_max_inventory_stops_the_bid_and_skew_never_crosses() -> None:
    # inventory 95: a 10-share bid would reach 105 > 100 -> no bid. fair = 0.45 - 0.095 = 0.355
    # ask ceil(0.395) = 0.40 would sit ON the best bid (post-only would cross): lifted to 0.41
    d = run(top("0.40", "0.50"), inventory="95")
    assert d.action is QuoteAction.QUOTE
    assert prices(d) == (None, D("0.41"))
    assert "past 100" in d.reason
    # short side with allow_short: inventory -95, an ask would go to -105 -> ask dropped; the bid is
    # skewed up: fair 0.545 -> floor(0.505) = 0.50 -> capped below the best ask at 0.49
    d = run(top("0.40", "0.50"), inventory="-95", cfg=replace(CFG, allow_short=True))
    assert prices(d) == (D("0.49"), None)
    # both sides impossible -> pull
    d = run(top("0.40", "0.50"), inventory="0", cfg=replace(CFG, max_inventory=D(5)))
    assert d.action is QuoteAction.PULL and "nothing to quote" in d.reason


def test_requote_only_when_fair_moves_enough() -> None:
    first = run(top("0.40", "0.50"))  # fair 0.43
    assert first.action is QuoteAction.QUOTE
    # the same book again: keep (no churn)
    same = run(top("0.40", "0.50"), current=first.quotes)
    assert same.action is QuoteAction.KEEP and same.quotes == first.quotes
    # best bid 0.41: mid 0.455, fair 0.435, moved 0.5 tick < 2 -> keep
    near = run(top("0.41", "0.50"), current=first.quotes)
    assert near.action is QuoteAction.KEEP and "0.5 ticks" in near.reason
    # 0.42 / 0.52: mid 0.47, fair 0.45, moved 2 ticks -> re-quote at floor(0.41) / ceil(0.49)
    far = run(top("0.42", "0.52"), current=first.quotes)
    assert far.action is QuoteAction.QUOTE
    assert prices(far) == (D("0.41"), D("0.49"))
    # inventory 20 -> 17: fair moves 0.003 = 0.3 tick, but the resting 10-share ask is still <= 17: keep
    assert run(top("0.40", "0.50"), inventory="17", current=first.quotes).action is QuoteAction.KEEP
    # inventory 20 -> 8: the resting 10-share ask is now larger than what is held: re-quote with 8
    shrink = run(top("0.40", "0.50"), inventory="8", current=first.quotes)
    assert shrink.action is QuoteAction.QUOTE
    assert shrink.quotes is not None and shrink.quotes.ask is not None and shrink.quotes.ask.size == D(8)


def test_requote_when_a_resting_quote_would_now_cross() -> None:
    cfg = replace(CFG, requote_ticks=10, allow_short=True)
    first = run(top("0.43", "0.47"), inventory="0", cfg=cfg)  # fair 0.45, quotes 0.44 / 0.46
    assert prices(first) == (D("0.44"), D("0.46"))
    # book 0.40 / 0.44: fair 0.42 moved only 3 ticks (< 10), but the resting bid 0.44 meets the ask
    moved = run(top("0.40", "0.44"), inventory="0", current=first.quotes, cfg=cfg)
    assert moved.action is QuoteAction.QUOTE
    assert prices(moved) == (D("0.41"), D("0.43"))


def test_a_side_appearing_forces_a_requote() -> None:
    first = run(top("0.40", "0.50"), inventory="0")  # bid only
    assert first.quotes is not None and first.quotes.ask is None
    # now 10 shares held: the ask side appears even though fair barely moved (0.45 -> 0.44 = 1 tick)
    d = run(top("0.40", "0.50"), inventory="10", current=first.quotes)
    assert d.action is QuoteAction.QUOTE and d.quotes is not None and d.quotes.ask is not None


@pytest.mark.parametrize("status", [BookStatus.STALE, BookStatus.INCONSISTENT, BookStatus.AWAITING_SNAPSHOT])
def test_pull_when_the_book_is_not_ok(status: BookStatus) -> None:
    first = run(top("0.40", "0.50"))
    d = run(top("0.40", "0.50", status=status), current=first.quotes)
    assert d.action is QuoteAction.PULL and d.quotes is None
    assert str(status) in d.reason


def test_pull_when_disarmed_one_sided_crossed_or_closed() -> None:
    first = run(top("0.40", "0.50"))
    disarmed = run(top("0.40", "0.50"), armed=False, current=first.quotes)
    assert disarmed.action is QuoteAction.PULL and "disarmed" in disarmed.reason
    one_sided = SpreadQuoter(CFG).quote(MARKET, TOKEN, book(TOKEN.token_id, bids=[("0.4", "1")]), D(20), True, None)
    assert one_sided.action is QuoteAction.PULL and "one-sided" in one_sided.reason
    crossed = run(top("0.50", "0.45"))
    assert crossed.action is QuoteAction.PULL and "crossed" in crossed.reason
    closed = SpreadQuoter(CFG).quote(replace(MARKET, closed=True), TOKEN, top("0.40", "0.50"), D(20), True, None)
    assert closed.action is QuoteAction.PULL


def test_prices_stay_on_the_coarser_tick() -> None:
    # market tick 0.001 but the book reports 0.01: quote on 0.01
    m = replace(MARKET, tick_size=D("0.001"))
    d = SpreadQuoter(CFG).quote(m, TOKEN.token_id, top("0.40", "0.50"), D(20), True, None)
    assert prices(d) == (D("0.39"), D("0.47"))
    # market 0.001 and book 0.001: one tick inside is now 0.001 -> fair 0.43, half 0.049
    d = SpreadQuoter(CFG).quote(m, TOKEN.token_id, top("0.400", "0.500", tick_size=D("0.001")), D(20), True, None)
    assert prices(d) == (D("0.381"), D("0.479"))


def test_market_minimum_wins_over_config() -> None:
    # the config's 10-share quotes are under this market's 15-share minimum: nothing to quote
    m = replace(MARKET, min_order_size=D(15))
    d = SpreadQuoter(CFG).quote(m, TOKEN, top("0.40", "0.50"), D(40), True, None)
    assert d.action is QuoteAction.PULL and "below the market minimum 15" in d.reason
    # 20-share quotes pass; holding 14 leaves the ask under 15 -> bid only
    d = SpreadQuoter(replace(CFG, size=D(20))).quote(m, TOKEN, top("0.40", "0.50"), D(14), True, None)
    assert d.quotes is not None and d.quotes.bid is not None and d.quotes.ask is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_spread_ticks": 1},
        {"requote_ticks": 0},
        {"size": D("4.999")},
        {"skew_per_share": D("-0.001")},
        {"max_inventory": D(-1)},
        {"min_size": D(0)},
    ],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        replace(CFG, **kwargs)


def test_deterministic() -> None:
    a = run(top("0.40", "0.50"), inventory="33.5")
    b = run(top("0.40", "0.50"), inventory="33.5")
    assert a == b


def test_same_quotes_on_the_real_order_book() -> None:
    book_mod = pytest.importorskip("core.feed.book")
    real = book_mod.Book(TOKEN.token_id, D("0.01"))
    real.apply_snapshot(
        [(D("0.39"), D("50")), (D("0.40"), D("100"))], [(D("0.55"), D("10")), (D("0.50"), D("100"))], ts=1
    )
    d = SpreadQuoter(CFG).quote(MARKET, TOKEN, real, D(20), True, None)
    assert d == run(top("0.40", "0.50"))
    assert prices(d) == (D("0.39"), D("0.47"))


def test_shares_still_settling_count_for_the_limits_but_are_not_sold() -> None:
    # a 10-share bid matched, its trade not settled: held 0, settling +10
    quoter = SpreadQuoter(replace(CFG, max_inventory=D(15)))
    d = quoter.quote(MARKET, TOKEN, top("0.40", "0.50"), D(0), True, None, settling=D(10))
    assert d.action is QuoteAction.PULL, "a bid past max_inventory while the last one settles"
    assert "past 15" in d.reason and "under 5 shares to sell" in d.reason  # nothing in hand to sell
    # the skew follows the position once settled: fair 0.45 - 0.001 x 10 = 0.44 -> bid floor(0.40) = 0.40
    d = SpreadQuoter(CFG).quote(MARKET, TOKEN, top("0.40", "0.50"), D(0), True, None, settling=D(10))
    assert prices(d) == (D("0.40"), None)
    # 20 held, 12 of them sold (matched, unsettled): 8 in hand to offer
    d = SpreadQuoter(CFG).quote(MARKET, TOKEN, top("0.40", "0.50"), D(20), True, None, settling=D(-12))
    assert d.quotes is not None and d.quotes.ask is not None and d.quotes.ask.size == D(8)
