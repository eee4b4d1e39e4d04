"""Fills -> orders, positions and PnL, exactly once per trade.

A fill comes from a place result, a paper book update, the user channel or a REST resync. A
matched (unconfirmed) trade is recorded and announced, and waits: only a CONFIRMED trade moves the
order's filled size, the position and the realised PnL (which feeds the daily loss limit). A trade
that fails to settle never happened: its stored fill is marked failed and the trader is told.

The venue's words about one trade come from several places (the answer to the post, the user
channel, a REST resync) and in any order, so the trades that failed are remembered: a word about
one of them that comes later (the answer "matched", a MATCHED overtaken by its FAILED) records no
fill. Its row cannot say otherwise whatever order the writes land in: a failure is written whether
the row exists yet or not, and a matched insert never overwrites a row (the store's rule).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal

from core.events import Alert, FillEvent, Severity
from core.execution.context import EngineContext
from core.execution.events import SettlementFailure
from core.execution.holdings import ExposureTracker
from core.execution.order_table import OrderTable, Tracked, derive_status
from core.execution.positions import FillPnl, PositionBook
from core.execution.records import OrderChanges, OrderRecord, trade_key
from core.execution.risk_gate import RiskGate
from core.execution.types import Fill, OrderStatus

log = logging.getLogger(__name__)

PRICE_QUANTUM = Decimal("0.000001")
ZERO = Decimal(0)

# a failed trade fails its order when the venue matched it, or will say so in the answer it owes
_FAILS_WITH_ITS_TRADE = frozenset({OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.NEW})

OrderChanged = Callable[[Tracked], Awaitable[None]]


class FillLedger:
    def __init__(
        self,
        ctx: EngineContext,
        orders: OrderTable,
        exposure: ExposureTracker,
        positions: PositionBook,
        risk: RiskGate,
        order_changed: OrderChanged,
    ) -> None:
        self._ctx = ctx
        self._orders = orders
        self._exposure = exposure
        self._positions = positions
        self._risk = risk
        self._order_changed = order_changed  # the group manager re-evaluates the order's group
        self._applied: set[tuple[str, str]] = set()
        self._matched: dict[str, dict[str, Decimal]] = {}  # order -> its trades matched, not CONFIRMED yet -> size
        self._failed: dict[tuple[str, str], str] = {}  # (order, trade) that failed to settle -> why
        self._locks: dict[str, asyncio.Lock] = {}
        self.unmatched_fills = 0

    async def load(self) -> None:
        """Rebuild from the fills on record: positions from the confirmed ones (exact, whatever was
        rounded for display); the trades still settling, with the orders they may still move tracked
        again though they may be final (a CONFIRMED or FAILED after a restart is applied once, to
        its order, as it would have been without the restart)."""
        store, mode = self._ctx.store, self._ctx.mode
        for stored in await store.load_fills(mode):
            fill = stored.fill
            self._applied.add((fill.client_order_id, trade_key(fill)))
            self._positions.apply_fill(fill, stored.market)
            self._exposure.position_changed(fill.token_id)
        settling = await store.load_settling(mode)
        for rec in settling.orders:
            track_stored(self._orders, self._exposure, rec)
        for stored in settling.fills:
            self._matched.setdefault(stored.fill.client_order_id, {})[trade_key(stored.fill)] = stored.fill.size
        for coid in self._matched:
            self._note_matched(coid)

    def settling(self, client_order_id: str) -> bool:
        """Whether a trade of this order matched and has not settled yet (its fate is still open)."""
        return client_order_id in self._matched

    def trade_failed(self, client_order_id: str) -> bool:
        """Whether a trade of this order failed to settle (then the venue's "matched" for the order
        reports that trade: it does not make the order filled)."""
        return any(coid == client_order_id for coid, _ in self._failed)

    def settling_orders(self) -> list[str]:
        """The orders with a matched trade that has not settled yet."""
        return list(self._matched)

    async def on_fill(self, fill: Fill) -> None:
        """A fill from any source. Idempotent: a trade is recorded once and applied once."""
        coid = fill.client_order_id or self._orders.coid_of(fill.venue_order_id or "") or ""
        if not coid:
            self.unmatched_fills += 1
            log.warning("fill %s for unknown order %s ignored (counted)", fill.trade_id, fill.venue_order_id)
            return
        if coid != fill.client_order_id:
            fill = replace(fill, client_order_id=coid)
        trade = trade_key(fill)
        if (coid, trade) in self._applied:
            return
        if not fill.confirmed:
            await self._matched_trade(fill, coid, trade)
            return
        self._applied.add((coid, trade))
        self._settled(coid, trade)
        t = self._orders.get(coid)
        # preview -> store -> commit must not interleave with another fill of the same token
        async with self._locks.setdefault(fill.token_id, asyncio.Lock()):
            applied = await self._apply_confirmed(fill, t, coid)
        if applied is None:
            return
        self._ctx.bus.publish(FillEvent(fill, applied.position.shares, applied.realised))
        if applied.realised != 0:
            await self._risk.on_daily_realised(self._positions.daily_realised())
        if t is not None:
            await self._order_changed(t)

    async def _matched_trade(self, fill: Fill, coid: str, trade: str) -> None:
        why = self._failed.get((coid, trade))
        if why is not None:  # its FAILED came first: it never happened
            await self._ctx.store.mark_fill_failed(fill)
            await self._fail_order(self._orders.get(coid), why)
            return
        pending = self._matched.setdefault(coid, {})
        if trade in pending:
            return  # a later step of a trade already recorded (MINED, RETRYING): nothing new
        pending[trade] = fill.size
        self._note_matched(coid)
        await self._ctx.store.add_fill(fill)  # recorded as matched; applied when CONFIRMED
        if (coid, trade) not in self._failed:  # it may have failed while its row was written
            self._ctx.bus.publish(FillEvent(fill))

    def _settled(self, coid: str, trade: str) -> None:
        pending = self._matched.get(coid)
        if pending is not None:
            pending.pop(trade, None)
            if not pending:
                del self._matched[coid]

    def _note_matched(self, coid: str) -> None:
        """The order's matched size covers its trades still settling (the exposure counts them)."""
        t = self._orders.get(coid)
        if t is not None:
            settling = sum(self._matched.get(coid, {}).values(), ZERO)
            self._orders.set_matched(t, max(t.matched, t.rec.filled_size + settling))

    async def _apply_confirmed(self, fill: Fill, t: Tracked | None, coid: str) -> FillPnl | None:
        pnl = self._positions.preview(fill, t.req.market if t else "")
        store = self._ctx.store
        if t is None:
            if not await store.record_fill(fill, pnl.position, None):
                return None  # applied before (a previous run replayed it into the positions)
            self._commit(fill, pnl)
            self.unmatched_fills += 1
            log.warning("fill %s for order %s not tracked in memory: position updated only", fill.trade_id, coid)
            return pnl
        written: list[OrderChanges] = []

        async def write() -> bool:
            # the order as memory has it once its earlier writes are done (a cancel made meanwhile counts)
            written.append(self._fill_changes(t, fill))
            return await store.record_fill(fill, pnl.position, written[0])

        # the order's row too: after (and never overtaken by) the writes of its earlier changes
        if not await self._orders.writes.run((coid,), write):
            return None  # applied before (a previous run replayed it into the positions)
        self._commit(fill, pnl)
        t.rec.filled_size = written[0]["filled_size"]
        t.fill_notional += fill.price * fill.size
        t.rec.avg_price = written[0]["avg_price"]
        # from memory as it is now: a cancel made while the row was written stays (derive_status)
        await self._orders.set_status(t, _after_fill(t, t.rec.filled_size), persist=False)
        return pnl

    def _commit(self, fill: Fill, pnl: FillPnl) -> None:
        self._positions.commit(fill, pnl)
        self._exposure.position_changed(fill.token_id)

    def _fill_changes(self, t: Tracked, fill: Fill) -> OrderChanges:
        filled = t.rec.filled_size + fill.size
        notional = t.fill_notional + fill.price * fill.size
        return {
            "status": _after_fill(t, filled),
            "filled_size": filled,
            "avg_price": (notional / filled).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN),
            "updated_ts": self._ctx.clock(),
        }

    async def apply_settlement(self, fill: Fill, market: str) -> bool:
        """A merge or redeem, booked as a confirmed SELL of the shares it burned (no order of ours
        is behind it: its row is written by the caller). False when this trade was booked before."""
        trade = trade_key(fill)
        if (fill.client_order_id, trade) in self._applied:
            return False
        self._applied.add((fill.client_order_id, trade))
        async with self._locks.setdefault(fill.token_id, asyncio.Lock()):
            pnl = self._positions.preview(fill, market)
            if not await self._ctx.store.record_fill(fill, pnl.position, None):
                return False
            self._positions.commit(fill, pnl)
            self._exposure.position_changed(fill.token_id)
        self._ctx.bus.publish(FillEvent(fill, pnl.position.shares, pnl.realised))
        if pnl.realised != 0:
            await self._risk.on_daily_realised(self._positions.daily_realised())
        return True

    async def settlement_failed(self, failure: SettlementFailure) -> None:
        """A trade of ours went MATCHED -> FAILED on chain: its fill never happened. Its stored fill
        says failed (it was never applied to positions: only CONFIRMED fills are), the trade is
        remembered (a later word of it records no fill), and the trader is told."""
        fill = failure.fill
        coid = failure.client_order_id or fill.client_order_id or self._orders.coid_of(fill.venue_order_id or "")
        why = f"settlement failed on chain for trade {failure.trade_id}"
        if coid:
            fill = replace(fill, client_order_id=coid)
            trade = trade_key(fill)
            self._settled(coid, trade)
            self._failed[(coid, trade)] = why
            if (t := self._orders.get(coid)) is not None:  # what it matched never happened
                self._orders.set_matched(t, t.matched - fill.size)
            await self._ctx.store.mark_fill_failed(fill)  # even before its matched row lands
        if await self._fail_order(self._orders.get(coid), why):
            return
        self._ctx.bus.publish(
            Alert(
                kind="settlement_failed",
                severity=Severity.CRITICAL,
                key=failure.trade_id or str(coid),
                message=(
                    f"settlement FAILED for trade {failure.trade_id or '?'} of order {coid or '?'}: the match did "
                    "not settle on chain; position unchanged, check the venue"
                ),
            )
        )

    async def _fail_order(self, t: Tracked | None, why: str) -> bool:
        """The order of a failed trade fails when the venue matched it (filled, partly filled) or
        still owes the answer to its post (which would say matched: the late answer keeps a final
        status). Its own "failed" event carries the reason to the trader (one alert, not two).
        False when the order stays as it is (a resting order, an order not tracked)."""
        if t is None or t.status not in _FAILS_WITH_ITS_TRADE:
            return False
        await self._orders.set_status(t, OrderStatus.FAILED, error=why)
        await self._order_changed(t)
        return True


def track_stored(orders: OrderTable, exposure: ExposureTracker, rec: OrderRecord) -> Tracked:
    """Track an order read back from the store (the relayer is told of it: lookups, its trades)."""
    market = exposure.market(rec.market)
    return orders.track(rec, rec.request(market), market)


def _after_fill(t: Tracked, filled: Decimal) -> OrderStatus:
    """The order's status once ``filled`` shares of it are filled (a fill never leaves it NEW)."""
    status = derive_status(t, t.status, filled=filled)
    return OrderStatus.PARTIALLY_FILLED if status is OrderStatus.NEW else status
