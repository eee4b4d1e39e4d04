"""The in-memory execution store keeps modes apart as the SQL one does."""

from __future__ import annotations

from decimal import Decimal as D

from core.execution.memory_store import MemoryExecutionStore
from core.execution.store import OrderRecord
from core.types import Fill, Side


async def test_orders_and_fills_of_another_mode_are_not_loaded() -> None:
    store = MemoryExecutionStore()
    for coid, mode in (("pb-paper", "paper"), ("pb-live", "live")):
        assert await store.save_order(OrderRecord(coid, "0xbin", "1", Side.BUY, D("0.5"), D("10"), mode=mode))
    assert await store.add_fill(Fill("pb-paper", "v1", "1", Side.BUY, D("0.5"), D("4"), trade_id="t1", confirmed=True))
    assert [r.client_order_id for r in await store.load_open_orders("live")] == ["pb-live"]
    assert await store.load_fills("live") == [] and len(await store.load_fills("paper")) == 1
    assert len(await store.load_open_orders()) == 2
