"""Messages say what the configuration and the database hold (issue 19, point 5).

- the start notice and /status count the followed markets the same way, from one function;
- an unknown market is pointed at /markets in chat and at refresh-markets in a terminal;
- preflight's feed check subscribes the markets ``feed.markets`` names (looked up in the database)
  and says so, instead of "no assets configured";
- ``polybot status`` / ``status-top`` name a book by market slug and outcome, and ``--verbose``
  shows stored times as ISO-8601 UTC with their age.

The database is the Gamma fixture's markets (``markets_db``: refresh-markets against the Gamma
double); books come from the shipped demo recording, through the real ingest pipeline.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.control.types import StateEntry
from core.feed.pipeline import IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.replay import iter_frames
from core.markets import load_markets
from core.preflight.probes import check_feed
from core.sim.demo_data import DEMO_RECORDING
from core.sim.mock_ws import MockMarketServer
from core.store.db import create_engine, session_factory
from core.store.repo import set_state
from core.store.writer import BatchedWriter
from polybot.cli.commands.status_cmd import render_state, when
from polybot.cli.main import main
from polybot.sandbox import SandboxOptions, chat_settings, load_sandbox_settings, offline_service

BINARY = "demo-btc-above-150k-2026"
CUP_MEMBER = "demo-cup-2026-aurora"  # one of the four members of the Demo Cup neg-risk event
ADMIN = 1001
ISO_AGO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+(\.\d)? (s|min|h|d) ago\)")


def status_update(n: int) -> dict[str, Any]:
    return {
        "update_id": n,
        "message": {
            "message_id": n,
            "date": int(time.time()),
            "chat": {"id": ADMIN, "type": "private", "first_name": "Ada"},
            "from": {"id": ADMIN, "is_bot": False, "first_name": "Ada"},
            "text": "/status",
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
        },
    }


@pytest.fixture
async def feed() -> AsyncIterator[MockMarketServer]:
    server = MockMarketServer(recording=DEMO_RECORDING, rate_hz=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --------------------------------------------------------------------------------------------
# the start notice and /status
# --------------------------------------------------------------------------------------------


async def test_the_start_notice_and_status_count_the_same_followed_markets(
    markets_db: str, feed: MockMarketServer, tmp_path: Path
) -> None:
    values: dict[str, object] = {
        "db__url": markets_db,
        "feed__ws_url": feed.url,
        "feed__markets": [BINARY],
        "strategies__dutch__markets": [CUP_MEMBER],  # Dutch follows the member's whole event
        "metrics__enabled": "false",
        **chat_settings({ADMIN: "admin"}, [ADMIN]),
    }
    loaded = load_sandbox_settings(values, tmp_path / "config")
    async with offline_service(loaded, SandboxOptions(pause_jobs=True)) as sandbox:
        await sandbox.service.bus.drain()  # the start notice is on its way to the alert chat
        transcript = await sandbox.runner.feed([status_update(1)])
        started = [
            c.text or "" for c in sandbox.api.calls if (c.text or "").startswith("ℹ️ <b>Polybot</b>\nPolybot started")
        ]
    # one binary market and the four members of the Demo Cup event, of the nine the database holds
    expected = "5 markets followed (10 outcomes) of 9 stored"
    assert len(started) == 1 and started[0].endswith(f"disarmed; {expected}"), started
    status = [c["text"] for c in transcript[-1].calls if c["method"] == "sendMessage"]
    assert len(status) == 1 and f"{expected}, frames" in status[0], status


# --------------------------------------------------------------------------------------------
# an unknown market: where to look depends on where it is said
# --------------------------------------------------------------------------------------------


def test_an_unknown_market_at_start_points_at_refresh_markets(
    markets_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "service.toml"
    config.write_text(
        f'[feed]\nws_url = "ws://127.0.0.1:9/ws/market"\nmarkets = ["no-such-market"]\n'
        f'[db]\nurl = "{markets_db}"\n[metrics]\nenabled = false\n'
    )
    assert main(["run-service", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "feed.markets: unknown market 'no-such-market'" in err, err
    assert "polybot refresh-markets" in err and "/markets" not in err, err


# --------------------------------------------------------------------------------------------
# preflight's feed check
# --------------------------------------------------------------------------------------------


async def test_preflight_subscribes_the_markets_feed_markets_names(
    markets_db: str, feed: MockMarketServer, tmp_path: Path
) -> None:
    loaded = load_sandbox_settings(
        {"db__url": markets_db, "feed__ws_url": feed.url, "feed__markets": [BINARY]}, tmp_path / "config"
    )
    check = await check_feed(loaded.settings, timeout_s=5)
    assert check.ok, check.detail
    assert "subscribed to 2 asset(s)" in check.detail and "config: 1 market(s) named, 2 outcome(s)" in check.detail
    assert "no assets configured" not in check.detail
    engine = create_engine(markets_db)
    try:
        (binary,) = [m for m in await load_markets(session_factory(engine)) if m.slug == BINARY]
    finally:
        await engine.dispose()
    subscribed = json.loads(feed.subscribe_messages[-1])["assets_ids"]
    assert sorted(subscribed) == sorted(t.token_id for t in binary.tokens)


async def test_preflight_fails_the_feed_check_for_a_market_the_database_does_not_know(
    markets_db: str, feed: MockMarketServer, tmp_path: Path
) -> None:
    loaded = load_sandbox_settings(
        {"db__url": markets_db, "feed__ws_url": feed.url, "feed__markets": ["no-such-market"]}, tmp_path / "config"
    )
    check = await check_feed(loaded.settings, timeout_s=5)
    assert not check.ok and "unknown market 'no-such-market'" in check.detail, check.detail
    assert "run-service would stop at start" in check.detail and not feed.subscribe_messages


# --------------------------------------------------------------------------------------------
# polybot status / status-top
# --------------------------------------------------------------------------------------------


async def _ingest_demo_recording(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        processor = FeedProcessor()
        async with BatchedWriter(engine) as writer:
            pipeline = IngestPipeline(processor, writer)
            frames = list(iter_frames(DEMO_RECORDING))
            shift = time.time_ns() - frames[-1][0]  # the recording ends now
            for recv_ns, text in frames:
                pipeline.on_frame(text, recv_ns + shift)
            await writer.flush()
        async with session_factory(engine)() as session:
            await set_state(session, "armed", {"armed": False, "by": "test", "reason": "x", "ts": time.time() - 12})
            await session.commit()
    finally:
        await engine.dispose()


def test_status_and_status_top_name_books_by_market_and_outcome(
    markets_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_ingest_demo_recording(markets_db))
    assert main(["status", "--db-url", markets_db, "--limit", "18"]) == 0
    out = capsys.readouterr().out
    assert "markets   9 stored" in out
    books = [line for line in out.splitlines() if " bid " in line]
    assert len(books) == 18 and "…" not in out, out
    assert any(line.strip().startswith(f"{BINARY} Yes ") for line in books), out
    assert any(line.strip().startswith(f"{CUP_MEMBER} No ") for line in books), out

    assert main(["status-top", "--db-url", markets_db, "--limit", "18"]) == 0
    top = capsys.readouterr().out.splitlines()
    assert top[0].startswith("market outcome") and len(top) == 19 and not any("…" in line for line in top), top
    assert {line.split()[0] for line in top[1:]} == {
        "demo-btc-above-150k-2026",
        *(f"demo-cup-2026-{t}" for t in ("aurora", "borealis", "cascade", "dynamo")),
        *(f"demo-city-mayor-2026-{c}" for c in ("alice", "bruno", "chen", "other")),
    }

    assert main(["status", "--db-url", markets_db, "--limit", "1", "--verbose"]) == 0
    out = capsys.readouterr().out
    state = out[out.index("\nstate\n") :]
    assert "armed=false, by=test, reason=x, ts=" in state, state
    assert len(ISO_AGO.findall(state)) == 2 and re.search(r"ts=\S+Z \(1[2-9] s ago\)", state), state
    assert not re.search(r"\d{9,}\.\d", state), state  # no raw epoch number left
    assert "token " in out  # the verbose line still gives the full token id


def test_times_are_iso_8601_utc_with_their_age() -> None:
    now = datetime(2026, 12, 5, 5, 10, 15, tzinfo=UTC)
    assert when(datetime(2026, 12, 5, 5, 10, 3, tzinfo=UTC), now) == "2026-12-05T05:10:03Z (12 s ago)"
    assert when(datetime(2026, 12, 5, 4, 0, 0, tzinfo=UTC), now) == "2026-12-05T04:00:00Z (70 min ago)"
    state: dict[str, StateEntry] = {
        "armed": {
            "value": {"armed": True, "by": "telegram:1", "ts": now.timestamp() - 185},
            "updated_at": now.isoformat(),
        },
        "retention.thinned.book_snapshots": {
            "value": {"before_ns": int((now.timestamp() - 3 * 86_400) * 1e9), "every_minutes": 5},
            "updated_at": "2026-12-05T05:10:15+00:00",
        },
        "feed.watch": {"value": {"markets": ["a", "b"], "events": []}, "updated_at": "2026-12-05T05:10:15+00:00"},
    }
    lines = render_state(state, now)
    assert lines[1] == (
        "  armed                             armed=true, by=telegram:1, ts=2026-12-05T05:07:10Z (3 min ago); "
        "written 2026-12-05T05:10:15Z (0 s ago)"
    )
    assert "before_ns=2026-12-02T05:10:15Z (3.0 d ago), every_minutes=5" in lines[2]
    assert "markets=a, b, events=none" in lines[3]
