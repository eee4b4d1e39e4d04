"""What can be turned back into pUSD now: complete sets to merge and resolved shares to redeem.

A merge burns YES + NO of ONE condition (a binary market, or one question of a neg-risk event)
through the V2 collateral adapter and pays 1 pUSD per pair: ``min(YES, NO)`` shares, counted in
10^-6 units (outcome tokens have 6 decimals) and rounded down to a whole unit. A neg-risk event's
set (YES of every member) cannot be merged before resolution; it is held and redeemed (1 pUSD
per set). The NegRisk Adapter's conversions are not used: they pay USDC.e, not pUSD.

A redeem burns every share of a resolved market: the winning outcome pays 1 pUSD per share, the
others nothing. How each is booked on the position book (a confirmed SELL per token at its payout)
is :func:`merge_legs` / :func:`redeem_legs`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from core.chain.types import ChainCall
from core.execution.positions import PositionBook
from core.types import MarketInfo, Mode

ZERO = Decimal(0)
ONE = Decimal(1)
UNIT = Decimal("0.000001")  # one 10^-6 share: the token's smallest amount
UNITS_PER_SHARE = 1_000_000
WALLETS = {
    1: "Polymarket proxy wallet (signature type 1)",
    2: "Gnosis Safe (signature type 2)",
    3: "deposit wallet (signature type 3)",
}


class Action(enum.StrEnum):
    MERGE = "merge"
    REDEEM = "redeem"


class Status(enum.StrEnum):
    BOOKED = "booked"  # paper: the paper ledger moved
    CONFIRMED = "confirmed"  # live: mined and confirmed, then booked
    DRY_RUN = "dry_run"  # described, nothing sent
    NOTHING = "nothing"  # nothing held to settle
    REFUSED = "refused"  # not sent (wallet type, no RPC, more asked than held, stuck before)
    REVERTED = "reverted"
    STUCK = "stuck"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One market's merge or redeem."""

    action: Action
    condition_id: str
    label: str
    mode: Mode
    status: Status
    amount: Decimal  # sets merged / winning shares redeemed (asked, when not booked)
    pusd: Decimal  # pUSD returned (0 unless booked)
    message: str
    call: ChainCall | None = None
    tx_hash: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (Status.BOOKED, Status.CONFIRMED, Status.DRY_RUN, Status.NOTHING)

    @property
    def booked(self) -> bool:
        return self.status in (Status.BOOKED, Status.CONFIRMED)


@dataclass
class Totals:
    """What settlement returned since start (the demo's summary, /balance)."""

    merged_sets: Decimal = Decimal(0)
    merged_pusd: Decimal = Decimal(0)
    redeemed_shares: Decimal = Decimal(0)
    redeemed_pusd: Decimal = Decimal(0)
    transactions: list[str] = field(default_factory=list)  # hashes of confirmed transactions


@dataclass(frozen=True, slots=True)
class Policy:
    merge: str = "manual"  # auto | manual | off
    redeem: str = "manual"


@dataclass(frozen=True, slots=True)
class Wallet:
    signature_type: int = 0
    funder: str | None = None


def to_units(shares: Decimal) -> int:
    """Whole 10^-6 units in ``shares``, rounded down (never more than is held)."""
    if shares <= 0:
        return 0
    return int((shares * UNITS_PER_SHARE).to_integral_value(rounding=ROUND_DOWN))


def from_units(units: int) -> Decimal:
    return Decimal(units) * UNIT


@dataclass(frozen=True, slots=True)
class Mergeable:
    market: MarketInfo
    units: int  # complete YES+NO pairs held, in 10^-6 sets

    @property
    def sets(self) -> Decimal:
        return from_units(self.units)


@dataclass(frozen=True, slots=True)
class Redeemable:
    market: MarketInfo
    winning_token: str  # "" while the winner is not known
    winning_outcome: str
    held: tuple[tuple[str, Decimal], ...]  # (token, shares > 0) of this market

    @property
    def winning_shares(self) -> Decimal:
        return sum((s for t, s in self.held if t == self.winning_token), ZERO)

    @property
    def payout(self) -> Decimal:
        """pUSD the redeem pays: 1 per winning share."""
        return self.winning_shares * ONE


def held_shares(book: PositionBook, token_id: str, venue: Mapping[str, Decimal] | None = None) -> Decimal:
    """Shares of ``token_id`` we hold: the position book, bounded by the venue's balance when known."""
    pos = book.get(token_id)
    shares = pos.shares if pos is not None and pos.shares > 0 else ZERO
    if venue is not None and token_id in venue:
        shares = min(shares, max(venue[token_id], ZERO))
    return shares


def mergeable(
    book: PositionBook,
    market: MarketInfo,
    venue: Mapping[str, Decimal] | None = None,
    sold: Callable[[str], Decimal] | None = None,
) -> Mergeable | None:
    """The complete YES+NO pairs of one two-outcome market held now (None: not a two-outcome
    market); ``sold``: a token's shares sold and not settled yet, spoken for (never merged)."""
    if len(market.tokens) != 2:
        return None
    units = min(
        to_units(max(ZERO, held_shares(book, t.token_id, venue) - (sold(t.token_id) if sold else ZERO)))
        for t in market.tokens
    )
    return Mergeable(market, units)


def event_sets(book: PositionBook, event_id: str) -> Decimal:
    """Sets of a neg-risk event (YES of every member) held: they are held to resolution."""
    return sum((s.sets for s in book.valuation().sets if s.unit.kind == "neg_risk" and s.unit.key == event_id), ZERO)


def merge_legs(book: PositionBook, market: MarketInfo, units: int) -> list[tuple[str, Decimal, Decimal]]:
    """(token, price, shares) SELLs that book a merge of ``units``: the two prices add up to 1, so
    the cash credited is exactly 1 pUSD per set; the first token is priced at its average cost
    (its own PnL stays ~0) and the second takes the rest: the set's locked edge is realised there."""
    first, second = market.tokens[0].token_id, market.tokens[1].token_id
    pos = book.get(first)
    avg = pos.cost / pos.shares if pos is not None and pos.shares > 0 else Decimal("0.5")
    price = min(max(avg.quantize(UNIT, rounding=ROUND_HALF_EVEN), ZERO), ONE)
    size = from_units(units)
    return [(first, price, size), (second, ONE - price, size)]


def redeem_legs(book: PositionBook, redeemable: Redeemable) -> list[tuple[str, Decimal, Decimal]]:
    """(token, price, shares) SELLs that book a redeem: the winner at 1, every other outcome at 0."""
    return [(t, ONE if t == redeemable.winning_token else ZERO, s) for t, s in redeemable.held]


def redeemable(book: PositionBook, market: MarketInfo, winning_token: str, winning_outcome: str) -> Redeemable:
    held = tuple(
        (t.token_id, pos.shares) for t in market.tokens if (pos := book.get(t.token_id)) is not None and pos.shares > 0
    )
    if not winning_token and winning_outcome:
        winning_token = next((t.token_id for t in market.tokens if t.outcome == winning_outcome), "")
    if winning_token and not winning_outcome:
        winning_outcome = next((t.outcome for t in market.tokens if t.token_id == winning_token), "")
    return Redeemable(market, winning_token, winning_outcome, held)


def plain(value: Decimal) -> str:
    """A figure as people write it: no exponent, no trailing zeros."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
