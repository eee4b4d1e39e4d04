"""Strategy decisions -> orders through the engine (the only way the strategies reach the venue).

A Dutch opportunity becomes one order group when the gate is armed, the service is not stopping,
the same group is not already in flight and every leg's market is known; otherwise it is counted
as missed, by reason. A quote decision replaces the resting quotes of its market (cancel, then
place), and a pull cancels them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from core.app.lifecycle import Lifecycle
from core.app.ports import ArmedState
from core.execution.engine import GroupResult, SubmitResult
from core.execution.types import CancelResult
from core.registry import MarketRegistry
from core.strategies.dutch import DutchOpportunity
from core.strategies.spread import QuoteAction, QuoteDecision
from core.types import BookView, Intent, MarketInfo, Side

log = logging.getLogger(__name__)


class GroupSubmitter(Protocol):
    async def submit_group(self, intents: Sequence[Intent], markets: Mapping[str, MarketInfo]) -> GroupResult: ...


class QuoteSubmitter(Protocol):
    async def submit(self, intent: Intent, market: MarketInfo, *, seq: int | str | None = None) -> SubmitResult: ...

    async def cancel(self, client_order_id: str) -> CancelResult: ...


@dataclass
class TradingCounters:
    """What the strategies proposed and what became orders (daily summary, demo, metrics)."""

    opportunities: int = 0
    groups_submitted: int = 0
    missed: dict[str, int] = field(default_factory=dict)
    quotes: int = 0
    pulls: int = 0

    def miss(self, reason: str) -> None:
        self.missed[reason] = self.missed.get(reason, 0) + 1


class EngineDutchSink:
    def __init__(
        self,
        engine: GroupSubmitter,
        gate: ArmedState,
        registry: MarketRegistry,
        counters: TradingCounters,
        lifecycle: Lifecycle,
    ) -> None:
        self._engine = engine
        self._gate = gate
        self._registry = registry
        self._counters = counters
        self._lifecycle = lifecycle
        self._in_flight: set[str] = set()

    def on_opportunity(self, opp: DutchOpportunity, books: Mapping[str, BookView], frame_no: int, recv_ns: int) -> None:
        self._counters.opportunities += 1
        reason = self._refusal(opp)
        if reason:
            self._counters.miss(reason)
            return
        markets = {leg.market: self._registry.get(leg.market) for leg in opp.legs}
        known = {cid: m for cid, m in markets.items() if m is not None}
        if len(known) != len(markets):
            self._counters.miss("unknown_market")
            return
        self._in_flight.add(opp.group_id)
        self._lifecycle.spawn(self._submit(opp, known), f"dutch:{opp.group_id[:8]}")

    def _refusal(self, opp: DutchOpportunity) -> str:
        if self._lifecycle.stopping:
            return "stopping"
        if not self._gate.armed:
            return "not_armed"
        if opp.group_id in self._in_flight:
            return "in_flight"
        return ""

    async def _submit(self, opp: DutchOpportunity, markets: Mapping[str, MarketInfo]) -> None:
        try:
            result = await self._engine.submit_group(list(opp.legs), markets)
            if result.ok:
                self._counters.groups_submitted += 1
            else:
                self._counters.miss(str(result.reason_code or f"group_{result.state}"))
                log.info("dutch group %s not placed: %s %s", opp.group_id, result.reason_code, result.detail)
        finally:
            self._in_flight.discard(opp.group_id)


class EngineQuoteSink:
    def __init__(
        self,
        engine: QuoteSubmitter,
        gate: ArmedState,
        market: MarketInfo,
        counters: TradingCounters,
        lifecycle: Lifecycle,
    ) -> None:
        self._engine = engine
        self._gate = gate
        self.market = market
        self._counters = counters
        self._lifecycle = lifecycle
        self.resting: list[str] = []
        self._seq = 0

    def on_quote(self, decision: QuoteDecision, frame_no: int, recv_ns: int) -> None:
        if decision.action is not QuoteAction.QUOTE or decision.quotes is None or not self._gate.armed:
            return
        self._counters.quotes += 1
        self._seq += 1
        intents = [i for i in (decision.quotes.bid, decision.quotes.ask) if i is not None]
        self._lifecycle.spawn(self._replace(intents, self._seq), "quote")

    def on_pull(self, reason: str, frame_no: int, recv_ns: int) -> None:
        self._counters.pulls += 1
        if self.resting:
            self._lifecycle.spawn(self._cancel_resting(), "quote-pull")

    def on_fill(
        self, side: Side, price: Decimal, size: Decimal, inventory: Decimal, frame_no: int, recv_ns: int
    ) -> None:
        """Live fills reach positions through the engine; the runner's own paper estimate is ignored."""

    async def _replace(self, intents: list[Intent], seq: int) -> None:
        await self._cancel_resting()
        for intent in intents:
            result = await self._engine.submit(intent, self.market, seq=f"q{seq}")
            if result.ok:
                self.resting.append(result.client_order_id)

    async def _cancel_resting(self) -> None:
        for coid in self.resting:
            await self._engine.cancel(coid)
        self.resting = []
