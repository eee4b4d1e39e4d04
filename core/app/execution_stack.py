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
from typing import TYPE_CHECKING

from core.events import EventBus
from core.execution.assembly import EngineOptions, assemble
from core.execution.engine import Engine
from core.execution.events import EventSink
from core.execution.funds import PaperFunds, VenueFunds
from core.execution.positions import PositionBook
from core.execution.relayers.paper import PaperRelayer
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.store import ExecutionStore
from core.execution.types import VenueReporter
from core.execution.venue_link import VenueStatus
from core.registry import MarketRegistry
from core.settings import Settings
from core.types import BookView, Mode, mark_price

if TYPE_CHECKING:  # the CLOB client (eth_account, py_ecc: ~0.4 s) is imported only when a CLOB relayer is built
    from core.execution.relayers.clob import ClobRelayer


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
    risk = RiskGate(RiskLimits.configured(settings.risk), store, clock, bus, mode=settings.mode.value)
    positions = PositionBook(clock=clock)
    s = settings.service
    options = EngineOptions(
        relayer_max_retries=s.relayer_max_retries,
        relayer_retry_sleep_ms=s.relayer_retry_sleep_ms,
        engine_max_retries=s.engine_max_retries,
        engine_retry_sleep_ms=s.engine_retry_sleep_ms,
        one_leg_policy=settings.risk.one_leg_policy,
        latency_budget_s=settings.strategies.dutch.latency_budget_ms / 1000,
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


def _relayer(
    settings: Settings, registry: MarketRegistry, books: Mapping[str, BookView], events: EventSink
) -> PaperRelayer | ClobRelayer:
    r = settings.relayer
    if r.type == "fake":
        return PaperRelayer(books.get, latency_s=settings.relayer.paper_latency_ms / 1000, events=events)
    from core.execution.relayers.clob_config import clob_relayer

    relayer = clob_relayer(
        settings,
        dry_run=r.dry_run,
        events=events,
        user_ws_url=None if r.dry_run else settings.feed.user_ws_url,
        heartbeat_interval_s=r.heartbeat_s,
    )
    for m in registry.all():
        relayer.prewarm_market(m)
    return relayer


def _funds(settings: Settings, relayer: PaperRelayer | ClobRelayer, positions: PositionBook) -> PaperFunds | VenueFunds:
    if not isinstance(relayer, PaperRelayer) and (settings.mode is Mode.LIVE or settings.relayer.api_key is not None):
        return VenueFunds(relayer, max_age_s=settings.risk.balance_refresh_s)
    return PaperFunds(settings.risk.paper_bankroll, positions)
