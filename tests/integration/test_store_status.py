"""gather_status on empty, unmigrated and populated databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from core.errors import PolybotError
from core.store.db import create_engine
from core.store.migrate import head_revision, upgrade_to_head
from core.store.models import TABLES
from core.store.status import gather_status
from core.store.writer import BatchedWriter

A1 = "1" * 77
A2 = "2" * 77
NOW = datetime.now(UTC)


async def test_missing_sqlite_file_is_empty_and_not_created(tmp_path: Path) -> None:
    target = tmp_path / "nothing" / "here.db"
    status = await gather_status(f"sqlite:///{target}")
    assert status["empty"] is True and status["schema"]["revision"] is None
    assert status["note"].startswith("empty database (no schema)") and "does not exist" in status["note"]
    assert status["assets"] == [] and status["armed"] is False
    assert not target.exists() and not target.parent.exists()


@pytest.mark.empty_db
async def test_empty_database_is_reported_empty(db_url: str) -> None:
    engine = create_engine(db_url)
    async with engine.connect() as conn:  # make sure the database (file) exists, schema-less
        await conn.exec_driver_sql("SELECT 1")
    await engine.dispose()
    status = await gather_status(db_url)
    assert status["empty"] is True
    assert status["note"] == "empty database (no schema)"
    assert status["schema"] == {"revision": None, "head": head_revision(), "at_head": False, "tables": []}
    assert status["tables"] == {} and status["assets_tracked"] == 0
    json.dumps(status)  # plain data


async def test_migrated_database_with_feed_rows(db_url: str) -> None:
    await upgrade_to_head(db_url)
    now = time.time_ns()
    engine = create_engine(db_url)
    async with BatchedWriter(engine) as writer:
        writer.put(
            "markets",
            {"condition_id": "0xm", "question": "q", "slug": "s", "tick_size": Decimal("0.01"), "updated_at": NOW},
        )
        # A1: a delta older than the snapshot (must not count), a snapshot (bids ascending, asks descending, as the venue sends them), then deltas
        writer.put(
            "book_deltas",
            {
                "asset_id": A1,
                "market": "0xm",
                "side": "BUY",
                "price": "0.49",
                "size": "9",
                "receive_ts": now - 6 * 10**9,
            },
        )
        writer.put(
            "book_snapshots",
            {
                "asset_id": A1,
                "market": "0xm",
                "bids": [["0.40", "100"], ["0.45", "50"]],
                "asks": [["0.60", "10"], ["0.55", "20"]],
                "receive_ts": now - 5_000_000_000,
            },
        )
        for side, price, size, ago_s in [
            ("BUY", "0.47", "5", 4),  # new best bid
            ("SELL", "0.55", "0", 3),  # best ask level removed -> 0.60
            ("SELL", "0.58", "7", 2),  # new best ask
        ]:
            writer.put(
                "book_deltas",
                {
                    "asset_id": A1,
                    "market": "0xm",
                    "side": side,
                    "price": Decimal(price),
                    "size": Decimal(size),
                    "receive_ts": now - ago_s * 1_000_000_000,
                },
            )
        # A2: deltas only (no snapshot yet), older
        writer.put(
            "book_deltas",
            {
                "asset_id": A2,
                "market": "0xm2",
                "side": "BUY",
                "price": "0.3",
                "size": "1",
                "receive_ts": now - 60 * 10**9,
            },
        )
        writer.put(
            "trades",
            {"asset_id": A1, "market": "0xm", "price": "0.5", "size": "3", "side": "SELL", "receive_ts": now - 10**9},
        )
        writer.put("state", {"key": "armed", "value": True, "updated_at": NOW})
    await engine.dispose()

    status = await gather_status(db_url, now_ns=now, verbose=True)
    assert status["empty"] is False
    assert status["schema"]["revision"] == head_revision() and status["schema"]["at_head"] is True
    assert set(status["tables"]) == set(TABLES)
    assert status["tables"]["book_deltas"] == 5 and status["tables"]["book_snapshots"] == 1
    assert status["markets"] == 1
    assert status["armed"] is True
    assert status["assets_tracked"] == 2
    first, second = status["assets"]  # most recently updated first
    assert first["asset_id"] == A1 and second["asset_id"] == A2
    assert (first["best_bid"], first["best_bid_size"], first["best_ask"], first["best_ask_size"]) == (
        "0.47",
        "5",
        "0.58",
        "7",
    )
    assert first["spread"] == "0.11" and first["crossed"] is False
    assert first["has_snapshot"] is True and first["deltas_since_snapshot"] == 3
    assert first["last_update_age_s"] == pytest.approx(2.0)
    assert first["last_trade"] == {"price": "0.5", "size": "3", "side": "SELL", "age_s": pytest.approx(1.0)}
    assert (first["bid_levels"], first["ask_levels"]) == (3, 2)
    assert second["has_snapshot"] is False and second["best_bid"] == "0.3" and second["best_ask"] is None
    assert second["last_update_age_s"] == pytest.approx(60.0)
    assert status["state"]["armed"]["value"] is True
    json.dumps(status)

    limited = await gather_status(db_url, now_ns=now, max_assets=1)
    assert limited["assets_tracked"] == 2 and len(limited["assets"]) == 1 and "state" not in limited


async def test_unreachable_postgres_is_one_line_with_masked_password() -> None:
    with pytest.raises(PolybotError) as err:
        await gather_status("postgresql://polybot:topsecretpw@127.0.0.1:1/none")
    msg = str(err.value)
    assert "topsecretpw" not in msg and "postgresql://polybot:***@127.0.0.1:1/none" in msg
    assert "\n" not in msg
