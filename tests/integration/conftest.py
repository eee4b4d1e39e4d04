"""Fixtures shared by the integration tests (real databases, the local doubles, the real bot).

- ``world``: the engine's test world (:mod:`tests.integration.engine_world`) on ``db_url``, so on
  SQLite and PostgreSQL; a module that wants books set first overrides it with ``def world(world)``.
- ``template_db`` / ``markets_db``: the Gamma fixture's markets in SQLite, filled once per module
  by ``polybot refresh-markets`` against the Gamma double (:mod:`tests.integration.bot_world`);
  each test gets its own copy.
- ``clob_server`` / ``clob_venue``: the CLOB double, and a live :class:`ClobRelayer` on it with the
  double's first binary market prewarmed and the world's books resting the legs (the world's engine
  runs on that relayer).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.execution.relayers.clob import ClobRelayer
from core.sim.mock_clob import MockClobServer, MockMarket
from core.types import MarketInfo, TokenInfo
from tests.integration.bot_world import refresh_markets_cli
from tests.integration.engine_world import World


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    w = await World.create(db_url)
    yield w
    await w.close()


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bot-template") / "markets.db"
    refresh_markets_cli(f"sqlite:///{path}")
    return path


@pytest.fixture
def markets_db(template_db: Path, tmp_path: Path) -> str:
    path = tmp_path / "bot.db"
    shutil.copy(template_db, path)
    return f"sqlite:///{path}"


CLOB_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # a well-known test key


@pytest.fixture
async def clob_server() -> AsyncIterator[MockClobServer]:
    srv = MockClobServer(confirm_delay_s=0.1)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def clob_venue(world: World, clob_server: MockClobServer) -> AsyncIterator[tuple[ClobRelayer, MarketInfo]]:
    relayer = ClobRelayer(
        clob_server.url, 137, CLOB_KEY, dry_run=False, derive_api_key=True, timeout_s=0.6, heartbeat_interval_s=0
    )
    await relayer.start()
    mock: MockMarket = next(m for m in clob_server.markets.values() if not m.neg_risk)
    await relayer.prewarm(mock.condition_id)
    market = MarketInfo(
        mock.condition_id,
        mock.question,
        "mock-binary",
        tuple(TokenInfo(t, o) for t, o in mock.tokens),
        tick_size=mock.tick_size,
        min_order_size=mock.min_order_size,
    )
    for tok in market.tokens:  # the local view: asks well above the legs' limits, so they rest
        world.books.set(tok.token_id, asks=[("0.90", "100")], bids=[("0.05", "100")])
    world.relayer = relayer  # type: ignore[assignment]  # the world's engine runs on the CLOB relayer here
    try:
        yield relayer, market
    finally:
        await relayer.close()
