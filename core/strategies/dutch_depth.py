"""The Dutch book's depth sweep and sizing: how many complete sets clear the bar, and at what limits.

:func:`feasible_depths` sweeps the merged depth breakpoints of every leg's ask side (fetching
levels lazily) for the set sizes whose worst-case cost per set stays under the payout;
:func:`size_legs` re-checks one size exactly (fees rounded as the venue rounds them, the
venue's minimums) and returns every leg's cost, fee and limit price. Pure, like
:mod:`core.strategies.dutch`, which explains the worst-case rule.

Units: the search reads the book in integer 10^-6 units (:class:`LevelSource`: the feed's
:class:`~core.feed.book.Book` natively, any other :class:`~core.types.BookView` through
:class:`DecimalLevels`); a level's worst cost per share comes from a table per fee rate, exact
Decimal. Only :func:`size_legs`, on the one size that is emitted, computes in Decimal what leaves
as the opportunity: the same operations on the same Decimals as ever, so the figures (and their
exponents, which the group id hashes) do not depend on how the size was found.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Protocol

from core.feed.numbers import UNIT, decimal_to_units, price_decimal
from core.fees import FEE_QUANTUM, fee_floor_unchecked
from core.types import BookView, Level, MarketInfo

ZERO = Decimal(0)
ONE = Decimal(1)
_FIRST_DEPTH = 1
_INFEASIBLE = Decimal(2)
"""All-in price of a level the limit cannot reach: larger than any payout."""
SIZE_STEP_UNITS = 10_000
"""0.01 share (order sizes go to the venue with 2 decimals), in units."""


class LevelSource(Protocol):
    """A book's ask side in integer 10^-6 units (prices and sizes), best first."""

    def best_ask_units(self) -> int | None: ...

    def asks_units(self, depth: int | None = None) -> list[tuple[int, int]]: ...

    def asks(self, depth: int | None = None) -> list[Level]: ...

    def best_ask(self) -> Decimal | None: ...


class DecimalLevels:
    """A :class:`BookView` without unit methods seen as a :class:`LevelSource` (strategy tests'
    static books). Its Decimals must be exact at 10^-6, as every venue price and size is."""

    __slots__ = ("_book",)

    def __init__(self, book: BookView) -> None:
        self._book = book

    def best_ask_units(self) -> int | None:
        best = self._book.best_ask()
        return None if best is None else decimal_to_units(best)

    def asks_units(self, depth: int | None = None) -> list[tuple[int, int]]:
        return [(decimal_to_units(p), decimal_to_units(s)) for p, s in self._book.asks(depth)]

    def asks(self, depth: int | None = None) -> list[Level]:
        return self._book.asks(depth)

    def best_ask(self) -> Decimal | None:
        return self._book.best_ask()


def limit_units(level: int, tick: int, slip: int, cap: int) -> int:
    """:func:`limit_price` in units."""
    if level % tick:
        level = -(-level // tick) * tick  # a level off the grid (tick just changed): the next tick up
    if level < tick:
        level = tick
    price = level + slip
    return cap if price > cap else price


def limit_price(level_price: Decimal, tick: Decimal, slip: Decimal, cap: Decimal) -> Decimal:
    if level_price % tick:
        # a level off the grid (tick just changed): the next tick up still crosses it
        level_price = (level_price / tick).to_integral_value(rounding=ROUND_UP) * tick
    if level_price < tick:
        level_price = tick
    price = level_price + slip
    return cap if price > cap else price


_CACHE_LIMIT = 20_000  # prices per grid: a tick of 0.0001 has 9999


class Pricing:
    """The constants of the legs priced on one grid (tick and slippage) at one fee rate, in
    Decimal (what is emitted: the Decimals the evaluation always used) and in units (the search),
    with caches of exact values by price. Shared: :func:`pricing` keeps one per grid and rate."""

    __slots__ = ("all_ins", "cap", "cap_u", "fee_den", "rate", "rate_num", "slip", "slip_u", "tick", "tick_u", "tops")

    def __init__(self, tick: Decimal, slip_ticks: int, rate: Decimal) -> None:
        self.tick = tick
        self.cap = ONE - tick  # highest price on the grid
        self.slip = tick * slip_ticks
        self.tick_u = decimal_to_units(tick)
        self.cap_u = UNIT - self.tick_u
        self.slip_u = self.tick_u * slip_ticks
        self.rate = rate
        # rate = rate_num / 10^k; a fill's fee in 10^-5 pUSD is shares_u x rate_num x p_u x (1 - p)_u // fee_den
        exp = int(rate.as_tuple().exponent)
        self.rate_num = int(rate) if exp >= 0 else int(rate.scaleb(-exp))
        self.fee_den = 10 ** (13 - min(exp, 0))
        self.all_ins: dict[int, Decimal] = {}
        """limit (units) -> worst cost of one share at it (read directly on the hot path)."""
        self.tops: dict[int, tuple[Decimal, Decimal, int, Decimal]] = {}
        """best ask (units) -> what :meth:`top_units` returns."""

    def all_in(self, lim_u: int) -> Decimal:
        """Worst cost of one share with limit ``lim_u``: ``L + rate x L x (1 - L)``, exact."""
        value = self.all_ins.get(lim_u)
        if value is None:
            lim = price_decimal(lim_u)
            rate = self.rate
            value = lim + rate * lim * (ONE - lim) if rate else lim
            if len(self.all_ins) < _CACHE_LIMIT:
                self.all_ins[lim_u] = value
        return value

    def top(self, best: Decimal) -> tuple[Decimal, Decimal]:
        """A leg filled at its best ask ``best``: (its limit, rate x limit x (1 - limit))."""
        tick = self.tick
        if best % tick or best < tick:
            lim = limit_price(best, tick, self.slip, self.cap)
        else:
            lim = best + self.slip
            if lim > self.cap:
                lim = self.cap
        return lim, self.rate * lim * (ONE - lim)

    def top_units(self, best_u: int) -> tuple[Decimal, Decimal, int, Decimal]:
        """A leg filled at ``best_u``, a price of the feed's book: (its canonical Decimal, the limit,
        the fee numerator of one share unit, rate x limit x (1 - limit))."""
        hit = self.tops.get(best_u)
        if hit is None:
            best = price_decimal(best_u)
            lim, lim_fee = self.top(best)
            hit = (best, lim, self.rate_num * best_u * (UNIT - best_u), lim_fee)
            if len(self.tops) < _CACHE_LIMIT:
                self.tops[best_u] = hit
        return hit


_PRICINGS: dict[tuple[str, int, Decimal], Pricing] = {}


def pricing(tick: Decimal, slip_ticks: int, rate: Decimal) -> Pricing:
    """The shared :class:`Pricing` (keyed by the tick as spelled: its exponent is the limits')."""
    key = (str(tick), slip_ticks, rate)
    found = _PRICINGS.get(key)
    if found is None:
        found = Pricing(tick, slip_ticks, rate)
        if len(_PRICINGS) >= 256:
            _PRICINGS.clear()
        _PRICINGS[key] = found
    return found


class Leg:
    """One leg of the search: its constants from the top-of-book pass, and how deep the sweep went."""

    __slots__ = (
        "all_in",
        "best_all_in",
        "best_u",
        "book",
        "complete",
        "cum",
        "idx",
        "levels",
        "market",
        "p",
        "token_id",
    )

    def __init__(
        self, market: MarketInfo, token_id: str, book: LevelSource, p: Pricing, best_u: int, best_all_in: Decimal
    ) -> None:
        self.market = market
        self.token_id = token_id
        self.book = book
        self.p = p
        self.best_u = best_u  # best ask seen by the top-of-book pass and the worst cost of one
        self.best_all_in = best_all_in  # share at its limit: most legs fill at the top
        self.levels: list[tuple[int, int]] = []
        self.complete = False  # levels hold the whole ask side
        self.idx = -1  # deepest level the sweep has reached
        self.cum = 0  # shares (units) available down to that level
        self.all_in = ZERO  # worst cost of one share if that level is the deepest needed


def _step(leg: Leg) -> bool:
    """Move the leg down to its next non-empty ask level (fetching deeper as needed): update
    ``idx``, ``cum`` and ``all_in``. False when the ask side has no more levels."""
    j = leg.idx + 1
    levels = leg.levels
    while True:
        if j >= len(levels):
            if leg.complete:
                return False
            # fetch lazily and grow by doubling: a set rarely needs more than a couple of levels per leg
            depth = len(levels) * 2 or _FIRST_DEPTH
            levels = leg.levels = leg.book.asks_units(depth)
            leg.complete = len(levels) < depth
            if j >= len(levels):
                return False
        price, size = levels[j]
        if size > 0:
            break
        j += 1
    leg.idx = j
    leg.cum += size
    p = leg.p
    if price == leg.best_u:
        leg.all_in = leg.best_all_in
    elif price > p.cap_u:
        leg.all_in = _INFEASIBLE
    else:
        leg.all_in = p.all_in(limit_units(price, p.tick_u, p.slip_u, p.cap_u))
    return True


def feasible_depths(legs: list[Leg], margin: Decimal, cap_sets: Decimal | None) -> list[int]:
    """Sweep the merged depth breakpoints; the right end (units) of every segment whose worst cost is < 1.

    Between two consecutive breakpoints (cumulative sizes of any leg) every leg's deepest level
    is fixed, so the per-set worst cost (fees unrounded) is constant there and only rises at a
    breakpoint: the feasible segments come first, and the largest set size is the right end of
    the last one. Ends are returned in increasing order; the caller re-checks each exactly, with
    fees rounded, from the largest down. A cap ends the list with the cap, floored to a unit.
    """
    total = margin
    heap: list[tuple[int, int]] = []
    for i, leg in enumerate(legs):
        # the top level, as the top-of-book pass saw it: its worst cost is known already
        levels = leg.levels = leg.book.asks_units(_FIRST_DEPTH)
        leg.complete = len(levels) < _FIRST_DEPTH
        if levels and levels[0][0] == leg.best_u and levels[0][1] > 0:
            leg.idx = 0
            leg.cum = levels[0][1]
            leg.all_in = leg.best_all_in
        elif not _step(leg):
            return []
        total += leg.all_in
        heap.append((leg.cum, i))
    heapq.heapify(heap)
    cap = None if cap_sets is None else cap_sets * UNIT  # exact: compared with units as it is

    ends: list[int] = []
    while total < ONE:
        b = heap[0][0]
        if cap is not None and b >= cap:
            ends.append(int(cap))  # floored: sizes are floored to 0.01 share anyway
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
    total_fee: Decimal
    limits: list[Decimal]
    deepest: list[Decimal]
    limit_sum: Decimal
    worst_cost: Decimal
    worst_fee: Decimal


def size_legs(
    legs: list[Leg], sets: Decimal, sets_u: int, margin: Decimal, min_shares: Decimal, min_notional: Decimal
) -> Sized | Reject:
    """Walk every leg for ``sets`` (``sets_u`` units) and check the exact worst case (fees
    rounded up) and the minimums.

    Worst-case fee: the venue rounds each fill's fee down, so the fees of all legs never exceed
    sets x (sum of every leg's rate x L x (1 - L)) unrounded; rounding that total UP to 5 decimals
    keeps the bound on the fee grid.
    """
    if sets < min_shares:
        return Reject.BELOW_MINIMUM
    costs: list[Decimal] = []
    limits: list[Decimal] = []
    deepest: list[Decimal] = []
    limit_sum = ZERO
    fee_per_set = ZERO
    fees = ZERO  # the legs' fees, each rounded down to 5 decimals as the venue rounds them
    fees_5 = 0  # ... of the legs filled at the top of the feed's book, in 10^-5 units
    fees_5_seen = False
    lowest_limit = ONE
    for leg in legs:
        p = leg.p
        rate = p.rate
        top_price, top_size = leg.levels[0]
        if top_price == leg.best_u and top_size >= sets_u:
            # the usual case: the whole leg fills at the best ask
            book = leg.book
            if type(book) is DecimalLevels:
                price = book.best_ask() or ZERO
                lim, lim_fee = p.top(price)
                if rate:
                    fees += (sets * rate * price * (ONE - price)).quantize(FEE_QUANTUM, rounding=ROUND_DOWN)
            else:
                hit = p.tops.get(top_price)
                price, lim, fee_num, lim_fee = hit if hit is not None else p.top_units(top_price)
                if rate:
                    fees_5 += sets_u * fee_num // p.fee_den
                    fees_5_seen = True
            cost = sets * price
            fee_per_set += lim_fee
        else:
            remaining = sets
            cost = ZERO
            # the sweep reached a level deep enough for ``sets``: only those levels, in Decimal
            for price, size in leg.book.asks(leg.idx + 1):
                if size <= 0:
                    continue
                take = size if size < remaining else remaining
                cost += take * price
                if rate:
                    fees += fee_floor_unchecked(take, price, rate)  # one fill per level, as the venue rounds it
                remaining -= take
                if not remaining:
                    break
            if remaining:
                raise AssertionError("walk ran past the fetched depth")
            lim = limit_price(price, p.tick, p.slip, p.cap)
            if lim < price:
                return Reject.ROUNDING  # cannot happen after the sweep; a bad book must never yield a short limit
            if rate:
                fee_per_set += rate * lim * (ONE - lim)
        if lim < lowest_limit:
            lowest_limit = lim
        limit_sum += lim
        costs.append(cost)
        limits.append(lim)
        deepest.append(price)
    if sets * lowest_limit < min_notional:
        return Reject.BELOW_MINIMUM
    worst_cost = sets * limit_sum
    worst_fee = (sets * fee_per_set).quantize(FEE_QUANTUM, rounding=ROUND_UP)
    if sets - worst_cost - worst_fee - sets * margin <= 0:
        return Reject.ROUNDING
    if fees_5_seen:
        fees += Decimal(fees_5).scaleb(-5)  # 5 decimals, as the quantized Decimal fees
    return Sized(costs, fees, limits, deepest, limit_sum, worst_cost, worst_fee)
