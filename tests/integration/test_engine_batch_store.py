"""The write-ahead of a group on SQLite and PostgreSQL: every leg's order row in one INSERT and one
commit, duplicates reported per row (and not written), the rows read back as written."""

from __future__ import annotations

from decimal import Decimal as D

from sqlalchemy import text

from core.execution.store import OrderRecord
from core.execution.types import OrderStatus
from core.store import models as m
from core.store.db import SQLITE_SYNCHRONOUS, create_engine
from core.types import OrderType, Side
from tests.integration.engine_world import T0, World


def rec(coid: str, price: str = "0.53", signed: dict[str, object] | None = None) -> OrderRecord:
    return OrderRecord(
        coid,
        "0xm",
        f"tok-{coid}",
        Side.BUY,
        D(price),
        D("12.5"),
        OrderType.FOK,
        group_id="g",
        reason="dutch",
        signed_order=signed,
        created_ts=T0,
        updated_ts=T0,
    )


async def test_save_orders_writes_new_rows_together_and_reports_duplicates(db_url: str) -> None:
    world = await World.create(db_url)
    try:
        store = world.store
        assert await store.save_orders([]) == []
        assert await store.save_orders([rec("a"), rec("b", signed={"salt": "1"}), rec("c")]) == [True, True, True]
        # an existing id is not written again (its row keeps its values); an id twice in one call counts once
        assert await store.save_orders([rec("b", price="0.99"), rec("d"), rec("d")]) == [False, True, False]
        assert await store.save_order(rec("a")) is False and await store.save_order(rec("e")) is True
        rows = {r.client_order_id: r for r in await world.rows(m.Order)}
        assert sorted(rows) == ["a", "b", "c", "d", "e"]
        assert [r.client_order_id for r in sorted(rows.values(), key=lambda r: r.id)] == ["a", "b", "c", "d", "e"]
        b = await store.get_order("b")
        assert b is not None and (b.price, b.size, b.status, b.order_type) == (
            D("0.53"),
            D("12.5"),
            OrderStatus.NEW,
            OrderType.FOK,
        )
        assert b.signed_order == {"salt": "1"} and b.group_id == "g" and b.reason == "dutch"
        assert b.created_ts == T0
        a = await store.get_order("a")
        assert a is not None and a.signed_order is None
    finally:
        await world.close()


async def test_sqlite_runs_in_wal_with_the_chosen_synchronous(sqlite_url: str) -> None:
    levels = {"NORMAL": 1, "FULL": 2}
    for sync in (SQLITE_SYNCHRONOUS, "FULL"):
        db = create_engine(sqlite_url, sqlite_synchronous=sync)
        try:
            async with db.connect() as conn:
                assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
                assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == levels[sync]
        finally:
            await db.dispose()
    assert SQLITE_SYNCHRONOUS == "NORMAL"
