"""The one control facade every front end calls (Telegram bot, CLI, demo).

Business rules live here: which orders need a confirmation, what is re-checked at confirm time,
what "healthy" means. Handlers and CLI commands only parse, call these methods and render the
result objects from :mod:`core.control.types`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.control.types import (
    ActionResult,
    ControlError,
    FeedConnection,
    HealthReport,
    MarketRow,
    OrderOutcome,
    OrderRow,
    OrderTicket,
    PnlReport,
    PositionRow,
    PreflightReport,
    QuoteRow,
    StatusReport,
)
from core.errors import UsageError
from core.events import Alert, AlertCleared, EventBus
from core.execution.engine import Engine
from core.execution.funds import Funds
from core.execution.venue_link import VenueStatus
from core.fees import taker_fee
from core.metrics.collect import record_command
from core.money import on_tick
from core.redact import redact_typed
from core.registry import MarketRegistry
from core.risk import RiskGate
from core.strategies.dutch import DutchConfig
from core.types import BookStatus, BookView, Intent, MarketInfo, Mode, OrderType, Side

log = logging.getLogger(__name__)

MAX_ORDER_SHARES = Decimal(1_000_000)
EVENT_ALERT_KINDS = frozenset({"order_rejected", "order_failed", "kill_switch", "service", "daily_summary"})
"""Alerts that report something that happened, not a condition that is still true: /health ignores them."""


class FeedStats(Protocol):
    def connections(self) -> list[FeedConnection]: ...


class AuditRows(Protocol):
    """A non-blocking row sink (``core.store.writer.BatchedWriter``): False when its queue is full."""

    def put(self, table: str, row: dict[str, Any]) -> bool: ...


@dataclass
class Runtime:
    """Everything the facade reads or drives; assembled by :mod:`core.service` (or a CLI command)."""

    mode: Mode
    bus: EventBus
    registry: MarketRegistry
    books: Mapping[str, BookView]
    risk: RiskGate
    engine: Engine
    sessions: async_sessionmaker[AsyncSession] | None = None
    feed: FeedStats | None = None
    preflight: Callable[[bool], Awaitable[PreflightReport]] | None = None
    dutch: DutchConfig | None = None
    staleness_ms: int = 5_000
    frames: Callable[[], int] = lambda: 0
    extra_health: Callable[[], list[str]] = lambda: []
    started: float = field(default_factory=time.monotonic)
    audit_rows: AuditRows | None = None
    """When set, command_audit rows go through it (batched; the service flushes it at shutdown) so
    a command never waits for a database commit; otherwise each row is its own transaction."""
    venue: Callable[[], VenueStatus | None] = lambda: None
    """The CLOB's reachability as the live relayer sees it (None: no venue — paper or dry-run)."""
    funds: Callable[[], Funds] | None = None


class Control:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.alerts: deque[Alert] = deque(maxlen=50)
        self.active_alerts: dict[tuple[str, str], Alert] = {}
        self.last_preflight: PreflightReport | None = None
        rt.bus.subscribe(Alert, self._on_alert)
        rt.bus.subscribe(AlertCleared, self._on_cleared)

    def _on_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self.active_alerts[(alert.kind, alert.key)] = alert

    def _on_cleared(self, cleared: AlertCleared) -> None:
        self.active_alerts.pop((cleared.kind, cleared.key), None)

    # ---- read side ----------------------------------------------------------------------
    async def status(self) -> StatusReport:
        # one status read per book, counted in C: /status must stay fast with thousands of books
        by_status = Counter(book.status for book in self.rt.books.values())
        counts = {str(getattr(status, "value", status)): n for status, n in by_status.items()}
        last = self.alerts[-1] if self.alerts else None
        return StatusReport(
            mode=self.rt.mode.value,
            armed=self.rt.risk.armed,
            markets=len(self.rt.registry),
            assets=len(self.rt.books),
            books=counts,
            connections=self.rt.feed.connections() if self.rt.feed else [],
            open_orders=len(self.rt.engine.open_orders()),
            positions=len(self.rt.engine.positions.open_positions()),
            pnl_today=self.rt.engine.positions.daily_realised(),
            last_alert=f"{last.kind}: {last.message}" if last else None,
            frames=self.rt.frames(),
            uptime_s=time.monotonic() - self.rt.started,
            venue=self._venue_line(),
            funds=self._funds_line(),
        )

    def _venue_line(self) -> str:
        st = self.rt.venue()
        if st is None:
            return "no venue connection (paper: simulated fills)" if self.rt.mode is Mode.PAPER else ""
        rest = "ok" if st.rest_ok else f"FAILING ({st.rest_failures} in a row: {st.rest_error})"
        beat = "none yet" if st.heartbeat_age_s is None else f"{st.heartbeat_age_s:.1f}s ago"
        return f"REST {rest}; user channel {st.user_channel}; last heartbeat {beat}"

    def _funds_line(self) -> str:
        if self.rt.funds is None:
            return ""
        funds = self.rt.funds()
        if funds.collateral is None:
            return f"collateral unknown ({funds.source}): buys refused"
        held = sum(
            (o.price * (o.size - o.filled_size) for o in self.rt.engine.open_orders() if o.side is Side.BUY), Decimal(0)
        )
        return f"collateral {_plain(funds.collateral)} pUSD, {_plain(held)} held by open buys ({funds.source})"

    async def quotes(self, ref: str | None = None, limit: int = 30) -> list[QuoteRow]:
        markets = [self._resolve(ref)] if ref else self.rt.registry.search(None)
        rows: list[QuoteRow] = []
        for m in markets:
            edge = self._dutch_edge(m)
            for tok in m.tokens:
                book = self.rt.books.get(tok.token_id)
                if book is None and ref is None:
                    continue
                bid = book.best_bid() if book else None
                ask = book.best_ask() if book else None
                rows.append(
                    QuoteRow(
                        market=m.slug or m.condition_id,
                        outcome=tok.outcome,
                        token_id=tok.token_id,
                        bid=bid,
                        ask=ask,
                        spread=(ask - bid) if bid is not None and ask is not None else None,
                        status=book.status.value if book else "no_book",
                        dutch_edge=edge,
                    )
                )
            if len(rows) >= limit:
                break
        return rows[:limit]

    def _dutch_edge(self, m: MarketInfo) -> Decimal | None:
        """Complete-set edge per set at the top of book: payout 1 minus the best asks of every leg and
        their taker fees (negative = no arbitrage). None when a leg has no ask or the set is not
        complete (augmented neg-risk events never are). The depth-aware decision is the strategy's."""
        from core.fees import taker_fee

        if m.neg_risk and m.neg_risk_market_id:
            members = self.rt.registry.event_members(m.neg_risk_market_id)
            if m.neg_risk_augmented or any(x.neg_risk_augmented for x in members) or len(members) < 2:
                return None
            legs = []
            for member in members:
                try:
                    legs.append((member, member.token("Yes").token_id))
                except KeyError:
                    return None
        elif len(m.tokens) == 2:
            legs = [(m, t.token_id) for t in m.tokens]
        else:
            return None
        cost = Decimal(0)
        for market, token_id in legs:
            book = self.rt.books.get(token_id)
            ask = book.best_ask() if book is not None else None
            if ask is None:
                return None
            rate = (
                self.rt.dutch.fee_rate_override
                if self.rt.dutch and self.rt.dutch.fee_rate_override is not None
                else market.fee_rate
            )
            cost += ask + taker_fee(Decimal(1), ask, rate)
        return Decimal(1) - cost

    async def markets(self, text: str | None = None) -> list[MarketRow]:
        return [
            MarketRow(
                condition_id=m.condition_id,
                slug=m.slug,
                question=m.question,
                outcomes=[t.outcome for t in m.tokens],
                tick_size=m.tick_size,
                neg_risk=m.neg_risk,
                fee_rate=m.fee_rate,
                active=m.active and not m.closed,
            )
            for m in self.rt.registry.search(text)
        ]

    async def orders(self) -> list[OrderRow]:
        rows = []
        for rec in self.rt.engine.open_orders():
            tok = self.rt.registry.token(rec.token_id)
            market = self.rt.registry.get(rec.market)
            rows.append(
                OrderRow(
                    client_order_id=rec.client_order_id,
                    market=(market.slug if market else "") or rec.market,
                    outcome=tok.outcome if tok else rec.token_id[:10],
                    side=str(rec.side.value if hasattr(rec.side, "value") else rec.side),
                    price=rec.price,
                    size=rec.size,
                    filled=rec.filled_size,
                    status=str(rec.status.value if hasattr(rec.status, "value") else rec.status),
                    mode=rec.mode,
                )
            )
        return rows

    def mark(self, token_id: str) -> Decimal | None:
        book = self.rt.books.get(token_id)
        if book is None:
            return None
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            return (bid + ask) / 2
        return bid if bid is not None else ask

    async def positions(self) -> list[PositionRow]:
        rows = []
        for pos in self.rt.engine.positions.open_positions():
            market = self.rt.registry.for_token(pos.token_id)
            tok = self.rt.registry.token(pos.token_id)
            mark = self.mark(pos.token_id)
            avg = pos.avg_price or Decimal(0)
            rows.append(
                PositionRow(
                    market=(market.slug if market else "") or pos.market or "?",
                    outcome=tok.outcome if tok else pos.token_id[:10],
                    token_id=pos.token_id,
                    size=pos.shares,
                    avg_cost=avg.quantize(Decimal("0.000001")),
                    mark=mark,
                    unrealised=pos.unrealised(mark) if mark is not None else Decimal(0),
                    realised=pos.realised,
                )
            )
        return rows

    async def pnl(self) -> PnlReport:
        book = self.rt.engine.positions
        return PnlReport(
            realised_today=book.daily_realised(),
            realised_total=book.realised_total(),
            unrealised=book.unrealised(self.mark),
        )

    async def health(self, staleness_ms: int | None = None) -> HealthReport:
        reasons: list[str] = []
        for conn in self.rt.feed.connections() if self.rt.feed else []:
            if conn.state not in ("connected", "reconnected"):
                reasons.append(f"feed connection {conn.name} is {conn.state}")
        bad = [(t, b.status) for t, b in self.rt.books.items() if b.status is not BookStatus.OK]
        for status in (BookStatus.INCONSISTENT, BookStatus.STALE, BookStatus.AWAITING_SNAPSHOT):
            tokens = [t for t, s in bad if s is status]
            if tokens:
                reasons.append(f"{len(tokens)} book(s) {status.value}")
        for alert in self.active_alerts.values():
            if str(alert.severity) == "info" or alert.kind in EVENT_ALERT_KINDS:
                continue  # a notice or a one-off event (an order failed), not a standing condition
            reasons.append(f"active alert {alert.kind}: {alert.message}")
        reasons += self.rt.extra_health()
        return HealthReport(ok=not reasons, reasons=reasons)

    # ---- arm state ----------------------------------------------------------------------
    async def arm(self, by: str) -> ActionResult:
        if self.rt.mode is Mode.LIVE:
            report = await self.preflight(offline=False)
            if not report.ok:
                failed = ", ".join(c.name for c in report.checks if not c.ok and not c.skipped)
                return ActionResult(
                    False, f"refused: live mode needs a passing preflight (failed: {failed})", "preflight"
                )
        decision = await self.rt.risk.arm(by)
        if not decision.ok:
            return ActionResult(False, f"refused: {decision.reason_code}: {decision.detail}", str(decision.reason_code))
        return ActionResult(True, f"armed ({self.rt.mode.value} mode)")

    async def disarm(self, by: str, reason: str = "") -> ActionResult:
        await self.rt.risk.disarm(by, reason or "requested")
        return ActionResult(True, "disarmed: no new orders will be placed")

    async def kill(self, by: str) -> ActionResult:
        result = await self.rt.risk.kill(by)
        msg = f"killed: disarmed, {result.canceled} order(s) canceled"
        if result.gone:
            msg += f", {result.gone} were already closed at the venue (filled, canceled or expired there)"
        if result.not_canceled:
            msg += f", {len(result.not_canceled)} NOT canceled: " + ", ".join(
                f"{k}: {v}" for k, v in list(result.not_canceled.items())[:5]
            )
        if result.error:
            msg += f" (error: {result.error})"
        return ActionResult(not result.not_canceled and not result.error, msg)

    async def preflight(self, offline: bool = False) -> PreflightReport:
        if self.rt.preflight is None:
            raise ControlError("preflight is not available in this process", "unavailable")
        report = await self.rt.preflight(offline)
        self.last_preflight = report
        return report

    # ---- orders -------------------------------------------------------------------------
    def _resolve(self, ref: str) -> MarketInfo:
        try:
            return self.rt.registry.resolve(ref)
        except UsageError as exc:
            raise ControlError(str(exc), "unknown_market") from None

    async def prepare_order(
        self, market_ref: str, outcome: str, side: Side, price: Decimal, size: Decimal, *, user: str
    ) -> OrderTicket:
        """Validate a manual order; live mode returns a ticket that needs the user's confirmation."""
        market = self._resolve(market_ref)
        try:
            token = market.token(outcome)
        except KeyError:
            names = "/".join(t.outcome for t in market.tokens)
            raise ControlError(f"outcome must be one of {names}, got {outcome!r}", "unknown_outcome") from None
        tick = market.tick_size
        if not (tick <= price <= 1 - tick):
            raise ControlError(f"price must be within [{tick}, {1 - tick}], got {price}", "price_range")
        if not on_tick(price, tick):
            raise ControlError(f"price {price} is not on this market's tick {tick}", "price_off_tick")
        if size <= 0 or size > MAX_ORDER_SHARES:
            raise ControlError(f"size must be > 0 and <= {MAX_ORDER_SHARES}, got {size}", "invalid_size")
        if size != size.quantize(Decimal("0.01")):
            raise ControlError(f"size has at most 2 decimals, got {size}", "invalid_size")
        if size < market.min_order_size:
            raise ControlError(
                f"size {size} is below this market's minimum of {market.min_order_size}", "size_below_min"
            )
        est_fee = taker_fee(size, price, market.fee_rate)
        return OrderTicket(
            market=market,
            token_id=token.token_id,
            outcome=token.outcome,
            side=side,
            price=price,
            size=size,
            mode=self.rt.mode,
            order_type=OrderType.GTC,
            est_fee=est_fee,
            requested_by=user,
            needs_confirmation=self.rt.mode is Mode.LIVE,
        )

    async def execute_order(self, ticket: OrderTicket, *, user: str, confirmed: bool) -> OrderOutcome:
        """Send a prepared order through the risk gate and the engine (re-checked now, not at prepare time)."""
        if ticket.needs_confirmation and not confirmed:
            raise ControlError("a live order needs an explicit confirmation", "needs_confirmation")
        if ticket.mode is not self.rt.mode:
            raise ControlError(
                f"the mode changed to {self.rt.mode.value} since this order was prepared", "mode_changed"
            )
        if not self.rt.risk.armed:
            raise ControlError("not armed: /arm first", "not_armed")
        book = self.rt.books.get(ticket.token_id)
        if book is None or book.status is not BookStatus.OK:
            state = book.status.value if book else "no book"
            raise ControlError(f"the book for this outcome is not ok ({state}); not sent", "book_not_ok")
        intent = Intent(
            market=ticket.market.condition_id,
            token_id=ticket.token_id,
            side=ticket.side,
            price=ticket.price,
            size=ticket.size,
            order_type=ticket.order_type,
            post_only=False,
            group_id=None,
            reason=f"manual by {user}",
        )
        result = await self.rt.engine.submit(intent, ticket.market, seq=ticket.ticket_id)
        if result.reason_code is not None:
            raise ControlError(f"refused by risk: {result.reason_code}: {result.detail}", str(result.reason_code))
        status = result.status.value if result.status is not None else "refused"
        message = result.detail
        if result.duplicate:
            message = "duplicate: this order was already sent; nothing new was placed"
        rec = self.rt.engine.order(result.client_order_id)
        avg = (rec.avg_price if rec is not None else None) if result.filled else None
        return OrderOutcome(
            client_order_id=result.client_order_id,
            status=status,
            mode=self.rt.mode.value,
            filled=result.filled,
            avg_price=avg,
            message=message,
            signed_order=result.signed_order,
        )

    async def cancel(self, client_order_id: str, *, user: str) -> ActionResult:
        if self.rt.engine.order(client_order_id) is None:
            raise ControlError(f"no order {client_order_id!r} (see /orders)", "unknown_order")
        result = await self.rt.engine.cancel(client_order_id)
        if client_order_id in result.gone:
            rec = self.rt.engine.order(client_order_id)
            status = rec.status.value if rec is not None else "closed"
            return ActionResult(True, f"{client_order_id} was no longer open at the venue: it is {status}")
        if client_order_id in result.canceled or (not result.not_canceled and not result.error):
            return ActionResult(True, f"canceled {client_order_id}")
        why = result.not_canceled.get(client_order_id) or result.error or "not canceled"
        return ActionResult(False, f"cancel of {client_order_id} failed: {why}", str(result.error_class))

    async def cancel_all(self, *, user: str) -> ActionResult:
        result = await self.rt.engine.cancel_all()
        msg = f"canceled {len(result.canceled)} order(s)"
        if result.gone:
            msg += f"; {len(result.gone)} were already closed at the venue (filled, canceled or expired there)"
        if result.not_canceled:
            msg += f"; {len(result.not_canceled)} not canceled"
        if result.error:
            msg += f"; error: {result.error}"
        return ActionResult(not result.not_canceled and not result.error, msg)

    # ---- audit --------------------------------------------------------------------------
    def mask_typed(self, text: str) -> str:
        """Text a person typed (or an error echoing it), with every secret shape masked — except
        the condition ids of known markets, which traders type as arguments."""
        return redact_typed(text, keep=self.rt.registry)

    async def audit_command(
        self, front_end: str, user_id: int | str | None, command: str, arguments: str, result: str, detail: str
    ) -> None:
        """One command_audit row per command (authorised or not). Never raises: audit must not block control."""
        record_command(front_end, command, result)
        row = {
            "ts": datetime.now(UTC),
            "front_end": front_end[:16],
            "user_id": None if user_id is None else str(user_id)[:64],
            "command": command[:64],
            # what a person typed: mask anything secret-shaped, but keep the markets they named
            "arguments": self.mask_typed(arguments)[:500],
            "result": result[:16],
            "detail": self.mask_typed(str(detail))[:2000],
        }
        sink = self.rt.audit_rows
        if sink is not None:
            try:
                if sink.put("command_audit", row):
                    return
            except Exception as exc:  # a writer that is closing: fall back to a direct write
                log.debug("audit row not queued (%s); writing it directly", exc)
        if self.rt.sessions is None:
            return
        from core.store.models import CommandAudit

        try:
            async with self.rt.sessions() as session, session.begin():
                session.add(CommandAudit(**row))
        except Exception:
            log.exception("could not write the command_audit row for %s %s", front_end, command)


def _plain(amount: Decimal) -> str:
    """20.000000 -> "20", 0.500 -> "0.5": exact, without trailing zeros or exponents."""
    return f"{amount.normalize():f}"


def tokens_of(markets: Iterable[MarketInfo]) -> list[str]:
    return [t.token_id for m in markets for t in m.tokens]


def jsonable_status(report: StatusReport) -> dict[str, Any]:
    from core.control.types import to_jsonable

    return to_jsonable(report)  # type: ignore[no-any-return]
