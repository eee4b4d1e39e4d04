"""The one control facade every face calls (Telegram bot, CLI, demo).

Business rules live behind it: which orders need a confirmation and what is re-checked at confirm
time (:mod:`core.control.orders`), what "healthy" means (:mod:`core.control.health`), how a
command is audited (:mod:`core.control.audit`). Handlers and CLI commands only parse, call these
methods and render the result objects from :mod:`core.control.types`.

Two transports sit behind one :class:`Control`:

- **in-process**: the running service's :class:`Runtime` (its registry, books, risk gate, engine);
  everything is available;
- **via the database** (:class:`~core.control.stored.DatabaseLink`): a CLI process reads what the
  service stored and posts disarm/kill as control requests a running service claims. A
  configuration (:class:`~core.control.configured.ConfigLink`) adds the pre-trade checks and the
  dry-run order, which need no running service.

A method the transport cannot serve raises :class:`ControlError` with reason ``unavailable``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.control import orders, settlement, trading, views
from core.control.audit import AuditRows, AuditWriter
from core.control.configured import ConfigLink
from core.control.fills import DEFAULT_FILLS, FillRow
from core.control.health import EVENT_ALERT_KINDS, HealthInputs, OpenAlert, assess
from core.control.orders import OrderOptions
from core.control.stored import DatabaseLink, database_url
from core.control.tuning import StrategyHost, Tuning
from core.control.types import (
    ActionResult,
    CompleteSetRow,
    ConfigSummary,
    ControlError,
    DryRunRequest,
    FeedConnection,
    GroupReport,
    HealthReport,
    MarketListing,
    MarketRow,
    OrderOutcome,
    OrderRow,
    OrderTicket,
    PnlReport,
    PositionRow,
    PositionsAtVenue,
    PreflightReport,
    QuoteRow,
    SmokeResult,
    StatusReport,
    StoredStatus,
)
from core.control.venue_view import with_venue
from core.errors import UsageError
from core.events import Alert, AlertCleared, EventBus
from core.redact import redact, redact_typed
from core.types import BookView, MarketInfo, Mode, Side, mark_price

if TYPE_CHECKING:  # the running service's parts: a face outside it never loads them
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from core.app.settlement import Settlement
    from core.app.watch import Watcher
    from core.control.watch_preview import WatchPreview
    from core.execution.engine import Engine
    from core.execution.funds import Funds
    from core.execution.risk_gate import RiskGate
    from core.execution.venue_link import VenueStatus
    from core.registry import MarketRegistry
    from core.strategies.dutch import DutchConfig

__all__ = ["EVENT_ALERT_KINDS", "AuditRows", "Control", "FeedStats", "Runtime"]

log = logging.getLogger(__name__)

MAX_ORDER_SHARES = orders.MAX_ORDER_SHARES
RECENT_ALERTS = 50
DEFAULT_STALENESS_MS = 60_000


class FeedStats(Protocol):
    def connections(self) -> list[FeedConnection]: ...


def _no_extras() -> list[str]:
    return []


def _no_frames() -> int:
    return 0


def _no_venue() -> VenueStatus | None:
    return None


@dataclass
class Runtime:
    """Everything the in-process facade reads or drives; assembled by :mod:`core.service`."""

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
    frames: Callable[[], int] = _no_frames
    extra_health: Callable[[], list[str]] = _no_extras
    started: float = field(default_factory=time.monotonic)
    audit_rows: AuditRows | None = None
    """When set, command_audit rows go through it (batched; the service flushes it at shutdown) so
    a command never waits for a database commit; otherwise each row is its own transaction."""
    venue: Callable[[], VenueStatus | None] = _no_venue
    """The CLOB's reachability as the live relayer sees it (None: no venue — paper or dry-run)."""
    funds: Callable[[], Funds] | None = None
    settlement: Settlement | None = None
    watch: Watcher | None = None
    strategies: StrategyHost | None = None
    """The running strategy runners (/strategy pauses and resumes them)."""


class Control:
    def __init__(
        self,
        rt: Runtime | None = None,
        *,
        database: DatabaseLink | None = None,
        config: ConfigLink | None = None,
    ) -> None:
        self._rt = rt
        self.database = database
        self.config = config
        self.alerts: deque[Alert] = deque(maxlen=RECENT_ALERTS)
        self.active_alerts: dict[tuple[str, str], Alert] = {}
        self.last_preflight: PreflightReport | None = None
        self.venue_positions: PositionsAtVenue | None = None  # the last venue sync (core.app.venue_sync)
        self._tuning: Tuning | None = None
        if rt is not None:
            rt.bus.subscribe(Alert, self._on_alert)
            rt.bus.subscribe(AlertCleared, self._on_cleared)
            rt.bus.subscribe(PositionsAtVenue, self._on_venue_positions)

    @classmethod
    def over_database(cls, url: str | None, *, request_wait_s: float = 15.0) -> Control:
        """A face outside the service: reads its database (``url`` or the default), posts requests to it."""
        return cls(database=DatabaseLink(url, request_wait_s=request_wait_s))

    @classmethod
    def from_config(cls, path: str | Path | None) -> Control:
        """A face that checks a configuration without a running service (ConfigError when invalid)."""
        return cls(config=ConfigLink.load(path))

    @property
    def rt(self) -> Runtime:
        """The running service's parts; only the in-process transport has them."""
        if self._rt is None:
            raise ControlError(
                "this needs the running service; this process reaches it only through its database", "unavailable"
            )
        return self._rt

    def _database(self) -> DatabaseLink:
        if self.database is None:
            raise ControlError("no database to read in this process", "unavailable")
        return self.database

    def _config(self) -> ConfigLink:
        if self.config is None:
            raise ControlError("no configuration loaded in this process", "unavailable")
        return self.config

    def _on_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self.active_alerts[(alert.kind, alert.key)] = alert

    def _on_venue_positions(self, synced: PositionsAtVenue) -> None:
        self.venue_positions = synced

    def _on_cleared(self, cleared: AlertCleared) -> None:
        self.active_alerts.pop((cleared.kind, cleared.key), None)

    @property
    def tuning(self) -> Tuning:
        """Strategies on/off and the runtime-settable parameters (:mod:`core.control.tuning`)."""
        if self._tuning is None:
            self._tuning = Tuning(self.rt)
        return self._tuning

    # ---- read side ----------------------------------------------------------------------
    async def status(self) -> StatusReport:
        rt = self.rt
        # one status read per book, counted in C: /status must stay fast with thousands of books
        by_status = Counter(book.status for book in rt.books.values())
        last = self.alerts[-1] if self.alerts else None
        return StatusReport(
            mode=rt.mode.value,
            armed=rt.risk.armed,
            followed=views.followed(rt.registry, rt.watch, rt.books),
            books={status.value: n for status, n in by_status.items()},
            connections=rt.feed.connections() if rt.feed else [],
            open_orders=len(rt.engine.open_orders()),
            positions=len(rt.engine.positions.open_positions()),
            pnl_today=rt.engine.positions.daily_realised(),
            last_alert=f"{last.kind}: {last.message}" if last else None,
            frames=rt.frames(),
            uptime_s=time.monotonic() - rt.started,
            venue=self._venue_line(rt),
            funds=self._funds_line(rt),
        )

    async def stored_status(self, *, max_assets: int = 50, verbose: bool = False) -> StoredStatus:
        """What the database says: schema, row counts, tracked assets with top of book, armed."""
        return await self._database().status(max_assets=max_assets, verbose=verbose)

    @staticmethod
    def _venue_line(rt: Runtime) -> str:
        st = rt.venue()
        if st is None:
            return "no venue connection (paper: simulated fills)" if rt.mode is Mode.PAPER else ""
        rest = "ok" if st.rest_ok else f"FAILING ({st.rest_failures} in a row: {st.rest_error})"
        beat = "none yet" if st.heartbeat_age_s is None else f"{st.heartbeat_age_s:.1f}s ago"
        return f"REST {rest}; user channel {st.user_channel}; last heartbeat {beat}"

    @staticmethod
    def _funds_line(rt: Runtime) -> str:
        if rt.funds is None:
            return ""
        funds = rt.funds()
        if funds.collateral is None:
            return f"collateral unknown ({funds.source}): buys refused"
        held = sum(
            (o.price * (o.size - o.filled_size) for o in rt.engine.open_orders() if o.side is Side.BUY), Decimal(0)
        )
        return f"collateral {_plain(funds.collateral)} pUSD, {_plain(held)} held by open buys ({funds.source})"

    async def quotes(self, ref: str | None = None, limit: int = 30) -> list[QuoteRow]:
        rt = self.rt
        markets = [self._resolve(ref)] if ref else rt.registry.search(None)
        fee_override = rt.dutch.fee_rate_override if rt.dutch else None
        return views.quote_rows(
            rt.registry, rt.books, markets, named=ref is not None, limit=limit, fee_override=fee_override
        )

    async def markets(self, text: str | None = None) -> list[MarketRow]:
        return views.market_rows(self.rt.registry.search(text))

    async def stored_markets(
        self, text: str | None = None, *, open_only: bool = False, limit: int | None = None
    ) -> MarketListing:
        """The markets refresh-markets stored, matching a slug/question substring or an id."""
        return await self._database().markets(text, open_only=open_only, limit=limit)

    async def watch_preview(self, db_url: str | None = None) -> WatchPreview:
        """What the configuration's ``[[feed.watch]]`` rules select from the markets stored in
        ``db_url`` (default: the configuration's database)."""
        from core.control.watch_preview import preview

        config = self._config()
        return await preview(list(config.loaded.settings.feed.watch), database_url(db_url or config.db_url))

    async def orders(self) -> list[OrderRow]:
        return views.order_rows(self.rt.registry, self.rt.engine.open_orders())

    def mark(self, token_id: str) -> Decimal | None:
        return mark_price(self.rt.books.get(token_id))

    async def positions(self) -> list[PositionRow]:
        book = self.rt.engine.positions
        rows = views.position_rows(self.rt.registry, book.open_positions(), self.mark, book.valuation())
        return with_venue(rows, self.venue_positions)  # the venue's shares beside ours where they differ

    async def complete_sets(self) -> list[CompleteSetRow]:
        """Sets held in full, each worth 1 pUSD at settlement, with what they cost and lock in."""
        return views.set_rows(self.rt.registry, self.rt.engine.positions.valuation())

    async def pnl(self) -> PnlReport:
        book = self.rt.engine.positions
        valuation = book.valuation()
        return PnlReport(
            realised_today=book.daily_realised(),
            realised_total=book.realised_total(),
            unrealised=valuation.unrealised(self.mark),
            complete_sets=valuation.total_sets,
            locked_edge=valuation.locked_edge,
        )

    async def groups(self) -> GroupReport:
        """Every Dutch group sent: completed, one-legged by cause, unwound; expected vs realised edge."""
        return self.rt.engine.group_stats.figures()

    async def health(self, staleness_ms: int | None = None) -> HealthReport:
        """Healthy or not, with every reason. ``staleness_ms`` bounds a stored book's age (database
        transport); the running service judges staleness per book as it happens."""
        if self._rt is None and self.database is not None:
            return assess(await self.database.health_inputs(staleness_ms or DEFAULT_STALENESS_MS))
        rt = self.rt
        alerts = [OpenAlert(a.kind, a.key, str(a.severity), a.message) for a in self.active_alerts.values()]
        inputs = HealthInputs(
            connections=rt.feed.connections() if rt.feed else [],
            book_states=Counter(b.status for b in rt.books.values()),
            alerts=alerts,
            extras=rt.extra_health(),
        )
        return assess(inputs)

    # ---- arm state ----------------------------------------------------------------------
    async def arm(self, by: str) -> ActionResult:
        rt = self.rt
        if rt.mode is Mode.LIVE:
            report = await self.preflight(offline=False)
            if not report.ok:
                failed = ", ".join(report.failed)
                return ActionResult(
                    False, f"refused: live mode needs a passing preflight (failed: {failed})", "preflight"
                )
        decision = await rt.risk.arm(by)
        if not decision.ok:
            return ActionResult(False, f"refused: {decision.reason_code}: {decision.detail}", str(decision.reason_code))
        return ActionResult(True, f"armed ({rt.mode.value} mode)")

    async def disarm(self, by: str, reason: str = "") -> ActionResult:
        if self._rt is None and self.database is not None:
            return await self.database.request("disarm", by, reason)
        await self.rt.risk.disarm(by, reason or "requested")
        return ActionResult(True, "disarmed: no new orders will be placed")

    async def kill(self, by: str, reason: str = "") -> ActionResult:
        """Disarm and cancel every open order (``reason`` is recorded with a request via the database)."""
        if self._rt is None and self.database is not None:
            return await self.database.request("kill", by, reason)
        return orders.kill_result(await self.rt.risk.kill(by))

    async def preflight(self, offline: bool = False) -> PreflightReport:
        if self._rt is not None and self._rt.preflight is not None:
            report = await self._rt.preflight(offline)
        elif self._rt is None and self.config is not None:
            report = await self.config.preflight(offline)
        else:
            raise ControlError("preflight is not available in this process", "unavailable")
        self.last_preflight = report
        return report

    def configuration(self) -> ConfigSummary:
        """The loaded configuration's mode and file (a process built with :meth:`from_config`)."""
        config = self._config()
        return ConfigSummary(mode=config.mode, config_path=config.config_path)

    async def smoke(self, request: DryRunRequest, *, offline: bool = False) -> SmokeResult:
        """The preflight and, when it passes, one order signed as live mode would sign it (never posted)."""
        return await self._config().smoke(request, offline=offline)

    # ---- orders -------------------------------------------------------------------------
    def _resolve(self, ref: str) -> MarketInfo:
        try:
            return self.rt.registry.resolve(ref)
        except UsageError as exc:
            raise ControlError(str(exc), "unknown_market") from None

    async def prepare_order(
        self,
        market_ref: str,
        outcome: str,
        side: Side,
        price: Decimal,
        size: Decimal,
        *,
        user: str,
        options: OrderOptions | None = None,
    ) -> OrderTicket:
        """Validate a manual order and screen it as it would be sent now: a refusal (disarmed, the
        book, a risk limit) is :class:`orders.OrderRefused` at once; live mode's ticket then needs
        the user's confirmation."""
        market = self._resolve(market_ref)
        return await trading.prepare(self.rt, market, outcome, side, price, size, user=user, options=options)

    async def prepare_close(self, market_ref: str, outcome: str, price: Decimal | None, *, user: str) -> OrderTicket:
        """A sell of every share of ``outcome`` free to sell, at ``price`` or the best bid (screened alike)."""
        return await trading.prepare_close(self.rt, self._resolve(market_ref), outcome, price, user=user)

    async def execute_order(self, ticket: OrderTicket, *, user: str, confirmed: bool) -> OrderOutcome:
        """Send a prepared order through the risk gate and the engine (re-checked now, not at prepare time)."""
        return await trading.execute(self.rt, ticket, user=user, confirmed=confirmed)

    async def find_order(self, order_id: str) -> OrderRow:
        """The order an id, or a unique prefix of at least 8 characters of an open order's id, names."""
        return trading.find(self.rt, order_id)

    async def cancel(self, order_id: str, *, user: str) -> ActionResult:
        """Cancel the order an id or a unique prefix (>= 8 characters) names."""
        return await trading.cancel(self.rt, order_id)

    async def fills(self, limit: int = DEFAULT_FILLS) -> list[FillRow]:
        """The most recent fills of our orders, newest first."""
        return await trading.fills(self.rt, limit)

    async def cancel_all(self, *, user: str) -> ActionResult:
        return orders.cancel_all_result(await self.rt.engine.cancel_all())

    # ---- settlement (core.control.settlement) ------------------------------------------
    def _settlement(self) -> Settlement:
        if self.rt.settlement is None:
            raise ControlError("merge and redeem are not available in this process", "unavailable")
        return self.rt.settlement

    async def balance(self) -> settlement.BalanceReport:
        """pUSD, positions with value, sets mergeable, shares redeemable."""
        rt = self.rt
        funds = rt.funds() if rt.funds is not None else None
        return settlement.balance(self._settlement(), rt.engine.positions, rt.registry, funds, self.mark)

    async def prepare_merge(self, ref: str, sets: Decimal | None, *, user: str) -> settlement.SettleTicket:
        return settlement.prepare(self._settlement(), settlement.MERGE, ref, sets, mode=self.rt.mode, user=user)

    async def prepare_redeem(self, ref: str | None, *, user: str) -> settlement.SettleTicket:
        return settlement.prepare(self._settlement(), settlement.REDEEM, ref, None, mode=self.rt.mode, user=user)

    async def execute_merge(
        self, ticket: settlement.SettleTicket, *, user: str, confirmed: bool
    ) -> settlement.SettleReport:
        return await settlement.execute(self._settlement(), ticket, mode=self.rt.mode, confirmed=confirmed)

    execute_redeem = execute_merge  # one ticket type: the ticket says which

    async def settlement_request(self, action: str, args: str, *, by: str) -> dict[str, object]:
        """merge / redeem / balance from another process, run by the service (through its database)."""
        result = await self._database().request(action, by, args)
        if result.reason_code:
            return {"ok": False, "error": f"{action} {result.message}", "reason_code": result.reason_code}
        return settlement.read_answer(result.message)

    # ---- what the feed follows (core.app.watch) ------------------------------------------
    def _watcher(self) -> Watcher:
        if self.rt.watch is None:
            raise ControlError("watching is not available in this process", "unavailable")
        return self.rt.watch

    async def watch(self, ref: str, *, user: str, stop: bool = False) -> ActionResult:
        """Follow a market or a whole neg-risk event on the live feed (``stop``: unwatch); persisted."""
        watcher = self._watcher()
        try:
            result = await (watcher.unwatch(ref, user) if stop else watcher.watch(ref, user))
        except UsageError as exc:  # an unknown or ambiguous reference, or a closed market
            from core.registry import UnknownMarket

            raise ControlError(str(exc), "unknown_market" if isinstance(exc, UnknownMarket) else "usage") from None
        return ActionResult(result.ok, result.message)

    async def watched(self) -> list[str]:
        return self._watcher().watched()

    # ---- audit and redaction -------------------------------------------------------------
    @staticmethod
    def redact_outgoing(text: str) -> str:
        """What a face sends out (a chat message): every configured secret and secret shape masked."""
        return redact(text)

    def mask_typed(self, text: str) -> str:
        """Text a person typed (or an error echoing it), with every secret shape masked — except
        the condition ids of known markets, which traders type as arguments."""
        return redact_typed(text, keep=self._rt.registry if self._rt is not None else ())

    async def audit_command(
        self, front_end: str, user_id: int | str | None, command: str, arguments: str, result: str, detail: str
    ) -> None:
        """One command_audit row per command (authorised or not). Never raises: audit must not block control."""
        rt = self._rt
        writer = AuditWriter(
            self.mask_typed,
            sessions=rt.sessions if rt is not None else None,
            sink=rt.audit_rows if rt is not None else None,
        )
        await writer.record(front_end, user_id, command, arguments, result, detail)


def _plain(amount: Decimal) -> str:
    """20.000000 -> "20", 0.500 -> "0.5": exact, without trailing zeros or exponents."""
    return f"{amount.normalize():f}"
