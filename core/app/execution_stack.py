"""The execution side built in ONE place: relayer, risk gate, positions, funds and engine.

Paper trades against the live books with a simulated bankroll; ``[relayer] type = "real"`` signs
for the CLOB (dry-run or live). Live (and dry-run with API credentials) checks funds against what
the venue says the account holds. The order of construction is :func:`core.execution.assembly.assemble`'s:
the relayer is built with the event sink the engine then consumes; here the settings choose which
relayer, which funds and the engine's knobs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from core.events import EventBus
from core.execution.assembly import EngineOptions, assemble
from core.execution.engine import Engine
from core.execution.events import EventSink
from core.execution.funds import PaperFunds, VenueFunds
from core.execution.positions import PositionBook
from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_config import clob_relayer
from core.execution.relayers.paper import PaperRelayer
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.store import ExecutionStore
from core.execution.types import VenueReporter
from core.execution.venue_link import VenueStatus
from core.registry import MarketRegistry
from core.settings import Settings
from core.types import BookStatus, BookView, Mode


@dataclass(frozen=True, slots=True)
class ExecutionStack:
    relayer: PaperRelayer | ClobRelayer
    risk: RiskGate
    engine: Engine
    funds: PaperFunds | VenueFunds
    mode: Mode

    def venue_status(self) -> VenueStatus | None:
        """The CLOB's reachability while live (None: paper or dry-run, no venue to watch)."""
        if isinstance(self.relayer, VenueReporter) and self.mode is Mode.LIVE:
            return self.relayer.venue_status()
        return None


def build_execution(
    settings: Settings,
    registry: MarketRegistry,
    books: Mapping[str, BookView],
    store: ExecutionStore,
    bus: EventBus,
    clock: Callable[[], float],
    *,
    engine_store: ExecutionStore | None = None,
) -> ExecutionStack:
    """``engine_store``: the store as the engine writes it (e.g. through the metrics' audit tap,
    which counts every relayer call); the risk gate writes ``store`` itself."""
    risk = RiskGate(risk_limits(settings), store, clock, bus, mode=settings.mode.value)
    positions = PositionBook(clock=clock)
    s = settings.service
    options = EngineOptions(
        relayer_max_retries=s.relayer_max_retries,
        relayer_retry_sleep_ms=s.relayer_retry_sleep_ms,
        engine_max_retries=s.engine_max_retries,
        engine_retry_sleep_ms=s.engine_retry_sleep_ms,
        one_leg_policy=settings.risk.one_leg_policy,
    )
    built = assemble(
        lambda sink: _relayer(settings, registry, books, sink),
        risk,
        store if engine_store is None else engine_store,
        bus,
        options=options,
        positions=positions,
        funds=lambda relayer: _funds(settings, relayer, positions),
        books=books.get,
        marks=lambda token_id: mark_price(books.get(token_id)),
        clock=clock,
    )
    funds = built.engine.funds
    if not isinstance(funds, PaperFunds | VenueFunds):  # what _funds made, as the engine holds it
        raise TypeError(f"the engine holds {type(funds).__name__} funds")
    return ExecutionStack(built.relayer, risk, built.engine, funds, settings.mode)


def risk_limits(settings: Settings) -> RiskLimits:
    r = settings.risk
    return RiskLimits(
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


def mark_price(book: BookView | None) -> Decimal | None:
    """What an open position is worth per share: the mid of a usable book, else its one side."""
    if book is None or book.status is not BookStatus.OK:
        return None
    bid, ask = book.best_bid(), book.best_ask()
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return bid if bid is not None else ask


def _relayer(
    settings: Settings, registry: MarketRegistry, books: Mapping[str, BookView], events: EventSink
) -> PaperRelayer | ClobRelayer:
    r = settings.relayer
    if r.type == "fake":
        return PaperRelayer(books.get, events=events)
    relayer = clob_relayer(
        settings,
        dry_run=r.dry_run,
        events=events,
        user_ws_url=None if r.dry_run else settings.feed.user_ws_url,
        user_markets=[m.condition_id for m in registry.all()],
        heartbeat_interval_s=r.heartbeat_s,
    )
    for m in registry.all():
        relayer.prewarm_market(m)
    return relayer


def _funds(settings: Settings, relayer: PaperRelayer | ClobRelayer, positions: PositionBook) -> PaperFunds | VenueFunds:
    if isinstance(relayer, ClobRelayer) and (settings.mode is Mode.LIVE or settings.relayer.api_key is not None):
        return VenueFunds(relayer, max_age_s=settings.risk.balance_refresh_s)
    return PaperFunds(settings.risk.paper_bankroll, positions)
