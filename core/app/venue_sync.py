"""Venue sync: the positions the venue says we hold, against Polybot's own ledger.

A position opened on the website, or a fill missed while the bot was down, leaves the engine's
:class:`~core.execution.positions.PositionBook` short of what the address really holds. At start
and every ``service.sync_minutes`` the Data API's ``/positions`` of the trading address (the
funder for signature types 1-3, else the key's EOA) is compared token by token with the book.

A difference of more than one size tick (0.01 share: order sizes go to the venue with 2
decimals, :data:`core.execution.rules.SIZE_PLACES`) is a mismatch; a token the venue lists and
we do not know at all is one too (ours 0). Each mismatched token raises ONE ``position_mismatch``
alert (warning) naming market, outcome, ours and the venue's; it is not repeated while the
mismatch lasts, even if the figures move, and is cleared (one message) when the two agree again.
A read that fails changes no alert: the last comparison stands until a read works.

Each run publishes a :class:`~core.control.types.PositionsAtVenue` on the bus; the control
facade keeps the last one for ``/positions``. Collateral is not read here: the balances job
(:mod:`core.app.balances`) reads it from the CLOB at start and every ``risk.balance_refresh_s``.
Paper mode has no venue position and builds no sync.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.app.execution_stack import ExecutionStack
from core.control.types import PositionsAtVenue, VenuePositionDiff
from core.events import Alert, AlertCleared, EventBus, Severity
from core.execution.funds import VenueFunds
from core.execution.positions import PositionBook
from core.execution.relayers.paper import PaperRelayer
from core.execution.rules import SIZE_PLACES
from core.markets.data_api import DataApiClient, VenuePosition
from core.registry import MarketRegistry
from core.settings import Settings

log = logging.getLogger(__name__)

KIND = "position_mismatch"
SIZE_TICK = Decimal(1).scaleb(-SIZE_PLACES)
ZERO = Decimal(0)


class PositionsSource(Protocol):
    """The Data API client."""

    async def positions(self, user: str) -> list[VenuePosition]: ...


@dataclass(frozen=True, slots=True)
class _Label:
    market: str
    outcome: str


def compare(
    ours: Mapping[str, Decimal],
    venue: Mapping[str, Decimal],
    *,
    tolerance: Decimal = SIZE_TICK,
) -> dict[str, tuple[Decimal, Decimal]]:
    """Tokens whose shares differ by more than ``tolerance``: token -> (ours, venue's)."""
    out = {}
    for token in sorted(set(ours) | set(venue)):
        mine, theirs = ours.get(token, ZERO), venue.get(token, ZERO)
        if abs(mine - theirs) > tolerance:
            out[token] = (mine, theirs)
    return out


def venue_shares(positions: Iterable[VenuePosition]) -> dict[str, Decimal]:
    shares: dict[str, Decimal] = {}
    for p in positions:
        shares[p.asset] = shares.get(p.asset, ZERO) + p.size
    return shares


@dataclass(slots=True)
class SyncCounters:
    runs: int = 0
    errors: int = 0
    alerts: int = 0
    cleared: int = 0


class VenueSync:
    def __init__(
        self,
        source: PositionsSource,
        address: str,
        book: PositionBook,
        registry: MarketRegistry,
        bus: EventBus,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self.address = address
        self._book = book
        self._registry = registry
        self._bus = bus
        self._clock = clock
        self.counters = SyncCounters()
        self.alerted: dict[str, tuple[str, float]] = {}  # token -> (its open alert's key, since when)
        self.last: PositionsAtVenue | None = None

    async def run(self) -> PositionsAtVenue:
        """One sync: read the venue, compare, alert and clear; never raises (a failure is reported)."""
        self.counters.runs += 1
        try:
            listed = await self._source.positions(self.address)
        except Exception as exc:
            self.counters.errors += 1
            log.warning("venue sync: the positions of %s could not be read: %s", self.address, exc)
            kept = self.last.differences if self.last is not None else ()
            return self._report(PositionsAtVenue(self._clock(), self.address, False, 0, kept, str(exc)[:300]))
        named = {p.asset: p for p in listed}
        ours = {p.token_id: p.shares for p in self._book.positions.values() if p.shares != 0}
        differing = compare(ours, venue_shares(listed))
        diffs = []
        for token, (mine, theirs) in differing.items():
            label = self._label(token, named.get(token))
            diffs.append(VenuePositionDiff(token, label.market, label.outcome, mine, theirs))
        self._alert(diffs)
        self._clear(set(differing))
        if diffs:
            log.info("venue sync: %d position(s) differ from the venue's", len(diffs))
        return self._report(PositionsAtVenue(self._clock(), self.address, True, len(listed), tuple(diffs)))

    def _report(self, report: PositionsAtVenue) -> PositionsAtVenue:
        self.last = report
        self._bus.publish(report)
        return report

    def _alert(self, diffs: list[VenuePositionDiff]) -> None:
        for d in diffs:
            if d.token_id in self.alerted:
                continue  # the trader already knows; /positions shows the current figures
            key = f"{d.market} {d.outcome}".strip() or d.token_id
            self.alerted[d.token_id] = (key, self._clock())
            self.counters.alerts += 1
            self._bus.publish(
                Alert(
                    kind=KIND,
                    severity=Severity.WARNING,
                    key=key,
                    message=(
                        f"{d.market} {d.outcome}: Polybot holds {d.ours} shares, the venue {d.venue} "
                        f"(address {self.address}); opened elsewhere or a fill missed? See /positions"
                    ),
                )
            )

    def _clear(self, differing: set[str]) -> None:
        for token in [t for t in self.alerted if t not in differing]:
            key, since = self.alerted.pop(token)
            self.counters.cleared += 1
            message = f"{key}: Polybot and the venue agree again"
            lasted = max(0.0, self._clock() - since)
            self._bus.publish(AlertCleared(kind=KIND, key=key, message=message, duration_s=lasted))

    def _label(self, token_id: str, at_venue: VenuePosition | None) -> _Label:
        market = self._registry.for_token(token_id)
        token = self._registry.token(token_id)
        if market is not None and token is not None:
            return _Label(market.slug or market.question or market.condition_id[:16], token.outcome)
        if at_venue is not None:
            return _Label(at_venue.slug or at_venue.title or at_venue.conditionId[:16], at_venue.outcome)
        return _Label(token_id[:16] + "…", "")


def build_venue_sync(
    settings: Settings,
    execution: ExecutionStack,
    registry: MarketRegistry,
    bus: EventBus,
    resources: contextlib.AsyncExitStack,
) -> VenueSync | None:
    """The sync when positions live at the venue (the funds are the venue's: live, or dry-run with
    API credentials); None in paper mode, which has no venue position to compare."""
    relayer = execution.relayer
    if not isinstance(execution.funds, VenueFunds) or isinstance(relayer, PaperRelayer):
        log.info("venue sync: off (paper funds: there is no venue position to compare with)")
        return None
    d = settings.data_api
    client = DataApiClient(d.url, timeout_s=d.timeout_s)
    resources.push_async_callback(client.aclose)
    # the address that holds the tokens: the funder wallet for signature types 1-3, else the EOA
    return VenueSync(client, relayer.maker, execution.engine.positions, registry, bus)
