"""What the engine and the risk gate persist, behind a small interface.

:class:`ExecutionStore` is the interface; :class:`SqlExecutionStore` implements it over the SQLAlchemy models of
:mod:`core.store.models` (SQLite and PostgreSQL alike), :class:`.MemoryExecutionStore` in memory (benchmarks, unit
tests). The records themselves are in :mod:`core.execution.records`. Positions are rebuilt at start-up by replaying
the confirmed fills (exact, whatever was rounded for display in the positions table); the positions table is what
readers (status, Telegram) look at.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol, Unpack

from sqlalchemy import CursorResult, Insert, Update, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.events import Alert
from core.execution.memory_store import MemoryExecutionStore as MemoryExecutionStore
from core.execution.positions import Position

# the records are named from here by the store's callers
from core.execution.records import FINAL_STATUSES as FINAL_STATUSES
from core.execution.records import OPEN_STATUSES as OPEN_STATUSES
from core.execution.records import AuditRecord as AuditRecord
from core.execution.records import OrderChanges as OrderChanges
from core.execution.records import OrderRecord as OrderRecord
from core.execution.records import StoredFill as StoredFill
from core.execution.records import trade_key as trade_key
from core.execution.sqlite_ahead import SqliteWriteAhead
from core.execution.store_rows import Settling as Settling
from core.execution.store_rows import (
    fills_with_status,
    order_record,
    settling_fills,
    settling_orders,
    stored_fill,
    ts_of,
)
from core.execution.types import Fill
from core.store import models as m

STORE_QUANTUM = Decimal("0.000001")


def _dt(ts: float | None) -> datetime:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC)


class ExecutionStore(Protocol):
    async def save_order(self, rec: OrderRecord) -> bool:
        """Insert a new order; False (and nothing written) when its client order id exists."""
        ...

    async def save_orders(self, recs: Sequence[OrderRecord], then: Callable[[], None] | None = None) -> list[bool]:
        """New orders in one transaction (a group's write-ahead, committed before any post); False where the id
        exists. ``then`` (blocking: the group's signing) runs beside or just before the write and is done on return;
        it is thread-safe and does its work once however often it is called (a store may call it from two threads)."""
        ...

    async def update_order(self, client_order_id: str, **changes: Unpack[OrderChanges]) -> None: ...

    async def get_order(self, client_order_id: str) -> OrderRecord | None: ...

    async def load_open_orders(self, mode: str | None = None) -> list[OrderRecord]:
        """Orders not yet final, of one mode when given (a service never touches another mode's)."""
        ...

    async def add_audit(self, rec: AuditRecord) -> None: ...

    async def list_audit(self, client_order_id: str | None = None, action: str | None = None) -> list[AuditRecord]: ...

    async def add_fill(self, fill: Fill) -> bool:
        """Record a fill; True when it became confirmed with this call (apply it to positions)."""
        ...

    async def record_attempt(self, audit: AuditRecord, client_order_id: str, **changes: Unpack[OrderChanges]) -> None:
        """One audit row and the order's update, in one transaction."""
        ...

    async def record_attempts(self, items: Sequence[tuple[AuditRecord | None, str, OrderChanges]]) -> None:
        """Several orders' :meth:`record_attempt` (the audit row may be None) in one transaction."""
        ...

    async def record_fill(self, fill: Fill, position: Position, order_changes: OrderChanges | None = None) -> bool:
        """A confirmed fill with the position (and order update) it produced, in one transaction.

        False, and nothing written, when the fill was already confirmed (a replay).
        """
        ...

    async def mark_fill_failed(self, fill: Fill) -> None:
        """The trade behind a fill (never confirmed) failed to settle: its row says so, written as
        failed when the trade had none yet (its FAILED came first); a confirmed row is kept."""
        ...

    async def load_fills(self, mode: str | None = None) -> list[StoredFill]:
        """Confirmed fills in arrival order, with the market of their order; of one mode's orders when given."""
        ...

    async def load_settling(self, mode: str | None = None) -> Settling:
        """What a restart finds still settling (:mod:`core.execution.store_rows`): the fills still
        matched, in arrival order, and the orders they may still move, final or not."""
        ...

    async def save_position(self, pos: Position, ts: float | None = None) -> None: ...

    async def get_state(self, key: str) -> object: ...

    async def set_state(self, key: str, value: object) -> None: ...

    async def add_alert(self, alert: Alert) -> None: ...

    async def resolve_alert(self, kind: str, key: str, ts: float | None = None) -> None: ...


async def _updated(s: AsyncSession, stmt: Update) -> int:
    """Rows an UPDATE changed."""
    res = await s.execute(stmt)
    if not isinstance(res, CursorResult):  # pragma: no cover - an UPDATE always answers with a cursor
        raise TypeError(f"UPDATE answered with {type(res).__name__}")
    return res.rowcount


def _confirm(fill: Fill, key: str) -> Update:
    """A matched fill row becomes confirmed (with the confirmed price, size and fee)."""
    return (
        update(m.Fill)
        .where(m.Fill.client_order_id == fill.client_order_id, m.Fill.trade_id == key, m.Fill.status != "confirmed")
        .values(status="confirmed", price=fill.price, size=fill.size, fee=fill.fee)
    )


def _order_values(changes: OrderChanges) -> dict[str, object]:
    """Column values of an order update (the status as its text, the average price on the store's grid)."""
    values: dict[str, object] = {k: v for k, v in changes.items() if k not in ("updated_ts", "status", "avg_price")}
    if "status" in changes:
        values["status"] = str(changes["status"])
    avg = changes.get("avg_price")
    if avg is not None:
        values["avg_price"] = avg.quantize(STORE_QUANTUM, rounding=ROUND_HALF_EVEN)
    values["updated_at"] = _dt(changes.get("updated_ts"))
    return values


def _order_row(rec: OrderRecord, stamps: dict[float | None, datetime]) -> dict[str, object]:
    """A new order row's column values (``stamps``: the times made so far for a group's rows)."""
    created, updated = rec.created_ts or None, rec.updated_ts or rec.created_ts or None
    for ts in (created, updated):
        stamps[ts] = stamps[ts] if ts in stamps else _dt(ts)
    return {
        "client_order_id": rec.client_order_id,
        "venue_order_id": rec.venue_order_id,
        "order_hash": rec.order_hash,
        "market": rec.market,
        "token_id": rec.token_id,
        "side": str(rec.side),
        "price": rec.price,
        "size": rec.size,
        "order_type": str(rec.order_type),
        "post_only": rec.post_only,
        "status": str(rec.status),
        "mode": rec.mode,
        "group_id": rec.group_id,
        "reason": rec.reason,
        "signed_order": rec.signed_order,
        "error": rec.error,
        "filled_size": rec.filled_size,
        "avg_price": rec.avg_price,
        "created_at": stamps[created],
        "updated_at": stamps[updated],
    }


# rows whose client order id is new are inserted; the statement returns their ids
_INSERT_NEW_ORDERS: dict[str, Insert] = {
    "postgresql": postgresql.insert(m.Order).on_conflict_do_nothing(index_elements=["client_order_id"]),
    "sqlite": sqlite.insert(m.Order).on_conflict_do_nothing(index_elements=["client_order_id"]),
}
_INSERT_NEW_ORDERS = {k: v.returning(m.Order.client_order_id) for k, v in _INSERT_NEW_ORDERS.items()}


def avg_cost_for_display(pos: Position) -> Decimal:
    if pos.shares == 0:
        return Decimal(0)
    return (pos.cost / pos.shares).quantize(STORE_QUANTUM, rounding=ROUND_HALF_EVEN)


# ---------------------------------------------------------------------------------------------


class SqlExecutionStore:
    """Over :mod:`core.store.models` with B's async engine/session factory (SQLite or PostgreSQL)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        # a SQLite file: the write-ahead in one thread hop (see core.execution.sqlite_ahead)
        self._ahead = SqliteWriteAhead.for_engine(bind) if isinstance(bind, AsyncEngine) else None

    async def close(self) -> None:
        """Close the write-ahead's connection (after a write in progress): a task still placing writes no row, posts nothing."""
        if self._ahead is not None:
            await asyncio.to_thread(self._ahead.close)

    async def save_order(self, rec: OrderRecord) -> bool:
        return (await self.save_orders([rec]))[0]

    async def save_orders(self, recs: Sequence[OrderRecord], then: Callable[[], None] | None = None) -> list[bool]:
        """INSERT ... ON CONFLICT DO NOTHING RETURNING for all the rows, one commit: on a SQLite file in
        one thread hop (:mod:`core.execution.sqlite_ahead`), elsewhere an executemany of one cached
        statement (a ``.values([...])`` one is compiled anew per call, costlier than the commit)."""
        fresh: dict[str, OrderRecord] = {}
        stamps: dict[float | None, datetime] = {}
        for rec in recs:
            fresh.setdefault(rec.client_order_id, rec)
        if self._ahead is not None:
            written = await self._ahead.insert_new([_order_row(r, stamps) for r in fresh.values()], then)
        else:  # ``then`` (blocking: the signing) in a worker thread beside the write, both done on return
            beside = asyncio.get_running_loop().run_in_executor(None, then) if then is not None else None
            async with self._sessions() as s, s.begin():
                conn = await s.connection()
                rows = [_order_row(r, stamps) for r in fresh.values()]
                written = (
                    set((await conn.execute(_INSERT_NEW_ORDERS[conn.dialect.name], rows)).scalars()) if rows else set()
                )
            if beside is not None:
                await beside
        seen: set[str] = set()
        out = []
        for rec in recs:
            coid = rec.client_order_id
            out.append(coid in written and coid not in seen)
            seen.add(coid)
        return out

    @staticmethod
    def _order_update(client_order_id: str, changes: OrderChanges) -> Update:
        return update(m.Order).where(m.Order.client_order_id == client_order_id).values(**_order_values(changes))

    @staticmethod
    def _audit_row(rec: AuditRecord) -> m.ExecAudit:
        return m.ExecAudit(
            ts=_dt(rec.ts),
            client_order_id=rec.client_order_id,
            action=rec.action,
            attempt=rec.attempt,
            request=rec.request,
            outcome=rec.outcome,
            error_class=rec.error_class,
            error=rec.error,
            latency_ms=rec.latency_ms,
            mode=rec.mode,
        )

    @staticmethod
    def _fill_row(fill: Fill, key: str) -> m.Fill:
        return m.Fill(
            client_order_id=fill.client_order_id,
            venue_order_id=fill.venue_order_id,
            trade_id=key,
            token_id=fill.token_id,
            side=str(fill.side),
            price=fill.price,
            size=fill.size,
            fee=fill.fee,
            status="confirmed" if fill.confirmed else "matched",
            ts=_dt(fill.ts_ms / 1000 if fill.ts_ms else None),
        )

    @staticmethod
    def _position_values(pos: Position, ts: float | None) -> dict[str, object]:
        return {
            "market": pos.market,
            "size": pos.shares,
            "avg_cost": avg_cost_for_display(pos),
            "realised_pnl": pos.realised,
            "updated_at": _dt(ts),
        }

    async def update_order(self, client_order_id: str, **changes: Unpack[OrderChanges]) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(self._order_update(client_order_id, changes))

    async def record_attempt(self, audit: AuditRecord, client_order_id: str, **changes: Unpack[OrderChanges]) -> None:
        async with self._sessions() as s, s.begin():
            s.add(self._audit_row(audit))
            await s.flush()  # write first (see _upsert)
            await s.execute(self._order_update(client_order_id, changes))

    async def record_attempts(self, items: Sequence[tuple[AuditRecord | None, str, OrderChanges]]) -> None:
        async with self._sessions() as s, s.begin():
            s.add_all([self._audit_row(audit) for audit, _, _ in items if audit is not None])
            await s.flush()  # write first (see _upsert)
            for _, client_order_id, changes in items:
                await s.execute(self._order_update(client_order_id, changes))

    async def record_fill(self, fill: Fill, position: Position, order_changes: OrderChanges | None = None) -> bool:
        key = trade_key(fill)
        ts = fill.ts_ms / 1000 if fill.ts_ms else None
        try:
            async with self._sessions() as s, s.begin():
                s.add(self._fill_row(fill, key))
                await s.flush()
                await self._write_position_and_order(s, fill, position, order_changes, ts)
            return True
        except IntegrityError:
            pass  # the trade is known: only a matched -> confirmed step may apply it
        async with self._sessions() as s, s.begin():
            if not await _updated(s, _confirm(fill, key)):
                return False
            await self._write_position_and_order(s, fill, position, order_changes, ts)
        return True

    async def _write_position_and_order(
        self, s: AsyncSession, fill: Fill, position: Position, order_changes: OrderChanges | None, ts: float | None
    ) -> None:
        values = self._position_values(position, ts)
        if not await _updated(s, update(m.Position).where(m.Position.token_id == position.token_id).values(**values)):
            s.add(m.Position(token_id=position.token_id, **values))
            await s.flush()
        if order_changes:
            await s.execute(self._order_update(fill.client_order_id, order_changes))

    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        async with self._sessions() as s:
            row = await s.scalar(select(m.Order).where(m.Order.client_order_id == client_order_id))
            return order_record(row) if row is not None else None

    async def load_open_orders(self, mode: str | None = None) -> list[OrderRecord]:
        stmt = select(m.Order).where(m.Order.status.in_([str(x) for x in OPEN_STATUSES])).order_by(m.Order.id)
        if mode is not None:
            stmt = stmt.where(m.Order.mode == mode)
        async with self._sessions() as s:
            rows = await s.scalars(stmt)
            return [order_record(r) for r in rows]

    async def add_audit(self, rec: AuditRecord) -> None:
        async with self._sessions() as s, s.begin():
            s.add(self._audit_row(rec))

    async def list_audit(self, client_order_id: str | None = None, action: str | None = None) -> list[AuditRecord]:
        stmt = select(m.ExecAudit).order_by(m.ExecAudit.id)
        if client_order_id is not None:
            stmt = stmt.where(m.ExecAudit.client_order_id == client_order_id)
        if action is not None:
            stmt = stmt.where(m.ExecAudit.action == action)
        async with self._sessions() as s:
            rows = await s.scalars(stmt)
            return [
                AuditRecord(
                    action=r.action,
                    outcome=r.outcome,
                    client_order_id=r.client_order_id,
                    attempt=r.attempt,
                    request=r.request,
                    error_class=r.error_class,
                    error=r.error,
                    latency_ms=r.latency_ms,
                    mode=r.mode,
                    ts=ts_of(r.ts),
                )
                for r in rows
            ]

    async def mark_fill_failed(self, fill: Fill) -> None:
        key = trade_key(fill)
        row = self._fill_row(fill, key)
        row.status = "failed"
        try:
            async with self._sessions() as s, s.begin():
                s.add(row)
            return
        except IntegrityError:
            pass  # recorded before: a row not confirmed says failed
        async with self._sessions() as s, s.begin():
            await s.execute(
                update(m.Fill)
                .where(
                    m.Fill.client_order_id == fill.client_order_id, m.Fill.trade_id == key, m.Fill.status != "confirmed"
                )
                .values(status="failed")
            )

    async def add_fill(self, fill: Fill) -> bool:
        key = trade_key(fill)
        try:
            async with self._sessions() as s, s.begin():
                s.add(self._fill_row(fill, key))
            return fill.confirmed
        except IntegrityError:
            pass  # the trade is known: it may only move from matched to confirmed
        if not fill.confirmed:
            return False
        async with self._sessions() as s, s.begin():
            return bool(await _updated(s, _confirm(fill, key)))

    async def load_fills(self, mode: str | None = None) -> list[StoredFill]:
        async with self._sessions() as s:
            rows = (await s.execute(fills_with_status("confirmed", mode))).all()
        return [stored_fill(f, market) for f, market in rows]

    async def load_settling(self, mode: str | None = None) -> Settling:
        async with self._sessions() as s:
            orders = [order_record(r) for r in await s.scalars(settling_orders(mode))]
            fills = [stored_fill(f, market) for f, market in (await s.execute(settling_fills(mode))).all()]
        return Settling(orders, fills)

    async def _upsert(
        self, model: type[m.Position] | type[m.State], key: dict[str, str], values: dict[str, object]
    ) -> None:
        """UPDATE, else INSERT. Write-first on purpose: on SQLite a read-then-write transaction
        cannot wait for another writer (it fails with "database is locked"); a first write can."""
        where = [getattr(model, k) == v for k, v in key.items()]
        for _ in range(3):
            async with self._sessions() as s, s.begin():
                if await _updated(s, update(model).where(*where).values(**values)):
                    return
            try:
                async with self._sessions() as s, s.begin():
                    s.add(model(**key, **values))
                return
            except IntegrityError:
                continue  # inserted concurrently: update it
        raise RuntimeError(f"could not upsert {model.__tablename__} {key}")

    async def save_position(self, pos: Position, ts: float | None = None) -> None:
        await self._upsert(m.Position, {"token_id": pos.token_id}, self._position_values(pos, ts))

    async def get_state(self, key: str) -> object:
        async with self._sessions() as s:
            row = await s.get(m.State, key)
            return row.value if row is not None else None

    async def set_state(self, key: str, value: object) -> None:
        await self._upsert(m.State, {"key": key}, {"value": value, "updated_at": _dt(None)})

    async def add_alert(self, alert: Alert) -> None:
        async with self._sessions() as s, s.begin():
            s.add(
                m.Alert(
                    ts=_dt(alert.ts),
                    kind=str(alert.kind),
                    severity=str(alert.severity),
                    key=alert.key,
                    message=alert.message,
                )
            )

    async def resolve_alert(self, kind: str, key: str, ts: float | None = None) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(
                update(m.Alert)
                .where(m.Alert.kind == kind, m.Alert.key == key, m.Alert.resolved_at.is_(None))
                .values(resolved_at=_dt(ts))
            )
