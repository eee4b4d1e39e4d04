"""Dutch book (complete-set arbitrage): buy one share of every outcome for less than the payout.

A binary market's YES + NO, or the YES of every member of a neg-risk event, always redeem to 1.
When the asks add up to less than 1 after taker fees and a safety margin, buying a complete set
locks a profit. This module finds the LARGEST set size that still clears that bar when every leg
is filled at its worst-case price, and returns one group of marketable BUY intents (FOK/FAK).

Pure: books and markets in, an opportunity (or None) out. No clock, no randomness, no globals.

Worst case per leg: the leg's limit price L (the highest ask level needed for the size, on tick,
plus ``slippage_ticks``, capped at 1 - tick). A taker fill at any price p <= L costs
p + rate x p x (1 - p) per share, which rises with p for every rate < 1, so no fill within the
limit can cost more than L + rate x L x (1 - L). The venue rounds each fill's fee down, so the
fees of the whole group never exceed their unrounded sum, which is rounded UP to 5 decimals.
The emit rule: sets x (sum of L) + that fee bound + sets x safety margin < sets x 1 (the payout).

Speed: a 20-outcome event is evaluated on every book update. One pass over the best asks
rejects most updates; only then are ask levels fetched, one or two per leg, as the sweep needs
(the depth sweep and the exact sizing live in :mod:`core.strategies.dutch_depth`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

from core.strategies.dutch_depth import ONE, ZERO, Leg, Reject, Sized, feasible_depths, limit_price, size_legs
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


def _opportunity(
    kind: str, legs: list[Leg], sets: Decimal, margin: Decimal, ts: object, cfg: DutchConfig, sized: Sized
) -> DutchOpportunity:
    group_id = _group_id(kind, ts, legs, sets, sized)
    n = len(legs)
    order_type = cfg.order_type
    intents = tuple(
        _buy_intent(leg.market.condition_id, leg.token_id, lim, sets, order_type, group_id, f"dutch {kind} leg {k}/{n}")
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
