"""The engine's memory of its orders: each tracked order, the indexes over them, and status changes.

A status change happens in one place, :meth:`OrderTable.set_status`: in memory, in the store (with
the audit row of the attempt that caused it, in one transaction; an order's writes in the order its
changes were made, :mod:`core.execution.ordered_writes`), and on the bus. A status never
regresses: fills seen already outrank a stale "live" from a slower channel (:func:`derive_status`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Unpack

from core.events import OrderEvent
from core.execution.context import EngineContext
from core.execution.ordered_writes import OrderedWrites
from core.execution.records import OPEN_STATUSES, AuditRecord, OrderChanges, OrderFacts, OrderRecord
from core.execution.types import OrderMemory, OrderRequest, OrderStatus, VenueOrder
from core.types import MarketInfo, Side

ZERO = Decimal(0)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Tracked:
    """An order the engine knows: its row, the request it was made from, and its market."""

    rec: OrderRecord
    req: OrderRequest
    market: MarketInfo | None
    fill_notional: Decimal = ZERO
    # the size the venue says it matched (its answer, its order updates, the trades it reported):
    # above the filled size while those trades settle (only a confirmed trade fills)
    matched: Decimal = ZERO

    @property
    def coid(self) -> str:
        return self.rec.client_order_id

    @property
    def unsettled(self) -> Decimal:
        """Shares matched by the venue whose trades have not settled (whatever the status: a
        partly matched order canceled since keeps them)."""
        return max(ZERO, self.matched - self.rec.filled_size)

    @property
    def exposed(self) -> Decimal:
        """Shares that count against the limits: the rest of an open order (its matched part
        included), else the ones still settling."""
        return self.remaining if self.status in OPEN_STATUSES else self.unsettled

    @property
    def status(self) -> OrderStatus:
        return self.rec.status

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.req.size - self.rec.filled_size)


def _matched_in_full(t: Tracked) -> None:
    """An order the venue says FILLED was matched in full, whatever its trades have settled yet
    (a failed one taken back out afterwards: :meth:`OrderTable.set_matched`)."""
    t.matched = max(t.matched, t.req.size)


def venue_status(vo: VenueOrder) -> OrderStatus:
    """Map a venue (or paper) order status to ours; unknown strings count as still live."""
    raw = vo.status.strip().upper()
    full = vo.size_matched >= vo.original_size > 0
    if raw.startswith(("CANCEL", "INVALID", "UNMATCHED", "EXPIRED", "REJECT")):
        return OrderStatus.CANCELED
    if raw.startswith(("MATCHED", "FILLED")):
        return OrderStatus.FILLED if full or vo.size_matched == 0 else OrderStatus.PARTIALLY_FILLED
    if raw.startswith("FAILED"):
        return OrderStatus.FAILED
    if full:
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED if vo.size_matched > 0 else OrderStatus.LIVE


def derive_status(t: Tracked, reported: OrderStatus, filled: Decimal | None = None) -> OrderStatus:
    """Never regress: fills seen already outrank a stale 'live' from a slower channel."""
    filled = t.rec.filled_size if filled is None else filled
    if filled >= t.req.size:
        return OrderStatus.FILLED
    if reported in (OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.DRY_RUN):
        return reported
    if reported is OrderStatus.FILLED:
        return OrderStatus.FILLED
    if filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return reported


def _order_changes(**changes: Unpack[OrderChanges]) -> OrderChanges:
    return changes


def order_summary(req: OrderRequest, group_id: str | None) -> dict[str, object]:
    """An order as exec_audit's ``request`` column shows it."""
    return {
        "market": req.market,
        "token_id": req.token_id,
        "side": str(req.side),
        "price": str(req.price),
        "size": str(req.size),
        "order_type": str(req.order_type),
        "post_only": req.post_only,
        "group_id": group_id,
    }


class OrderTable:
    def __init__(self, ctx: EngineContext, relayer: object) -> None:
        self._ctx = ctx
        # a relayer that looks orders up by hash is told the hashes of orders loaded after a restart
        self._memory = relayer if isinstance(relayer, OrderMemory) else None
        self._orders: dict[str, Tracked] = {}
        self._open: set[str] = set()
        self._exposed_by_token: dict[str, set[str]] = {}  # see exposed_on
        self._by_venue_id: dict[str, str] = {}
        self._touched: set[str] = set()
        self.inflight: set[str] = set()  # being placed right now: never placed twice
        self.writes = OrderedWrites()  # every write of an order's row goes through it

    def __contains__(self, client_order_id: str) -> bool:
        return client_order_id in self._orders

    def get(self, client_order_id: str | None) -> Tracked | None:
        return self._orders.get(client_order_id) if client_order_id else None

    def coid_of(self, venue_order_id: str) -> str | None:
        return self._by_venue_id.get(venue_order_id)

    def is_open(self, client_order_id: str) -> bool:
        return client_order_id in self._open

    def open_orders(self) -> list[Tracked]:
        return [self._orders[c] for c in self._open]

    def exposed_on(self, token_id: str) -> list[Tracked]:
        """The token's orders whose size still counts against the limits (:attr:`Tracked.exposed`):
        the open ones, and the ones with matched shares whose trades have not settled (only a
        confirmed trade makes a position; until then the order carries the exposure)."""
        return [self._orders[c] for c in self._exposed_by_token.get(token_id, ())]

    def settling_shares(self, token_id: str) -> Decimal:
        """Net shares of the token matched by the venue whose trades have not settled (buys +,
        sells -): the position still to come."""
        net = ZERO
        for t in self.exposed_on(token_id):
            net += t.unsettled if t.req.side is Side.BUY else -t.unsettled
        return net

    def set_matched(self, t: Tracked, matched: Decimal) -> None:
        """The venue's matched size of ``t`` is now ``matched`` (a trade reported, one that failed
        taken back out); the exposure follows."""
        t.matched = max(matched, t.rec.filled_size)
        self._index(t)

    def is_ours(self, vo: VenueOrder) -> bool:
        """Whether a venue order is one of ours (by venue id or client order id)."""
        ids = (vo.venue_order_id, vo.client_order_id)
        return any(i is not None and (i in self._by_venue_id or i in self._orders) for i in ids)

    def drain_touched(self) -> set[str]:
        """Tokens whose open orders changed since the last call (exposure recomputes them)."""
        touched, self._touched = self._touched, set()
        return touched

    def track(self, rec: OrderRecord, req: OrderRequest, market: MarketInfo | None) -> Tracked:
        t = self._orders.get(rec.client_order_id)
        if t is None:
            t = self._orders[rec.client_order_id] = Tracked(rec, req, market)
            if rec.avg_price is not None:
                t.fill_notional = rec.avg_price * rec.filled_size
            if rec.status is OrderStatus.FILLED:
                _matched_in_full(t)
            known_id = rec.order_hash or rec.venue_order_id
            if known_id and self._memory is not None:
                self._memory.remember_order(rec.client_order_id, known_id)  # lookups after a restart
        self._index(t)
        return t

    def tracked(self) -> Iterable[Tracked]:
        return self._orders.values()

    def _index(self, t: Tracked) -> None:
        token_orders = self._exposed_by_token.setdefault(t.req.token_id, set())
        if t.status in OPEN_STATUSES:
            self._open.add(t.coid)
        else:
            self._open.discard(t.coid)
        if t.exposed > 0:
            token_orders.add(t.coid)
        else:
            token_orders.discard(t.coid)
        self._touched.add(t.req.token_id)
        if t.rec.venue_order_id:
            self._by_venue_id[t.rec.venue_order_id] = t.coid

    async def set_status(
        self,
        t: Tracked,
        status: OrderStatus,
        *,
        audit: AuditRecord | None = None,
        persist: bool = True,
        **changes: Unpack[OrderFacts],
    ) -> None:
        """New status in memory, in the store (with the audit row of the attempt that caused it), on the bus."""
        store = self._ctx.store
        old = self._change(t, status, changes)
        ts = t.rec.updated_ts
        if audit is not None:
            await self.writes.run(
                (t.coid,), lambda: store.record_attempt(audit, t.coid, status=status, updated_ts=ts, **changes)
            )
        elif persist:
            await self.writes.run(
                (t.coid,), lambda: store.update_order(t.coid, status=status, updated_ts=ts, **changes)
            )
        self._announce(t, old, status)

    async def set_statuses(self, items: Sequence[tuple[Tracked, OrderStatus, OrderFacts, AuditRecord | None]]) -> None:
        """:meth:`set_status` for several orders (a batch's legs): one store transaction for them all."""
        olds = [self._change(t, status, changes) for t, status, changes, _ in items]
        rows: list[tuple[AuditRecord | None, str, OrderChanges]] = []
        for t, status, changes, audit in items:
            rows.append((audit, t.coid, _order_changes(status=status, updated_ts=t.rec.updated_ts, **changes)))
        await self.writes.run([t.coid for t, _, _, _ in items], lambda: self._write_all(rows))
        for (t, status, _, _), old in zip(items, olds, strict=True):
            self._announce(t, old, status)

    async def _write_all(self, rows: Sequence[tuple[AuditRecord | None, str, OrderChanges]]) -> None:
        try:
            await self._ctx.store.record_attempts(rows)
        except Exception:
            # the answers are known and in memory: the group's follow-up (fills, unknown outcomes, the
            # one-leg policy) must still run, so each leg's row is written on its own instead
            log.exception("writing a batch's %d answers in one transaction failed: writing them one by one", len(rows))
            await self._write_each(rows)

    async def _write_each(self, rows: Sequence[tuple[AuditRecord | None, str, OrderChanges]]) -> None:
        store = self._ctx.store
        for audit, coid, changes in rows:
            try:
                if audit is not None:
                    await store.record_attempt(audit, coid, **changes)
                else:
                    await store.update_order(coid, **changes)
            except Exception:  # the startup reconcile takes the venue's word for this order
                log.exception("order %s: its answer could not be stored (reconciled at the next start)", coid)

    def _change(self, t: Tracked, status: OrderStatus, changes: OrderFacts) -> OrderStatus:
        """The new status in memory and in the indexes; the old one."""
        old = t.rec.status
        t.rec.status = status
        if status is OrderStatus.FILLED and old is not OrderStatus.FILLED:
            _matched_in_full(t)
        t.rec.updated_ts = self._ctx.clock()
        if "error" in changes:
            t.rec.error = changes["error"]  # the event carries the reason to the trader
        self._index(t)
        return old

    def _announce(self, t: Tracked, old: OrderStatus, status: OrderStatus) -> None:
        if old is not status:
            self._ctx.bus.publish(
                OrderEvent(
                    t.coid,
                    status,
                    t.req.market,
                    t.req.token_id,
                    str(t.req.side),
                    t.req.price,
                    t.req.size,
                    filled=t.rec.filled_size,
                    detail=t.rec.error or "",
                    group_id=t.rec.group_id,
                )
            )
