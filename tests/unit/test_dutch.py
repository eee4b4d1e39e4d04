"""Dutch book on worked examples: every expected figure below is computed by hand in the comments."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.fees import rate_from_bps
from core.strategies.dutch import DutchConfig, DutchOpportunity, evaluate_binary, evaluate_event
from core.types import BookStatus, OrderType, Side
from tests.unit.strategy_books import StaticBook, binary_market, book, neg_risk_event, yes_tokens

# ---------------------------------------------------------------------------------------------
# Binary market, tick 0.01, fee rate 0.02, margin 0.01, slippage 1 tick.
#
#   YES asks: 0.45 x 100, 0.46 x 200, 0.50 x 500      cumulative 100, 300, 800
#   NO  asks: 0.50 x 150, 0.51 x 100, 0.55 x 1000     cumulative 150, 250, 1250
#
# Worst cost of one share with deepest level w: L = w + 1 tick, all-in = L + 0.02 x L x (1 - L).
#   sets in (0, 100]:   YES L=0.46 -> 0.46 + 0.02 x 0.2484 = 0.464968
#                       NO  L=0.51 -> 0.51 + 0.02 x 0.2499 = 0.514998
#                       + margin 0.01 = 0.989966 < 1   feasible
#   sets in (100, 150]: YES L=0.47 -> 0.47 + 0.02 x 0.2491 = 0.474982
#                       NO  0.514998;  + 0.01 = 0.999980 < 1   feasible
#   sets in (150, 250]: NO  L=0.52 -> 0.52 + 0.02 x 0.2496 = 0.524992
#                       0.474982 + 0.524992 + 0.01 = 1.009974 >= 1   not feasible
# -> 150 sets. Legs: BUY YES 150 @ 0.47, BUY NO 150 @ 0.51.
#
# Expected fill (walking the levels; one fill per level, each fee rounded down to 5 dp):
#   YES: 100 x 0.45 + 50 x 0.46 = 45 + 23 = 68
#        fees 100 x 0.02 x 0.45 x 0.55 = 0.495 ; 50 x 0.02 x 0.46 x 0.54 = 0.2484
#   NO : 150 x 0.50 = 75 ; fee 150 x 0.02 x 0.25 = 0.75
#   cost 143, fees 1.4934, edge 150 - 143 - 1.4934 = 5.5066 (0.036711 per set)
# Worst case (limit prices): cost 150 x (0.47 + 0.51) = 147
#   fees 150 x 0.02 x 0.47 x 0.53 = 0.7473 ; 150 x 0.02 x 0.51 x 0.49 = 0.7497 ; total 1.497
#   edge 150 - 147 - 1.497 = 1.503 > margin 150 x 0.01 = 1.5   -> emitted (by 0.003)
# ---------------------------------------------------------------------------------------------

BINARY_CFG = DutchConfig(safety_margin_usdc=D("0.01"), slippage_ticks=1)


def binary_books(fee_market: str = "0.02") -> tuple:
    m = binary_market("0xbin", fee_rate=fee_market)
    yes, no = (t.token_id for t in m.tokens)
    books = {
        yes: book(yes, asks=[("0.45", "100"), ("0.46", "200"), ("0.50", "500")], bids=[("0.44", "10")]),
        no: book(no, asks=[("0.50", "150"), ("0.51", "100"), ("0.55", "1000")], bids=[("0.49", "10")]),
    }
    return m, books


def test_binary_worked_example() -> None:
    m, books = binary_books()
    opp = evaluate_binary(m, books, BINARY_CFG)
    assert opp is not None
    assert opp.kind == "binary"
    assert opp.sets == D("150")
    assert [(leg.token_id, leg.side, leg.price, leg.size) for leg in opp.legs] == [
        ("0xbin-yes", Side.BUY, D("0.47"), D("150")),
        ("0xbin-no", Side.BUY, D("0.51"), D("150")),
    ]
    assert all(leg.order_type is OrderType.FOK and not leg.post_only for leg in opp.legs)
    assert all(leg.group_id == opp.group_id for leg in opp.legs)
    assert opp.total_cost == D("143")
    assert opp.total_fee == D("1.4934")
    assert opp.total_edge == D("5.5066")
    assert opp.edge_per_set == D("0.036711")
    assert opp.cost_per_set == D("0.953333")
    assert opp.fee_per_set == D("0.009956")
    assert opp.worst_cost_per_set == D("0.98")
    assert opp.worst_fee_per_set == D("0.00998")
    assert opp.worst_total_edge == D("1.503")
    assert opp.worst_edge_per_set == D("0.01002")
    assert opp.leg_avg_prices == (D("0.453333"), D("0.5"))
    assert opp.leg_deepest_levels == (D("0.46"), D("0.50"))
    assert "150" in opp.reason and "binary" in opp.reason


def test_binary_size_shrinks_when_the_margin_grows() -> None:
    # margin 0.011: segment (100, 150] costs 0.98998 + 0.011 = 1.00098 -> only 100 sets
    # (segment (0, 100]: 0.979966 + 0.011 = 0.990966 < 1)
    m, books = binary_books()
    opp = evaluate_binary(m, books, replace(BINARY_CFG, safety_margin_usdc=D("0.011")))
    assert opp is not None and opp.sets == D("100")
    assert [leg.price for leg in opp.legs] == [D("0.46"), D("0.51")]
    # margin 0.03: even the top costs 0.979966 + 0.03 >= 1
    assert evaluate_binary(m, books, replace(BINARY_CFG, safety_margin_usdc=D("0.03"))) is None


def test_max_sets_caps_the_size() -> None:
    m, books = binary_books()
    opp = evaluate_binary(m, books, replace(BINARY_CFG, max_sets=D("42.5")))
    assert opp is not None and opp.sets == D("42.5")
    # 42.5 shares stay on the top level of both legs: limits 0.45+0.01 and 0.50+0.01
    assert [leg.price for leg in opp.legs] == [D("0.46"), D("0.51")]


def test_fee_kills_a_marginal_opportunity() -> None:
    # YES 0.48 x 100, NO 0.50 x 100; no slippage, no margin: 0.02 per set before fees.
    # fee per set = rate x (0.48 x 0.52 + 0.5 x 0.5) = rate x 0.4996
    #   rate 0.04: 0.019984 < 0.02   -> worst edge 100 x 0.000016 = 0.0016, emitted
    #   rate 0.05: 0.02498  >= 0.02  -> nothing
    cfg = DutchConfig(safety_margin_usdc=D(0), slippage_ticks=0)
    for rate, expect in (("0", D("2")), ("0.04", D("0.0016")), ("0.05", None)):
        m = binary_market("0xfee", fee_rate=rate)
        yes, no = (t.token_id for t in m.tokens)
        books = {yes: book(yes, asks=[("0.48", "100")]), no: book(no, asks=[("0.50", "100")])}
        opp = evaluate_binary(m, books, cfg)
        if expect is None:
            assert opp is None
        else:
            assert opp is not None and opp.worst_total_edge == expect
    # the --fee-bps override replaces the market's rate: 500 bps = 0.05 kills it on a fee-free market
    m = binary_market("0xfee", fee_rate="0")
    yes, no = (t.token_id for t in m.tokens)
    books = {yes: book(yes, asks=[("0.48", "100")]), no: book(no, asks=[("0.50", "100")])}
    assert evaluate_binary(m, books, cfg) is not None
    assert evaluate_binary(m, books, replace(cfg, fee_rate_override=rate_from_bps(500))) is None


# ---------------------------------------------------------------------------------------------
# 5-outcome neg-risk event, tick 0.01, fee rate 0.02, margin 0.005, no slippage.
#
#   m0: 0.30 x 40, 0.31 x 100      cumulative 40, 140
#   m1: 0.25 x 60, 0.26 x 100      cumulative 60, 160
#   m2: 0.20 x 200                 cumulative 200
#   m3: 0.12 x 30, 0.13 x 50, 0.15 x 500   cumulative 30, 80, 580
#   m4: 0.08 x 80, 0.09 x 100      cumulative 80, 180
#
# all-in = p + 0.02 x p x (1 - p):
#   0.30 -> 0.3042   0.31 -> 0.314278   0.25 -> 0.25375   0.26 -> 0.263848   0.20 -> 0.2032
#   0.12 -> 0.122112 0.13 -> 0.132262   0.08 -> 0.081472
#   (0, 30]:  0.3042 + 0.25375 + 0.2032 + 0.122112 + 0.081472 = 0.964734 (+0.005 = 0.969734) ok
#   (30, 40]: m3 -> 0.132262: 0.974884 (+0.005 = 0.979884) ok
#   (40, 60]: m0 -> 0.314278: 0.984962 (+0.005 = 0.989962) ok
#   (60, 80]: m1 -> 0.263848: 0.995060 (+0.005 = 1.000060) no
# -> 60 sets, limits 0.31, 0.25, 0.20, 0.13, 0.08.
# Expected fill:
#   m0: 40 x 0.30 + 20 x 0.31 = 18.2 ; fees 40 x 0.02 x 0.21 = 0.168, 20 x 0.02 x 0.2139 = 0.08556
#   m1: 60 x 0.25 = 15               ; fee 60 x 0.02 x 0.1875 = 0.225
#   m2: 60 x 0.20 = 12               ; fee 60 x 0.02 x 0.16 = 0.192
#   m3: 30 x 0.12 + 30 x 0.13 = 7.5  ; fees 30 x 0.02 x 0.1056 = 0.06336, 30 x 0.02 x 0.1131 = 0.06786
#   m4: 60 x 0.08 = 4.8              ; fee 60 x 0.02 x 0.0736 = 0.08832
#   cost 57.5, fees 0.8901, edge 60 - 57.5 - 0.8901 = 1.6099 (0.026832 per set)
# Worst case: cost 60 x 0.97 = 58.2 ; fees 60 x 0.02 x (0.2139 + 0.1875 + 0.16 + 0.1131 + 0.0736)
#   = 1.2 x 0.7481 = 0.89772 ; edge 60 - 58.2 - 0.89772 = 0.90228 > margin 60 x 0.005 = 0.3
# ---------------------------------------------------------------------------------------------

EVENT_ASKS = [
    [("0.30", "40"), ("0.31", "100")],
    [("0.25", "60"), ("0.26", "100")],
    [("0.20", "200")],
    [("0.12", "30"), ("0.13", "50"), ("0.15", "500")],
    [("0.08", "80"), ("0.09", "100")],
]
EVENT_CFG = DutchConfig(safety_margin_usdc=D("0.005"), slippage_ticks=0)


def event_books(markets: list, asks: list = EVENT_ASKS, **kw: object) -> dict[str, StaticBook]:
    return {tok: book(tok, asks=a, **kw) for tok, a in zip(yes_tokens(markets), asks, strict=True)}


def test_neg_risk_five_outcome_worked_example() -> None:
    markets = neg_risk_event(5, fee_rate="0.02")
    opp = evaluate_event(markets, event_books(markets), EVENT_CFG)
    assert opp is not None
    assert opp.kind == "neg_risk"
    assert opp.sets == D("60")
    assert [leg.token_id for leg in opp.legs] == yes_tokens(markets)
    assert [leg.price for leg in opp.legs] == [D("0.31"), D("0.25"), D("0.20"), D("0.13"), D("0.08")]
    assert {leg.size for leg in opp.legs} == {D("60")}
    assert {leg.side for leg in opp.legs} == {Side.BUY}
    assert opp.total_cost == D("57.5")
    assert opp.total_fee == D("0.8901")
    assert opp.total_edge == D("1.6099")
    assert opp.edge_per_set == D("0.026832")
    assert opp.worst_cost_per_set == D("0.97")
    assert opp.worst_total_edge == D("0.90228")
    assert opp.worst_edge_per_set == D("0.015038")
    assert opp.payout == D("60")


def test_neg_risk_with_slippage_and_fak() -> None:
    # 1 tick of slippage on every leg: (0, 30] limits 0.31 0.26 0.21 0.13 0.09
    #   all-in 0.314278 + 0.263848 + (0.21 + 0.02 x 0.1659 = 0.213318) + 0.132262 + (0.09 + 0.02 x 0.0819 = 0.091638)
    #   = 1.015344 >= 1 -> nothing at all
    markets = neg_risk_event(5, fee_rate="0.02")
    assert evaluate_event(markets, event_books(markets), replace(EVENT_CFG, slippage_ticks=1)) is None
    # without fees the same slippage leaves 1 - 0.995 - 0.005 = 0 -> still nothing (strict <)
    markets0 = neg_risk_event(5, fee_rate="0")
    assert evaluate_event(markets0, event_books(markets0), replace(EVENT_CFG, slippage_ticks=1)) is None
    # margin 0: (0, 30] costs 0.31 + 0.26 + 0.21 + 0.13 + 0.09 = 1.00 -> nothing; 0.999 would be needed
    cfg = replace(EVENT_CFG, slippage_ticks=1, safety_margin_usdc=D(0), order_type=OrderType.FAK)
    assert evaluate_event(markets0, event_books(markets0), cfg) is None
    # cheaper m2 (0.18): (0, 30] = 0.31 + 0.26 + 0.19 + 0.13 + 0.09 = 0.98 ; (30, 40] m3 -> 0.14: 0.99 ;
    # (40, 60] m0 -> 0.32: 1.00 -> stop at 40 sets, FAK legs
    asks = [list(a) for a in EVENT_ASKS]
    asks[2] = [("0.18", "200")]
    opp = evaluate_event(markets0, event_books(markets0, asks), cfg)
    assert opp is not None and opp.sets == D("40")
    assert [leg.price for leg in opp.legs] == [D("0.31"), D("0.26"), D("0.19"), D("0.14"), D("0.09")]
    assert {leg.order_type for leg in opp.legs} == {OrderType.FAK}
    # worst edge 40 x (1 - 0.99) = 0.4 ; expected: 40 x (1 - (0.30 + 0.25 + 0.18 + 0.12 + 0.08)) less
    #   0.01 more on m3's 10 shares from its 2nd level = 40 x 0.07 - 0.1 = 2.7
    assert opp.worst_total_edge == D("0.4")
    assert opp.total_edge == D("2.7")


def test_augmented_event_yields_nothing() -> None:
    markets = neg_risk_event(5, augmented=True)
    cheap = [[("0.05", "1000")] for _ in range(5)]  # 0.25 for a set: huge if it paid 1, but it may not
    assert evaluate_event(markets, event_books(markets, cheap), EVENT_CFG) is None
    # one augmented member is enough
    markets = neg_risk_event(5)
    markets[3] = replace(markets[3], neg_risk_augmented=True)
    assert evaluate_event(markets, event_books(markets, cheap), EVENT_CFG) is None
    # and a binary member of an augmented event is refused too
    assert evaluate_binary(markets[3], {}, EVENT_CFG) is None


@pytest.mark.parametrize("status", [BookStatus.STALE, BookStatus.INCONSISTENT, BookStatus.AWAITING_SNAPSHOT])
def test_a_book_not_ok_yields_nothing(status: BookStatus) -> None:
    markets = neg_risk_event(5)
    books = event_books(markets)
    assert evaluate_event(markets, books, EVENT_CFG) is not None
    books[yes_tokens(markets)[4]].status = status
    assert evaluate_event(markets, books, EVENT_CFG) is None
    m, bbooks = binary_books()
    bbooks["0xbin-no"].status = status
    assert evaluate_binary(m, bbooks, BINARY_CFG) is None


def test_missing_book_or_empty_asks_yield_nothing() -> None:
    markets = neg_risk_event(5)
    books = event_books(markets)
    del books[yes_tokens(markets)[2]]
    assert evaluate_event(markets, books, EVENT_CFG) is None
    books = event_books(markets)
    books[yes_tokens(markets)[2]].ask_levels = []
    assert evaluate_event(markets, books, EVENT_CFG) is None


def test_closed_market_yields_nothing() -> None:
    m, books = binary_books()
    assert evaluate_binary(replace(m, closed=True), books, BINARY_CFG) is None
    assert evaluate_binary(replace(m, active=False), books, BINARY_CFG) is None


def test_minimum_size_and_one_dollar_notional() -> None:
    cfg = DutchConfig(safety_margin_usdc=D(0), slippage_ticks=0)
    # depth 4.99 shares: 0.95 a set, but below the 5-share minimum -> nothing
    m = binary_market("0xmin")
    yes, no = (t.token_id for t in m.tokens)
    books = {yes: book(yes, asks=[("0.05", "4.99")]), no: book(no, asks=[("0.90", "100")])}
    assert evaluate_binary(m, books, cfg) is None
    books[yes].ask_levels = [(D("0.05"), D("5"))]
    # 5 shares pass the size minimum, but the YES leg is 5 x 0.05 = 0.25 pUSD < $1 -> nothing
    assert evaluate_binary(m, books, cfg) is None
    # 20 shares: 20 x 0.05 = 1.00 >= $1 -> emitted, sized 20
    books[yes].ask_levels = [(D("0.05"), D("20"))]
    opp = evaluate_binary(m, books, cfg)
    assert opp is not None and opp.sets == D("20")
    assert min(leg.notional for leg in opp.legs) == D("1.00")
    # a market whose own minimum is 25 shares wins over the config's 5
    assert evaluate_binary(replace(m, min_order_size=D(25)), books, cfg) is None
    # and a config floor of 50 wins over the market's 5
    assert evaluate_binary(m, books, replace(cfg, min_resting_size=D(50))) is None


def test_sizes_round_down_to_two_decimals() -> None:
    cfg = DutchConfig(safety_margin_usdc=D(0), slippage_ticks=0)
    m = binary_market("0xdp")
    yes, no = (t.token_id for t in m.tokens)
    books = {yes: book(yes, asks=[("0.40", "33.337")]), no: book(no, asks=[("0.50", "70")])}
    opp = evaluate_binary(m, books, cfg)
    assert opp is not None and opp.sets == D("33.33")


def test_off_grid_level_is_ceiled_to_the_coarser_tick() -> None:
    # book on 0.001 (a tick change in flight), market on 0.01: 0.453 -> limit 0.46 (ceil, still crosses)
    cfg = DutchConfig(safety_margin_usdc=D(0), slippage_ticks=0)
    m = binary_market("0xtick")
    yes, no = (t.token_id for t in m.tokens)
    books = {
        yes: book(yes, asks=[("0.453", "100")], tick_size=D("0.001")),
        no: book(no, asks=[("0.50", "100")], tick_size=D("0.001")),
    }
    opp = evaluate_binary(m, books, cfg)
    assert opp is not None
    assert [leg.price for leg in opp.legs] == [D("0.46"), D("0.50")]
    # the book's own tick is coarser than the market's: the book's grid is used
    m001 = binary_market("0xtick", tick="0.001")
    books[yes].tick_size = books[no].tick_size = D("0.01")
    opp = evaluate_binary(m001, books, cfg)
    assert opp is not None and opp.legs[0].price == D("0.46")


def test_limit_is_capped_below_one() -> None:
    # NO at 0.99 + 1 tick slippage would be 1.00: capped at 0.99 (1 - tick)
    cfg = DutchConfig(safety_margin_usdc=D(0), slippage_ticks=1)
    m = binary_market("0xcap")
    yes, no = (t.token_id for t in m.tokens)
    books = {yes: book(yes, asks=[("0.001", "5000")], tick_size=D("0.001")), no: book(no, asks=[("0.99", "500")])}
    opp = evaluate_binary(replace(m, tick_size=D("0.001")), books, cfg)
    # YES: tick 0.001 market and book -> limit 0.002 ; NO: book tick 0.01 -> 0.99 + 0.01 capped at 0.99
    # worst 0.992 a set; 500 sets (NO depth); YES notional 500 x 0.002 = 1.00, just the $1 minimum
    assert opp is not None
    assert [leg.price for leg in opp.legs] == [D("0.002"), D("0.99")]
    assert opp.sets == D("500")
    assert opp.worst_total_edge == D("4")


def test_bad_event_membership_is_refused_loudly() -> None:
    markets = neg_risk_event(3)
    books = event_books(markets, EVENT_ASKS[:3])
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_event(markets[:1], books, EVENT_CFG)
    with pytest.raises(ValueError, match="not a member"):
        evaluate_event([*markets[:2], replace(markets[2], neg_risk_market_id="0xother")], books, EVENT_CFG)
    with pytest.raises(ValueError, match="not a member"):
        evaluate_event([*markets[:2], replace(markets[2], neg_risk=False)], books, EVENT_CFG)
    with pytest.raises(ValueError, match="twice"):
        evaluate_event([markets[0], markets[1], markets[0]], books, EVENT_CFG)
    with pytest.raises(ValueError, match="2 tokens"):
        evaluate_binary(replace(markets[0], tokens=markets[0].tokens[:1]), books, EVENT_CFG)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"safety_margin_usdc": D("-0.01"), "slippage_ticks": 0},
        {"safety_margin_usdc": D(0), "slippage_ticks": -1},
        {"safety_margin_usdc": D(0), "slippage_ticks": 0, "fee_rate_override": D(20)},
        {"safety_margin_usdc": D(0), "slippage_ticks": 0, "max_sets": D(0)},
        {"safety_margin_usdc": D(0), "slippage_ticks": 0, "order_type": OrderType.GTC},
    ],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DutchConfig(**kwargs)


def test_deterministic_and_group_id_tracks_inputs() -> None:
    markets = neg_risk_event(5, fee_rate="0.02")
    first = evaluate_event(markets, event_books(markets), EVENT_CFG, ts=1700000000123)
    second = evaluate_event(markets, event_books(markets), EVENT_CFG, ts=1700000000123)
    assert isinstance(first, DutchOpportunity) and first == second
    assert [leg.reason for leg in first.legs] == [leg.reason for leg in second.legs]
    assert first.group_id.startswith("dutch-")
    other_ts = evaluate_event(markets, event_books(markets), EVENT_CFG, ts=1700000000124)
    assert other_ts is not None and other_ts.group_id != first.group_id
    asks = [list(a) for a in EVENT_ASKS]
    asks[0] = [("0.30", "45"), ("0.31", "100")]  # 5 more shares at the top: the fill costs change
    moved = evaluate_event(markets, event_books(markets, asks), EVENT_CFG, ts=1700000000123)
    assert moved is not None and moved.group_id != first.group_id


def test_deep_books_are_fetched_past_the_first_slice() -> None:
    # 30 levels of 1 share on one leg: the sweep must look past the first 8 levels it asks for
    cfg = DutchConfig(safety_margin_usdc=D(0), slippage_ticks=0, min_resting_size=D(1), min_marketable_notional=D(0))
    m = binary_market("0xdeep")
    yes, no = (t.token_id for t in m.tokens)
    books = {
        yes: book(yes, asks=[(f"0.{10 + i}", "1") for i in range(30)]),  # 0.10 .. 0.39, 1 share each
        no: book(no, asks=[("0.60", "1000")]),
    }
    opp = evaluate_binary(m, books, cfg)
    # every YES level up to 0.39 costs < 0.40: all 30 shares, deepest 0.39
    assert opp is not None and opp.sets == D("30")
    assert opp.legs[0].price == D("0.39")
    # expected cost: sum(0.10..0.39) = 30 x 0.245 = 7.35 ; + 30 x 0.60 = 18 ; edge 30 - 25.35 = 4.65
    assert opp.total_edge == D("4.65")


def test_same_result_on_the_real_order_book() -> None:
    # the feed's Book (wire order: bids ascending, asks descending) must give the worked example too
    book_mod = pytest.importorskip("core.feed.book")
    m, static = binary_books()
    real = {}
    for token, sb in static.items():
        b = book_mod.Book(token, D("0.01"))
        b.apply_snapshot(list(reversed(sb.bid_levels)), list(reversed(sb.ask_levels)), ts=1)
        assert b.status is BookStatus.OK
        real[token] = b
    assert evaluate_binary(m, real, BINARY_CFG, ts=5) == evaluate_binary(m, static, BINARY_CFG, ts=5)
    # a delta removes YES's best level (0.45): YES now starts at 0.46 x 200.
    # YES L=0.47 all-in 0.474982 + NO 0.514998 + 0.01 = 0.99998 < 1 up to NO's 150;
    # then NO L=0.52 -> 1.009974: 150 sets, YES all at 0.46 (cost 69), NO at 0.50 (cost 75)
    assert real["0xbin-yes"].apply_level(Side.SELL, D("0.45"), D("0"), 2)
    opp = evaluate_binary(m, real, BINARY_CFG)
    assert opp is not None and opp.sets == D("150")
    assert opp.leg_costs == (D("69.00"), D("75.00"))


def test_fast_leg_intents_are_ordinary_frozen_intents() -> None:
    import dataclasses

    from core.strategies import dutch
    from core.types import Intent

    assert dutch._FAST_INTENT, "core.types.Intent changed: the Dutch legs fell back to the slow constructor"
    fast = dutch._buy_intent("0xm", "tok", D("0.31"), D("12.5"), OrderType.FAK, "dutch-x", "dutch neg_risk leg 1/4")
    slow = Intent(
        "0xm", "tok", Side.BUY, D("0.31"), D("12.5"), OrderType.FAK, False, "dutch-x", "dutch neg_risk leg 1/4"
    )
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    assert fast.notional == D("3.875")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.price = D("0.5")  # type: ignore[misc]
    fast.meta["note"] = "x"  # each leg has its own meta dict
    assert dutch._buy_intent("0xm", "tok", D("0.31"), D(1), OrderType.FOK, "g", "r").meta == {}
