"""A Dutch opportunity filled against the books it was found on, as a cross-check of its edge.

Each leg takes the book's asks at prices up to the leg's limit, each level one fill (FOK); the
fee of each fill is the venue's, rounded down. Independent of the strategy's own arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from core.fees import taker_fee
from core.strategies.dutch import DutchOpportunity
from core.types import BookView

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LegFill:
    token_id: str
    wanted: Decimal
    filled: Decimal
    cost: Decimal
    fee: Decimal


@dataclass(frozen=True, slots=True)
class SimulatedFill:
    """Every leg taken from the book at its limit price or better, each level one fill (FOK)."""

    legs: tuple[LegFill, ...]

    @property
    def complete(self) -> bool:
        return all(leg.filled == leg.wanted for leg in self.legs)

    @property
    def cost(self) -> Decimal:
        return sum((leg.cost for leg in self.legs), ZERO)

    @property
    def fees(self) -> Decimal:
        return sum((leg.fee for leg in self.legs), ZERO)

    @property
    def edge(self) -> Decimal | None:
        """Payout minus cost and fees; None when a leg would not fill completely (FOK killed)."""
        if not self.complete:
            return None
        return self.legs[0].wanted - self.cost - self.fees


def simulate_dutch_fill(
    opp: DutchOpportunity, books: Mapping[str, BookView], rates: Mapping[str, Decimal]
) -> SimulatedFill:
    """Take each leg from its book's asks at prices up to the leg's limit (independent of the
    strategy's own arithmetic: a cross-check of the edge it promised)."""
    legs = []
    for intent in opp.legs:
        book = books.get(intent.token_id)
        rate = rates.get(intent.token_id, ZERO)
        left = intent.size
        cost = fee = ZERO
        for price, size in book.asks() if book is not None else []:
            if price > intent.price or not left:
                break
            take = min(size, left)
            cost += take * price
            fee += taker_fee(take, price, rate)
            left -= take
        legs.append(LegFill(intent.token_id, intent.size, intent.size - left, cost, fee))
    return SimulatedFill(tuple(legs))
