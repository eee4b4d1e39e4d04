"""Dutch book (complete-set arbitrage): buy one share of every outcome for less than the payout.

A binary market's YES + NO, or the YES of every member of a neg-risk event, always redeem to 1.
When the asks add up to less than 1 after taker fees and a safety margin, buying a complete set
locks a profit. This module finds the LARGEST set size that still clears that bar when every leg
is filled at its worst-case price, and returns one group of marketable BUY intents (FOK/FAK).

Pure: books and markets in, an opportunity (or None) out. No clock, no randomness (the only
globals are caches of exact values: a tick's units, a fee rate's worst cost per limit price).

Worst case per leg: the leg's limit price L (the highest ask level needed for the size, on tick,
plus ``slippage_ticks``, capped at 1 - tick). A taker fill at any price p <= L costs
p + rate x p x (1 - p) per share, which rises with p for every rate < 1, so no fill within the
limit can cost more than L + rate x L x (1 - L). The venue rounds each fill's fee down, so the
fees of the whole group never exceed their unrounded sum, which is rounded UP to 5 decimals.
The emit rule: sets x (sum of L) + that fee bound + sets x safety margin < sets x 1 (the payout).

Speed: a 20-outcome event is evaluated on every book update. One pass over the best asks
rejects most updates; only then are ask levels fetched, one or two per leg, as the sweep needs
(the depth sweep and the exact sizing live in :mod:`core.strategies.dutch_depth`). The search
reads the books in integer units; Decimal is built only for the size that is emitted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

from core.feed.book import Book
from core.strategies.dutch_depth import (
    ONE,
    SIZE_STEP_UNITS,
    ZERO,
    DecimalLevels,
    Leg,
    Pricing,
    Reject,
    Sized,
    feasible_depths,
    limit_units,
    pricing,
    size_legs,
)
from core.types import BookStatus, BookView, Intent, MarketInfo, OrderType, Side

SIZE_QUANTUM = Decimal("0.01")
"""Order sizes go to the venue with 2 decimals."""
PER_SET_QUANTUM = Decimal("0.000001")
"""Per-set figures are reported at pUSD precision; totals stay exact."""


@dataclass(frozen=True, slots=True)
class DutchConfig:
    safety_margin_usdc: Decimal
    """Required worst-case profit per set, on top of fees (pUSD)."""
    slippage_ticks: int
    """Ticks added to the worst level needed, so a level that moves a little still fills."""
    fee_rate_override: Decimal | None = None
    """Replaces every market's fee rate (the ``--fee-bps`` experiment); None = the market's own."""
    max_sets: Decimal | None = None
    """Cap on the set size (shares per leg); None = as deep as the edge goes."""
    min_resting_size: Decimal = Decimal(5)
    """Floor on every leg's shares; a market's own ``min_order_size`` applies too (larger wins)."""
    min_marketable_notional: Decimal = Decimal(1)
    """Venue minimum for marketable orders: limit price x size of every leg (pUSD)."""
    order_type: OrderType = OrderType.FOK

    def __post_init__(self) -> None:
        if self.safety_margin_usdc < 0:
            raise ValueError(f"safety_margin_usdc must be >= 0, got {self.safety_margin_usdc}")
        if isinstance(self.slippage_ticks, bool) or not isinstance(self.slippage_ticks, int) or self.slippage_ticks < 0:
            raise ValueError(f"slippage_ticks must be an int >= 0, got {self.slippage_ticks!r}")
        if self.fee_rate_override is not None and not 0 <= self.fee_rate_override < 1:
            raise ValueError(f"fee_rate_override must be within [0, 1), got {self.fee_rate_override}")
        if self.max_sets is not None and self.max_sets <= 0:
            raise ValueError(f"max_sets must be > 0, got {self.max_sets}")
        if self.min_resting_size < 0 or self.min_marketable_notional < 0:
            raise ValueError("minimum size and notional must be >= 0")
        if self.order_type not in (OrderType.FOK, OrderType.FAK):
            raise ValueError(f"dutch legs are marketable: order_type must be FOK or FAK, got {self.order_type}")


@dataclass(frozen=True, slots=True)
class DutchOpportunity:
    """One group of BUY legs, ``sets`` shares each; every set pays 1 whatever the outcome.

    Totals are exact. Expected figures (``cost``, ``fee``, ``edge``) are what filling the current
    levels would cost; the ``worst_*`` bounds assume every share fills at its leg's limit price,
    and are what the emit rule used. Per-set figures are derived on access (6 dp; worst-case ones
    rounded against us), which keeps the hot path to what the decision needs.
    """

    group_id: str
    kind: str  # "binary" | "neg_risk"
    legs: tuple[Intent, ...]
    sets: Decimal
    total_cost: Decimal
    total_fee: Decimal
    worst_cost: Decimal
    worst_fee: Decimal
    safety_margin_usdc: Decimal
    leg_costs: tuple[Decimal, ...]
    """Per leg, in leg order: the exact cost of the expected fill."""
    leg_deepest_levels: tuple[Decimal, ...]
    """Per leg: the deepest ask level the set needs (the limit is this plus slippage)."""

    @property
    def payout(self) -> Decimal:
        return self.sets

    @property
    def total_edge(self) -> Decimal:
        return self.sets - self.total_cost - self.total_fee

    @property
    def worst_total_edge(self) -> Decimal:
        return self.sets - self.worst_cost - self.worst_fee

    @property
    def cost_per_set(self) -> Decimal:
        return _per_set(self.total_cost, self.sets, ROUND_HALF_EVEN)

    @property
    def fee_per_set(self) -> Decimal:
        return _per_set(self.total_fee, self.sets, ROUND_HALF_EVEN)

    @property
    def edge_per_set(self) -> Decimal:
        return _per_set(self.total_edge, self.sets, ROUND_HALF_EVEN)

    @property
    def worst_cost_per_set(self) -> Decimal:
        return _per_set(self.worst_cost, self.sets, ROUND_UP)

    @property
    def worst_fee_per_set(self) -> Decimal:
        return _per_set(self.worst_fee, self.sets, ROUND_UP)

    @property
    def worst_edge_per_set(self) -> Decimal:
        return _per_set(self.worst_total_edge, self.sets, ROUND_DOWN)

    @property
    def leg_avg_prices(self) -> tuple[Decimal, ...]:
        return tuple(_per_set(c, self.sets, ROUND_HALF_EVEN) for c in self.leg_costs)

    @property
    def reason(self) -> str:
        return (
            f"dutch {self.kind}: {len(self.legs)} legs x {self.sets} sets; worst {self.worst_cost_per_set}"
            f" + fee {self.worst_fee_per_set} + margin {self.safety_margin_usdc} < 1 per set;"
            f" expected edge {self.edge_per_set}/set, {self.total_edge} total"
        )


def _per_set(total: Decimal, sets: Decimal, rounding: str) -> Decimal:
    return (total / sets).quantize(PER_SET_QUANTUM, rounding=rounding)


def _group_id(kind: str, ts: object, legs: list[Leg], sets: Decimal, total_cost: Decimal, limit_sum: Decimal) -> str:
    # the tokens, the size, and the exact expected and worst costs stand for the book state the
    # group was priced on; ``ts`` separates the same prices seen at another time
    parts = [kind, str(ts), str(sets), str(total_cost), str(limit_sum), *(leg.token_id for leg in legs)]
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

    # Top of book first: most updates end here, after one pass over the best asks (in units; the
    # worst cost of a share at each limit comes from the exact values cached per grid and rate).
    top: list[Leg] = []
    total = margin
    grid = ZERO
    rate: Decimal | None = None
    p: Pricing | None = None
    for market, token_id in spec:
        if market.closed or not market.active:
            return None
        view = books.get(token_id)
        if view is None or view.status != ok:
            return None
        book = view if type(view) is Book else DecimalLevels(view)
        best = book.best_ask_units()
        if best is None:
            return None
        tick = market.tick_size
        book_tick = view.tick_size
        if book_tick > tick:
            tick = book_tick  # the coarser grid: a price on it is on both
        leg_rate = market.fee_rate if override is None else override
        # the legs of an event usually share one grid and rate: look their constants up once
        if p is None or tick != grid or (leg_rate is not rate and leg_rate != rate):
            if p is None or tick != grid:
                grid = tick
            rate = leg_rate
            p = pricing(grid, slip_ticks, rate)
        cap_u = p.cap_u
        if best > cap_u:
            return None  # an ask at 1: no set can cost less than the payout
        tick_u = p.tick_u
        if best % tick_u or best < tick_u:
            lim = limit_units(best, tick_u, p.slip_u, cap_u)
        else:
            lim = best + p.slip_u
            if lim > cap_u:
                lim = cap_u
        best_all_in = p.all_ins.get(lim)
        if best_all_in is None:
            best_all_in = p.all_in(lim)
        total += best_all_in
        if total >= ONE:
            return None
        top.append(Leg(market, token_id, book, p, best, best_all_in))
    legs = top

    min_shares = cfg.min_resting_size
    for leg in legs:
        if leg.market.min_order_size > min_shares:
            min_shares = leg.market.min_order_size
    min_notional = cfg.min_marketable_notional
    tried = 0
    for depth in reversed(feasible_depths(legs, margin, cfg.max_sets)):
        sets_u = depth - depth % SIZE_STEP_UNITS
        if sets_u <= 0:
            return None
        if sets_u == tried:
            continue
        tried = sets_u
        sets = Decimal(sets_u // SIZE_STEP_UNITS).scaleb(-2)  # the size quantized to 0.01, as ever
        sized = size_legs(legs, sets, sets_u, margin, min_shares, min_notional)
        if sized is Reject.BELOW_MINIMUM:
            return None  # the largest feasible size is below a venue minimum; any smaller one is too
        if sized is Reject.ROUNDING:
            continue  # rounding the fees up ate a sub-cent edge at this size; try the previous segment
        return _opportunity(kind, legs, sets, margin, ts, cfg, sized)
    return None


# A hit builds one Intent per leg, twenty for a 20-outcome event, and the frozen dataclass's
# generated __init__ (one object.__setattr__ per field) is about a quarter of such an evaluation.
# Filling the slots through their descriptors builds the identical, still frozen, object in a
# third of the time. Only while Intent has exactly these fields and no __post_init__; otherwise
# (core.types changed) the plain constructor is used.
_INTENT_FIELDS = (
    "market",
    "token_id",
    "side",
    "price",
    "size",
    "order_type",
    "post_only",
    "group_id",
    "reason",
    "expiration",
    "meta",
)
_FAST_INTENT = (
    tuple(f.name for f in dataclasses.fields(Intent)) == _INTENT_FIELDS
    and not hasattr(Intent, "__post_init__")
    and all(hasattr(getattr(Intent, name), "__set__") for name in _INTENT_FIELDS)
)
_SETTERS = tuple(getattr(Intent, name).__set__ for name in _INTENT_FIELDS) if _FAST_INTENT else ()


def _buy_intent(
    market: str, token_id: str, price: Decimal, size: Decimal, order_type: OrderType, group_id: str, reason: str
) -> Intent:
    """``Intent(market, token_id, BUY, price, size, order_type, False, group_id, reason)``, faster."""
    if not _FAST_INTENT:
        return Intent(market, token_id, Side.BUY, price, size, order_type, False, group_id, reason)
    intent = object.__new__(Intent)
    s_market, s_token, s_side, s_price, s_size, s_type, s_post, s_group, s_reason, s_expiration, s_meta = _SETTERS
    s_market(intent, market)
    s_token(intent, token_id)
    s_side(intent, Side.BUY)
    s_price(intent, price)
    s_size(intent, size)
    s_type(intent, order_type)
    s_post(intent, False)
    s_group(intent, group_id)
    s_reason(intent, reason)
    s_expiration(intent, 0)
    s_meta(intent, {})
    return intent


_REASONS: dict[tuple[str, int], tuple[str, ...]] = {}


def _leg_reasons(kind: str, n: int) -> tuple[str, ...]:
    reasons = _REASONS.get((kind, n))
    if reasons is None:
        reasons = _REASONS[(kind, n)] = tuple(f"dutch {kind} leg {k}/{n}" for k in range(1, n + 1))
    return reasons


def _buy_intents(
    legs: list[Leg], limits: list[Decimal], sets: Decimal, order_type: OrderType, group_id: str, kind: str
) -> tuple[Intent, ...]:
    """:func:`_buy_intent` for every leg, its body inlined (a call per leg was a twentieth of a hit)."""
    reasons = _leg_reasons(kind, len(legs))
    if not _FAST_INTENT:
        return tuple(
            Intent(leg.market.condition_id, leg.token_id, Side.BUY, lim, sets, order_type, False, group_id, reason)
            for leg, lim, reason in zip(legs, limits, reasons, strict=True)
        )
    s_market, s_token, s_side, s_price, s_size, s_type, s_post, s_group, s_reason, s_expiration, s_meta = _SETTERS
    new = object.__new__
    buy = Side.BUY
    out = []
    for leg, lim, reason in zip(legs, limits, reasons, strict=True):
        intent = new(Intent)
        s_market(intent, leg.market.condition_id)
        s_token(intent, leg.token_id)
        s_side(intent, buy)
        s_price(intent, lim)
        s_size(intent, sets)
        s_type(intent, order_type)
        s_post(intent, False)
        s_group(intent, group_id)
        s_reason(intent, reason)
        s_expiration(intent, 0)
        s_meta(intent, {})
        out.append(intent)
    return tuple(out)


def _opportunity(
    kind: str, legs: list[Leg], sets: Decimal, margin: Decimal, ts: object, cfg: DutchConfig, sized: Sized
) -> DutchOpportunity:
    total_cost = sum(sized.costs, ZERO)
    group_id = _group_id(kind, ts, legs, sets, total_cost, sized.limit_sum)
    return DutchOpportunity(
        group_id=group_id,
        kind=kind,
        legs=_buy_intents(legs, sized.limits, sets, cfg.order_type, group_id, kind),
        sets=sets,
        total_cost=total_cost,
        total_fee=sized.total_fee,
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
    spec = _event_spec(markets)
    if spec is None:
        return None
    return _evaluate("neg_risk", spec, books, cfg, ts)


_SPECS: dict[int, tuple[tuple[MarketInfo, ...], list[tuple[MarketInfo, str]] | None]] = {}
"""The checked leg list of an event's member list, by the list's id (and its members' identity:
a frozen MarketInfo cannot change, so the same members give the same legs)."""


def _event_spec(markets: Sequence[MarketInfo]) -> list[tuple[MarketInfo, str]] | None:
    """(market, YES token) of every member, checked; None for an augmented event."""
    hit = _SPECS.get(id(markets))
    if hit is not None and len(hit[0]) == len(markets) and all(map(operator.is_, hit[0], markets)):
        return hit[1]
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
    if len(_SPECS) >= 256:
        _SPECS.clear()
    _SPECS[id(markets)] = (tuple(markets), None if augmented else spec)
    return None if augmented else spec
