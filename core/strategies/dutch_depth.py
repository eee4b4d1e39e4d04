"""The Dutch book's depth sweep and sizing: how many complete sets clear the bar, and at what limits.

:func:`feasible_depths` sweeps the merged depth breakpoints of every leg's ask side (fetching
levels lazily) for the set sizes whose worst-case cost per set stays under the payout;
:func:`size_legs` re-checks one size exactly (fees rounded as the venue rounds them, the
venue's minimums) and returns every leg's cost, fee and limit price. Pure, like
:mod:`core.strategies.dutch`, which explains the worst-case rule.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from core.fees import FEE_QUANTUM, fee_floor_unchecked
from core.types import BookView, Level, MarketInfo

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
