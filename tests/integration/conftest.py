"""Fixtures shared by the integration tests (real databases, the local doubles, the real bot).

- ``world``: the engine's test world (:mod:`tests.integration.engine_world`) on ``db_url``, so on
  SQLite and PostgreSQL; a module that wants books set first overrides it with ``def world(world)``.
- ``template_db`` / ``markets_db``: the Gamma fixture's markets in SQLite, filled once per module
  by ``polybot refresh-markets`` against the Gamma double (:mod:`tests.integration.bot_world`);
  each test gets its own copy.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
