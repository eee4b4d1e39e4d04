"""A group's legs checked one after the other: each against the exposure of the legs before it.

The risk gate (:meth:`core.execution.risk_gate.RiskGate.check_many`) asks, for each leg, the
figures of :mod:`core.execution.exposure` on the snapshot as if the legs before it were resting:
the leg's market and event exposure before and after it, and the total before it. Two ways to
answer, with the same figures (same Decimal, value and exponent):

- :class:`SnapshotChain`: the snapshot rebuilt per leg (``with_order``) and every figure measured
  from scratch — quadratic in the legs of an event (each measure walks the event's tokens and
  resolutions). Kept for the shapes :class:`GroupExposure` does not cover.
- :class:`GroupExposure`: the loss of each resolution of the leg's market and event measured
  once, then moved by each leg (a BUY adds its notional to the resolutions its token loses in;
  a new holding adds its zero cost and shares), the rest of the total summed once.

Sums of Decimals are exact here (nothing reaches 28 digits), so an incremental sum is the same
number with the same exponent as the sum from scratch; the worst loss is taken over the
resolutions in the same order (:func:`core.execution.exposure.worst_of`), so ties keep the same
exponent. :meth:`GroupExposure.covers` says when the shortcut is the same computation: every leg's
market is known to the snapshot, its token is one of that market's tokens, held (if at all) under
that market, and the market given with the leg has the snapshot's event. Tokens belong to one
market (the venue's position ids): a leg moves only its own market's and event's exposure. The
cached unit exposures (``group_cache``) are taken to be what a fresh measure would give, as the
engine keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.execution.exposure import ExposureSnapshot, Holding, worst_of
from core.execution.funds import Funds
from core.execution.types import OrderRequest
from core.types import MarketInfo, Side

ZERO = Decimal(0)

# (market before, market after, event before, event after, total before); event None: not neg-risk
Figures = tuple[Decimal, Decimal, Decimal | None, Decimal | None, Decimal]


class LegView(Protocol):
    """What the gate reads for one leg, and how the leg is then added to what follows."""

    @property
    def funds(self) -> Funds | None: ...

    def holding(self, token_id: str) -> Holding | None: ...

    def committed(self) -> Decimal:
        """Notional of every open buy (the legs added so far included)."""
        ...

    def figures(self, req: OrderRequest, market: MarketInfo) -> Figures: ...

    def add(self, req: OrderRequest) -> None: ...


def leg_view(snap: ExposureSnapshot, legs: Sequence[tuple[OrderRequest, MarketInfo]]) -> LegView:
    """The incremental view when it computes the same figures, else the snapshot chain."""
    if GroupExposure.covers(snap, legs):
        return GroupExposure(snap, [req for req, _ in legs])
    return SnapshotChain(snap)


class SnapshotChain:
    """The snapshot rebuilt per leg, every figure measured from scratch (the reference computation)."""

    def __init__(self, snap: ExposureSnapshot) -> None:
        self.snap = snap

    @property
    def funds(self) -> Funds | None:
        return self.snap.funds

    def holding(self, token_id: str) -> Holding | None:
        return self.snap.holdings.get(token_id)

    def committed(self) -> Decimal:
        return sum((h.pending_buy for h in self.snap.holdings.values()), ZERO)

    def figures(self, req: OrderRequest, market: MarketInfo) -> Figures:
        snap = self.snap
        if req.market not in snap.markets:
            snap = snap.with_market(market)
        after = snap.with_order(req)
        before_m, after_m = snap.market_exposure(req.market), after.market_exposure(req.market)
        before_g: Decimal | None = None
        after_g: Decimal | None = None
        if market.neg_risk and market.neg_risk_market_id:
            event = market.neg_risk_market_id
            before_g, after_g = snap.event_exposure(event), after.event_exposure(event)
        return before_m, after_m, before_g, after_g, snap.total_exposure()

    def add(self, req: OrderRequest) -> None:
        self.snap = self.snap.with_order(req)


@dataclass(slots=True)
class _Unit:
    """One market or event as :meth:`ExposureSnapshot._worst` sees it: its loss per resolution."""

    counts: dict[str, int]  # token -> occurrences in the unit's token list
    resolutions: list[frozenset[str]]
    losses: list[Decimal]
    held: bool
    _worst: Decimal | None = None
    _next: tuple[str, bool, Decimal, list[Decimal], bool, Decimal] | None = None  # the last what-if

    def _moved(self, token_id: str, pending: Decimal) -> list[Decimal]:
        """The losses once ``token_id`` holds ``pending`` more in open buys. A new holding's zero
        cost and shares move no loss: each is a sum from ZERO, its exponent already <= 0."""
        count = self.counts.get(token_id, 0)
        if not count:
            return self.losses
        losses = list(self.losses)
        for i, winners in enumerate(self.resolutions):
            if token_id not in winners:
                loss = losses[i]
                for _ in range(count):
                    loss += pending
                losses[i] = loss
        return losses

    def worst(self) -> Decimal:
        if self._worst is None:
            self._worst = worst_of(self.losses) if self.held else ZERO
        return self._worst

    def _after(self, token_id: str, new: bool, pending: Decimal) -> tuple[list[Decimal], bool, Decimal]:
        nxt = self._next
        if nxt is not None and nxt[0] == token_id and nxt[1] == new and nxt[2] is pending:
            return nxt[3], nxt[4], nxt[5]
        losses = self._moved(token_id, pending)
        held = self.held or (new and token_id in self.counts)
        worst = worst_of(losses) if held else ZERO
        self._next = (token_id, new, pending, losses, held, worst)
        return losses, held, worst

    def worst_after(self, token_id: str, new: bool, pending: Decimal) -> Decimal:
        """The worst loss once ``token_id`` holds ``pending`` more in open buys (``new``: a new holding)."""
        return self._after(token_id, new, pending)[2]

    def move(self, token_id: str, new: bool, pending: Decimal) -> None:
        self.losses, self.held, self._worst = self._after(token_id, new, pending)
        self._next = None


def _unit(snap: ExposureSnapshot, tokens: list[str], resolutions: list[frozenset[str]]) -> _Unit:
    held, losses = snap.losses(tokens, resolutions)
    counts: dict[str, int] = {}
    for t in tokens:
        counts[t] = counts.get(t, 0) + 1
    return _Unit(counts, resolutions, losses, held)


class GroupExposure:
    """The snapshot's figures as legs are added, each measured once and then moved (see the module doc)."""

    def __init__(self, snap: ExposureSnapshot, legs: Sequence[OrderRequest]) -> None:
        self.snap = snap
        self._changed: dict[str, Holding] = {}  # the holdings the legs added so far changed
        self._units: dict[str, _Unit] = {}  # "m:<market>" / "e:<event>" -> its losses now
        self._committed: Decimal | None = None
        self._legs = 0
        self._rest: Decimal | None = None  # total over the units no leg touches
        self._in_total: set[str] = set()  # touched units that count in the total now
        self._touched = {self._group(req) for req in legs}  # the units the legs move
        self._keys: dict[str, list[str]] = {}  # market -> its unit keys (the one the total counts last)
        self._memo: tuple[OrderRequest, bool, Decimal] | None = None  # the last leg's move

    @staticmethod
    def covers(snap: ExposureSnapshot, legs: Sequence[tuple[OrderRequest, MarketInfo]]) -> bool:
        """Whether the shortcut computes what :class:`SnapshotChain` computes for these legs."""
        home: dict[str, str] = {}  # token -> the market its holding is under
        for req, market in legs:
            info = snap.markets.get(req.market)
            if info is None or not req.market:
                return False
            if (info.neg_risk, info.neg_risk_market_id) != (market.neg_risk, market.neg_risk_market_id):
                return False
            tokens = [t.token_id for t in info.tokens]
            if req.token_id not in tokens or len(set(tokens)) != len(tokens):
                return False
            held = snap.holdings.get(req.token_id)
            under = home.get(req.token_id, held.market if held is not None else req.market)
            if under != req.market:
                return False
            home[req.token_id] = req.market
        return True

    @property
    def funds(self) -> Funds | None:
        return self.snap.funds

    def holding(self, token_id: str) -> Holding | None:
        changed = self._changed.get(token_id)
        return changed if changed is not None else self.snap.holdings.get(token_id)

    def committed(self) -> Decimal:
        if self._committed is None:
            committed = sum((h.pending_buy for h in self.snap.holdings.values()), ZERO)
            for h in self._changed.values():
                old = self.snap.holdings.get(h.token_id)
                committed += h.pending_buy - (old.pending_buy if old is not None else ZERO)
            self._committed = committed
        return self._committed

    def _group(self, req: OrderRequest) -> str:
        """The unit the total counts the leg's token in: its event, else its market."""
        info = self.snap.markets[req.market]
        if info.neg_risk and info.neg_risk_market_id:
            return f"e:{info.neg_risk_market_id}"
        return f"m:{req.market}"

    def _units_of(self, req: OrderRequest) -> list[_Unit]:
        """The market's unit, then (neg-risk) its event's: built from the snapshot when first met."""
        keys = self._keys.get(req.market)
        if keys is None:
            group = self._group(req)
            keys = self._keys[req.market] = [group] if group.startswith("m:") else [f"m:{req.market}", group]
        return [self._unit(key) for key in keys]

    def _unit(self, key: str) -> _Unit:
        unit = self._units.get(key)
        if unit is None:
            kind, _, ident = key.partition(":")
            shape = self.snap.market_unit(ident) if kind == "m" else self.snap.event_unit(ident)
            unit = self._units[key] = _unit(self.snap, *shape)
        return unit

    def _move(self, req: OrderRequest) -> tuple[bool, Decimal]:
        """(a new holding, the pending buy ``req`` adds to each resolution its token loses in)."""
        memo = self._memo
        if memo is not None and memo[0] is req:
            return memo[1], memo[2]
        cur = self.holding(req.token_id)
        if req.side is Side.SELL:
            return cur is None, ZERO
        delta = req.price * req.size
        move = (cur is None, ZERO + delta if cur is None else delta)
        self._memo = (req, *move)
        return move

    def _total(self) -> Decimal:
        if self._legs == 0:
            return self.snap.total_exposure()
        if self._rest is None:
            snap, cache = self.snap, self.snap.group_cache
            rest = ZERO
            for key in snap.group_keys():
                if key in self._touched:
                    self._in_total.add(key)
                    continue
                value = cache.get(key) if cache is not None else None
                rest += value if value is not None else snap.exposure_of(key)
            self._rest = rest
        total = self._rest
        for key in self._in_total:
            total += self._unit(key).worst()
        return total

    def figures(self, req: OrderRequest, market: MarketInfo) -> Figures:
        units = self._units_of(req)
        new, pending = self._move(req)
        before = [u.worst() for u in units]
        after = [u.worst_after(req.token_id, new, pending) for u in units]
        if len(units) == 1:
            return before[0], after[0], None, None, self._total()
        return before[0], after[0], before[1], after[1], self._total()

    def add(self, req: OrderRequest) -> None:
        """``req`` rests from now on (what ``ExposureSnapshot.with_order`` does to the holdings)."""
        units = self._units_of(req)
        new, pending = self._move(req)
        self._memo = None
        if req.side is Side.BUY or new:
            for unit in units:
                unit.move(req.token_id, new, pending)
        cur = self.holding(req.token_id) or Holding(token_id=req.token_id, market=req.market)
        buy, sell = cur.pending_buy, cur.pending_sell
        if req.side is Side.BUY:
            buy = buy + req.price * req.size
            if self._committed is not None:
                self._committed += req.price * req.size
        else:
            sell = sell + req.size
        market = cur.market or req.market
        self._changed[req.token_id] = Holding(cur.token_id, market, cur.shares, cur.cost, buy, sell)
        self._in_total.add(self._keys[req.market][-1])
        self._legs += 1
