"""Trading wiring: the feed's events -> book policies, then the strategy runners (-> the engine).

One sink on the ingest pipeline, called with each batch of events in order: book status changes
first (alert, re-seed an inconsistent book), tick size changes (re-grid the market), then every
runner (unless stopping; quoters learn the armed state and their inventory first), then paper
fills. A re-seed's events come back through the same sink, so the runners see the healed book.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from core.app.alerts import BookAlerts
from core.app.lifecycle import Lifecycle
from core.app.paper_fills import PaperFills
from core.app.ports import ArmedState
from core.app.reseed import Reseeder
from core.app.tick_sizes import TickSizes
from core.execution.positions import PositionBook
from core.feed.events import BookStatusChanged, FeedEvent, TickSizeChanged
from core.strategies.runner import DutchRunner, QuoterRunner
from core.types import BookStatus

ZERO = Decimal(0)


class TradingWiring:
    def __init__(
        self,
        *,
        book_alerts: BookAlerts,
        reseeder: Reseeder,
        tick_sizes: TickSizes,
        dutch_runners: Sequence[DutchRunner],
        quoters: Sequence[QuoterRunner],
        gate: ArmedState,
        positions: PositionBook,
        paper_fills: PaperFills | None,
        lifecycle: Lifecycle,
        settling: Callable[[str], Decimal] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._book_alerts = book_alerts
        self._reseeder = reseeder
        self._tick_sizes = tick_sizes
        self.dutch_runners = list(dutch_runners)
        self.quoters = list(quoters)
        self._gate = gate
        self._positions = positions
        self._settling = settling  # a token's shares matched for us, not settled yet (Engine.settling_shares)
        self._paper_fills = paper_fills
        self._lifecycle = lifecycle
        self._clock_ns = clock_ns

    def runners(self) -> list[DutchRunner | QuoterRunner]:
        return [*self.dutch_runners, *self.quoters]

    def stop_market(self, condition_id: str) -> int:
        """No more intents for this market: drop its quoters and every Dutch runner that trades it
        (a neg-risk event's runner when any member goes). Returns how many runners stopped."""
        before = len(self.dutch_runners) + len(self.quoters)
        self.dutch_runners = [r for r in self.dutch_runners if all(m.condition_id != condition_id for m in r.markets)]
        for quoter in self.quoters:
            if quoter.market.condition_id == condition_id:
                quoter.stop()  # a placement under way must not leave a quote resting after the sweep
        self.quoters = [q for q in self.quoters if q.market.condition_id != condition_id]
        return before - len(self.dutch_runners) - len(self.quoters)

    def on_events(self, events: list[FeedEvent]) -> None:
        recv_ns = self._clock_ns()
        for ev in events:
            if type(ev) is BookStatusChanged:
                self._on_book_status(ev)
            elif type(ev) is TickSizeChanged:
                self._tick_sizes.on_tick_size(ev)
        if not self._lifecycle.stopping:
            self._run_strategies(events, recv_ns)
        if self._paper_fills is not None:
            self._paper_fills.on_events(events)

    def _run_strategies(self, events: list[FeedEvent], recv_ns: int) -> None:
        for runner in self.dutch_runners:
            runner.on_events(events, recv_ns)
        armed = self._gate.armed
        for q in self.quoters:
            pos = self._positions.get(q.token.token_id)
            q.inventory = pos.shares if pos is not None else ZERO
            q.settling = self._settling(q.token.token_id) if self._settling is not None else ZERO
            if q.armed != armed:
                q.set_armed(armed, recv_ns)
            q.on_events(events, recv_ns)

    def _on_book_status(self, ev: BookStatusChanged) -> None:
        self._book_alerts.on_status(ev)
        if ev.new is BookStatus.INCONSISTENT and self._reseeder.claim(ev.asset_id):
            self._lifecycle.spawn(self._reseed(ev.asset_id), "reseed")

    async def _reseed(self, asset_id: str) -> None:
        events = await self._reseeder.reseed(asset_id)
        if events:
            self.on_events(events)
