"""The execution engine: intents -> orders, exactly once, every attempt on record.

The engine is a facade over its parts, each in its own module:

- :mod:`.submission`: order life-cycle up to the venue's answer (idempotency, risk gate, bounded
  retries, unknown outcomes handed to reconciliation); :mod:`.batches`: a group's legs as batch
  requests (split scarcest leg first, the same retry rules per request);
- :mod:`.reconciler`: the venue's truth (unknown outcomes, start-up and scheduled reconciliation,
  status changes the venue pushes);
- :mod:`.fill_ledger`: fills -> orders, positions and PnL, exactly once per trade;
- :mod:`.groups`: Dutch groups and the one-leg policy;
- :mod:`.cancels`: cancel one, cancel all;
- :mod:`.order_table` and :mod:`.holdings`: the orders it knows, and the exposure the gate sees.

The relayer tells the engine what happens later through the event sink it was built with
(:mod:`core.execution.events`): the engine connects to ``relayer.events`` as its one consumer.
The engine is pure asyncio; blocking SDK calls are the relayer's business (``to_thread``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal

from core.events import EventBus
from core.execution import gc_hold
from core.execution.cancels import Canceller
from core.execution.context import EngineContext, Sleep
from core.execution.events import OrderUpdate, SettlementFailure, TradeUpdate
from core.execution.exposure import ExposureSnapshot
from core.execution.fill_ledger import FillLedger
from core.execution.funds import FundsSource
from core.execution.group_stats import GroupStats
from core.execution.groups import GroupManager, GroupResult, GroupState, OneLegPolicy
from core.execution.holdings import ExposureTracker
from core.execution.order_table import OrderTable, venue_status
from core.execution.positions import MarkProvider, PositionBook
from core.execution.reconciler import Reconciler, ReconcileReport
from core.execution.records import OrderRecord
from core.execution.risk_gate import RiskGate
from core.execution.rules import RiskDecision
from core.execution.store import ExecutionStore
from core.execution.submission import BookProvider, RetryBounds, SubmitResult, Submitter, order_request
from core.execution.types import CancelResult, Fill, OrderRequest, OrderStatus, Relayer
from core.types import Intent, MarketInfo

__all__ = [
    "Engine",
    "GroupResult",
    "GroupState",
    "OneLegPolicy",
    "ReconcileReport",
    "RetryBounds",
    "SubmitResult",
    "venue_status",
]

ZERO = Decimal(0)
_UNANSWERED = frozenset({OrderStatus.NEW, OrderStatus.SUBMITTED_UNKNOWN})


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
        latency_budget_s: float | None = None,
        funds: FundsSource | None = None,
        positions: PositionBook | None = None,
    ) -> None:
        bounds = RetryBounds(
            relayer_max_retries=relayer_max_retries,
            relayer_retry_sleep_s=relayer_retry_sleep_ms / 1000.0,
            engine_max_retries=engine_max_retries,
            engine_retry_sleep_s=engine_retry_sleep_ms / 1000.0,
            max_retry_after_s=max_retry_after_s,
            place_timeout_s=place_timeout_s,
        )
        self.relayer = relayer
        self.risk = risk
        self.bus = bus
        self.mode = str(relayer.mode)
        self.clock = clock or risk.clock
        self._marks = mark_provider
        self._ctx = EngineContext(store, bus, self.clock, self.mode, sleep, funds)
        self.positions = positions if positions is not None else PositionBook(clock=self.clock)
        ctx = self._ctx
        self._orders = OrderTable(ctx, relayer)
        self.holdings = ExposureTracker(ctx, self._orders, self.positions)
        self._groups = GroupManager(
            ctx,
            self._orders,
            self.holdings,
            book_provider,
            self,
            policy=OneLegPolicy(one_leg_policy),
            max_policy_runs=max_policy_runs,
            latency_budget_s=latency_budget_s,
        )
        changed = self._groups.order_changed
        self._ledger = FillLedger(ctx, self._orders, self.holdings, self.positions, risk, changed)
        self._reconciler = Reconciler(
            ctx, relayer, self._orders, self.holdings, self._ledger, changed, unknown_grace_s=unknown_grace_s
        )
        self._cancels = Canceller(
            ctx,
            relayer,
            risk,
            self._orders,
            self.holdings,
            self._reconciler,
            changed,
            max_retries=relayer_max_retries,
            retry_sleep_s=bounds.relayer_retry_sleep_s,
        )
        self._submitter = Submitter(
            ctx, relayer, risk, self._orders, self.holdings, self._ledger, self._reconciler, book_provider, bounds
        )
        risk.mode = self.mode
        risk.set_canceller(self.cancel_all)
        relayer.events.connect(self)  # what the venue says later (order updates, trades) comes here

    # -- what it was built with ----------------------------------------------------------------

    @property
    def store(self) -> ExecutionStore:
        return self._ctx.store

    @property
    def funds(self) -> FundsSource | None:
        return self._ctx.funds

    @property
    def bounds(self) -> RetryBounds:
        return self._submitter.bounds

    @property
    def unknown_grace_s(self) -> float:
        return self._reconciler.unknown_grace_s

    @property
    def one_leg_policy(self) -> OneLegPolicy:
        return self._groups.policy

    @property
    def unmatched_fills(self) -> int:
        return self._ledger.unmatched_fills

    # -- life-cycle --------------------------------------------------------------------------

    @property
    def group_stats(self) -> GroupStats:
        """Every Dutch group this engine sent and how it went (the faces' and the metrics' figures)."""
        return self._groups.stats

    async def start(self) -> ReconcileReport:
        """Force the gate disarmed, rebuild positions from confirmed fills, reconcile open orders."""
        await self.risk.start()
        await self._ledger.load()
        await self.risk.on_daily_realised(self.positions.daily_realised())
        return await self.reconcile()

    def register_markets(self, markets: Iterable[MarketInfo]) -> None:
        self.holdings.register_markets(markets)

    def set_event_markets(self, event_id: str, market_ids: Iterable[str]) -> None:
        """Declare the full list of markets of a neg-risk event (lets the gate drop 'other wins')."""
        self.holdings.set_event_markets(event_id, market_ids)

    # -- what it knows -----------------------------------------------------------------------

    def exposure(self, exclude: str | None = None) -> ExposureSnapshot:
        """Positions and open orders as the risk gate sees them (``exclude``: leave one order out)."""
        return self.holdings.snapshot(self._orders.get(exclude))

    def unrealised_pnl(self) -> Decimal:
        return self.positions.unrealised(self._marks) if self._marks else ZERO

    def order(self, client_order_id: str) -> OrderRecord | None:
        t = self._orders.get(client_order_id)
        return t.rec if t else None

    def open_orders(self) -> list[OrderRecord]:
        return [t.rec for t in self._orders.open_orders()]

    def in_motion(self) -> list[str]:
        """Orders whose fate is still moving: not answered yet (new, or sent with the outcome
        unknown), matched by the venue with fills not confirmed yet, or with a matched trade not
        settled yet. A resting order with no fill is not in motion."""
        moving = [t.coid for t in self._orders.tracked() if t.status in _UNANSWERED or t.unsettled > 0]
        return moving + self._ledger.settling_orders()

    def settling_shares(self, token_id: str) -> Decimal:
        """Net shares of the token the venue matched for us that have not settled yet (buys +)."""
        return self._orders.settling_shares(token_id)

    def group_state(self, group_id: str) -> GroupState | None:
        return self._groups.state(group_id)

    def unsettled_groups(self) -> list[str]:
        return self._groups.unsettled()

    # -- orders ------------------------------------------------------------------------------

    async def submit(self, intent: Intent, market: MarketInfo, *, seq: int | str | None = None) -> SubmitResult:
        """Place one intent (at most once: the same intent and seq is a duplicate, never a second order)."""
        return await self._submitter.submit(intent, market, seq=seq)

    async def preview(self, intent: Intent, market: MarketInfo) -> RiskDecision:
        """The risk gate's answer for ``intent`` now, without placing it (:meth:`RiskGate.preview`)."""
        req = order_request(intent, market, "preview")
        await self._submitter.ensure_funds([req])
        self.holdings.register_market(market)
        return self.risk.preview(req, market, self.exposure(), book=self._submitter.book_now(req.token_id))

    async def submit_group(
        self,
        intents: Sequence[Intent],
        markets: Mapping[str, MarketInfo] | Sequence[MarketInfo],
        *,
        group_id: str | None = None,
        seq: int | str | None = None,
        policy: OneLegPolicy | str | None = None,
    ) -> GroupResult:
        """Place the legs of a Dutch group together; refused as a whole if any leg is refused. The
        garbage collector waits until the group is placed (:mod:`core.execution.gc_hold`)."""
        with gc_hold.HOLD:
            return await self._groups.submit_group(intents, markets, group_id=group_id, seq=seq, policy=policy)

    async def place_together(
        self,
        reqs: Sequence[OrderRequest],
        markets: Mapping[str, MarketInfo],
        group_id: str,
        reasons: Sequence[str],
    ) -> tuple[RiskDecision, list[SubmitResult]]:
        """A group's legs through the gate as a whole, their rows written in one transaction, then
        posted as batch requests of at most 15, scarcest leg first (the group manager's way in)."""
        return await self._submitter.place_together(reqs, markets, group_id, reasons)

    async def cancel(self, client_order_id: str) -> CancelResult:
        """Cancel one order. The result names client order ids."""
        return await self._cancels.cancel(client_order_id)

    async def cancel_all(self) -> CancelResult:
        """Cancel every open order at the venue (one request). The result names client order ids where known."""
        return await self._cancels.cancel_all()

    async def reconcile(self) -> ReconcileReport:
        """Compare the store's non-final orders with the venue and fix their statuses."""
        return await self._reconciler.reconcile()

    # -- what the venue says (the relayer's events; also callable directly) ------------------

    async def on_fill(self, fill: Fill) -> None:
        """A fill from any source (place result, paper book update, user channel, resync). Idempotent."""
        await self._ledger.on_fill(fill)

    async def book_settlement(self, fill: Fill, market: str) -> bool:
        """A merge or redeem's effect on one token (a confirmed SELL at its payout). Idempotent."""
        return await self._ledger.apply_settlement(fill, market)

    async def on_order_status(
        self,
        venue_order_id: str,
        client_order_id: str | None,
        status: OrderStatus,
        size_matched: Decimal | None = None,
    ) -> bool:
        """The venue says an order of ours is now ``status``. True when it changed anything."""
        return await self._reconciler.on_order_status(venue_order_id, client_order_id, status, size_matched)

    async def order_update(self, update: OrderUpdate) -> None:
        await self.on_order_status(update.venue_order_id, update.client_order_id, update.status, update.size_matched)

    async def trade(self, update: TradeUpdate) -> None:
        await self._ledger.on_fill(update.fill)

    async def settlement_failed(self, failure: SettlementFailure) -> None:
        await self._ledger.settlement_failed(failure)
