"""The write-ahead of a group on SQLite and PostgreSQL: every leg's order row in one INSERT and one
commit, duplicates reported per row (and not written), the rows read back as written."""

from __future__ import annotations

from decimal import Decimal as D

from sqlalchemy import text

from core.execution.store import OrderRecord, SqlExecutionStore
from core.execution.types import OrderStatus
from core.store import models as m
from core.store.db import SQLITE_SYNCHRONOUS, create_engine, session_factory, sqlite_synchronous_of
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
            assert sqlite_synchronous_of(db) == sync  # what the one-hop write-ahead connection takes
        finally:
            await db.dispose()
    assert SQLITE_SYNCHRONOUS == "NORMAL"


async def test_the_one_hop_sqlite_write_ahead_writes_what_sqlalchemy_writes(sqlite_url: str) -> None:
    """On a SQLite file the write-ahead runs on its own connection in one thread hop: its rows are
    byte for byte those of the SQLAlchemy path (money in units, UTC text, JSON), and read back alike."""
    world = await World.create(sqlite_url)
    try:
        fast = world.store
        assert fast._ahead is not None  # a SQLite file: the one-hop path
        plain = SqlExecutionStore(session_factory(world.db))
        plain._ahead = None  # the SQLAlchemy path, for comparison
        signed = {"salt": 7, "amount": D("1.5"), "maker": "0xabc"}
        assert await fast.save_orders([rec("fast", "0.537", signed), rec("fast-2")]) == [True, True]
        assert await plain.save_orders([rec("plain", "0.537", signed), rec("plain-2")]) == [True, True]
        assert await fast.save_orders([rec("plain"), rec("fast-3")]) == [False, True]  # duplicates across paths
        same = [c.name for c in m.Order.__table__.columns if c.name not in ("id", "client_order_id", "token_id")]
        async with world.db.connect() as conn:  # every other column, as stored
            stored = (await conn.execute(text(f"SELECT client_order_id, {', '.join(same)} FROM orders"))).all()
        raw = {r[0]: tuple(r[1:]) for r in stored}
        assert raw["fast"] == raw["plain"] and raw["fast-2"] == raw["plain-2"]
        a, b = await fast.get_order("fast"), await plain.get_order("plain")
        assert a is not None and b is not None
        assert (a.price, a.signed_order, a.created_ts) == (
            D("0.537"),
            {"salt": 7, "amount": "1.5", "maker": "0xabc"},
            T0,
        )
        assert (a.price, a.signed_order, a.created_ts) == (b.price, b.signed_order, b.created_ts)
    finally:
        await world.close()
