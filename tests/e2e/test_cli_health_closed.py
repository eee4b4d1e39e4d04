"""``polybot health`` on a database whose markets closed (resolved): their books stop updating, and
that is no fault — a closed market's book is over, not stale; an open market's old book still is."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.store.db import create_engine, session_factory
from core.store.models import BookSnapshot, Market
from polybot.cli.main import main
from tests.e2e.test_cli_health import _ingest


async def _close_markets(url: str, keep_open: int = 0) -> list[str]:
    """Store the ingested markets, closed except the first ``keep_open``; their condition ids."""
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            markets = sorted(set((await session.execute(select(BookSnapshot.market))).scalars()))
            for n, cid in enumerate(markets):
                session.add(Market(condition_id=cid, question=cid, slug=cid, closed=n >= keep_open))
        return markets
    finally:
        await engine.dispose()


def test_health_does_not_call_a_closed_markets_book_stale(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_ingest(db_url))
    time.sleep(0.05)
    assert main(["health", "--db-url", db_url, "--staleness-ms", "1"]) == 1  # open markets: stale
    capsys.readouterr()
    markets = asyncio.run(_close_markets(db_url))
    assert markets and all(markets)
    assert main(["health", "--db-url", db_url, "--staleness-ms", "1", "--json"]) == 0, capsys.readouterr().out
    capsys.readouterr()


def test_an_open_markets_old_book_is_still_stale(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_ingest(db_url))
    markets = asyncio.run(_close_markets(db_url, keep_open=1))
    assert len(markets) >= 2, markets
    time.sleep(0.05)
    assert main(["health", "--db-url", db_url, "--staleness-ms", "1"]) == 1
    assert "not updated within 1 ms" in capsys.readouterr().out
