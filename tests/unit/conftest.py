"""Fixtures shared by the unit tests.

- ``db_with_markets``: a migrated SQLite database holding the project's demo markets
  (fixtures/gamma/markets.json), built once per module; the strategy runner tests read it.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.unit.strategy_books import MARKETS_FILE


@pytest.fixture(scope="module")
def db_with_markets(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database holding the demo markets (read-only for the tests)."""
    from core.markets import parse_markets, store_markets
    from core.store.db import create_engine
    from core.store.migrate import upgrade_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('markets') / 'polybot.db'}"

    async def setup() -> None:
        engine = create_engine(url)
        try:
            await upgrade_engine(engine)
            markets, stats = parse_markets(json.loads(MARKETS_FILE.read_text()))
            assert stats.bad_total == 0
            await store_markets(engine, markets)
        finally:
            await engine.dispose()

    asyncio.run(setup())
    return url
