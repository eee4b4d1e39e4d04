"""The risk gate: arm state, pre-trade limits, rate limits, error breaker, kill switch.

An order is placed only when every gate says yes. :meth:`RiskGate.check` returns a
:class:`RiskDecision` whose :class:`ReasonCode` reaches the caller (CLI / Telegram) and, via the
engine, the exec_audit table. The decision logic is pure: time comes from the injected clock,
exposure from an :class:`ExposureSnapshot` the engine builds, so tests control everything.

Exposure is the worst-case loss across outcomes (:mod:`core.execution.exposure`); rate limits
and the error breaker are in :mod:`core.execution.throttle`; the venue's rules for one order in
:mod:`core.execution.rules`. The service always starts disarmed, whatever the state table said at
shutdown.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from core.defaults import VENUE_CANCELS_BURST, VENUE_CANCELS_PER_S, VENUE_ORDERS_BURST, VENUE_ORDERS_PER_S
from core.events import Alert, AlertCleared, AlertKind, EventBus, Severity, StateChanged
from core.execution.exposure import ExposureSnapshot
from core.execution.leg_exposure import LegView, leg_view
from core.execution.ordered_writes import OrderedWrites
from core.execution.positions import utc_day
from core.execution.risk_fast import group_passes
from core.execution.rules import ReasonCode, RiskDecision, crosses_book, order_rules
from core.execution.store import AuditRecord, ExecutionStore
from core.execution.throttle import ErrorBreaker, TokenBucket
from core.execution.types import CancelResult, OrderRequest
from core.settings import RiskSettings
from core.store.models import ARMED_KEY
from core.types import BookStatus, BookView, MarketInfo, Side

log = logging.getLogger(__name__)

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Limits in pUSD (Decimal). ``None`` disables a limit. Their defaults are ``[risk]``'s
    (:class:`core.settings.RiskSettings`): :meth:`configured` is the one way from settings to limits."""

    max_order_notional: Decimal | None
    max_market_notional: Decimal | None
    max_event_notional: Decimal | None
    max_total_exposure: Decimal | None
    daily_loss_limit: Decimal | None
    error_breaker_max_errors: int
    error_breaker_window_s: float
    orders_per_s: float
    order_burst: int
    cancels_per_s: float
    cancel_burst: int

    @classmethod
    def configured(cls, risk: RiskSettings | None = None) -> RiskLimits:
        """The limits ``[risk]`` sets (its defaults when None)."""
        r = risk if risk is not None else RiskSettings()
        return cls(
            max_order_notional=r.max_order_notional,
            max_market_notional=r.max_market_notional,
            max_event_notional=r.max_event_notional,
            max_total_exposure=r.max_total_exposure,
            daily_loss_limit=r.max_daily_loss,
            error_breaker_max_errors=r.error_rate_max,
            error_breaker_window_s=float(r.error_rate_window_s),
            orders_per_s=float(r.orders_per_s),
            order_burst=r.orders_burst,
            cancels_per_s=float(r.cancels_per_s),
            cancel_burst=r.cancels_burst,
        )

    def problems(self) -> list[str]:
        """Why these limits are not sane (empty when they are): used by preflight."""
        out: list[str] = []
        notionals = {
            "max_order_notional": self.max_order_notional,
            "max_market_notional": self.max_market_notional,
            "max_event_notional": self.max_event_notional,
            "max_total_exposure": self.max_total_exposure,
        }
        for name, value in notionals.items():
            if value is not None and value <= 0:
                out.append(f"{name} must be positive (got {value})")
        if self.daily_loss_limit is not None and self.daily_loss_limit <= 0:
            out.append(f"daily_loss_limit must be positive (got {self.daily_loss_limit})")
        chain = [
            ("max_order_notional", self.max_order_notional),
            ("max_market_notional", self.max_market_notional),
            ("max_total_exposure", self.max_total_exposure),
        ]
        for (lo_name, lo), (hi_name, hi) in itertools.pairwise(chain):
            if lo is not None and hi is not None and lo > hi:
                out.append(f"{lo_name} ({lo}) exceeds {hi_name} ({hi})")
        if self.max_event_notional is not None and self.max_total_exposure is not None:
            if self.max_event_notional > self.max_total_exposure:
                out.append(
                    f"max_event_notional ({self.max_event_notional}) exceeds max_total_exposure ({self.max_total_exposure})"
                )
        if self.error_breaker_max_errors < 1 or self.error_breaker_window_s <= 0:
            out.append("error breaker needs max_errors >= 1 and window_s > 0")
        if not 0 < self.orders_per_s < VENUE_ORDERS_PER_S or not 1 <= self.order_burst < VENUE_ORDERS_BURST:
            out.append(
                f"order bucket {self.orders_per_s}/s burst {self.order_burst} must stay below the venue's "
                f"{VENUE_ORDERS_PER_S:g}/s burst {VENUE_ORDERS_BURST}"
            )
        if not 0 < self.cancels_per_s < VENUE_CANCELS_PER_S or not 1 <= self.cancel_burst < VENUE_CANCELS_BURST:
            out.append(
                f"cancel bucket {self.cancels_per_s}/s burst {self.cancel_burst} must stay below the venue's "
                f"{VENUE_CANCELS_PER_S:g}/s burst {VENUE_CANCELS_BURST}"
            )
        return out


def _funds_check(req: OrderRequest, view: LegView) -> RiskDecision:
    """Never sell shares we do not hold, never buy with money we do not have (after what open
    orders have already promised)."""
    held = view.holding(req.token_id)
    funds = view.funds
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
    committed = view.committed()
    available = funds.collateral - committed
    if req.notional > available:
        return RiskDecision.refuse(
            ReasonCode.INSUFFICIENT_BALANCE,
            f"buy needs {req.notional} pUSD but {available} is available ({funds.collateral} {funds.source}, "
            f"{committed} in open buys)",
        )
    return RiskDecision.allow()


# ---------------------------------------------------------------------------------------------
# The gate


@dataclass(frozen=True, slots=True)
class KillResult:
    canceled: int
    not_canceled: dict[str, str]
    error: str = ""
    gone: int = 0  # believed open, but already closed at the venue: reconciled, not canceled by us


Canceller = Callable[[], Awaitable[CancelResult]]


class RiskGate:
    def __init__(
        self,
        limits: RiskLimits,
        store: ExecutionStore,
        clock: Callable[[], float],
        bus: EventBus,
        *,
        mode: str = "paper",
    ) -> None:
        self.limits = limits
        self.store = store
        self.clock = clock
        self.bus = bus
        self.mode = mode
        self._armed = False
        self.order_bucket = TokenBucket(limits.orders_per_s, limits.order_burst, clock)
        self.cancel_bucket = TokenBucket(limits.cancels_per_s, limits.cancel_burst, clock)
        self.breaker = ErrorBreaker(limits.error_breaker_max_errors, limits.error_breaker_window_s, clock)
        self._breaker_alerted = False
        self._daily: tuple[str, Decimal] = ("", ZERO)
        self._loss_alerted_day = ""
        self._canceller: Canceller | None = None
        self.refusals: dict[ReasonCode, int] = dict.fromkeys(ReasonCode, 0)
        self.state_writes = OrderedWrites()  # the arm state's row, in the order it changed

    # -- state ---------------------------------------------------------------------------------

    @property
    def armed(self) -> bool:
        return self._armed

    def set_limits(self, limits: RiskLimits) -> None:
        """Apply reloaded limits (buckets and breaker are rebuilt; the arm state is untouched)."""
        self.limits = limits
        self.order_bucket = TokenBucket(limits.orders_per_s, limits.order_burst, self.clock)
        self.cancel_bucket = TokenBucket(limits.cancels_per_s, limits.cancel_burst, self.clock)
        self.breaker.reconfigure(limits.error_breaker_max_errors, limits.error_breaker_window_s)

    def set_canceller(self, canceller: Canceller) -> None:
        """The engine registers its ``cancel_all`` here so the kill switch can reach the venue."""
        self._canceller = canceller

    async def start(self) -> bool:
        """Load the persisted state and force it to disarmed. Returns True when it had to reset."""
        stored = await self.store.get_state(ARMED_KEY)
        was_armed = isinstance(stored, dict) and bool(stored.get("armed"))
        self._armed = False
        if was_armed:
            by = str(stored.get("by", "?")) if isinstance(stored, dict) else "?"
            reason = f"service start: was armed (by {by}) at shutdown; always start disarmed"
            await self._persist(False, "system", reason)
            await self._audit("reset", "disarmed", reason)
            self.bus.publish(StateChanged(armed=False, by="system", reason=reason, ts=self.clock()))
            self.bus.publish(Alert(AlertKind.RESET_ON_START, Severity.WARNING, "risk", reason, ts=self.clock()))
            log.warning("%s", reason)
        elif stored is None:
            await self._persist(False, "system", "first start")
        return was_armed

    async def arm(self, by: str) -> RiskDecision:
        if self._daily_loss_hit():
            detail = self._daily_loss_detail()
            await self._audit("arm", "refused", detail, reason=ReasonCode.DAILY_LOSS_LIMIT, by=by)
            return RiskDecision.refuse(ReasonCode.DAILY_LOSS_LIMIT, detail)
        self._armed = True
        await self._persist(True, by, "armed")
        await self._audit("arm", "armed", f"armed by {by}", by=by)
        self.bus.publish(StateChanged(armed=True, by=by, reason="armed", ts=self.clock()))
        return RiskDecision.allow()

    async def disarm(self, by: str, reason: str = "") -> None:
        was = self._armed
        self._armed = False
        await self._persist(False, by, reason)
        await self._audit("disarm", "disarmed", reason or f"disarmed by {by}", by=by)
        if was:
            self.bus.publish(StateChanged(armed=False, by=by, reason=reason, ts=self.clock()))

    async def kill(self, by: str) -> KillResult:
        """Disarm, then cancel every open order through the engine."""
        await self.disarm(by, "kill switch")
        if self._canceller is None:
            result = KillResult(0, {}, "no engine attached: nothing could be canceled")
        else:
            try:
                res = await self._canceller()
                result = KillResult(len(res.canceled), dict(res.not_canceled), res.error, len(res.gone))
            except Exception as exc:  # the kill switch must report, never raise
                log.exception("kill switch: cancel_all failed")
                result = KillResult(0, {}, f"cancel_all failed: {type(exc).__name__}: {exc}")
        msg = f"kill switch by {by}: disarmed, {result.canceled} order(s) canceled"
        if result.gone:
            msg += f", {result.gone} already closed at the venue"
        if result.not_canceled or result.error:
            msg += f", {len(result.not_canceled)} not canceled {result.error}".rstrip()
        await self._audit("kill", "killed", msg, by=by)
        self.bus.publish(Alert(AlertKind.KILL_SWITCH, Severity.WARNING, "risk", msg, ts=self.clock()))
        return result

    # -- inputs from the engine ----------------------------------------------------------------

    def record_order_error(self) -> None:
        self.breaker.record()
        if self.breaker.tripped and not self._breaker_alerted:
            self._breaker_alerted = True
            n = self.breaker.recent()
            self.bus.publish(
                Alert(
                    AlertKind.ERROR_RATE,
                    Severity.CRITICAL,
                    "risk",
                    f"{n} order errors within {self.limits.error_breaker_window_s:g}s: new orders refused",
                    ts=self.clock(),
                )
            )

    async def on_daily_realised(self, realised: Decimal, day: str | None = None) -> None:
        """Today's realised PnL changed; a breach of the daily loss limit disarms and alerts."""
        self._daily = (day or utc_day(self.clock()), realised)
        if self._daily_loss_hit():
            await self._trip_daily_loss()

    # -- checks --------------------------------------------------------------------------------

    async def check(
        self,
        req: OrderRequest,
        market: MarketInfo,
        exposure: ExposureSnapshot,
        *,
        book_status: BookStatus | None = None,
        book: BookView | BookStatus | None = None,
    ) -> RiskDecision:
        """May ``req`` be placed now? Consumes an order-rate token only when it may.

        ``book`` (its status and top of book) or just ``book_status``: a crossing GTC/GTD must meet
        the venue's $1 minimum, which only the book can tell."""
        return await self.check_many([(req, market, book if book is not None else book_status)], exposure)

    async def check_many(
        self,
        legs: Sequence[tuple[OrderRequest, MarketInfo, BookView | BookStatus | None]],
        exposure: ExposureSnapshot,
    ) -> RiskDecision:
        """Check the legs of a group together (each against the exposure of the legs before it).

        The figures come from :func:`core.execution.leg_exposure.leg_view`: measured once per group
        and moved leg by leg (linear in the legs), the same Decimals as rebuilding the snapshot per leg."""
        if exposure.daily_realised is not None:
            self._daily = (utc_day(self.clock()), exposure.daily_realised)
        if self._passes(legs, exposure):
            self._maybe_clear_breaker()  # as the exact check does once a leg got past the breaker
        else:
            view = leg_view(exposure, [(req, market) for req, market, _ in legs])
            for req, market, book in legs:
                decision = self._evaluate(req, market, view, book)
                if not decision.ok:
                    return await self._refused(decision)
                view.add(req)
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

    def _passes(
        self, legs: Sequence[tuple[OrderRequest, MarketInfo, BookView | BookStatus | None]], exposure: ExposureSnapshot
    ) -> bool:
        """Every leg surely allowed (:func:`core.execution.risk_fast.group_passes`: only ever an
        allow the exact check would give); False: the exact check decides, refusal and message."""
        if not self._armed or self._daily_loss_hit() or self.breaker.tripped:
            return False
        return group_passes(legs, exposure, clock=self.clock, limits=self.limits)

    def preview(
        self, req: OrderRequest, market: MarketInfo, exposure: ExposureSnapshot, *, book: BookView | BookStatus | None
    ) -> RiskDecision:
        """What :meth:`check` would answer now, without its effects (no order-rate token taken, no
        refusal counted): a chat shows a confirmation card only for an order that would be sent."""
        return self._evaluate(req, market, leg_view(exposure, [(req, market)]), book)

    def take_cancel_token(self) -> float:
        """0.0 when a cancel may go now (token taken), else seconds to wait. Cancels work disarmed."""
        if self.cancel_bucket.try_take():
            return 0.0
        return max(self.cancel_bucket.wait_time(), 1e-3)

    def _evaluate(
        self, req: OrderRequest, market: MarketInfo, exposure: LegView, book: BookView | BookStatus | None
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
        funded = _funds_check(req, exposure)
        if not funded.ok:
            return funded
        if req.side is Side.BUY:
            what = f"market {market.slug or market.condition_id}"
            before_m, after_m, event_before, event_after, total_before = exposure.figures(req, market)
            measures = [(ReasonCode.MAX_MARKET_NOTIONAL, lim.max_market_notional, what, before_m, after_m)]
            if event_before is not None and event_after is not None:
                event = market.neg_risk_market_id
                before_g, after_g = event_before, event_after
                measures.append(
                    (ReasonCode.MAX_EVENT_NOTIONAL, lim.max_event_notional, f"event {event}", before_g, after_g)
                )
            else:
                before_g, after_g = before_m, after_m
            # only the order's own unit (its event, or its market) changes: no need to re-add the rest
            total_after = total_before - before_g + after_g
            measures.append((ReasonCode.MAX_TOTAL_EXPOSURE, lim.max_total_exposure, "total", total_before, total_after))
            for code, limit, label, before, new in measures:
                if limit is not None and new > limit and new > before:
                    return RiskDecision.refuse(code, f"{label} worst-case exposure would be {new} > limit {limit}")
        return RiskDecision.allow()

    # -- internals -----------------------------------------------------------------------------

    def _daily_loss_hit(self) -> bool:
        limit = self.limits.daily_loss_limit
        day, realised = self._daily
        return limit is not None and realised <= -limit and day == utc_day(self.clock())

    def _daily_loss_detail(self) -> str:
        return f"daily realised PnL {self._daily[1]} breached the loss limit -{self.limits.daily_loss_limit}"

    async def _trip_daily_loss(self) -> None:
        day = self._daily[0]
        if self._loss_alerted_day == day and not self._armed:
            return
        detail = self._daily_loss_detail()
        if self._armed:
            await self.disarm("risk", detail)
        if self._loss_alerted_day != day:
            self._loss_alerted_day = day
            self.bus.publish(
                Alert(AlertKind.DAILY_LOSS, Severity.CRITICAL, "risk", detail + ": disarmed", ts=self.clock())
            )

    def _maybe_clear_breaker(self) -> None:
        if self._breaker_alerted and not self.breaker.tripped:
            self._breaker_alerted = False
            self.bus.publish(
                AlertCleared(AlertKind.ERROR_RATE, "risk", "order error rate back to normal", ts=self.clock())
            )

    async def _refused(self, decision: RiskDecision) -> RiskDecision:
        assert decision.reason_code is not None
        self.refusals[decision.reason_code] += 1
        if decision.reason_code is ReasonCode.DAILY_LOSS_LIMIT:
            await self._trip_daily_loss()
        return decision

    async def _persist(self, armed: bool, by: str, reason: str) -> None:
        # after the write of the change before (an arm still committing must not land after a disarm)
        value = {"armed": armed, "by": by, "reason": reason, "ts": self.clock()}
        await self.state_writes.run((ARMED_KEY,), lambda: self.store.set_state(ARMED_KEY, value))

    async def _audit(
        self, action: str, outcome: str, detail: str, *, reason: ReasonCode | None = None, by: str = ""
    ) -> None:
        request: dict[str, object] = {"by": by} if by else {}
        await self.store.add_audit(
            AuditRecord(
                action=action,
                outcome=outcome,
                error_class=str(reason) if reason else None,
                error=detail,
                request=request or None,
                mode=self.mode,
                ts=self.clock(),
            )
        )
