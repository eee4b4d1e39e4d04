"""Exposure as the risk gate measures it: the worst-case loss across outcomes, not a sum of notionals.

For a set of mutually exclusive resolutions ``r`` (a binary market: YES wins or NO wins; a
neg-risk event: each listed outcome wins, plus "something else wins" unless the event is known
to be complete), the loss in ``r`` is

    sum(cost basis of held shares) - sum(shares of tokens that pay in r)
      + sum(notional of open buy orders on tokens that do not pay in r)

Open buys count adversarially (the ones on losing tokens fill, the ones on winning tokens do
not), so a Dutch group's legs in flight count as leg risk until they have all filled, and a
group left with one leg filled counts as that leg's cost until it is unwound or hedged. Open
sells are ignored: with long-only inventory a sale can only lower the loss ceiling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial

from core.execution.funds import Funds
from core.execution.types import OrderRequest
from core.types import MarketInfo, Side

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Holding:
    """Per-token exposure inputs: filled inventory and open buy orders."""

    token_id: str
    market: str = ""
    shares: Decimal = ZERO
    cost: Decimal = ZERO  # cost basis of the held shares
    pending_buy: Decimal = ZERO  # notional of open (unfilled) buy orders
    pending_sell: Decimal = ZERO  # shares promised to open (unfilled) sell orders


def yes_no_tokens(market: MarketInfo) -> tuple[str, str] | None:
    """(YES token, NO token) of a binary market; None when the market is not binary."""
    if len(market.tokens) != 2:
        return None
    first, second = market.tokens
    if second.outcome.strip().lower() == "yes" and first.outcome.strip().lower() != "yes":
        return second.token_id, first.token_id
    return first.token_id, second.token_id


@dataclass(slots=True)
class ExposureSnapshot:
    holdings: dict[str, Holding] = field(default_factory=dict)
    markets: Mapping[str, MarketInfo] = field(default_factory=dict)
    complete_events: Mapping[str, frozenset[str]] = field(default_factory=dict)
    daily_realised: Decimal | None = None  # today's realised PnL; None = "use what the gate was told"
    event_index: Mapping[str, Sequence[str]] | None = None  # event id -> market ids (built when absent)
    # per-unit exposures the owner (the engine) keeps between snapshots and invalidates on change
    group_cache: dict[str, Decimal] | None = None
    funds: Funds | None = None  # collateral and venue shares; None = no balance check (shares from holdings)
    _by_market: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    _events: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    _total: Decimal | None = field(default=None, init=False, repr=False, compare=False)

    def _derive(self, holdings: dict[str, Holding], markets: Mapping[str, MarketInfo]) -> ExposureSnapshot:
        return ExposureSnapshot(
            holdings,
            markets,
            self.complete_events,
            self.daily_realised,
            event_index=self.event_index if markets is self.markets else None,
            funds=self.funds,
        )

    def with_market(self, market: MarketInfo) -> ExposureSnapshot:
        """The same exposure, knowing one more market's structure."""
        return self._derive(self.holdings, {**self.markets, market.condition_id: market})

    def with_order(self, req: OrderRequest) -> ExposureSnapshot:
        """The snapshot as if ``req`` were resting (buys add pending notional, sells pending shares)."""
        holdings = dict(self.holdings)
        cur = holdings.get(req.token_id) or Holding(token_id=req.token_id, market=req.market)
        if req.side is Side.BUY:
            cur = replace(cur, pending_buy=cur.pending_buy + req.price * req.size)
        else:
            cur = replace(cur, pending_sell=cur.pending_sell + req.size)
        holdings[req.token_id] = replace(cur, market=cur.market or req.market)
        return self._derive(holdings, self.markets)

    # -- indexes (built once per snapshot) ---------------------------------------------------------

    def _market_of(self, token_id: str) -> str:
        held = self.holdings.get(token_id)
        if held is not None and held.market:
            return held.market
        for m in self.markets.values():
            if any(t.token_id == token_id for t in m.tokens):
                return m.condition_id
        return ""

    def _tokens_by_market(self) -> dict[str, list[str]]:
        if self._by_market is None:
            index: dict[str, list[str]] = {}
            for h in self.holdings.values():
                index.setdefault(h.market or self._market_of(h.token_id), []).append(h.token_id)
            self._by_market = index
        return self._by_market

    def _market_tokens(self, market_id: str) -> list[str]:
        info = self.markets.get(market_id)
        tokens = [t.token_id for t in info.tokens] if info else []
        tokens += [t for t in self._tokens_by_market().get(market_id, ()) if t not in tokens]
        return tokens

    def _worst(self, tokens: Iterable[str], resolutions: Sequence[frozenset[str]]) -> Decimal:
        held, losses = self.losses(tokens, resolutions)
        return worst_of(losses) if held else ZERO

    def losses(self, tokens: Iterable[str], resolutions: Sequence[frozenset[str]]) -> tuple[bool, list[Decimal]]:
        """(any token held, the loss in each resolution): what :meth:`_worst` takes the worst of."""
        held = [self.holdings[t] for t in tokens if t in self.holdings]
        if not held:
            return False, [ZERO for _ in resolutions]
        base = sum((h.cost for h in held), ZERO)
        losses: list[Decimal] = []
        for winners in resolutions:
            loss = base
            for h in held:
                if h.token_id in winners:
                    loss -= h.shares
                else:
                    loss += h.pending_buy
            losses.append(loss)
        return True, losses

    # -- measures ------------------------------------------------------------------------------

    def market_exposure(self, market_id: str) -> Decimal:
        measure = partial(self._worst_of, self.market_unit, market_id)
        unit = group_key_of(market_id, "", self.markets.get(market_id))
        if unit != f"m:{market_id}":  # a neg-risk member: its unit is its event, never cached under its name
            return measure()
        return self._cached(unit, measure)

    def market_unit(self, market_id: str) -> tuple[list[str], list[frozenset[str]]]:
        """The tokens and resolutions :meth:`market_exposure` measures."""
        info = self.markets.get(market_id)
        tokens = self._market_tokens(market_id)
        if info is None or len(info.tokens) < 2:
            return tokens, [frozenset()]  # structure unknown: assume everything loses
        return tokens, [frozenset({t.token_id}) for t in info.tokens]

    def event_markets(self, event_id: str) -> list[MarketInfo]:
        if self.event_index is not None:
            ids: Sequence[str] = self.event_index.get(event_id, ())
        else:
            if self._events is None:
                events: dict[str, list[str]] = {}
                for m in self.markets.values():
                    if m.neg_risk and m.neg_risk_market_id:
                        events.setdefault(m.neg_risk_market_id, []).append(m.condition_id)
                self._events = events
            ids = self._events.get(event_id, ())
        return [info for i in ids if (info := self.markets.get(i)) is not None and info.neg_risk]

    def event_exposure(self, event_id: str) -> Decimal:
        return self._cached(f"e:{event_id}", partial(self._worst_of, self.event_unit, event_id))

    def _worst_of(self, unit: Callable[[str], tuple[list[str], list[frozenset[str]]]], ident: str) -> Decimal:
        return self._worst(*unit(ident))

    def _cached(self, unit: str, measure: Callable[[], Decimal]) -> Decimal:
        """A unit's exposure through :attr:`group_cache` (none: measured each time): the gate measures
        a group's units for their limits and again inside :meth:`total_exposure`; the owner drops a
        unit's entry whenever a holding in it or the unit's structure changes."""
        cache = self.group_cache
        if cache is None:
            return measure()
        value = cache.get(unit)
        if value is None:
            value = cache[unit] = measure()
        return value

    def event_unit(self, event_id: str) -> tuple[list[str], list[frozenset[str]]]:
        """The tokens and resolutions :meth:`event_exposure` measures."""
        members = self.event_markets(event_id)
        tokens: list[str] = []
        yes_no: list[tuple[str, str]] = []
        for m in members:
            tokens += self._market_tokens(m.condition_id)
            pair = yes_no_tokens(m)
            if pair is not None:
                yes_no.append(pair)
        all_no = frozenset(no for _, no in yes_no)
        resolutions = [(all_no - {no}) | {yes} for yes, no in yes_no]
        complete = self.complete_events.get(event_id)
        known = {m.condition_id for m in members}
        is_complete = complete is not None and complete <= known and not any(m.neg_risk_augmented for m in members)
        if not is_complete or not resolutions:
            resolutions.append(all_no)  # an outcome we do not hold (or "Other") may win
        return tokens, resolutions

    def group_exposure(self, market: MarketInfo) -> Decimal:
        """The exposure of the unit ``market`` belongs to in :meth:`total_exposure` (its event, or itself)."""
        if market.neg_risk and market.neg_risk_market_id:
            return self.event_exposure(market.neg_risk_market_id)
        return self.market_exposure(market.condition_id)

    def group_key(self, token_id: str) -> str:
        """The unit a token's exposure is measured in: its neg-risk event, else its market."""
        market_id = self._market_of(token_id)
        return group_key_of(market_id, token_id, self.markets.get(market_id))

    def group_keys(self) -> set[str]:
        return {self.group_key(t) for t in self.holdings}

    def exposure_of(self, key: str) -> Decimal:
        kind, _, ident = key.partition(":")
        if kind == "e":
            return self.event_exposure(ident)
        if kind == "m":
            return self.market_exposure(ident)
        h = self.holdings.get(ident)
        return max(ZERO, h.cost + h.pending_buy) if h is not None else ZERO

    def total_exposure(self) -> Decimal:
        if self._total is not None:
            return self._total
        total = ZERO
        for key in self.group_keys():
            total += self._cached(key, partial(self.exposure_of, key))
        self._total = total
        return total


def worst_of(losses: Iterable[Decimal]) -> Decimal:
    """The worst loss, never below zero (the first of equal losses: Decimal ties keep their exponent)."""
    worst = None
    for loss in losses:
        worst = loss if worst is None else max(worst, loss)
    return max(ZERO, worst if worst is not None else ZERO)


def group_key_of(market_id: str, token_id: str, info: MarketInfo | None) -> str:
    if info is not None and info.neg_risk and info.neg_risk_market_id:
        return f"e:{info.neg_risk_market_id}"
    if market_id:
        return f"m:{market_id}"
    return f"t:{token_id}"
