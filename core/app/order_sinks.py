"""Strategy decisions -> orders through the engine (the only way the strategies reach the venue).

A Dutch opportunity becomes one order group when the gate is armed, the service is not stopping,
the same group is not already in flight and every leg's market is known; otherwise it is counted
as missed, by reason. A quote decision replaces the resting quotes of its token (cancel, then
place) and a pull cancels them, carried out by one worker per quoted token: the latest decision
wins, and the runner's ``current`` quotes are what that worker actually placed.
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
from core.strategies.spread import QuoteAction, QuoteDecision, Quotes
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
            if result.reason_code is None and not result.duplicate:
                # it passed the gate and went to the venue: sent, whatever became of its legs (the
                # group figures say which completed and which went one-legged, and why)
                self._counters.groups_submitted += 1
            else:
                self._counters.miss(str(result.reason_code or "duplicate"))
                log.info("dutch group %s not placed: %s %s", opp.group_id, result.reason_code, result.detail)
        finally:
            self._in_flight.discard(opp.group_id)


@dataclass(frozen=True, slots=True)
class _Job:
    """One quote decision to carry out: cancel what rests, then place ``quotes`` (None: a pull)."""

    quotes: Quotes | None
    seq: int


_GONE_REASONS = ("already ", "unknown order")
"""A refused cancel whose reason starts so names an order that no longer rests (final, or never ours)."""


class EngineQuoteSink:
    """One quoted token's orders, carried out by one worker: the latest decision wins.

    A decision does not start its own task. It becomes the worker's next job, replacing any job
    not yet started; the worker (a task of the lifecycle, alive only while there is work) takes
    the jobs one at a time: it cancels what rests, then places the job's quotes, and drops the
    rest of a job as soon as a newer one is waiting (its quotes are stale: the newer job cancels
    what the stale one placed and places its own). So at most one set of quotes rests, whatever
    the decisions' pace against the venue's round trip.

    What rests is what the engine accepted and has not since canceled: :meth:`resting_quotes`
    (the runner's ``current``); :meth:`settled` says whether a decision is still being carried
    out. An order whose cancel is not confirmed stays resting, and nothing new is placed beside
    it (the next decision tries the cancel again). Stopping: no placement starts once the
    service is stopping or the gate is disarmed; the worker then ends (the shutdown's wind-down
    cancels open orders if so configured).
    """

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
        self._resting: dict[str, Intent] = {}
        self._fair = Decimal(0)
        self._current: Quotes | None = None
        self._next: _Job | None = None
        self._working = False
        self._stopped = False
        self._seq = 0

    # ---- what rests (read by the runner) ---------------------------------------------------
    @property
    def resting(self) -> list[str]:
        """Client order ids of the quotes resting (placed, not canceled), in placement order."""
        return list(self._resting)

    def resting_quotes(self) -> Quotes | None:
        return self._current

    def settled(self) -> bool:
        """No decision waiting or being carried out."""
        return not self._working

    def stop(self) -> None:
        self._stopped = True
        self._next = None

    # ---- decisions (from the runner, on the event loop) --------------------------------------
    def on_quote(self, decision: QuoteDecision, frame_no: int, recv_ns: int) -> None:
        if self._stopped or decision.action is not QuoteAction.QUOTE or decision.quotes is None or not self._gate.armed:
            return
        self._counters.quotes += 1
        self._seq += 1
        self._enqueue(_Job(decision.quotes, self._seq))

    def on_pull(self, reason: str, frame_no: int, recv_ns: int) -> None:
        self._counters.pulls += 1
        if self._resting or self._working:
            self._enqueue(_Job(None, 0))

    def on_fill(
        self, side: Side, price: Decimal, size: Decimal, inventory: Decimal, frame_no: int, recv_ns: int
    ) -> None:
        """Live fills reach positions through the engine; the runner's own paper estimate is ignored."""

    def _enqueue(self, job: _Job) -> None:
        self._next = job  # replaces a job not yet started: only the latest decision matters
        if not self._working:
            self._working = True
            self._lifecycle.spawn(self._work(), f"quotes:{self.market.condition_id[:10]}")

    # ---- the worker ----------------------------------------------------------------------------
    async def _work(self) -> None:
        try:
            while (job := self._next) is not None and not self._lifecycle.stopping:
                self._next = None
                try:
                    await self._carry_out(job)
                except Exception:
                    log.exception("quotes on %s: decision %s failed", self.market.condition_id, job.seq)
        finally:
            self._next = None
            self._working = False

    def _superseded(self) -> bool:
        return self._next is not None or self._stopped or self._lifecycle.stopping or not self._gate.armed

    async def _carry_out(self, job: _Job) -> None:
        if not await self._cancel_resting() or job.quotes is None:
            return
        self._fair = job.quotes.fair
        for intent in (job.quotes.bid, job.quotes.ask):
            if intent is None:
                continue
            if self._superseded():
                return  # stale: the newer job places its own quotes (or none)
            result = await self._engine.submit(intent, self.market, seq=f"q{job.seq}")
            if result.ok:
                self._set_resting(result.client_order_id, intent)
                if self._stopped:  # stopped while this one was on its way: take it back at once
                    await self._cancel_resting()
                    return
            else:
                log.info(
                    "quote %s %s @ %s on %s not placed: %s %s",
                    intent.side,
                    intent.size,
                    intent.price,
                    self.market.condition_id,
                    result.reason_code or result.status,
                    result.detail,
                )

    async def _cancel_resting(self) -> bool:
        """Cancel every resting quote; True when none rests any more."""
        for coid in list(self._resting):
            res = await self._engine.cancel(coid)
            why = res.not_canceled.get(coid, "")
            if coid in res.canceled or coid in res.gone or why.startswith(_GONE_REASONS):
                self._set_resting(coid, None)
            else:
                log.warning(
                    "quote %s on %s: cancel not confirmed (%s)", coid, self.market.condition_id, why or res.error
                )
        return not self._resting

    def _set_resting(self, coid: str, intent: Intent | None) -> None:
        if intent is None:
            self._resting.pop(coid, None)
        else:
            self._resting[coid] = intent
        bid = ask = None
        for rest in self._resting.values():
            if rest.side is Side.BUY:
                bid = rest
            else:
                ask = rest
        self._current = None if bid is None and ask is None else Quotes(self._fair, bid, ask)
