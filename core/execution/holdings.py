"""Positions and open orders as the risk gate sees them, kept incrementally.

Per token, a :class:`~core.execution.exposure.Holding` (shares, cost, open buys and sells) is
recomputed only when the token's orders or position changed; per unit (a neg-risk event, else a
market) the worst-case exposure is cached between snapshots and dropped when anything in the unit
changed. The markets the engine knows (and which of them form a neg-risk event) live here too:
they define the units, and the complete sets the position book values at 1 pUSD each
(:mod:`.complete_sets`: the tracker installs :meth:`ExposureTracker.set_units` into the book).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal

from core.execution.complete_sets import SetUnit, units_of
from core.execution.context import EngineContext
from core.execution.exposure import ExposureSnapshot, Holding, group_key_of
from core.execution.order_table import OrderTable, Tracked
from core.execution.positions import PositionBook
from core.types import MarketInfo, Side

ZERO = Decimal(0)


class ExposureTracker:
    def __init__(self, ctx: EngineContext, orders: OrderTable, positions: PositionBook) -> None:
        self._ctx = ctx
        self._orders = orders
        self._positions = positions
        self._markets: dict[str, MarketInfo] = {}
        self._event_index: dict[str, list[str]] = {}  # neg-risk event id -> market ids
        self._complete_events: dict[str, frozenset[str]] = {}
        self._holdings: dict[str, Holding] = {}
        self._position_changed: set[str] = set()
        self._unit_cache: dict[str, Decimal] = {}  # unit (event / market) -> worst-case exposure
        self._set_units: list[SetUnit] | None = None  # complete-set units, rebuilt when markets change
        positions.units = self.set_units

    # -- markets -----------------------------------------------------------------------------

    @property
    def markets(self) -> Mapping[str, MarketInfo]:
        return self._markets

    def market(self, condition_id: str) -> MarketInfo | None:
        return self._markets.get(condition_id)

    def register_markets(self, markets: Iterable[MarketInfo]) -> None:
        for market in markets:
            self.register_market(market)

    def register_market(self, market: MarketInfo) -> None:
        old = self._markets.get(market.condition_id)
        if old is market or old == market:
            return
        self._markets[market.condition_id] = market
        self._set_units = None
        # a market's structure changed (or became known): units and their cached exposure move
        self._unit_cache.clear()
        self._position_changed.update(self._holdings)
        if old is not None and old.neg_risk_market_id and old.neg_risk_market_id in self._event_index:
            members = self._event_index[old.neg_risk_market_id]
            if market.condition_id in members:
                members.remove(market.condition_id)
        if market.neg_risk and market.neg_risk_market_id:
            self._event_index.setdefault(market.neg_risk_market_id, []).append(market.condition_id)

    def set_event_markets(self, event_id: str, market_ids: Iterable[str]) -> None:
        """Declare the full list of markets of a neg-risk event (lets the gate drop 'other wins')."""
        self._complete_events[event_id] = frozenset(market_ids)
        self._unit_cache.pop(f"e:{event_id}", None)
        self._set_units = None

    def event_members(self, event_id: str) -> list[MarketInfo] | None:
        """Every member of a neg-risk event, or None while its full list is unknown (declared by
        :meth:`set_event_markets`, or a registered member missing)."""
        declared = self._complete_events.get(event_id)
        if declared is None:
            return None
        members = [self._markets.get(cid) for cid in sorted(declared)]
        return [m for m in members if m is not None] if all(members) else None

    def set_units(self) -> list[SetUnit]:
        """The complete-set units of the known markets: each fully known neg-risk event (YES of
        every member), then each binary market (YES + NO)."""
        if self._set_units is None:
            events = {e: ms for e in self._complete_events if (ms := self.event_members(e)) is not None}
            self._set_units = units_of(self._markets.values(), events)
        return self._set_units

    # -- holdings ----------------------------------------------------------------------------

    def position_changed(self, token_id: str) -> None:
        self._position_changed.add(token_id)

    def cached_unit_exposure(self, unit: str) -> Decimal | None:
        """The cached worst-case exposure of one unit (None: not cached); for consistency checks."""
        return self._unit_cache.get(unit)

    def snapshot(self, exclude: Tracked | None = None) -> ExposureSnapshot:
        """The exposure now; ``exclude``: as if that open order were not there (a retry re-checks it)."""
        self._refresh()
        holdings = self._holdings
        cache: dict[str, Decimal] | None = self._unit_cache
        if exclude is not None and self._orders.is_open(exclude.coid) and exclude.req.token_id in holdings:
            h = holdings[exclude.req.token_id]
            if exclude.req.side is Side.BUY:
                h = replace(h, pending_buy=h.pending_buy - exclude.req.price * exclude.remaining)
            else:
                h = replace(h, pending_sell=h.pending_sell - exclude.remaining)
            holdings = {**holdings, h.token_id: h}
            cache = None  # a what-if view: do not pollute the shared cache
        funds = self._ctx.funds
        return ExposureSnapshot(
            holdings=dict(holdings),
            markets=self._markets,
            complete_events=self._complete_events,
            daily_realised=self._positions.daily_realised(),
            event_index=self._event_index,
            group_cache=cache,
            funds=funds.snapshot() if funds is not None else None,
        )

    def _refresh(self) -> None:
        """Recompute the holdings of tokens whose orders or position changed; drop their cached unit exposure."""
        changed = self._orders.drain_touched() | self._position_changed
        self._position_changed = set()
        for token_id in changed:
            pending = selling = ZERO
            market = ""
            for t in self._orders.exposed_on(token_id):
                market = t.req.market
                if t.req.side is Side.BUY:
                    pending += t.req.price * t.exposed
                else:
                    selling += t.exposed
            pos = self._positions.get(token_id)
            old = self._holdings.pop(token_id, None)
            if old is not None:
                self._unit_cache.pop(self._unit_of(old.market, token_id), None)
            if (pos is not None and (pos.shares != 0 or pos.cost != 0)) or pending != 0 or selling != 0:
                market = (pos.market if pos is not None else "") or market
                shares, cost = (pos.shares, pos.cost) if pos is not None else (ZERO, ZERO)
                self._holdings[token_id] = Holding(token_id, market, shares, cost, pending, selling)
                self._unit_cache.pop(self._unit_of(market, token_id), None)

    def _unit_of(self, market_id: str, token_id: str) -> str:
        if not market_id:  # same resolution as ExposureSnapshot._market_of (rare: fills of unknown orders)
            market_id = next(
                (m.condition_id for m in self._markets.values() if any(t.token_id == token_id for t in m.tokens)), ""
            )
        return group_key_of(market_id, token_id, self._markets.get(market_id))
