"""The execution store's round trips on SQLite and PostgreSQL: orders, audit, fills, positions,
state and alerts, each written and read back through :class:`SqlExecutionStore`."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from core.events import Alert, AlertCleared, AlertKind, Severity
from core.execution.alert_rows import record_alerts
from core.execution.positions import Position
from core.execution.store import AuditRecord, OrderRecord
from core.execution.types import Fill, OrderStatus
from core.store import models as m
from core.types import Side
from tests.integration.engine_world import T0, YES, World


async def test_store_round_trips_orders_audit_fills_positions_state_alerts(db_url: str) -> None:
    world = await World.create(db_url)
    try:
        store = world.store
        rec = OrderRecord(
            "pb-1", "0xbin", YES, Side.BUY, D("0.53"), D("12.5"), group_id="g", created_ts=T0, updated_ts=T0
        )
        assert await store.save_order(rec) is True
        assert await store.save_order(rec) is False  # the unique client order id
        await store.update_order("pb-1", status=OrderStatus.LIVE, venue_order_id="v1", updated_ts=T0 + 1)
        got = await store.get_order("pb-1")
        assert got is not None
        assert (got.status, got.venue_order_id, got.price, got.size, got.group_id) == (
            OrderStatus.LIVE,
            "v1",
            D("0.53"),
            D("12.5"),
            "g",
        )
        assert got.updated_ts == T0 + 1
        assert [r.client_order_id for r in await store.load_open_orders()] == ["pb-1"]
        await store.update_order("pb-1", status=OrderStatus.FILLED, filled_size=D("12.5"), avg_price=D("1") / 3)
        assert await store.load_open_orders() == []
        assert (await store.get_order("pb-1")).avg_price == D("0.333333")  # type: ignore[union-attr]

        await store.add_audit(AuditRecord("refused", "refused", "pb-2", error_class="not_armed", error="x", ts=T0))
        [audit] = await store.list_audit("pb-2")
        assert (audit.action, audit.error_class, audit.ts) == ("refused", "not_armed", T0)

        matched = Fill(
            "pb-1", "v1", YES, Side.BUY, D("0.53"), D("12.5"), D("0.01234"), "t1", confirmed=False, ts_ms=int(T0 * 1000)
        )
        assert await store.add_fill(matched) is False  # recorded, not yet final
        assert await store.add_fill(replace(matched, confirmed=True)) is True
        assert await store.add_fill(replace(matched, confirmed=True)) is False  # the same trade again
        [stored] = await store.load_fills()
        assert stored.market == "0xbin" and stored.fill.fee == D("0.01234") and stored.fill.ts_ms == int(T0 * 1000)
        assert stored.fill.confirmed and stored.fill.trade_id == "t1"

        # an attempt's audit row and the status it caused, together
        await store.record_attempt(AuditRecord("place", "accepted", "pb-1", attempt=2, ts=T0), "pb-1", error="late")
        assert [a.attempt for a in await store.list_audit("pb-1")] == [2]
        assert (await store.get_order("pb-1")).error == "late"  # type: ignore[union-attr]
        # a fill with its position and order update, together; a replay writes nothing
        f2 = Fill("pb-1", "v1", YES, Side.BUY, D("0.50"), D("2"), trade_id="t2")
        assert await store.record_fill(f2, Position(YES, "0xbin", D("2"), D("1")), {"filled_size": D("2")}) is True
        assert await store.record_fill(f2, Position(YES, "0xbin", D("99"), D("1")), {"filled_size": D("99")}) is False
        assert (await store.get_order("pb-1")).filled_size == D("2")  # type: ignore[union-attr]
        [pos] = await world.rows(m.Position)
        assert pos.size == D("2")
        # matched first (user channel), confirmed later: applied once, at confirmation
        f3 = Fill("pb-1", "v1", YES, Side.BUY, D("0.50"), D("1"), trade_id="t3", confirmed=False)
        assert await store.add_fill(f3) is False
        assert await store.record_fill(replace(f3, confirmed=True), Position(YES, "0xbin", D("3"), D("1.5"))) is True
        assert await store.record_fill(replace(f3, confirmed=True), Position(YES, "0xbin", D("3"), D("1.5"))) is False
        assert len(await store.load_fills()) == 3

        await store.save_position(Position(YES, "0xbin", D("3"), D("1"), D("-0.5")))
        [pos] = await world.rows(m.Position)
        assert (pos.size, pos.avg_cost, pos.realised_pnl) == (D("3"), D("0.333333"), D("-0.5"))

        assert await store.get_state("k") is None
        await store.set_state("k", {"armed": True, "by": "a"})
        await store.set_state("k", {"armed": False, "by": "b"})
        assert await store.get_state("k") == {"armed": False, "by": "b"}

        record_alerts(world.bus, store)
        world.bus.publish(Alert(AlertKind.ONE_LEGGED, Severity.CRITICAL, "g1", "one leg", ts=T0))
        await world.bus.drain()
        world.bus.publish(AlertCleared(AlertKind.ONE_LEGGED, "g1", "ok", ts=T0 + 5))
        await world.bus.drain()
        [alert] = await world.rows(m.Alert)
        assert (alert.kind, alert.severity, alert.key) == ("one_legged", "critical", "g1")
        assert alert.resolved_at is not None and alert.resolved_at.timestamp() == T0 + 5
    finally:
        await world.close()


async def test_a_service_loads_only_its_own_mode_s_orders_and_fills(db_url: str) -> None:
    """One database may hold paper and live trading: a live service must neither count paper fills
    as shares it holds nor reconcile paper orders at the venue (and the other way round)."""
    world = await World.create(db_url)
    try:
        store = world.store
        for coid, mode in (("pb-paper", "paper"), ("pb-live", "live")):
            rec = OrderRecord(coid, "0xbin", YES, Side.BUY, D("0.5"), D("10"), mode=mode, created_ts=T0, updated_ts=T0)
            assert await store.save_order(rec)
            await store.update_order(coid, status=OrderStatus.LIVE)
        fill = Fill("pb-paper", "v1", YES, Side.BUY, D("0.5"), D("4"), trade_id="t1", confirmed=True)
        assert await store.add_fill(fill)
        foreign = Fill("pb-unknown", "v9", YES, Side.BUY, D("0.5"), D("1"), trade_id="t9", confirmed=True)
        assert await store.add_fill(foreign)  # no order row of ours: the venue's word, kept in every mode
        assert [r.client_order_id for r in await store.load_open_orders("live")] == ["pb-live"]
        assert [r.client_order_id for r in await store.load_open_orders("paper")] == ["pb-paper"]
        assert [f.fill.trade_id for f in await store.load_fills("live")] == ["t9"]
        assert [f.fill.trade_id for f in await store.load_fills("paper")] == ["t1", "t9"]
        assert len(await store.load_open_orders()) == 2 and len(await store.load_fills()) == 2
    finally:
        await world.close()
