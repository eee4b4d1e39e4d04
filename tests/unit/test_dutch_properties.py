"""Property tests for the Dutch book over random books, checked against a brute-force reference."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_UP
from decimal import Decimal as D

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.strategies.dutch import DutchConfig, DutchOpportunity, evaluate_binary, evaluate_event
from core.types import BookStatus, MarketInfo
from tests.unit.strategy_books import StaticBook, binary_market, neg_risk_event, yes_tokens

TICKS = [D("0.01"), D("0.001")]


@dataclass
class Case:
    kind: str
    markets: list[MarketInfo]
    tokens: list[str]
    books: dict[str, StaticBook]
    cfg: DutchConfig


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["binary", "neg_risk"]))
    n = 2 if kind == "binary" else draw(st.integers(2, 6))
    tick = draw(st.sampled_from(TICKS))
    book_tick = draw(st.sampled_from([tick, tick, D("0.01")]))
    rate = draw(st.sampled_from(["0", "0.02", "0.04", "0.07", "0.1"]))
    min_size = draw(st.sampled_from(["1", "5"]))
    if kind == "binary":
        markets = [binary_market("0xp", tick=str(tick), fee_rate=rate, min_size=min_size)]
        tokens = [t.token_id for t in markets[0].tokens]
    else:
        markets = neg_risk_event(n, tick=str(tick), fee_rate=rate, min_size=min_size)
        tokens = yes_tokens(markets)
    steps = int(1 / tick)
    # centre the asks on 1/n so a good share of cases have an edge at the top of book
    centre = steps // n
    books: dict[str, StaticBook] = {}
    for tok in tokens:
        n_levels = draw(st.integers(1, 6))
        start = draw(st.integers(max(1, centre - steps // 15), centre + steps // 100))
        gaps = draw(st.lists(st.integers(1, max(1, steps // 100)), min_size=n_levels, max_size=n_levels))
        prices, p = [], start
        for g in gaps:
            if p >= steps:
                break
            prices.append(D(p) * tick)
            p += g
        sizes = draw(st.lists(st.integers(0, 50_000), min_size=len(prices), max_size=len(prices)))
        books[tok] = StaticBook(
            asset_id=tok,
            tick_size=book_tick,
            ask_levels=[(pr, D(sz) / 100) for pr, sz in zip(prices, sizes, strict=True)],
        )
    # one case in ten spoils one leg: a book not ok, or an empty ask side
    spoil = draw(st.integers(0, 9))  # hypothesis favours the bounds: spoil on middle values
    if spoil == 4:
        victim = books[draw(st.sampled_from(tokens))]
        victim.status = draw(st.sampled_from([s for s in BookStatus if s is not BookStatus.OK]))
    elif spoil == 5:
        books[draw(st.sampled_from(tokens))].ask_levels = []
    cfg = DutchConfig(
        safety_margin_usdc=draw(st.sampled_from([D(0), D("0.001"), D("0.005"), D("0.01")])),
        slippage_ticks=draw(st.integers(0, 2)),
        fee_rate_override=draw(st.sampled_from([None, None, D("0.002")])),
        max_sets=draw(st.sampled_from([None, None, D("7.5"), D("123.45")])),
        min_resting_size=draw(st.sampled_from([D(0), D(5)])),
        min_marketable_notional=draw(st.sampled_from([D(0), D(1)])),
    )
    return Case(kind, markets, tokens, books, cfg)


def run(case: Case, ts: object = None) -> DutchOpportunity | None:
    if case.kind == "binary":
        return evaluate_binary(case.markets[0], case.books, case.cfg, ts=ts)
    return evaluate_event(case.markets, case.books, case.cfg, ts=ts)


def leg_market(case: Case, i: int) -> MarketInfo:
    return case.markets[0] if case.kind == "binary" else case.markets[i]


def grid(case: Case, i: int) -> D:
    return max(leg_market(case, i).tick_size, case.books[case.tokens[i]].tick_size)


def rate_of(case: Case, i: int) -> D:
    return case.cfg.fee_rate_override if case.cfg.fee_rate_override is not None else leg_market(case, i).fee_rate


def reference_limit(case: Case, i: int, shares: D) -> D | None:
    """Independent: the deepest level needed for ``shares``, ceiled to the grid, + slippage, capped."""
    tick = grid(case, i)
    left = shares
    deepest = None
    for price, size in case.books[case.tokens[i]].ask_levels:
        if size <= 0:
            continue
        deepest = price
        left -= min(size, left)
        if left == 0:
            break
    if left > 0 or deepest is None or deepest > 1 - tick:
        return None
    ceiled = max((deepest / tick).to_integral_value(rounding=ROUND_UP) * tick, tick)
    return min(ceiled + case.cfg.slippage_ticks * tick, 1 - tick)


def reference_slack(case: Case, shares: D) -> D | None:
    """sets - worst cost - worst fee - margin, or None if unfillable.

    Worst fee: every leg's fee at its limit price, summed unrounded, rounded UP to 5 dp (the
    venue rounds each fill down, so no split of the fills can cost more)."""
    total = shares * (1 - case.cfg.safety_margin_usdc)
    raw_fee = D(0)
    for i in range(len(case.tokens)):
        lim = reference_limit(case, i, shares)
        if lim is None:
            return None
        raw_fee += shares * rate_of(case, i) * lim * (1 - lim)
        total -= shares * lim
    return total - raw_fee.quantize(D("0.00001"), rounding=ROUND_UP)


def meets_minimums(case: Case, shares: D) -> bool:
    for i in range(len(case.tokens)):
        lim = reference_limit(case, i, shares)
        assert lim is not None
        if shares < max(leg_market(case, i).min_order_size, case.cfg.min_resting_size):
            return False
        if shares * lim < case.cfg.min_marketable_notional:
            return False
    return True


def reference_sets(case: Case) -> D | None:
    """Brute force over every breakpoint: the largest 2-dp size whose exact worst case clears the bar."""
    if any(b.status is not BookStatus.OK for b in case.books.values()):
        return None
    candidates: set[D] = set()
    for tok in case.tokens:
        cum = D(0)
        for _, size in case.books[tok].ask_levels:
            cum += size
            candidates.add(cum)
    if case.cfg.max_sets is not None:
        candidates = {min(c, case.cfg.max_sets) for c in candidates} | {case.cfg.max_sets}
    for c in sorted({c.quantize(D("0.01"), rounding=ROUND_DOWN) for c in candidates}, reverse=True):
        if c <= 0:
            continue
        slack = reference_slack(case, c)
        if slack is not None and slack > 0:
            return c if meets_minimums(case, c) else None
    return None


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases())
def test_never_emits_a_set_that_can_lose_and_every_order_is_valid(case: Case) -> None:
    opp = run(case)
    if opp is None:
        return
    assert all(b.status is BookStatus.OK for b in case.books.values())
    sets = opp.sets
    assert sets > 0 and sets == sets.quantize(D("0.01"))
    assert len(opp.legs) == len(case.tokens)
    worst = D(0)
    for i, leg in enumerate(opp.legs):
        market = leg_market(case, i)
        tick = grid(case, i)
        assert leg.token_id == case.tokens[i] and leg.market == market.condition_id
        assert leg.size == sets
        assert leg.price % market.tick_size == 0 and leg.price % case.books[leg.token_id].tick_size == 0
        assert tick <= leg.price <= 1 - tick
        assert sets >= max(market.min_order_size, case.cfg.min_resting_size)
        assert leg.notional >= case.cfg.min_marketable_notional
        assert not leg.post_only and leg.group_id == opp.group_id
        # the book holds the whole leg at or below the limit
        assert sum((s for p, s in case.books[leg.token_id].ask_levels if p <= leg.price), D(0)) >= sets
        # worst case: everything fills at the limit, fee unrounded
        worst += sets * leg.price + sets * rate_of(case, i) * leg.price * (1 - leg.price)
    assert worst + sets * case.cfg.safety_margin_usdc < sets, "worst-case cost + fees + margin >= payout"
    assert opp.worst_total_edge > sets * case.cfg.safety_margin_usdc
    assert opp.total_edge >= opp.worst_total_edge


@SETTINGS
@given(cases())
def test_matches_brute_force_reference(case: Case) -> None:
    opp = run(case)
    expected = reference_sets(case)
    event("emitted" if opp is not None else "nothing")
    assert (opp.sets if opp is not None else None) == expected


@settings(max_examples=150, deadline=None)
@given(cases())
def test_same_input_same_output(case: Case) -> None:
    first = run(case, ts=42)
    again = run(
        replace(case, books={k: replace(b, ask_levels=list(b.ask_levels)) for k, b in case.books.items()}), ts=42
    )
    assert first == again
    if first is not None:
        assert again is not None and first.reason == again.reason and first.group_id == again.group_id
        assert first.leg_avg_prices == again.leg_avg_prices
