"""A stopped service writes no intent row: the SQLite write-ahead's own connection is closed with
the store, and a task still placing afterwards fails before anything could be posted."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from core.execution.store import OrderRecord, SqlExecutionStore
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_engine
from core.types import Side


async def test_after_close_the_write_ahead_refuses_and_writes_nothing(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'ahead.db'}")
    try:
        await upgrade_engine(engine)
        store = SqlExecutionStore(session_factory(engine))
        first = OrderRecord("pb-1", "0xbin", "1", Side.BUY, D("0.5"), D("10"), mode="paper")
        assert await store.save_orders([first]) == [True]
        await store.close()
        late = OrderRecord("pb-2", "0xbin", "1", Side.BUY, D("0.5"), D("10"), mode="paper")
        with pytest.raises(RuntimeError, match="write-ahead is closed"):
            await store.save_orders([late])
        assert await store.get_order("pb-2") is None and await store.get_order("pb-1") is not None
    finally:
        await engine.dispose()
