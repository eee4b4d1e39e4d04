"""Complete sets: tokens held together that pay exactly 1 pUSD per set whatever the outcome.

A set is a binary market's two outcomes (YES + NO), or the YES of every member of a neg-risk
event (an augmented event never forms one: its outcomes do not cover everything). Shares held in
full sets are worth their settlement value, 1 pUSD per set, not their marks; marks apply only to
the unmatched remainder.

The cost of the shares in sets is the positions' average cost (buy fees included): a token's whole
basis when all its shares are in sets, else the proportional part rounded to 10^-6 half-even, and
the remainder keeps the rest, so set cost + remainder cost is exactly what was paid. The locked
edge is ``sets x 1 - cost of those sets``.

Units are taken in the order given (the engine lists neg-risk events before binary pairs): a share
counts in at most one set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

from core.types import MarketInfo

ZERO = Decimal(0)
ONE = Decimal(1)
QUANTUM = Decimal("0.000001")

Marks = Callable[[str], Decimal | None]


@dataclass(frozen=True, slots=True)
class SetUnit:
    """Tokens that pay 1 together: ``key`` is the market's condition id or the event's id."""

    key: str
    tokens: tuple[str, ...]
    kind: str  # "binary" | "neg_risk"


class Holding(Protocol):
    @property
    def token_id(self) -> str: ...

    @property
    def shares(self) -> Decimal: ...

    @property
    def cost(self) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class CompleteSet:
    unit: SetUnit
    sets: Decimal
    cost: Decimal  # paid for the shares in these sets, fees included

    @property
    def value(self) -> Decimal:
        return self.sets * ONE

    @property
    def locked_edge(self) -> Decimal:
        return self.value - self.cost


@dataclass(frozen=True, slots=True)
class Valuation:
    """Positions split into complete sets and the unmatched remainder (shares, cost) per token."""

    sets: tuple[CompleteSet, ...] = ()
    remainder: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    in_sets: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def total_sets(self) -> Decimal:
        return sum((s.sets for s in self.sets), ZERO)

    @property
    def set_cost(self) -> Decimal:
        return sum((s.cost for s in self.sets), ZERO)

    @property
    def set_value(self) -> Decimal:
        return sum((s.value for s in self.sets), ZERO)

    @property
    def locked_edge(self) -> Decimal:
        return sum((s.locked_edge for s in self.sets), ZERO)

    def remainder_of(self, token_id: str) -> tuple[Decimal, Decimal]:
        return self.remainder.get(token_id, (ZERO, ZERO))

    def unrealised(self, marks: Marks) -> Decimal:
        """The remainder against its marks (tokens without a mark are skipped)."""
        total = ZERO
        for token_id, (shares, cost) in self.remainder.items():
            if shares == 0:
                continue
            mark = marks(token_id)
            if mark is not None:
                total += shares * mark - cost
        return total

    def unmarked(self, marks: Marks) -> list[str]:
        return [t for t, (shares, _) in self.remainder.items() if shares != 0 and marks(t) is None]


def value_positions(holdings: Iterable[Holding], units: Sequence[SetUnit]) -> Valuation:
    """Split ``holdings`` into the complete sets of ``units`` and the remainder. Exact."""
    left: dict[str, tuple[Decimal, Decimal]] = {}
    for h in holdings:
        if h.shares != 0 or h.cost != 0:
            left[h.token_id] = (h.shares, h.cost)
    in_sets: dict[str, Decimal] = {}
    found: list[CompleteSet] = []
    for unit in units:
        if len(unit.tokens) < 2 or any(t not in left for t in unit.tokens):
            continue
        n = min(left[t][0] for t in unit.tokens)
        if n <= 0:
            continue
        cost = ZERO
        for t in unit.tokens:
            shares, basis = left[t]
            part = basis if n == shares else (basis * n / shares).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)
            cost += part
            left[t] = (shares - n, basis - part)
            in_sets[t] = in_sets.get(t, ZERO) + n
        found.append(CompleteSet(unit, n, cost))
    return Valuation(tuple(found), left, in_sets)


def _yes(market: MarketInfo) -> str | None:
    return next((t.token_id for t in market.tokens if t.outcome.lower() == "yes"), None)


def units_of(markets: Iterable[MarketInfo], events: Mapping[str, Sequence[MarketInfo]]) -> list[SetUnit]:
    """Neg-risk events first (``events``: event id -> every member, as far as known), then every
    two-outcome market's YES + NO."""
    units: list[SetUnit] = []
    for event_id, members in sorted(events.items()):
        if len(members) < 2 or any(m.neg_risk_augmented for m in members):
            continue
        yes = [_yes(m) for m in sorted(members, key=lambda m: m.condition_id)]
        if all(yes):
            units.append(SetUnit(event_id, tuple(t for t in yes if t), "neg_risk"))
    for m in markets:
        if len(m.tokens) == 2:
            units.append(SetUnit(m.condition_id, tuple(t.token_id for t in m.tokens), "binary"))
    return units
