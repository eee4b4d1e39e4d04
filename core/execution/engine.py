"""The execution engine: intents -> orders, exactly once, every attempt on record.

- Idempotency: the client order id is a hash of the intent (:mod:`core.execution.ids`). An id
  that is in flight, known in memory, or already a row in ``orders`` (unique key) is never
  placed again; the caller gets the existing order back marked ``duplicate``.
- Retries: only ``RETRYABLE`` outcomes (425, 429, 5xx, timeout before send), in two bounded
  loops: up to ``relayer_max_retries`` quick re-posts (``relayer_retry_sleep_ms`` apart, or the
  venue's Retry-After), and when those are exhausted up to ``engine_max_retries`` more rounds
  (``engine_retry_sleep_ms`` apart) that re-check the risk gate first. So at most
  ``(engine_max_retries + 1) x (relayer_max_retries + 1)`` posts. Relayers make one attempt per
  ``place`` call.
- ``UNKNOWN`` outcomes (the request may have reached the venue) are never re-posted: the order
  becomes ``submitted_unknown`` and is reconciled via ``relayer.lookup`` / ``open_orders``
  before anything else is done with that id.
- Every relayer call (place attempt, lookup, cancel, cancel-all, reconcile) and every refusal is
  one exec_audit row.
- Fills (immediate, or later via :meth:`Engine.on_fill`, which relayers call) update positions
  and PnL; realised PnL feeds the daily loss limit.
- Dutch groups: legs are placed together and watched together. A group that ends with some legs
  filled and others dead raises a ``one_legged`` alert and follows the policy (unwind, hedge or
  alert). Until it is balanced, its filled legs count as exposure (the risk gate's worst case
  sees them as unhedged inventory).

The engine is pure asyncio; blocking SDK calls are the relayer's business (``to_thread``).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from core.events import Alert, AlertCleared, AlertKind, EventBus, FillEvent, OrderEvent, Severity
from core.execution.funds import FundsSource
from core.execution.ids import client_order_id, intent_seq
from core.execution.positions import FillPnl, MarkProvider, PositionBook
from core.execution.store import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    AuditRecord,
    ExecutionStore,
    OrderRecord,
    trade_key,
)
from core.execution.types import (
    CancelResult,
    ErrorClass,
    Fill,
    OrderRequest,
    OrderStatus,
    Outcome,
    PlaceResult,
    Relayer,
    TradeResync,
    VenueOrder,
)
from core.risk import ExposureSnapshot, Holding, ReasonCode, RiskDecision, RiskGate, group_key_of
from core.types import BookStatus, BookView, Intent, MarketInfo, OrderType, Side

log = logging.getLogger(__name__)

ZERO = Decimal(0)
PRICE_QUANTUM = Decimal("0.000001")
REFUSED = "refused"

BookProvider = Callable[[str], BookView | None]
Sleep = Callable[[float], Awaitable[None]]


class OneLegPolicy(enum.StrEnum):
    UNWIND = "unwind"  # sell the excess of the filled legs back at the best bid (marketable)
    HEDGE = "hedge"  # buy the missing quantity of the other legs, within their limit prices
    ALERT = "alert"  # alert only; a human decides


class GroupState(enum.StrEnum):
    PLACING = "placing"
    PENDING = "pending"  # legs still working
    COMPLETE = "complete"  # every leg filled
    ONE_LEGGED = "one_legged"  # unbalanced and some leg can no longer fill
    SETTLED = "settled"  # was one-legged, balanced again by the policy
    FAILED = "failed"  # no leg filled and some leg died: nothing at risk


@dataclass(frozen=True, slots=True)
class SubmitResult:
    client_order_id: str
    ok: bool  # accepted now (live, filled, or built in dry-run)
    status: OrderStatus | None  # None when refused before an order row existed
    reason_code: ReasonCode | None = None  # set when the risk gate refused
    detail: str = ""
    duplicate: bool = False  # the id existed: nothing was placed
    venue_order_id: str | None = None
    filled: Decimal = ZERO
    attempts: int = 0
    outcome: Outcome | None = None
    error_class: ErrorClass = ErrorClass.NONE
    signed_order: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class GroupResult:
    group_id: str
    ok: bool  # every leg accepted
    state: GroupState
    legs: tuple[SubmitResult, ...] = ()
    reason_code: ReasonCode | None = None
    detail: str = ""
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    checked: int = 0
    changed: dict[str, str] = field(default_factory=dict)  # client order id -> "old -> new"
    still_unknown: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()  # venue orders we have no row for
    error: str = ""


@dataclass(slots=True)
class _Tracked:
    rec: OrderRecord
    req: OrderRequest
    market: MarketInfo | None
    fill_notional: Decimal = ZERO

    @property
    def coid(self) -> str:
        return self.rec.client_order_id

    @property
    def status(self) -> OrderStatus:
        return self.rec.status

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.req.size - self.rec.filled_size)


@dataclass(slots=True)
class _Group:
    group_id: str
    legs: list[str]
    policy: OneLegPolicy
    state: GroupState = GroupState.PLACING
    alerted: bool = False
    policy_runs: int = 0
    adjust: dict[str, list[str]] = field(default_factory=dict)  # leg id -> policy order ids
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def venue_status(vo: VenueOrder) -> OrderStatus:
    """Map a venue (or paper) order status to ours; unknown strings count as still live."""
    raw = vo.status.strip().upper()
    full = vo.size_matched >= vo.original_size > 0
    if raw.startswith(("CANCEL", "INVALID", "UNMATCHED", "EXPIRED", "REJECT")):
        return OrderStatus.CANCELED
    if raw.startswith(("MATCHED", "FILLED")):
        return OrderStatus.FILLED if full or vo.size_matched == 0 else OrderStatus.PARTIALLY_FILLED
    if raw.startswith("FAILED"):
        return OrderStatus.FAILED
    if full:
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED if vo.size_matched > 0 else OrderStatus.LIVE


def _summary(req: OrderRequest, group_id: str | None) -> dict[str, Any]:
    return {
        "market": req.market,
        "token_id": req.token_id,
        "side": str(req.side),
        "price": str(req.price),
        "size": str(req.size),
        "order_type": str(req.order_type),
        "post_only": req.post_only,
        "group_id": group_id,
    }


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


class Engine:
    def __init__(
        self,
        relayer: Relayer,
        risk: RiskGate,
        store: ExecutionStore,
        bus: EventBus,
        *,
        relayer_max_retries: int = 2,
        relayer_retry_sleep_ms: int = 200,
        engine_max_retries: int = 1,
        engine_retry_sleep_ms: int = 1000,
        sleep: Sleep = asyncio.sleep,
        one_leg_policy: OneLegPolicy | str = OneLegPolicy.ALERT,
        clock: Callable[[], float] | None = None,
        book_provider: BookProvider | None = None,
        mark_provider: MarkProvider | None = None,
        max_retry_after_s: float = 30.0,
        unknown_grace_s: float = 30.0,
        place_timeout_s: float | None = 30.0,
        max_policy_runs: int = 1,
        funds: FundsSource | None = None,
        positions: PositionBook | None = None,
    ) -> None:
        if min(relayer_max_retries, engine_max_retries, relayer_retry_sleep_ms, engine_retry_sleep_ms) < 0:
            raise ValueError("retry knobs must be >= 0")
        self.relayer = relayer
        self.risk = risk
        self.store = store
        self.bus = bus
        self.relayer_max_retries = relayer_max_retries
        self.relayer_retry_sleep_s = relayer_retry_sleep_ms / 1000.0
        self.engine_max_retries = engine_max_retries
        self.engine_retry_sleep_s = engine_retry_sleep_ms / 1000.0
        self._sleep = sleep
        self.one_leg_policy = OneLegPolicy(one_leg_policy)
        self.clock = clock or risk.clock
        self._books = book_provider
        self._marks = mark_provider
        self.max_retry_after_s = max_retry_after_s
        self.unknown_grace_s = unknown_grace_s
        self.place_timeout_s = place_timeout_s
        self.max_policy_runs = max_policy_runs
        self.funds = funds  # collateral and venue shares for the gate's balance checks (None: shares only)
        self.mode = str(relayer.mode)
        self.positions = positions if positions is not None else PositionBook(clock=self.clock)
        self._orders: dict[str, _Tracked] = {}
        self._open: set[str] = set()
        self._open_by_token: dict[str, set[str]] = {}
        self._holdings: dict[str, Holding] = {}  # exposure inputs per token, refreshed when dirty
        self._dirty_tokens: set[str] = set()
        self._group_cache: dict[str, Decimal] = {}  # unit (event / market) -> worst-case exposure
        self._venue_index: dict[str, str] = {}
        self._inflight: set[str] = set()
        self._applied: set[tuple[str, str]] = set()
        self._matched: dict[str, set[str]] = {}  # order -> trades matched but not yet CONFIRMED
        self._fill_locks: dict[str, asyncio.Lock] = {}
        self._markets: dict[str, MarketInfo] = {}
        self._event_index: dict[str, list[str]] = {}  # neg-risk event id -> market ids
        self._complete_events: dict[str, frozenset[str]] = {}
        self._groups: dict[str, _Group] = {}
        self.unmatched_fills = 0
        risk.mode = self.mode
        risk.set_canceller(self.cancel_all)
        # fills reach the engine by callback: paper has set_fill_callback, the CLOB relayer an on_fill slot
        setter = getattr(relayer, "set_fill_callback", None)
        if callable(setter):
            setter(self.on_fill)
        elif hasattr(relayer, "on_fill") and getattr(relayer, "on_fill", None) is None:
            relayer.on_fill = self.on_fill  # type: ignore[attr-defined]
        if hasattr(relayer, "on_order_event") and getattr(relayer, "on_order_event", None) is None:
            relayer.on_order_event = self._on_relayer_event  # type: ignore[attr-defined]

    # ---------------------------------------------------------------------------------------
    # life-cycle

    async def start(self) -> ReconcileReport:
        """Force the gate disarmed, rebuild positions from confirmed fills, reconcile open orders."""
        await self.risk.start()
        for stored in await self.store.load_fills():
            fill = stored.fill
            self._applied.add((fill.client_order_id, trade_key(fill)))
            self.positions.apply_fill(fill, stored.market)
            self._dirty_tokens.add(fill.token_id)
        await self.risk.on_daily_realised(self.positions.daily_realised())
        return await self.reconcile()

    def register_markets(self, markets: Iterable[MarketInfo]) -> None:
        for market in markets:
            self._register_market(market)

    def _register_market(self, market: MarketInfo) -> None:
        old = self._markets.get(market.condition_id)
        if old is market or old == market:
            return
        self._markets[market.condition_id] = market
        # a market's structure changed (or became known): units and their cached exposure move
        self._group_cache.clear()
        self._dirty_tokens.update(self._holdings)
        if old is not None and old.neg_risk_market_id and old.neg_risk_market_id in self._event_index:
            members = self._event_index[old.neg_risk_market_id]
            if market.condition_id in members:
                members.remove(market.condition_id)
        if market.neg_risk and market.neg_risk_market_id:
            self._event_index.setdefault(market.neg_risk_market_id, []).append(market.condition_id)

    def set_event_markets(self, event_id: str, market_ids: Iterable[str]) -> None:
        """Declare the full list of markets of a neg-risk event (lets the gate drop 'other wins')."""
        self._complete_events[event_id] = frozenset(market_ids)
        self._group_cache.pop(f"e:{event_id}", None)

    # ---------------------------------------------------------------------------------------
    # exposure, positions

    def _refresh_holdings(self) -> None:
        """Recompute the holdings of tokens whose orders or position changed; drop their cached unit exposure."""
        for token_id in self._dirty_tokens:
            pending = selling = ZERO
            market = ""
            for coid in self._open_by_token.get(token_id, ()):
                t = self._orders[coid]
                market = t.req.market
                if t.req.side is Side.BUY:
                    pending += t.req.price * t.remaining
                else:
                    selling += t.remaining
            pos = self.positions.get(token_id)
            old = self._holdings.pop(token_id, None)
            if old is not None:
                self._group_cache.pop(self._group_key(old.market, token_id), None)
            if (pos is not None and (pos.shares != 0 or pos.cost != 0)) or pending != 0 or selling != 0:
                market = (pos.market if pos is not None else "") or market
                shares, cost = (pos.shares, pos.cost) if pos is not None else (ZERO, ZERO)
                self._holdings[token_id] = Holding(token_id, market, shares, cost, pending, selling)
                self._group_cache.pop(self._group_key(market, token_id), None)
        self._dirty_tokens.clear()

    def _group_key(self, market_id: str, token_id: str) -> str:
        if not market_id:  # same resolution as ExposureSnapshot._market_of (rare: fills of unknown orders)
            market_id = next(
                (m.condition_id for m in self._markets.values() if any(t.token_id == token_id for t in m.tokens)), ""
            )
        return group_key_of(market_id, token_id, self._markets.get(market_id))

    def exposure(self, exclude: str | None = None) -> ExposureSnapshot:
        """Positions and open buy orders as the risk gate sees them (``exclude``: leave one order out)."""
        self._refresh_holdings()
        holdings = self._holdings
        cache: dict[str, Decimal] | None = self._group_cache
        t = self._orders.get(exclude) if exclude else None
        if t is not None and t.coid in self._open and t.req.token_id in holdings:
            h = holdings[t.req.token_id]
            if t.req.side is Side.BUY:
                h = replace(h, pending_buy=h.pending_buy - t.req.price * t.remaining)
            else:
                h = replace(h, pending_sell=h.pending_sell - t.remaining)
            holdings = {**holdings, h.token_id: h}
            cache = None  # a what-if view: do not pollute the shared cache
        return ExposureSnapshot(
            holdings=dict(holdings),
            markets=self._markets,
            complete_events=self._complete_events,
            daily_realised=self.positions.daily_realised(),
            event_index=self._event_index,
            group_cache=cache,
            funds=self.funds.snapshot() if self.funds is not None else None,
        )

    def unrealised_pnl(self) -> Decimal:
        return self.positions.unrealised(self._marks) if self._marks else ZERO

    def order(self, client_order_id: str) -> OrderRecord | None:
        t = self._orders.get(client_order_id)
        return t.rec if t else None

    def open_orders(self) -> list[OrderRecord]:
        return [self._orders[c].rec for c in self._open]

    def group_state(self, group_id: str) -> GroupState | None:
        g = self._groups.get(group_id)
        return g.state if g else None

    def unsettled_groups(self) -> list[str]:
        return [g.group_id for g in self._groups.values() if g.state is GroupState.ONE_LEGGED]

    # ---------------------------------------------------------------------------------------
    # submit

    def _request(self, intent: Intent, market: MarketInfo, coid: str) -> OrderRequest:
        return OrderRequest(
            client_order_id=coid,
            market=intent.market,
            token_id=intent.token_id,
            side=intent.side,
            price=intent.price,
            size=intent.size,
            order_type=intent.order_type,
            post_only=intent.post_only,
            tick_size=market.tick_size,
            neg_risk=market.neg_risk,
            fee_rate=market.fee_rate,
            expiration=intent.expiration,
        )

    def _book_now(self, token_id: str) -> BookView | BookStatus | None:
        """The book as the gate should see it: the view (status and top of book), or
        ``awaiting_snapshot`` when there is none yet; None when the engine has no books at all."""
        if self._books is None:
            return None
        book = self._books(token_id)
        return book if book is not None else BookStatus.AWAITING_SNAPSHOT

    async def _ensure_funds(self, reqs: Sequence[OrderRequest]) -> None:
        """Read the venue shares of the tokens about to be sold, when not read recently."""
        sells = [r.token_id for r in reqs if r.side is Side.SELL]
        if sells and self.funds is not None:
            await self.funds.ensure(sells)

    async def submit(self, intent: Intent, market: MarketInfo, *, seq: int | str | None = None) -> SubmitResult:
        """Place one intent (at most once: the same intent and seq is a duplicate, never a second order)."""
        if market.condition_id != intent.market:
            raise ValueError(f"intent is for market {intent.market}, market info is {market.condition_id}")
        coid = client_order_id(intent, intent_seq(intent, seq))
        known = await self._known(coid)
        if known is not None:
            return known
        self._register_market(market)
        req = self._request(intent, market, coid)
        await self._ensure_funds([req])
        decision = await self.risk.check(req, market, self.exposure(), book=self._book_now(req.token_id))
        if not decision.ok:
            return await self._refuse(req, decision, intent.group_id)
        return await self._place_new(req, market, intent.group_id, intent.reason)

    async def _known(self, coid: str) -> SubmitResult | None:
        if coid in self._inflight:
            return SubmitResult(coid, False, OrderStatus.NEW, detail="already being placed", duplicate=True)
        t = self._orders.get(coid)
        if t is None:
            return None
        if t.status is OrderStatus.SUBMITTED_UNKNOWN:
            await self._resolve_unknown(t)
        return self._dup_result(t)

    def _dup_result(self, t: _Tracked) -> SubmitResult:
        return SubmitResult(
            t.coid,
            False,
            t.status,
            detail=f"duplicate: order {t.coid} already exists ({t.status}); nothing placed",
            duplicate=True,
            venue_order_id=t.rec.venue_order_id,
            filled=t.rec.filled_size,
        )

    async def _refuse(
        self, req: OrderRequest, decision: RiskDecision, group_id: str | None, attempt: int = 1
    ) -> SubmitResult:
        assert decision.reason_code is not None
        await self.store.add_audit(
            AuditRecord(
                action="refused",
                outcome=REFUSED,
                client_order_id=req.client_order_id,
                attempt=attempt,
                request={**_summary(req, group_id), "reason_code": str(decision.reason_code)},
                error_class=str(decision.reason_code),
                error=decision.detail,
                mode=self.mode,
                ts=self.clock(),
            )
        )
        self.bus.publish(
            OrderEvent(
                req.client_order_id,
                REFUSED,
                req.market,
                req.token_id,
                str(req.side),
                req.price,
                req.size,
                reason_code=str(decision.reason_code),
                detail=decision.detail,
                group_id=group_id,
            )
        )
        return SubmitResult(req.client_order_id, False, None, decision.reason_code, decision.detail)

    async def _place_new(
        self, req: OrderRequest, market: MarketInfo, group_id: str | None, reason: str
    ) -> SubmitResult:
        coid = req.client_order_id
        if coid in self._inflight or coid in self._orders:
            known = await self._known(coid)
            assert known is not None
            return known
        self._inflight.add(coid)
        try:
            rec = OrderRecord.from_request(req, mode=self.mode, group_id=group_id, reason=reason, ts=self.clock())
            if not await self.store.save_order(rec):
                existing = await self.store.get_order(coid)
                if existing is None:  # pragma: no cover - the unique key said it exists
                    raise RuntimeError(f"order {coid} reported as duplicate but not found")
                t = self._track(existing, req, market)
                if t.status is OrderStatus.SUBMITTED_UNKNOWN:
                    await self._resolve_unknown(t)
                return self._dup_result(t)
            t = self._track(rec, req, market)
            result, attempts, audit = await self._attempts(t, market)
            return await self._apply_place_result(t, result, attempts, audit)
        finally:
            self._inflight.discard(coid)

    def _track(self, rec: OrderRecord, req: OrderRequest, market: MarketInfo | None) -> _Tracked:
        t = self._orders.get(rec.client_order_id)
        if t is None:
            t = self._orders[rec.client_order_id] = _Tracked(rec, req, market)
            if rec.avg_price is not None:
                t.fill_notional = rec.avg_price * rec.filled_size
            remember = getattr(self.relayer, "remember_order", None)
            known_id = rec.order_hash or rec.venue_order_id
            if known_id and callable(remember):
                remember(rec.client_order_id, known_id)  # lets the relayer look it up after a restart
        self._index(t)
        return t

    def _index(self, t: _Tracked) -> None:
        token_orders = self._open_by_token.setdefault(t.req.token_id, set())
        if t.status in OPEN_STATUSES:
            self._open.add(t.coid)
            token_orders.add(t.coid)
        else:
            self._open.discard(t.coid)
            token_orders.discard(t.coid)
        self._dirty_tokens.add(t.req.token_id)
        if t.rec.venue_order_id:
            self._venue_index[t.rec.venue_order_id] = t.coid

    async def _attempts(self, t: _Tracked, market: MarketInfo) -> tuple[PlaceResult, int, AuditRecord | None]:
        """Post until final or out of retries. The last attempt's audit row is returned unwritten so
        it can be committed together with the order's new status; retried ones are written here."""
        attempt = 0
        result = PlaceResult(outcome=Outcome.RETRYABLE, error="no attempt made")
        audit: AuditRecord | None = None
        for round_no in range(self.engine_max_retries + 1):
            if round_no > 0:
                assert audit is not None
                await self.store.add_audit(audit)
                audit = None
                await self._sleep(max(self.engine_retry_sleep_s, result.retry_after_s or 0.0))
                decision = await self.risk.check(
                    t.req, market, self.exposure(exclude=t.coid), book=self._book_now(t.req.token_id)
                )
                if not decision.ok:
                    await self._refuse(t.req, decision, t.rec.group_id, attempt=attempt + 1)
                    refused = PlaceResult(
                        outcome=Outcome.RETRYABLE,
                        error_class=result.error_class,
                        error=f"retry refused by the risk gate: {decision.reason_code}: {decision.detail}",
                    )
                    return refused, attempt, None
            for try_no in range(self.relayer_max_retries + 1):
                if audit is not None:
                    await self.store.add_audit(audit)
                attempt += 1
                result, audit = await self._place_once(t, attempt)
                if result.outcome is not Outcome.RETRYABLE:
                    return result, attempt, audit
                if result.retry_after_s is not None and result.retry_after_s > self.max_retry_after_s:
                    gave_up = replace(
                        result,
                        error=f"{result.error} (Retry-After {result.retry_after_s:g}s exceeds "
                        f"{self.max_retry_after_s:g}s: giving up)",
                    )
                    return gave_up, attempt, audit
                if try_no < self.relayer_max_retries:
                    await self._sleep(
                        result.retry_after_s if result.retry_after_s is not None else self.relayer_retry_sleep_s
                    )
        return result, attempt, audit

    async def _place_once(self, t: _Tracked, attempt: int) -> tuple[PlaceResult, AuditRecord]:
        started = time.perf_counter()
        try:
            if self.place_timeout_s is not None:
                result = await asyncio.wait_for(self.relayer.place(t.req), self.place_timeout_s)
            else:
                result = await self.relayer.place(t.req)
        except TimeoutError:
            result = PlaceResult(
                outcome=Outcome.UNKNOWN,
                error_class=ErrorClass.TIMEOUT,
                error=f"relayer did not answer within {self.place_timeout_s:g}s",
            )
        except Exception as exc:  # a relayer bug: the request may have gone out, so the outcome is unknown
            log.exception("relayer.place raised for %s", t.coid)
            result = PlaceResult(
                outcome=Outcome.UNKNOWN, error_class=ErrorClass.UNKNOWN_OUTCOME, error=f"{type(exc).__name__}: {exc}"
            )
        audit = AuditRecord(
            action="place",
            outcome=str(result.outcome),
            client_order_id=t.coid,
            attempt=attempt,
            request=_summary(t.req, t.rec.group_id),
            error_class=str(result.error_class),
            error=result.error or None,
            latency_ms=result.latency_ms or _ms_since(started),
            mode=self.mode,
            ts=self.clock(),
        )
        return result, audit

    async def _apply_place_result(
        self, t: _Tracked, result: PlaceResult, attempts: int, audit: AuditRecord | None
    ) -> SubmitResult:
        outcome = result.outcome
        changes: dict[str, Any] = {}
        if result.venue_order_id:
            t.rec.venue_order_id = result.venue_order_id
            changes["venue_order_id"] = result.venue_order_id
        if result.signed_order is not None:
            t.rec.signed_order = dict(result.signed_order)
            changes["signed_order"] = t.rec.signed_order
        order_hash = getattr(result, "order_hash", None)
        if order_hash and order_hash != t.rec.order_hash:
            t.rec.order_hash = order_hash
            changes["order_hash"] = order_hash
        if outcome is Outcome.ACCEPTED:
            reported = result.status if result.status is not OrderStatus.NEW else OrderStatus.LIVE
            status = self._derive_status(t, reported)
        elif outcome is Outcome.REJECTED:
            status = (
                result.status if result.status in (OrderStatus.REJECTED, OrderStatus.CANCELED) else OrderStatus.REJECTED
            )
            t.rec.error = result.error
            changes["error"] = result.error
        elif outcome is Outcome.RETRYABLE:
            status = OrderStatus.FAILED  # certainly not placed
            t.rec.error = result.error
            changes["error"] = result.error
        else:
            status = OrderStatus.SUBMITTED_UNKNOWN
            t.rec.error = result.error
            changes["error"] = result.error
        if outcome is not Outcome.ACCEPTED and result.error_class is not ErrorClass.NONE:
            self.risk.record_order_error()
        await self._set_status(t, status, audit=audit, **changes)
        for fill in result.fills:
            await self.on_fill(fill if fill.client_order_id else replace(fill, client_order_id=t.coid))
        if outcome is Outcome.UNKNOWN:
            self.bus.publish(
                Alert(
                    AlertKind.UNKNOWN_OUTCOME,
                    Severity.WARNING,
                    t.coid,
                    f"order {t.coid} outcome unknown ({result.error_class}: {result.error}); reconciling",
                    ts=self.clock(),
                )
            )
            await self._resolve_unknown(t)
        return SubmitResult(
            t.coid,
            outcome is Outcome.ACCEPTED,
            t.status,
            detail=result.error,
            venue_order_id=t.rec.venue_order_id,
            filled=t.rec.filled_size,
            attempts=attempts,
            outcome=outcome,
            error_class=result.error_class,
            signed_order=t.rec.signed_order,
        )

    def _derive_status(self, t: _Tracked, reported: OrderStatus, filled: Decimal | None = None) -> OrderStatus:
        """Never regress: fills seen already outrank a stale 'live' from a slower channel."""
        filled = t.rec.filled_size if filled is None else filled
        if filled >= t.req.size:
            return OrderStatus.FILLED
        if reported in (OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.DRY_RUN):
            return reported
        if reported is OrderStatus.FILLED:
            return OrderStatus.FILLED
        if filled > 0:
            return OrderStatus.PARTIALLY_FILLED
        return reported

    async def _set_status(
        self,
        t: _Tracked,
        status: OrderStatus,
        *,
        audit: AuditRecord | None = None,
        persist: bool = True,
        **changes: Any,
    ) -> None:
        """New status in memory, in the store (with the audit row of the attempt that caused it), on the bus."""
        old = t.rec.status
        t.rec.status = status
        t.rec.updated_ts = self.clock()
        if "error" in changes:
            t.rec.error = changes["error"]  # the event below carries the reason to the trader
        self._index(t)
        if audit is not None:
            await self.store.record_attempt(audit, t.coid, status=status, updated_ts=t.rec.updated_ts, **changes)
        elif persist:
            await self.store.update_order(t.coid, status=status, updated_ts=t.rec.updated_ts, **changes)
        if old is not status:
            self.bus.publish(
                OrderEvent(
                    t.coid,
                    status,
                    t.req.market,
                    t.req.token_id,
                    str(t.req.side),
                    t.req.price,
                    t.req.size,
                    filled=t.rec.filled_size,
                    detail=t.rec.error or "",
                    group_id=t.rec.group_id,
                )
            )

    # ---------------------------------------------------------------------------------------
    # unknown outcomes, reconciliation

    async def _lookup(self, t: _Tracked) -> VenueOrder | None:
        started = time.perf_counter()
        try:
            found = await self.relayer.lookup(t.req)
            error: str | None = None
        except Exception as exc:
            found, error = None, f"{type(exc).__name__}: {exc}"
        await self.store.add_audit(
            AuditRecord(
                action="lookup",
                outcome="found" if found else ("error" if error else "not_found"),
                client_order_id=t.coid,
                request={"venue_order_id": t.rec.venue_order_id},
                error_class=str(ErrorClass.NETWORK) if error else None,
                error=error,
                latency_ms=_ms_since(started),
                mode=self.mode,
                ts=self.clock(),
            )
        )
        if error:
            raise LookupError(error)
        return found

    async def _resolve_unknown(self, t: _Tracked, venue_open: Mapping[str, VenueOrder] | None = None) -> bool:
        """Settle a submitted_unknown (or crashed NEW) order from the venue's view. True when resolved."""
        vo = None
        if venue_open is not None:
            vo = venue_open.get(t.coid) or (venue_open.get(t.rec.venue_order_id) if t.rec.venue_order_id else None)
        if vo is None:
            try:
                vo = await self._lookup(t)
            except LookupError:
                return False
        if vo is not None:
            await self._adopt_venue_view(t, vo)
            self.bus.publish(AlertCleared(AlertKind.UNKNOWN_OUTCOME, t.coid, f"order {t.coid} found: {t.status}"))
            return True
        # not open at the venue: it may have traded and ended (a filled FOK is no longer listed)
        await self._read_venue_trades()
        if t.rec.filled_size > 0 or t.coid in self._matched:
            self.bus.publish(AlertCleared(AlertKind.UNKNOWN_OUTCOME, t.coid, f"order {t.coid} traded: {t.status}"))
            return t.coid not in self._matched
        if self.clock() - (t.rec.updated_ts or t.rec.created_ts) >= self.unknown_grace_s:
            t.rec.error = f"not found at the venue {self.unknown_grace_s:g}s after an unknown outcome"
            await self._set_status(t, OrderStatus.FAILED, error=t.rec.error)
            self.bus.publish(AlertCleared(AlertKind.UNKNOWN_OUTCOME, t.coid, f"order {t.coid} was never placed"))
            await self._kick_group(t)
            return True
        return False

    async def _adopt_venue_view(self, t: _Tracked, vo: VenueOrder) -> None:
        changes: dict[str, Any] = {}
        if vo.venue_order_id and vo.venue_order_id != t.rec.venue_order_id:
            t.rec.venue_order_id = vo.venue_order_id
            changes["venue_order_id"] = vo.venue_order_id
        status = venue_status(vo)
        if t.rec.filled_size >= t.req.size:
            status = OrderStatus.FILLED
        if vo.size_matched > t.rec.filled_size:
            log.warning(
                "order %s: venue reports %s matched, we have fills for %s; awaiting the missing fills",
                t.coid,
                vo.size_matched,
                t.rec.filled_size,
            )
        await self._set_status(t, status, **changes)
        await self._kick_group(t)

    async def _read_venue_trades(self) -> None:
        """Re-read our orders and trades from the venue (fills the user channel may have missed):
        the only way to tell a filled order from a canceled one once the venue stops listing it."""
        if not isinstance(self.relayer, TradeResync):
            return  # paper: every fill is known the moment it happens
        try:
            await self.relayer.resync()
        except Exception as exc:
            log.warning("reading our trades from the venue failed: %s", exc)
            raise LookupError(f"{type(exc).__name__}: {exc}") from None

    async def _reconcile_one(self, t: _Tracked) -> None:
        """The venue's truth about one order we believe open: its listing if it has one; if not
        (GET /data/order answers 404 for anything not live), its trades decide filled or canceled."""
        try:
            found = await self._lookup(t)
        except LookupError:
            return  # the venue cannot be read: nothing is decided
        if found is not None:
            await self._adopt_venue_view(t, found)
            return
        try:
            await self._read_venue_trades()
        except LookupError:
            return
        if t.status not in OPEN_STATUSES or t.coid in self._matched:
            return  # its trades settled it, or matched trades are still settling: decided when they do
        if t.rec.filled_size >= t.req.size:
            await self._set_status(t, OrderStatus.FILLED)
        else:
            t.rec.error = (
                f"no longer open at the venue: canceled or expired there ({t.rec.filled_size} of {t.req.size} filled)"
            )
            await self._set_status(t, OrderStatus.CANCELED, error=t.rec.error)
        await self._kick_group(t)

    async def reconcile(self) -> ReconcileReport:
        """Compare the store's non-final orders with the venue and fix their statuses."""
        started = time.perf_counter()
        for rec in await self.store.load_open_orders():
            if rec.client_order_id not in self._orders:
                market = self._markets.get(rec.market)
                fields = (
                    {"tick_size": market.tick_size, "neg_risk": market.neg_risk, "fee_rate": market.fee_rate}
                    if market
                    else {}
                )
                self._track(rec, rec.request(**fields), market)
        candidates = [self._orders[c] for c in list(self._open) if c not in self._inflight]
        try:
            venue = await self.relayer.open_orders()
            error = ""
        except Exception as exc:
            venue, error = [], f"{type(exc).__name__}: {exc}"
        venue_open: dict[str, VenueOrder] = {}
        for vo in venue:
            venue_open[vo.venue_order_id] = vo
            if vo.client_order_id:
                venue_open[vo.client_order_id] = vo
        changed: dict[str, str] = {}
        unknown: list[str] = []
        if not error:
            for t in candidates:
                before = t.status
                vo = venue_open.get(t.coid) or (venue_open.get(t.rec.venue_order_id) if t.rec.venue_order_id else None)
                if vo is not None:
                    await self._adopt_venue_view(t, vo)
                elif before in (OrderStatus.NEW, OrderStatus.SUBMITTED_UNKNOWN):
                    if not await self._resolve_unknown(t):
                        unknown.append(t.coid)
                else:
                    await self._reconcile_one(t)
                if t.status is not before:
                    changed[t.coid] = f"{before} -> {t.status}"
        ours = {t.rec.venue_order_id for t in self._orders.values() if t.rec.venue_order_id} | set(self._orders)
        foreign = tuple(
            sorted(
                {vo.venue_order_id for vo in venue if vo.venue_order_id not in ours and vo.client_order_id not in ours}
            )
        )
        report = ReconcileReport(len(candidates), changed, tuple(unknown), foreign, error)
        await self.store.add_audit(
            AuditRecord(
                action="reconcile",
                outcome="error" if error else "ok",
                request={
                    "checked": report.checked,
                    "changed": changed,
                    "still_unknown": list(unknown),
                    "foreign": list(foreign),
                },
                error_class=str(ErrorClass.NETWORK) if error else None,
                error=error or None,
                latency_ms=_ms_since(started),
                mode=self.mode,
                ts=self.clock(),
            )
        )
        if foreign:
            self.bus.publish(
                Alert(
                    AlertKind.RECONCILE,
                    Severity.WARNING,
                    "foreign_orders",
                    f"{len(foreign)} open order(s) at the venue are not ours: {', '.join(foreign[:5])}",
                    ts=self.clock(),
                )
            )
        return report

    # ---------------------------------------------------------------------------------------
    # fills

    async def on_fill(self, fill: Fill) -> None:
        """A fill from any source (place result, paper book update, user channel, resync). Idempotent."""
        coid = fill.client_order_id or self._venue_index.get(fill.venue_order_id or "", "")
        if not coid:
            self.unmatched_fills += 1
            log.warning("fill %s for unknown order %s ignored (counted)", fill.trade_id, fill.venue_order_id)
            return
        if coid != fill.client_order_id:
            fill = replace(fill, client_order_id=coid)
        key = (coid, trade_key(fill))
        if key in self._applied:
            return
        t = self._orders.get(coid)
        if not fill.confirmed:
            await self.store.add_fill(fill)  # recorded as matched; applied when CONFIRMED
            self._matched.setdefault(coid, set()).add(key[1])
            self.bus.publish(FillEvent(fill))
            return
        self._applied.add(key)
        self._settled_trade(coid, key[1])
        # preview -> store -> commit must not interleave with another fill of the same token
        async with self._fill_locks.setdefault(fill.token_id, asyncio.Lock()):
            applied = await self._apply_confirmed_fill(fill, t, coid)
        if applied is None:
            return
        self.bus.publish(FillEvent(fill, applied.position.shares, applied.realised))
        if applied.realised != 0:
            await self.risk.on_daily_realised(self.positions.daily_realised())
        if t is not None:
            await self._kick_group(t)

    def _settled_trade(self, coid: str, trade: str) -> None:
        pending = self._matched.get(coid)
        if pending is not None:
            pending.discard(trade)
            if not pending:
                del self._matched[coid]

    async def _apply_confirmed_fill(self, fill: Fill, t: _Tracked | None, coid: str) -> FillPnl | None:
        market = t.req.market if t else ""
        pnl = self.positions.preview(fill, market)
        order_changes: dict[str, Any] | None = None
        if t is not None:
            filled = t.rec.filled_size + fill.size
            notional = t.fill_notional + fill.price * fill.size
            avg = (notional / filled).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)
            status = self._derive_status(t, t.status, filled=filled)
            if status is OrderStatus.NEW:
                status = OrderStatus.PARTIALLY_FILLED
            order_changes = {"status": status, "filled_size": filled, "avg_price": avg, "updated_ts": self.clock()}
        if not await self.store.record_fill(fill, pnl.position, order_changes):
            return None  # applied before (a previous run replayed it into the positions)
        self.positions.commit(fill, pnl)
        self._dirty_tokens.add(fill.token_id)
        if t is not None and order_changes is not None:
            t.rec.filled_size = order_changes["filled_size"]
            t.fill_notional += fill.price * fill.size
            t.rec.avg_price = order_changes["avg_price"]
            await self._set_status(t, order_changes["status"], persist=False)
        else:
            self.unmatched_fills += 1
            log.warning("fill %s for order %s not tracked in memory: position updated only", fill.trade_id, coid)
        return pnl

    # ---------------------------------------------------------------------------------------
    # order updates pushed by the venue (user channel, REST resync)

    async def _on_relayer_event(self, event: object) -> None:
        status = getattr(event, "status", None)
        if getattr(event, "failed", False) is True:
            await self._settlement_failed(event)
            return
        if not isinstance(status, OrderStatus):
            return  # trade events carry fills (on_fill); other events are not order updates
        await self.on_order_status(
            str(getattr(event, "venue_order_id", "") or ""),
            getattr(event, "client_order_id", None),
            status,
            getattr(event, "size_matched", None),
        )

    async def _settlement_failed(self, event: object) -> None:
        """A trade of ours went MATCHED -> FAILED on chain: its fill never happened. Mark the stored
        fill failed (it was never applied to positions: only CONFIRMED fills are) and alert."""
        fill = getattr(event, "fill", None)
        coid = getattr(event, "client_order_id", None) or (fill.client_order_id if fill is not None else None)
        trade_id = str(getattr(event, "trade_id", "") or "")
        if coid and fill is not None:
            self._settled_trade(coid, trade_key(fill))
        if fill is not None:
            mark = getattr(self.store, "mark_fill_failed", None)
            if mark is not None:
                await mark(fill)
        t = self._orders.get(coid) if coid else None
        if t is not None and t.status in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED):
            # the order's own "failed" event carries the reason to the trader (one alert, not two)
            await self._set_status(t, OrderStatus.FAILED, error=f"settlement failed on chain for trade {trade_id}")
            await self._kick_group(t)
            return
        self.bus.publish(
            Alert(
                kind="settlement_failed",
                severity=Severity.CRITICAL,
                key=trade_id or str(coid),
                message=(
                    f"settlement FAILED for trade {trade_id or '?'} of order {coid or '?'}: the match did not settle on "
                    "chain; position unchanged, check the venue"
                ),
            )
        )

    async def on_order_status(
        self,
        venue_order_id: str,
        client_order_id: str | None,
        status: OrderStatus,
        size_matched: Decimal | None = None,
    ) -> bool:
        """The venue says an order of ours is now ``status``. True when it changed anything."""
        coid = client_order_id or self._venue_index.get(venue_order_id)
        t = self._orders.get(coid) if coid else None
        if t is None:
            log.info("status %s for order %s/%s we do not track", status, venue_order_id, client_order_id)
            return False
        changes: dict[str, Any] = {}
        if venue_order_id and not t.rec.venue_order_id:
            t.rec.venue_order_id = venue_order_id
            changes["venue_order_id"] = venue_order_id
        new = self._derive_status(t, status)
        if t.status in FINAL_STATUSES and new not in FINAL_STATUSES:
            new = t.status  # a late 'live' never reopens a final order
        if size_matched is not None and size_matched > t.rec.filled_size:
            log.info("order %s: venue matched %s, fills so far %s", t.coid, size_matched, t.rec.filled_size)
        if new is t.status and not changes:
            return False
        await self._set_status(t, new, **changes)
        await self._kick_group(t)
        return True

    # ---------------------------------------------------------------------------------------
    # cancels

    async def _cancel_token(self) -> None:
        while (wait := self.risk.take_cancel_token()) > 0:
            await self._sleep(wait)

    async def cancel(self, client_order_id: str) -> CancelResult:
        """Cancel one order. The result names client order ids."""
        t = self._orders.get(client_order_id)
        if t is None:
            rec = await self.store.get_order(client_order_id)
            if rec is None:
                return CancelResult(not_canceled={client_order_id: "unknown order"})
            t = self._track(rec, rec.request(), self._markets.get(rec.market))
        if t.status is OrderStatus.SUBMITTED_UNKNOWN:
            await self._resolve_unknown(t)
        if t.status in FINAL_STATUSES:
            return CancelResult(not_canceled={t.coid: f"already {t.status}"})
        if not t.rec.venue_order_id:
            return CancelResult(not_canceled={t.coid: f"not at the venue yet ({t.status})"})
        venue_id = t.rec.venue_order_id
        res = await self._cancel_call(
            lambda: self.relayer.cancel(venue_id), "cancel", t.coid, {"venue_order_id": venue_id}
        )
        if venue_id in res.canceled:
            await self._set_status(t, OrderStatus.CANCELED)
            await self._kick_group(t)
            return CancelResult(canceled=(t.coid,))
        reason = res.not_canceled.get(venue_id) or res.error or "not canceled"
        if res.outcome is Outcome.ACCEPTED:
            await self._reconcile_one(t)  # "not found", "already matched": the venue decides what it is
            if t.status in FINAL_STATUSES:
                return CancelResult(gone=(t.coid,))
        return CancelResult(
            not_canceled={t.coid: reason}, outcome=res.outcome, error_class=res.error_class, error=res.error
        )

    async def cancel_all(self) -> CancelResult:
        """Cancel every open order at the venue (one request). The result names client order ids where known."""
        before = [self._orders[c] for c in self._open if c not in self._inflight]
        res = await self._cancel_call(self.relayer.cancel_all, "cancel_all", None, {"open_orders": len(self._open)})
        canceled: list[str] = []
        touched: list[_Tracked] = []
        for venue_id in res.canceled:
            coid = self._venue_index.get(venue_id)
            t = self._orders.get(coid) if coid else None
            if t is not None and t.status in OPEN_STATUSES:
                await self._set_status(t, OrderStatus.CANCELED)
                touched.append(t)
            canceled.append(coid or venue_id)
        not_canceled = {self._venue_index.get(v, v): why for v, why in res.not_canceled.items()}
        for t in touched:
            await self._kick_group(t)
        gone: list[str] = []
        if res.outcome is Outcome.ACCEPTED:
            # open in our books, yet neither canceled nor refused by the venue: it no longer had them
            for t in before:
                if t.status in OPEN_STATUSES and t.coid not in not_canceled and t.coid not in canceled:
                    await self._reconcile_one(t)
                    if t.status in FINAL_STATUSES:
                        gone.append(t.coid)
                    elif t.status is not OrderStatus.SUBMITTED_UNKNOWN:
                        not_canceled[t.coid] = f"still {t.status} at the venue after cancel-all"
        return CancelResult(
            canceled=tuple(canceled),
            not_canceled=not_canceled,
            outcome=res.outcome,
            error_class=res.error_class,
            error=res.error,
            gone=tuple(gone),
        )

    async def _cancel_call(
        self, call: Callable[[], Awaitable[CancelResult]], action: str, coid: str | None, request: dict[str, Any]
    ) -> CancelResult:
        """One cancel request, retried up to ``relayer_max_retries`` times when it failed or its fate is
        unknown: unlike a post, a cancel is idempotent, so sending it again is always safe."""
        attempt = 0
        while True:
            attempt += 1
            await self._cancel_token()
            started = time.perf_counter()
            try:
                res = await call()
            except Exception as exc:
                res = CancelResult(
                    outcome=Outcome.UNKNOWN, error_class=ErrorClass.NETWORK, error=f"{type(exc).__name__}: {exc}"
                )
            await self._audit_cancel(action, coid, request, res, started, attempt)
            if res.outcome not in (Outcome.RETRYABLE, Outcome.UNKNOWN) or attempt > self.relayer_max_retries:
                return res
            await self._sleep(self.relayer_retry_sleep_s)

    async def _audit_cancel(
        self, action: str, coid: str | None, request: dict[str, Any], res: CancelResult, started: float, attempt: int
    ) -> None:
        detail = res.error or (f"not canceled: {res.not_canceled}" if res.not_canceled else None)
        await self.store.add_audit(
            AuditRecord(
                action=action,
                outcome=str(res.outcome),
                client_order_id=coid,
                attempt=attempt,
                request={**request, "canceled": len(res.canceled)},
                error_class=str(res.error_class),
                error=detail,
                latency_ms=_ms_since(started),
                mode=self.mode,
                ts=self.clock(),
            )
        )

    # ---------------------------------------------------------------------------------------
    # Dutch groups

    async def submit_group(
        self,
        intents: Sequence[Intent],
        markets: Mapping[str, MarketInfo] | Sequence[MarketInfo],
        *,
        group_id: str | None = None,
        seq: int | str | None = None,
        policy: OneLegPolicy | str | None = None,
    ) -> GroupResult:
        """Place the legs of a Dutch group together; refused as a whole if any leg is refused."""
        if not intents:
            raise ValueError("a group needs at least one leg")
        by_id = dict(markets) if isinstance(markets, Mapping) else {m.condition_id: m for m in markets}
        gid = group_id or intents[0].group_id or self._derive_group_id(intents, seq)
        legs = [i if i.group_id == gid else replace(i, group_id=gid) for i in intents]
        missing = sorted({i.market for i in legs} - set(by_id))
        if missing:
            raise ValueError(f"no market info for {', '.join(missing)}")
        existing = self._groups.get(gid)
        if existing is not None:
            return GroupResult(
                gid,
                False,
                existing.state,
                tuple(self._dup_result(self._orders[c]) for c in existing.legs if c in self._orders),
                detail=f"duplicate: group {gid} already exists ({existing.state}); nothing placed",
                duplicate=True,
            )
        self.register_markets(by_id.values())
        reqs = [self._request(i, by_id[i.market], client_order_id(i, intent_seq(i, seq))) for i in legs]
        if len({r.client_order_id for r in reqs}) != len(reqs):
            raise ValueError("two legs of the group are identical")
        await self._ensure_funds(reqs)
        decision = await self.risk.check_many(
            [(r, by_id[r.market], self._book_now(r.token_id)) for r in reqs], self.exposure()
        )
        if not decision.ok:
            results = [await self._refuse(r, decision, gid) for r in reqs]
            return GroupResult(gid, False, GroupState.FAILED, tuple(results), decision.reason_code, decision.detail)
        group = self._groups[gid] = _Group(
            gid, [r.client_order_id for r in reqs], OneLegPolicy(policy or self.one_leg_policy)
        )
        placed = await asyncio.gather(
            *(self._place_new(r, by_id[r.market], gid, i.reason) for r, i in zip(reqs, legs, strict=True))
        )
        group.state = GroupState.PENDING
        await self._evaluate_group(group)
        # report the legs as they are now (the policy may have canceled some since placement)
        now = [
            replace(p, status=t.status, filled=t.rec.filled_size) if (t := self._orders.get(p.client_order_id)) else p
            for p in placed
        ]
        return GroupResult(gid, all(p.ok for p in placed), group.state, tuple(now))

    @staticmethod
    def _derive_group_id(intents: Sequence[Intent], seq: int | str | None) -> str:
        raw = "|".join(f"{i.market}:{i.token_id}:{i.side}:{i.price}:{i.size}" for i in intents) + f"|{seq}"
        return "grp-" + hashlib.sha256(raw.encode()).hexdigest()[:16]

    async def _kick_group(self, t: _Tracked) -> None:
        gid = t.rec.group_id
        group = self._groups.get(gid) if gid else None
        if group is not None and group.state is not GroupState.PLACING and not group.lock.locked():
            await self._evaluate_group(group)

    def _net_filled(self, group: _Group, leg: str) -> Decimal:
        """A leg's filled quantity net of the policy orders made for it (unwinds sell, hedges buy)."""
        total = self._orders[leg].rec.filled_size
        for adj in group.adjust.get(leg, []):
            t = self._orders.get(adj)
            if t is not None:
                total += t.rec.filled_size if t.req.side is Side.BUY else -t.rec.filled_size
        return total

    async def _evaluate_group(self, group: _Group) -> None:
        async with group.lock:
            legs = [self._orders[c] for c in group.legs if c in self._orders]
            if len(legs) != len(group.legs) or group.state in (GroupState.COMPLETE, GroupState.FAILED):
                return
            filled = {t.coid: self._net_filled(group, t.coid) for t in legs}
            if all(filled[t.coid] >= t.req.size for t in legs):
                await self._group_balanced(
                    group, GroupState.COMPLETE if group.state is not GroupState.SETTLED else GroupState.SETTLED
                )
                return
            stuck = [t for t in legs if t.status not in OPEN_STATUSES and filled[t.coid] < t.req.size]
            top, bottom = max(filled.values()), min(filled.values())
            if not stuck:
                group.state = GroupState.PENDING  # every unfilled leg is still working
                return
            if top == bottom and group.state in (GroupState.ONE_LEGGED, GroupState.SETTLED):
                await self._group_balanced(group, GroupState.SETTLED)
                return
            if top == 0:
                # nothing filled anywhere: no leg risk yet; stop the other legs unless alert-only
                if group.policy is not OneLegPolicy.ALERT:
                    for t in legs:
                        if t.status in OPEN_STATUSES:
                            await self.cancel(t.coid)
                live = [t for t in legs if t.status in OPEN_STATUSES]
                group.state = GroupState.PENDING if live else GroupState.FAILED
                return
            if top == bottom:
                return  # balanced partial fills with a dead leg: nothing unhedged
            if group.state is not GroupState.ONE_LEGGED:
                group.state = GroupState.ONE_LEGGED
            if not group.alerted:
                group.alerted = True
                detail = ", ".join(f"{t.req.token_id[:12]} {filled[t.coid]}/{t.req.size} ({t.status})" for t in legs)
                self.bus.publish(
                    Alert(
                        AlertKind.ONE_LEGGED,
                        Severity.CRITICAL,
                        group.group_id,
                        f"Dutch group {group.group_id} is one-legged: {detail}; policy {group.policy}",
                        ts=self.clock(),
                    )
                )
            if group.policy is OneLegPolicy.ALERT or group.policy_runs >= self.max_policy_runs:
                return
            group.policy_runs += 1
            if group.policy is OneLegPolicy.UNWIND:
                await self._unwind(group, legs)
            else:
                await self._hedge(group, legs)
            filled = {t.coid: self._net_filled(group, t.coid) for t in legs}
            if max(filled.values()) == min(filled.values()):
                await self._group_balanced(group, GroupState.SETTLED)

    async def _group_balanced(self, group: _Group, state: GroupState) -> None:
        group.state = state
        if group.alerted:
            group.alerted = False
            self.bus.publish(
                AlertCleared(
                    AlertKind.ONE_LEGGED, group.group_id, f"Dutch group {group.group_id} is balanced ({state})"
                )
            )

    async def _policy_failed(self, group: _Group, message: str) -> None:
        self.bus.publish(Alert(AlertKind.POLICY_FAILED, Severity.CRITICAL, group.group_id, message, ts=self.clock()))

    async def _unwind(self, group: _Group, legs: list[_Tracked]) -> None:
        for t in legs:
            if t.status in OPEN_STATUSES:
                await self.cancel(t.coid)  # stop adding to the imbalance
        filled = {t.coid: self._net_filled(group, t.coid) for t in legs}
        floor = min(filled.values())
        for t in legs:
            excess = filled[t.coid] - floor
            if excess <= 0:
                continue
            if t.req.side is not Side.BUY:
                await self._policy_failed(group, f"unwind of {t.coid}: only bought legs can be unwound")
                continue
            book = self._books(t.req.token_id) if self._books else None
            bid = book.best_bid() if book is not None and book.status is BookStatus.OK else None
            if bid is None:
                await self._policy_failed(group, f"unwind of {t.coid}: no usable best bid for {t.req.token_id}")
                continue
            res = await self._policy_order(group, t, Side.SELL, bid, excess, "unwind")
            if not res.ok or res.filled < excess:
                why = res.reason_code or res.status
                await self._policy_failed(
                    group, f"unwind of {t.coid}: sold {res.filled}/{excess} at {bid} ({why}: {res.detail})"
                )

    async def _hedge(self, group: _Group, legs: list[_Tracked]) -> None:
        filled = {t.coid: self._net_filled(group, t.coid) for t in legs}
        target = max(filled.values())
        for t in legs:
            deficit = target - filled[t.coid]
            if deficit <= 0:
                continue
            if t.status in OPEN_STATUSES:
                await self.cancel(t.coid)  # replace the resting remainder with a marketable one
                deficit = target - self._net_filled(group, t.coid)
                if deficit <= 0:
                    continue
            res = await self._policy_order(group, t, t.req.side, t.req.price, deficit, "hedge")
            if not res.ok or res.filled < deficit:
                why = res.reason_code or res.status
                await self._policy_failed(
                    group,
                    f"hedge of {t.coid}: got {res.filled}/{deficit} within {t.req.price} ({why}: {res.detail})",
                )

    async def _policy_order(
        self, group: _Group, leg: _Tracked, side: Side, price: Decimal, size: Decimal, kind: str
    ) -> SubmitResult:
        market = leg.market or self._markets.get(leg.req.market)
        if market is None:
            return SubmitResult("", False, None, detail=f"no market info for {leg.req.market}")
        intent = Intent(
            market=leg.req.market,
            token_id=leg.req.token_id,
            side=side,
            price=price,
            size=size,
            order_type=OrderType.FAK,
            group_id=f"{group.group_id}/{kind}",
            reason=f"{kind} of one-legged group {group.group_id}",
        )
        seq = f"{leg.coid}:{group.policy_runs}"
        coid = client_order_id(intent, seq)
        group.adjust.setdefault(leg.coid, []).append(coid)
        return await self.submit(intent, market, seq=seq)
