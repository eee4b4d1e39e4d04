"""``polybot ingest-ws`` end to end: a real subprocess against the mock market channel, into SQLite."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from core.sim.mock_ws import MockMarketServer

POLYBOT = str(Path(sys.executable).parent / "polybot")


async def _run(*args: str, limit_s: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        POLYBOT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_ingest_ws_stores_what_it_received_and_reports_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ingest.db'}"
    async with MockMarketServer(assets=4, seed=9, rate_hz=300) as server:
        code, out, err = await _run(
            "ingest-ws", server.url, *server.asset_ids, "--db-url", db, "--migrate", "--max-messages", "200", "--json"
        )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["frames"] >= 200
    rows = summary["rows"]
    assert rows["book_snapshots"] >= 4 and rows["book_deltas"] > 0
    assert summary["writer"]["written"] == rows["book_snapshots"] + rows["book_deltas"] + rows["trades"]
    assert summary["rows_refused_queue_full"] == 0
    assert all(b["status"] == "ok" for b in summary["books"].values())
    code, out, err = await _run("status", "--db-url", db, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["tables"]["book_deltas"] == rows["book_deltas"]
    assert status["assets_tracked"] == 4


async def test_ingest_ws_needs_a_migrated_database_and_a_reachable_feed(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, _, err = await _run("ingest-ws", "ws://127.0.0.1:9/ws/market", "123", "--db-url", db, "--max-messages", "5")
    assert code == 1 and "migrate" in err and "Traceback" not in err
    code, _, err = await _run("ingest-ws", "http://nope", "123", "--db-url", db)
    assert code == 2 and "ws://" in err
    code, _, err = await _run(
        "ingest-ws", "ws://127.0.0.1:9/ws/market", "123", "--db-url", db, "--migrate", "--duration", "1.5"
    )
    assert code == 1 and "nothing ingested" in err and "Traceback" not in err
