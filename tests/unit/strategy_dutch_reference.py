"""The Dutch book's evaluation as it was before the integer-unit hot path (issue 15): Decimal
throughout, the book's levels fetched as Decimal lists. Kept verbatim as the oracle the new path
is compared with (tests/unit/test_strategy_dutch_units.py): same opportunities, same Decimals
(value and exponent), same group ids."""

from __future__ import annotations

import enum
import hashlib
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from core.fees import FEE_QUANTUM, fee_floor_unchecked
from core.strategies.dutch import DutchConfig, DutchOpportunity
from core.types import BookStatus, BookView, Intent, Level, MarketInfo, Side

SIZE_QUANTUM = Decimal("0.01")

ZERO = Decimal(0)
ONE = Decimal(1)
_FIRST_DEPTH = 1
_INFEASIBLE = Decimal(2)
"""All-in price of a level the limit cannot reach: larger than any payout."""


@dataclass(slots=True, eq=False)
class Leg:
    market: MarketInfo
    token_id: str
    book: BookView
    tick: Decimal
    cap: Decimal  # highest price on the grid: 1 - tick
    slip: Decimal
    rate: Decimal
    best: Decimal  # best ask seen by the top-of-book pass, its limit price and worst cost per
    best_lim: Decimal  # share: the sweep and the sizing reuse them (most legs fill at the top)
    best_all_in: Decimal
    levels: list[Level] = field(default_factory=list)
    complete: bool = False  # levels hold the whole ask side
    idx: int = -1  # deepest level the sweep has reached
    cum: Decimal = ZERO  # shares available down to that level
    all_in: Decimal = ZERO  # worst cost of one share if that level is the deepest needed


def limit_price(level_price: Decimal, tick: Decimal, slip: Decimal, cap: Decimal) -> Decimal:
    if level_price % tick:
        # a level off the grid (tick just changed): the next tick up still crosses it
        level_price = (level_price / tick).to_integral_value(rounding=ROUND_UP) * tick
    if level_price < tick:
        level_price = tick
    price = level_price + slip
    return cap if price > cap else price


def _step(leg: Leg) -> bool:
    """Move the leg down to its next non-empty ask level (fetching deeper as needed): update
    ``idx``, ``cum`` and ``all_in``. False when the ask side has no more levels."""
    j = leg.idx + 1
    levels = leg.levels
    while True:
        if j >= len(levels):
            if leg.complete:
                return False
            # fetch lazily and grow by doubling: a set rarely needs more than a couple of levels
            # per leg, and every level fetched costs a Decimal conversion in the book
            depth = len(levels) * 2 or _FIRST_DEPTH
            levels = leg.levels = leg.book.asks(depth)
            leg.complete = len(levels) < depth
            if j >= len(levels):
                return False
        price, size = levels[j]
        if size > 0:
            break
        j += 1
    leg.idx = j
    leg.cum += size
    if price == leg.best:
        leg.all_in = leg.best_all_in
    elif price > leg.cap:
        leg.all_in = _INFEASIBLE
    else:
        lim = limit_price(price, leg.tick, leg.slip, leg.cap)
        rate = leg.rate
        leg.all_in = lim + rate * lim * (ONE - lim) if rate else lim
    return True


def feasible_depths(legs: list[Leg], margin: Decimal, cap_sets: Decimal | None) -> list[Decimal]:
    """Sweep the merged depth breakpoints; the right end of every segment whose worst cost is < 1.

    Between two consecutive breakpoints (cumulative sizes of any leg) every leg's deepest level
    is fixed, so the per-set worst cost (fees unrounded) is constant there and only rises at a
    breakpoint: the feasible segments come first, and the largest set size is the right end of
    the last one. Ends are returned in increasing order; the caller re-checks each exactly, with
    fees rounded, from the largest down.
    """
    total = margin
    heap: list[tuple[Decimal, int]] = []
    for i, leg in enumerate(legs):
        # the top level, as the top-of-book pass saw it: its worst cost is known already
        levels = leg.levels = leg.book.asks(_FIRST_DEPTH)
        leg.complete = len(levels) < _FIRST_DEPTH
        if levels and levels[0][0] == leg.best and levels[0][1] > 0:
            leg.idx = 0
            leg.cum = levels[0][1]
            leg.all_in = leg.best_all_in
        elif not _step(leg):
            return []
        total += leg.all_in
        heap.append((leg.cum, i))
    heapq.heapify(heap)

    ends: list[Decimal] = []
    while total < ONE:
        b = heap[0][0]
        if cap_sets is not None and b >= cap_sets:
            ends.append(cap_sets)
            return ends
        ends.append(b)
        while heap[0][0] == b:  # every leg whose current level runs out at b moves one level down
            i = heapq.heappop(heap)[1]
            leg = legs[i]
            old = leg.all_in
            if not _step(leg):
                return ends  # this leg's book is exhausted: no deeper set exists
            total += leg.all_in - old
            heapq.heappush(heap, (leg.cum, i))
    return ends


class Reject(enum.Enum):
    BELOW_MINIMUM = "below a venue minimum"
    ROUNDING = "fee rounding ate the edge"


@dataclass(slots=True)
class Sized:
    costs: list[Decimal]
    fees: list[Decimal]
    limits: list[Decimal]
    deepest: list[Decimal]
    limit_sum: Decimal
    worst_cost: Decimal
    worst_fee: Decimal


def size_legs(
    legs: list[Leg], sets: Decimal, margin: Decimal, min_shares: Decimal, min_notional: Decimal
) -> Sized | Reject:
    """Walk every leg for ``sets`` and check the exact worst case (fees rounded up) and the minimums.

    Worst-case fee: the venue rounds each fill's fee down, so the fees of all legs never exceed
    sets x (sum of every leg's rate x L x (1 - L)) unrounded; rounding that total UP to 5 decimals
    keeps the bound on the fee grid.
    """
    if sets < min_shares:
        return Reject.BELOW_MINIMUM
    costs: list[Decimal] = []
    fees: list[Decimal] = []
    limits: list[Decimal] = []
    deepest: list[Decimal] = []
    limit_sum = ZERO
    fee_per_set = ZERO
    lowest_limit = ONE
    for leg in legs:
        rate = leg.rate
        levels = leg.levels
        price, size = levels[0]
        if price == leg.best and size >= sets:
            # the usual case: the whole leg fills at the best ask, whose limit is already known
            cost = sets * price
            fee = (sets * rate * price * (ONE - price)).quantize(FEE_QUANTUM, rounding=ROUND_DOWN) if rate else ZERO
            lim = leg.best_lim
            fee_per_set += leg.best_all_in - lim  # rate x lim x (1 - lim), exact
        else:
            remaining = sets
            cost = ZERO
            fee = ZERO
            # the sweep fetched at least enough levels for ``sets``
            for price, size in levels:
                if size <= 0:
                    continue
                take = size if size < remaining else remaining
                cost += take * price
                if rate:
                    fee += fee_floor_unchecked(take, price, rate)  # one fill per level, as the venue rounds it
                remaining -= take
                if not remaining:
                    break
            if remaining:
                raise AssertionError("walk ran past the fetched depth")
            lim = limit_price(price, leg.tick, leg.slip, leg.cap)
            if lim < price:
                return Reject.ROUNDING  # cannot happen after the sweep; a bad book must never yield a short limit
            if rate:
                fee_per_set += rate * lim * (ONE - lim)
        if lim < lowest_limit:
            lowest_limit = lim
        limit_sum += lim
        costs.append(cost)
        fees.append(fee)
        limits.append(lim)
        deepest.append(price)
    if sets * lowest_limit < min_notional:
        return Reject.BELOW_MINIMUM
    worst_cost = sets * limit_sum
    worst_fee = (sets * fee_per_set).quantize(FEE_QUANTUM, rounding=ROUND_UP)
    if sets - worst_cost - worst_fee - sets * margin <= 0:
        return Reject.ROUNDING
    return Sized(costs, fees, limits, deepest, limit_sum, worst_cost, worst_fee)


def _group_id(kind: str, ts: object, legs: list[Leg], sets: Decimal, sized: Sized) -> str:
    # the tokens, the size, and the exact expected and worst costs stand for the book state the
    # group was priced on; ``ts`` separates the same prices seen at another time
    parts = [
        kind,
        str(ts),
        str(sets),
        str(sum(sized.costs, ZERO)),
        str(sized.limit_sum),
        *(leg.token_id for leg in legs),
    ]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"dutch-{digest[:24]}"


def _evaluate(
    kind: str,
    spec: Sequence[tuple[MarketInfo, str]],
    books: Mapping[str, BookView],
    cfg: DutchConfig,
    ts: object,
) -> DutchOpportunity | None:
    margin = cfg.safety_margin_usdc
    override = cfg.fee_rate_override
    slip_ticks = cfg.slippage_ticks
    ok = BookStatus.OK

    # Top of book first: most updates end here, after one Decimal pass over the best asks.
    top: list[tuple[MarketInfo, str, BookView, Decimal, Decimal, Decimal, Decimal, Decimal, Decimal, Decimal]] = []
    total = margin
    grid = cap = slip = ZERO
    for market, token_id in spec:
        if market.closed or not market.active:
            return None
        book = books.get(token_id)
        if book is None or book.status != ok:
            return None
        best = book.best_ask()
        if best is None:
            return None
        tick = market.tick_size
        book_tick = book.tick_size
        if book_tick > tick:
            tick = book_tick  # the coarser grid: a price on it is on both
        if tick != grid:  # the legs of an event usually share one grid: derive its constants once
            grid = tick
            cap = ONE - tick
            slip = tick * slip_ticks
        if best > cap:
            return None  # an ask at 1: no set can cost less than the payout
        if best % tick or best < tick:
            lim = limit_price(best, tick, slip, cap)
        else:
            lim = best + slip
            if lim > cap:
                lim = cap
        rate = market.fee_rate if override is None else override
        best_all_in = lim + rate * lim * (ONE - lim) if rate else lim
        total += best_all_in
        if total >= ONE:
            return None
        top.append((market, token_id, book, tick, cap, slip, rate, best, lim, best_all_in))
    legs = [Leg(*t) for t in top]

    min_shares = cfg.min_resting_size
    for leg in legs:
        if leg.market.min_order_size > min_shares:
            min_shares = leg.market.min_order_size
    min_notional = cfg.min_marketable_notional
    tried = ZERO
    for depth in reversed(feasible_depths(legs, margin, cfg.max_sets)):
        sets = depth.quantize(SIZE_QUANTUM, rounding=ROUND_DOWN)
        if sets <= 0:
            return None
        if sets == tried:
            continue
        tried = sets
        sized = size_legs(legs, sets, margin, min_shares, min_notional)
        if sized is Reject.BELOW_MINIMUM:
            return None  # the largest feasible size is below a venue minimum; any smaller one is too
        if sized is Reject.ROUNDING:
            continue  # rounding the fees up ate a sub-cent edge at this size; try the previous segment
        return _opportunity(kind, legs, sets, margin, ts, cfg, sized)
    return None


def _opportunity(
    kind: str, legs: list[Leg], sets: Decimal, margin: Decimal, ts: object, cfg: DutchConfig, sized: Sized
) -> DutchOpportunity:
    group_id = _group_id(kind, ts, legs, sets, sized)
    n = len(legs)
    order_type = cfg.order_type
    intents = tuple(
        Intent(
            leg.market.condition_id,
            leg.token_id,
            Side.BUY,
            lim,
            sets,
            order_type,
            False,
            group_id,
            f"dutch {kind} leg {k}/{n}",
        )
        for k, (leg, lim) in enumerate(zip(legs, sized.limits, strict=True), 1)
    )
    return DutchOpportunity(
        group_id=group_id,
        kind=kind,
        legs=intents,
        sets=sets,
        total_cost=sum(sized.costs, ZERO),
        total_fee=sum(sized.fees, ZERO),
        worst_cost=sized.worst_cost,
        worst_fee=sized.worst_fee,
        safety_margin_usdc=margin,
        leg_costs=tuple(sized.costs),
        leg_deepest_levels=tuple(sized.deepest),
    )


def evaluate_binary(
    market: MarketInfo, books: Mapping[str, BookView], cfg: DutchConfig, *, ts: object = None
) -> DutchOpportunity | None:
    """YES + NO of one market. ``ts`` (e.g. the book update's timestamp) only feeds the group id.

    Markets of augmented neg-risk events are refused too: their placeholder outcomes can be
    reworded after the fact, and the issue asks for nothing on augmented events, full stop.
    """
    if len(market.tokens) != 2:
        raise ValueError(f"binary dutch needs a market with 2 tokens, {market.condition_id} has {len(market.tokens)}")
    if market.neg_risk_augmented:
        return None
    return _evaluate("binary", [(market, tok.token_id) for tok in market.tokens], books, cfg, ts)


def _yes_token(market: MarketInfo) -> str:
    for tok in market.tokens:
        if tok.outcome.lower() == "yes":
            return tok.token_id
    raise ValueError(f"neg-risk member {market.condition_id} has no Yes token")


def evaluate_event(
    markets: Sequence[MarketInfo], books: Mapping[str, BookView], cfg: DutchConfig, *, ts: object = None
) -> DutchOpportunity | None:
    """YES of every member market of one neg-risk event (exactly one resolves YES).

    ``markets`` must be the complete member list: a missing member means the set does not pay 1,
    which no check here can see. Augmented events -> None.
    """
    if len(markets) < 2:
        raise ValueError(f"a neg-risk event needs at least 2 member markets, got {len(markets)}")
    event_id = markets[0].neg_risk_market_id
    seen: set[str] = set()
    spec: list[tuple[MarketInfo, str]] = []
    augmented = False
    for m in markets:
        if not m.neg_risk or m.neg_risk_market_id is None or m.neg_risk_market_id != event_id:
            raise ValueError(
                f"market {m.condition_id} is not a member of neg-risk event {event_id}"
                f" (neg_risk={m.neg_risk}, neg_risk_market_id={m.neg_risk_market_id})"
            )
        if m.condition_id in seen:
            raise ValueError(f"market {m.condition_id} appears twice in event {event_id}")
        seen.add(m.condition_id)
        augmented = augmented or m.neg_risk_augmented
        first = m.tokens[0] if m.tokens else None
        spec.append((m, first.token_id if first is not None and first.outcome == "Yes" else _yes_token(m)))
    if augmented:
        return None
    return _evaluate("neg_risk", spec, books, cfg, ts)
