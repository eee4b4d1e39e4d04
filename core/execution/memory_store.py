"""The execution store in memory (benchmarks, unit tests): the same contract as the SQL one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Unpack

from core.events import Alert
from core.execution.positions import Position
from core.execution.records import OPEN_STATUSES, AuditRecord, OrderChanges, OrderRecord, StoredFill, trade_key
from core.execution.store_rows import Settling
from core.execution.types import OrderStatus
from core.types import Fill


@dataclass
class MemoryExecutionStore:
    """In-memory implementation (benchmarks, unit tests, the offline runner)."""

    orders: dict[str, OrderRecord] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    fills: dict[tuple[str, str], StoredFill] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    state: dict[str, object] = field(default_factory=dict)
    alerts: list[tuple[Alert, float | None]] = field(default_factory=list)

    async def save_order(self, rec: OrderRecord) -> bool:
        if rec.client_order_id in self.orders:
            return False
        self.orders[rec.client_order_id] = replace(rec)
        return True

    async def save_orders(self, recs: Sequence[OrderRecord], then: Callable[[], None] | None = None) -> list[bool]:
        if then is not None:  # blocking (the group's signing): off the loop
            await asyncio.to_thread(then)
        return [await self.save_order(rec) for rec in recs]

    async def update_order(self, client_order_id: str, **changes: Unpack[OrderChanges]) -> None:
        rec = self.orders.get(client_order_id)
        if rec is None:
            return
        for k, v in changes.items():
            setattr(rec, k, v)

    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        rec = self.orders.get(client_order_id)
        return replace(rec) if rec is not None else None

    async def load_open_orders(self, mode: str | None = None) -> list[OrderRecord]:
        return [replace(r) for r in self.orders.values() if r.status in OPEN_STATUSES and mode in (None, r.mode)]

    async def add_audit(self, rec: AuditRecord) -> None:
        self.audit.append(rec)

    async def list_audit(self, client_order_id: str | None = None, action: str | None = None) -> list[AuditRecord]:
        return [
            a
            for a in self.audit
            if (client_order_id is None or a.client_order_id == client_order_id)
            and (action is None or a.action == action)
        ]

    async def add_fill(self, fill: Fill) -> bool:
        key = (fill.client_order_id, trade_key(fill))
        cur = self.fills.get(key)
        market = self.orders[fill.client_order_id].market if fill.client_order_id in self.orders else ""
        if cur is None:
            self.fills[key] = StoredFill(fill, market)
            return fill.confirmed
        if fill.confirmed and not cur.fill.confirmed:
            self.fills[key] = StoredFill(fill, market)
            return True
        return False

    async def record_attempt(self, audit: AuditRecord, client_order_id: str, **changes: Unpack[OrderChanges]) -> None:
        await self.add_audit(audit)
        await self.update_order(client_order_id, **changes)

    async def record_attempts(self, items: Sequence[tuple[AuditRecord | None, str, OrderChanges]]) -> None:
        for audit, client_order_id, changes in items:
            if audit is not None:
                await self.add_audit(audit)
            await self.update_order(client_order_id, **changes)

    async def record_fill(self, fill: Fill, position: Position, order_changes: OrderChanges | None = None) -> bool:
        if not await self.add_fill(fill):
            return False
        await self.save_position(position)
        if order_changes:
            await self.update_order(fill.client_order_id, **order_changes)
        return True

    async def mark_fill_failed(self, fill: Fill) -> None:
        key = (fill.client_order_id, trade_key(fill))
        cur = self.fills.get(key)
        if cur is None:
            market = self.orders[fill.client_order_id].market if fill.client_order_id in self.orders else ""
            self.fills[key] = StoredFill(replace(fill, confirmed=False), market, failed=True)
        elif not cur.fill.confirmed:
            self.fills[key] = replace(cur, failed=True)

    def _fills_of(self, mode: str | None) -> list[StoredFill]:
        def ours(fill: Fill) -> bool:
            order = self.orders.get(fill.client_order_id)
            return mode is None or order is None or order.mode == mode

        return [f for f in self.fills.values() if ours(f.fill)]

    async def load_fills(self, mode: str | None = None) -> list[StoredFill]:
        return [f for f in self._fills_of(mode) if f.fill.confirmed]

    async def load_settling(self, mode: str | None = None) -> Settling:
        fills = [f for f in self._fills_of(mode) if not f.fill.confirmed and not f.failed]
        with_matched_fill = {f.fill.client_order_id for f in fills}
        orders = [
            replace(r)
            for r in self.orders.values()
            if mode in (None, r.mode)
            and ((r.status is OrderStatus.FILLED and r.filled_size < r.size) or r.client_order_id in with_matched_fill)
        ]
        return Settling(orders, fills)

    async def save_position(self, pos: Position, ts: float | None = None) -> None:
        self.positions[pos.token_id] = replace(pos)

    async def get_state(self, key: str) -> object:
        return self.state.get(key)

    async def set_state(self, key: str, value: object) -> None:
        self.state[key] = value

    async def add_alert(self, alert: Alert) -> None:
        self.alerts.append((alert, None))

    async def resolve_alert(self, kind: str, key: str, ts: float | None = None) -> None:
        self.alerts = [(a, ts if (a.kind == kind and a.key == key and r is None) else r) for a, r in self.alerts]
