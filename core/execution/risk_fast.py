"""The risk gate's group check, the common case first: a group every one of whose legs passes.

:meth:`core.execution.risk_gate.RiskGate.check_many` measures each leg's exposure figures exactly,
leg after leg (:mod:`core.execution.leg_exposure`), which costs some 30 us per leg. Nearly every
group the engine sends passes, and for a pass the exact figures are not needed: an upper bound
below the limit is enough. :func:`group_passes` answers True only when the exact path would allow
every leg; anything else (a refusal, or a bound it cannot prove) answers False and the exact path
decides, with its reason code and detail text. So the decisions, the refusals and their messages
are the exact path's: this module can only make an allow cheaper, never change one.

The bound: a BUY of notional ``n`` on a token that occurs ``c`` times in a unit's token list adds
``c x n`` to that unit's loss in the resolutions the token loses in and nothing elsewhere, so a
unit's worst loss after some legs is at most its worst loss before them plus the sum of their
``c x n``; the total (the sum of the units' worst losses) grows by at most the same sums; a SELL
moves no loss (open sells are ignored by the measure). Units and their figures are
:class:`~core.execution.exposure.ExposureSnapshot`'s; the shortcut applies where
:meth:`~core.execution.leg_exposure.GroupExposure.covers` says the group's figures are the
snapshot's own (every leg's market known, its token one of that market's, held under it).
The per-order rules, the book and the funds are checked exactly, leg by leg, as the gate does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from core.execution.exposure import ExposureSnapshot
from core.execution.leg_exposure import GroupExposure
from core.execution.rules import crosses_book, order_rules
from core.execution.types import OrderRequest
from core.types import BookStatus, BookView, MarketInfo, Side

if TYPE_CHECKING:
    from core.execution.risk_gate import RiskLimits

ZERO = Decimal(0)

Leg = tuple[OrderRequest, MarketInfo, BookView | BookStatus | None]


class _Bounds:
    """What the group's BUY legs add, at most, to each unit they touch and to the total."""

    __slots__ = ("_members", "events", "markets", "snap", "total")

    def __init__(self, snap: ExposureSnapshot) -> None:
        self.snap = snap
        self.markets: dict[str, Decimal] = {}
        self.events: dict[str, Decimal] = {}
        self.total = ZERO
        self._members: dict[str, Counter[str]] = {}  # event -> its tokens, counted as its unit lists them

    def add(self, req: OrderRequest, notional: Decimal) -> None:
        """A BUY leg: its market unit (the token is listed once: ``covers``), its event unit (as many
        times as the event lists its market), and the unit the total counts it in (the event, else the market)."""
        self.markets[req.market] = self.markets.get(req.market, ZERO) + notional
        info = self.snap.markets[req.market]
        event = info.neg_risk_market_id if info.neg_risk else None
        if not event:
            self.total += notional
            return
        counts = self._members.get(event)
        if counts is None:
            members = self.snap.event_markets(event)
            counts = self._members[event] = Counter(t.token_id for m in members for t in m.tokens)
        added = notional * counts[req.token_id]
        self.events[event] = self.events.get(event, ZERO) + added
        self.total += added

    def within(self, max_market: Decimal | None, max_event: Decimal | None, max_total: Decimal | None) -> bool:
        """Whether every unit stays within its limit even at the bound (the exposures before the
        group measured as the exact path measures them, only for the limits that are set)."""
        snap = self.snap
        empty = not snap.holdings  # nothing held, nothing open: every exposure before the group is 0
        if max_total is not None and self.total:
            if (ZERO if empty else snap.total_exposure()) + self.total > max_total:
                return False
        if max_event is not None:
            for event, added in self.events.items():
                if (ZERO if empty else snap.event_exposure(event)) + added > max_event:
                    return False
        if max_market is not None:
            for market, added in self.markets.items():
                if (ZERO if empty else snap.market_exposure(market)) + added > max_market:
                    return False
        return True


def group_passes(
    legs: Sequence[Leg], snap: ExposureSnapshot, *, clock: Callable[[], float], limits: RiskLimits
) -> bool:
    """True only when the gate's exact check would allow every leg (armed, daily loss and breaker
    are the caller's); False: let the exact check decide (see the module docstring)."""
    if not GroupExposure.covers(snap, [(req, market) for req, market, _ in legs]):
        return False
    funds = snap.funds
    committed: Decimal | None = None  # open buys before the group, then the group's buys so far
    sold: dict[str, Decimal] = {}  # token -> shares the group's earlier legs sell
    bounds = _Bounds(snap)
    for req, market, book in legs:
        if market.closed or not market.active:
            return False
        view = None if book is None or isinstance(book, BookStatus) else book
        status = view.status if view is not None else book
        if status is not None and status is not BookStatus.OK:
            return False
        marketable = None if view is None else crosses_book(req.side, req.price, view.best_bid(), view.best_ask())
        rules = order_rules(
            req,
            tick=market.tick_size,
            min_order_size=market.min_order_size,
            now=clock(),
            marketable=marketable,
            max_order_notional=limits.max_order_notional,
        )
        if not rules.ok:
            return False
        notional = req.price * req.size
        if req.side is Side.SELL:
            if not _can_sell(req, snap, sold):
                return False
            continue
        if funds is not None:
            if funds.collateral is None:
                return False
            if committed is None:
                committed = sum((h.pending_buy for h in snap.holdings.values()), ZERO)
            if notional > funds.collateral - committed:
                return False
            committed += notional
        bounds.add(req, notional)
    return bounds.within(limits.max_market_notional, limits.max_event_notional, limits.max_total_exposure)


def _can_sell(req: OrderRequest, snap: ExposureSnapshot, sold: dict[str, Decimal]) -> bool:
    """The gate's SELL funds check: the shares held (the venue's word when it has one) less those
    open sells and the group's earlier sells have promised."""
    held = snap.holdings.get(req.token_id)
    funds = snap.funds
    venue = funds.shares.get(req.token_id) if funds is not None and funds.shares is not None else None
    shares = venue if venue is not None else (held.shares if held is not None else ZERO)
    before = sold.get(req.token_id, ZERO)
    promised = (held.pending_sell if held is not None else ZERO) + before
    if req.size > shares - promised:
        return False
    sold[req.token_id] = before + req.size
    return True
