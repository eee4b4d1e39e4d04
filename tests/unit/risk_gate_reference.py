"""The risk gate's group check as it was before the incremental leg exposure (issue 15): the
snapshot rebuilt per leg (``with_order``) and every exposure measured from scratch. Kept verbatim
(exposure.py's snapshot and risk_gate.py's ``check_many`` / ``_evaluate`` / ``_funds_check`` at
d99b4bf) as the oracle the new path is compared with (tests/unit/test_risk_gate_legs.py): same
decisions, same reason codes, same detail text (so the same Decimals, value and exponent)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from core.execution.exposure import ExposureSnapshot, Holding
from core.execution.funds import Funds
from core.execution.positions import utc_day
from core.execution.risk_gate import RiskGate
from core.execution.rules import ReasonCode, RiskDecision, crosses_book, order_rules
from core.execution.types import OrderRequest
from core.types import BookStatus, BookView, MarketInfo, Side

ZERO = Decimal(0)


def as_reference(snap: ExposureSnapshot) -> RefSnapshot:
    """The same inputs in the old snapshot (its own copy of the unit cache)."""
    return RefSnapshot(
        dict(snap.holdings),
        snap.markets,
        snap.complete_events,
        snap.daily_realised,
        event_index=snap.event_index,
        group_cache=dict(snap.group_cache) if snap.group_cache is not None else None,
        funds=snap.funds,
    )


def yes_no_tokens(market: MarketInfo) -> tuple[str, str] | None:
    """(YES token, NO token) of a binary market; None when the market is not binary."""
    if len(market.tokens) != 2:
        return None
    first, second = market.tokens
    if second.outcome.strip().lower() == "yes" and first.outcome.strip().lower() != "yes":
        return second.token_id, first.token_id
    return first.token_id, second.token_id


@dataclass(slots=True)
class RefSnapshot:
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

    def _derive(self, holdings: dict[str, Holding], markets: Mapping[str, MarketInfo]) -> RefSnapshot:
        return RefSnapshot(
            holdings,
            markets,
            self.complete_events,
            self.daily_realised,
            event_index=self.event_index if markets is self.markets else None,
            funds=self.funds,
        )

    def with_market(self, market: MarketInfo) -> RefSnapshot:
        """The same exposure, knowing one more market's structure."""
        return self._derive(self.holdings, {**self.markets, market.condition_id: market})

    def with_order(self, req: OrderRequest) -> RefSnapshot:
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
        held = [self.holdings[t] for t in tokens if t in self.holdings]
        if not held:
            return ZERO
        base = sum((h.cost for h in held), ZERO)
        worst = None
        for winners in resolutions:
            loss = base
            for h in held:
                if h.token_id in winners:
                    loss -= h.shares
                else:
                    loss += h.pending_buy
            worst = loss if worst is None else max(worst, loss)
        return max(ZERO, worst if worst is not None else ZERO)

    # -- measures ------------------------------------------------------------------------------

    def market_exposure(self, market_id: str) -> Decimal:
        info = self.markets.get(market_id)
        tokens = self._market_tokens(market_id)
        if info is None or len(info.tokens) < 2:
            return self._worst(tokens, [frozenset()])  # structure unknown: assume everything loses
        return self._worst(tokens, [frozenset({t.token_id}) for t in info.tokens])

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
        return self._worst(tokens, resolutions)

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
        cache = self.group_cache
        for key in self.group_keys():
            if cache is not None and key in cache:
                total += cache[key]
                continue
            value = self.exposure_of(key)
            if cache is not None:
                cache[key] = value
            total += value
        self._total = total
        return total


def group_key_of(market_id: str, token_id: str, info: MarketInfo | None) -> str:
    if info is not None and info.neg_risk and info.neg_risk_market_id:
        return f"e:{info.neg_risk_market_id}"
    if market_id:
        return f"m:{market_id}"
    return f"t:{token_id}"


def _funds_check(req: OrderRequest, snap: RefSnapshot) -> RiskDecision:
    """Never sell shares we do not hold, never buy with money we do not have (after what open
    orders have already promised)."""
    held = snap.holdings.get(req.token_id)
    funds = snap.funds
    if req.side is Side.SELL:
        venue = funds.shares.get(req.token_id) if funds is not None and funds.shares is not None else None
        shares = venue if venue is not None else (held.shares if held is not None else ZERO)
        committed = held.pending_sell if held is not None else ZERO
        if req.size > shares - committed:
            where = " at the venue" if venue is not None else ""
            return RiskDecision.refuse(
                ReasonCode.INSUFFICIENT_POSITION,
                f"sell {req.size} but hold {shares} share(s){where}, {committed} already in open sells",
            )
        return RiskDecision.allow()
    if funds is None:
        return RiskDecision.allow()
    if funds.collateral is None:
        return RiskDecision.refuse(ReasonCode.INSUFFICIENT_BALANCE, f"collateral unknown ({funds.source}): no buys")
    committed = sum((h.pending_buy for h in snap.holdings.values()), ZERO)
    available = funds.collateral - committed
    if req.notional > available:
        return RiskDecision.refuse(
            ReasonCode.INSUFFICIENT_BALANCE,
            f"buy needs {req.notional} pUSD but {available} is available ({funds.collateral} {funds.source}, "
            f"{committed} in open buys)",
        )
    return RiskDecision.allow()


class ReferenceRiskGate(RiskGate):
    """The gate with the old group check."""

    async def check_many(
        self,
        legs: Sequence[tuple[OrderRequest, MarketInfo, BookView | BookStatus | None]],
        exposure: ExposureSnapshot,  # converted to the old snapshot below
    ) -> RiskDecision:
        """Check the legs of a group together (each against the exposure of the legs before it)."""
        if exposure.daily_realised is not None:
            self._daily = (utc_day(self.clock()), exposure.daily_realised)
        snap = as_reference(exposure)
        for req, market, book in legs:
            decision = self._evaluate_ref(req, market, snap, book)
            if not decision.ok:
                return await self._refused(decision)
            snap = snap.with_order(req)
        if not self.order_bucket.try_take(len(legs)):
            wait = self.order_bucket.wait_time(len(legs))
            return await self._refused(
                RiskDecision.refuse(
                    ReasonCode.ORDER_RATE_LIMITED,
                    f"order rate above {self.limits.orders_per_s:g}/s (burst {self.limits.order_burst}); "
                    f"retry in {wait:.3f}s",
                )
            )
        return RiskDecision.allow()

    def _evaluate_ref(
        self, req: OrderRequest, market: MarketInfo, snap: RefSnapshot, book: BookView | BookStatus | None
    ) -> RiskDecision:
        lim = self.limits
        if not self._armed:
            return RiskDecision.refuse(ReasonCode.NOT_ARMED, "trading is disarmed: arm first")
        if market.closed or not market.active:
            return RiskDecision.refuse(
                ReasonCode.MARKET_CLOSED, f"market {market.slug or market.condition_id} is closed"
            )
        view = None if book is None or isinstance(book, BookStatus) else book
        book_status = view.status if view is not None else book
        if book_status is not None and book_status is not BookStatus.OK:
            return RiskDecision.refuse(ReasonCode.BOOK_NOT_OK, f"book of {req.token_id} is {book_status}")
        marketable = None if view is None else crosses_book(req.side, req.price, view.best_bid(), view.best_ask())
        rules = order_rules(
            req,
            tick=market.tick_size,
            min_order_size=market.min_order_size,
            now=self.clock(),
            marketable=marketable,
            max_order_notional=lim.max_order_notional,
        )
        if not rules.ok:
            return rules
        if self._daily_loss_hit():
            return RiskDecision.refuse(ReasonCode.DAILY_LOSS_LIMIT, self._daily_loss_detail())
        if self.breaker.tripped:
            return RiskDecision.refuse(
                ReasonCode.ERROR_RATE_BREAKER,
                f"{self.breaker.recent()} order errors within {lim.error_breaker_window_s:g}s "
                f"(limit {lim.error_breaker_max_errors})",
            )
        self._maybe_clear_breaker()
        funded = _funds_check(req, snap)
        if not funded.ok:
            return funded
        if req.side is Side.BUY:
            if req.market not in snap.markets:
                snap = snap.with_market(market)
            after = snap.with_order(req)
            what = f"market {market.slug or market.condition_id}"
            before_m, after_m = snap.market_exposure(req.market), after.market_exposure(req.market)
            measures = [(ReasonCode.MAX_MARKET_NOTIONAL, lim.max_market_notional, what, before_m, after_m)]
            if market.neg_risk and market.neg_risk_market_id:
                event = market.neg_risk_market_id
                before_g, after_g = snap.event_exposure(event), after.event_exposure(event)
                measures.append(
                    (ReasonCode.MAX_EVENT_NOTIONAL, lim.max_event_notional, f"event {event}", before_g, after_g)
                )
            else:
                before_g, after_g = before_m, after_m
            # only the order's own unit (its event, or its market) changes: no need to re-add the rest
            total_before = snap.total_exposure()
            total_after = total_before - before_g + after_g
            measures.append((ReasonCode.MAX_TOTAL_EXPOSURE, lim.max_total_exposure, "total", total_before, total_after))
            for code, limit, label, before, new in measures:
                if limit is not None and new > limit and new > before:
                    return RiskDecision.refuse(code, f"{label} worst-case exposure would be {new} > limit {limit}")
        return RiskDecision.allow()
