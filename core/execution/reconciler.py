"""The venue's truth about our orders: unknown outcomes, reconciliation, pushed status changes.

- An order whose placement outcome is unknown (``submitted_unknown``, or a NEW row left by a crash)
  is looked up at the venue before anything else is done with it; found, it takes the venue's
  status; not found, its trades may still show it filled; neither, after ``unknown_grace_s`` it is
  failed (it was never placed).
- :meth:`Reconciler.reconcile` compares every order the store holds open with the venue's open
  orders and fixes their statuses; venue orders that are not ours are reported (``foreign``).
- An order the venue no longer lists is settled from its trades (``GET /data/order`` answers 404
  for anything not live): filled, or canceled/expired there, never assumed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from core.events import Alert, AlertCleared, AlertKind, Severity
from core.execution.context import EngineContext, ms_since
from core.execution.fill_ledger import FillLedger, track_stored
from core.execution.holdings import ExposureTracker
from core.execution.order_table import OrderTable, Tracked, derive_status, venue_status
from core.execution.records import FINAL_STATUSES, OPEN_STATUSES, OrderFacts
from core.execution.types import ErrorClass, OrderStatus, Relayer, TradeResync, VenueOrder

log = logging.getLogger(__name__)

OrderChanged = Callable[[Tracked], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    checked: int = 0
    changed: dict[str, str] = field(default_factory=dict)  # client order id -> "old -> new"
    still_unknown: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()  # venue orders we have no row for
    error: str = ""


def _find(venue_open: Mapping[str, VenueOrder], t: Tracked) -> VenueOrder | None:
    return venue_open.get(t.coid) or (venue_open.get(t.rec.venue_order_id) if t.rec.venue_order_id else None)


class Reconciler:
    def __init__(
        self,
        ctx: EngineContext,
        relayer: Relayer,
        orders: OrderTable,
        exposure: ExposureTracker,
        ledger: FillLedger,
        order_changed: OrderChanged,
        *,
        unknown_grace_s: float,
    ) -> None:
        self._ctx = ctx
        self._relayer = relayer
        self._orders = orders
        self._exposure = exposure
        self._ledger = ledger
        self._order_changed = order_changed
        self.unknown_grace_s = unknown_grace_s

    async def lookup(self, t: Tracked) -> VenueOrder | None:
        """The venue's view of one order (None: it does not know it); LookupError when it cannot be read."""
        started = time.perf_counter()
        try:
            found = await self._relayer.lookup(t.req)
            error: str | None = None
        except Exception as exc:
            found, error = None, f"{type(exc).__name__}: {exc}"
        await self._ctx.store.add_audit(
            self._ctx.audit(
                "lookup",
                "found" if found else ("error" if error else "not_found"),
                client_order_id=t.coid,
                request={"venue_order_id": t.rec.venue_order_id},
                error_class=str(ErrorClass.NETWORK) if error else None,
                error=error,
                latency_ms=ms_since(started),
            )
        )
        if error:
            raise LookupError(error)
        return found

    async def resolve_unknown(self, t: Tracked, venue_open: Mapping[str, VenueOrder] | None = None) -> bool:
        """Settle a submitted_unknown (or crashed NEW) order from the venue's view. True when resolved."""
        vo = _find(venue_open, t) if venue_open is not None else None
        if vo is None:
            try:
                vo = await self.lookup(t)
            except LookupError:
                return False
        bus = self._ctx.bus
        if vo is not None:
            await self.adopt(t, vo)
            bus.publish(AlertCleared(AlertKind.UNKNOWN_OUTCOME, t.coid, f"order {t.coid} found: {t.status}"))
            return True
        # not open at the venue: it may have traded and ended (a filled FOK is no longer listed)
        try:
            await self._read_venue_trades()
        except LookupError:
            return False  # the venue's trades cannot be read: nothing is decided
        if t.rec.filled_size > 0 or self._ledger.settling(t.coid):
            bus.publish(AlertCleared(AlertKind.UNKNOWN_OUTCOME, t.coid, f"order {t.coid} traded: {t.status}"))
            return not self._ledger.settling(t.coid)
        if self._ctx.clock() - (t.rec.updated_ts or t.rec.created_ts) < self.unknown_grace_s:
            return False
        why = f"not found at the venue {self.unknown_grace_s:g}s after an unknown outcome"
        await self._orders.set_status(t, OrderStatus.FAILED, error=why)
        bus.publish(AlertCleared(AlertKind.UNKNOWN_OUTCOME, t.coid, f"order {t.coid} was never placed"))
        await self._order_changed(t)
        return True

    async def adopt(self, t: Tracked, vo: VenueOrder) -> None:
        """The venue lists the order: take its status (never below what our fills say)."""
        changes: OrderFacts = {}
        if vo.venue_order_id and vo.venue_order_id != t.rec.venue_order_id:
            t.rec.venue_order_id = vo.venue_order_id
            changes["venue_order_id"] = vo.venue_order_id
        status = OrderStatus.FILLED if t.rec.filled_size >= t.req.size else venue_status(vo)
        if vo.size_matched > t.rec.filled_size:
            log.warning(
                "order %s: venue reports %s matched, we have fills for %s; awaiting the missing fills",
                t.coid,
                vo.size_matched,
                t.rec.filled_size,
            )
        await self._orders.set_status(t, status, **changes)
        await self._order_changed(t)

    async def _read_venue_trades(self) -> None:
        """Re-read our orders and trades from the venue (fills the user channel may have missed):
        the only way to tell a filled order from a canceled one once the venue stops listing it."""
        if not isinstance(self._relayer, TradeResync):
            return  # paper: every fill is known the moment it happens
        try:
            await self._relayer.resync()
        except Exception as exc:
            log.warning("reading our trades from the venue failed: %s", exc)
            raise LookupError(f"{type(exc).__name__}: {exc}") from None

    async def reconcile_one(self, t: Tracked) -> None:
        """The venue's truth about one order we believe open: its listing if it has one; if not,
        its trades decide filled or canceled."""
        try:
            found = await self.lookup(t)
        except LookupError:
            return  # the venue cannot be read: nothing is decided
        if found is not None:
            await self.adopt(t, found)
            return
        try:
            await self._read_venue_trades()
        except LookupError:
            return
        if t.status not in OPEN_STATUSES or self._ledger.settling(t.coid):
            return  # its trades settled it, or matched trades are still settling: decided when they do
        if t.rec.filled_size >= t.req.size:
            await self._orders.set_status(t, OrderStatus.FILLED)
        else:
            why = f"no longer open at the venue: canceled or expired there ({t.rec.filled_size} of {t.req.size} filled)"
            await self._orders.set_status(t, OrderStatus.CANCELED, error=why)
        await self._order_changed(t)

    async def reconcile(self) -> ReconcileReport:
        """Compare the store's non-final orders with the venue and fix their statuses."""
        started = time.perf_counter()
        for rec in await self._ctx.store.load_open_orders(self._ctx.mode):
            if rec.client_order_id not in self._orders:
                track_stored(self._orders, self._exposure, rec)
        candidates = [t for t in self._orders.open_orders() if t.coid not in self._orders.inflight]
        try:
            venue = await self._relayer.open_orders()
            error = ""
        except Exception as exc:
            venue, error = [], f"{type(exc).__name__}: {exc}"
        changed: dict[str, str] = {}
        unknown: list[str] = []
        if not error:
            venue_open = {key: vo for vo in venue for key in (vo.venue_order_id, vo.client_order_id) if key}
            for t in candidates:
                before = t.status
                if not await self._check(t, venue_open):
                    unknown.append(t.coid)
                if t.status is not before:
                    changed[t.coid] = f"{before} -> {t.status}"
        foreign = tuple(sorted({vo.venue_order_id for vo in venue if not self._orders.is_ours(vo)}))
        report = ReconcileReport(len(candidates), changed, tuple(unknown), foreign, error)
        await self._record(report, ms_since(started))
        return report

    async def _check(self, t: Tracked, venue_open: Mapping[str, VenueOrder]) -> bool:
        """Reconcile one candidate; False while its outcome stays unknown."""
        vo = _find(venue_open, t)
        if vo is not None:
            await self.adopt(t, vo)
        elif t.status in (OrderStatus.NEW, OrderStatus.SUBMITTED_UNKNOWN):
            return await self.resolve_unknown(t)
        else:
            await self.reconcile_one(t)
        return True

    async def _record(self, report: ReconcileReport, latency_ms: float) -> None:
        ctx = self._ctx
        await ctx.store.add_audit(
            ctx.audit(
                "reconcile",
                "error" if report.error else "ok",
                request={
                    "checked": report.checked,
                    "changed": dict(report.changed),
                    "still_unknown": list(report.still_unknown),
                    "foreign": list(report.foreign),
                },
                error_class=str(ErrorClass.NETWORK) if report.error else None,
                error=report.error or None,
                latency_ms=latency_ms,
            )
        )
        if report.foreign:
            ctx.bus.publish(
                Alert(
                    AlertKind.RECONCILE,
                    Severity.WARNING,
                    "foreign_orders",
                    f"{len(report.foreign)} open order(s) at the venue are not ours: {', '.join(report.foreign[:5])}",
                    ts=ctx.clock(),
                )
            )

    async def on_order_status(
        self,
        venue_order_id: str,
        client_order_id: str | None,
        status: OrderStatus,
        size_matched: Decimal | None = None,
    ) -> bool:
        """The venue says an order of ours is now ``status``. True when it changed anything."""
        t = self._orders.get(client_order_id or self._orders.coid_of(venue_order_id))
        if t is None:
            log.info("status %s for order %s/%s we do not track", status, venue_order_id, client_order_id)
            return False
        changes: OrderFacts = {}
        if venue_order_id and not t.rec.venue_order_id:
            t.rec.venue_order_id = venue_order_id
            changes["venue_order_id"] = venue_order_id
        new = derive_status(t, status)
        if t.status in FINAL_STATUSES and new not in FINAL_STATUSES:
            new = t.status  # a late 'live' never reopens a final order
        elif t.status is OrderStatus.FAILED and new is not OrderStatus.FAILED and self._ledger.trade_failed(t.coid):
            new = t.status  # the match it reports is the trade that failed (confirmed fills still move it)
        if size_matched is not None and size_matched > t.rec.filled_size:
            log.info("order %s: venue matched %s, fills so far %s", t.coid, size_matched, t.rec.filled_size)
            if not self._ledger.trade_failed(t.coid):  # counted until its trades settle (a failed one never happened)
                self._orders.set_matched(t, max(t.matched, size_matched))
        if new is t.status and not changes:
            return False
        await self._orders.set_status(t, new, **changes)
        await self._order_changed(t)
        return True
