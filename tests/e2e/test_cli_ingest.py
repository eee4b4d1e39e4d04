"""``polybot ingest-ws`` end to end: a real subprocess against the mock market channel, into SQLite."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sim.mock_ws import MockMarketServer
from tests.procs import Lines, arun, console_script, run, running

POLYBOT = console_script("polybot")


async def _run(*args: str, limit_s: float = 60.0) -> tuple[int, str, str]:
    done = await arun([POLYBOT, *args], timeout_s=limit_s, text=True)
    return done.returncode, done.stdout, done.stderr


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


# --------------------------------------------------------------------------- first frames
# An asset the feed does not serve gets no frame at all: a run bounded by --max-messages used to
# wait forever in silence. These run the real `polybot mock-ws` and `polybot ingest-ws` processes,
# each in its own process group, stopped as a whole at teardown.


@pytest.fixture
def mock_ws() -> Iterator[tuple[str, list[str]]]:
    """``polybot mock-ws`` on a free port: (URL, the asset ids it serves)."""
    argv = [POLYBOT, "mock-ws", "--port", "0", "--assets", "2", "--rate", "20"]
    with running(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True) as proc:
        url, assets_line = Lines(proc, proc.stdout).wait_lines(2, 30)
        assets = assets_line.split()[1:]
        assert url.startswith("ws://") and len(assets) == 2, (url, assets)
        yield url, assets


def _ingest(*args: str) -> tuple[int, str, str]:
    done = run([POLYBOT, "ingest-ws", *args], timeout_s=60, text=True)
    return done.returncode, done.stdout, done.stderr


def test_ingest_ws_reports_an_asset_the_feed_does_not_serve(tmp_path: Path, mock_ws: tuple[str, list[str]]) -> None:
    url, _ = mock_ws
    db = f"sqlite:///{tmp_path / 'none.db'}"
    started = time.monotonic()
    code, out, err = _ingest(
        url, "abc", "--max-messages", "3", "--first-frame-timeout", "2", "--db-url", db, "--migrate"
    )
    assert code == 1, (out, err)
    assert err.strip().splitlines()[-1] == f"polybot ingest-ws: no frames for abc after 2s from {url}"
    assert time.monotonic() - started < 30


def test_ingest_ws_warns_about_the_silent_asset_and_ingests_the_others(
    tmp_path: Path, mock_ws: tuple[str, list[str]]
) -> None:
    url, assets = mock_ws
    db = f"sqlite:///{tmp_path / 'some.db'}"
    code, out, err = _ingest(
        url, assets[0], "abc", "--duration", "3", "--first-frame-timeout", "1", "--db-url", db, "--migrate", "--json"
    )
    assert code == 0, err
    assert "polybot: warning: no frames for abc after 1s" in err
    summary = json.loads(out)
    assert summary["assets_without_frames"] == ["abc"]
    assert summary["books"][assets[0]]["status"] == "ok"


def test_ingest_ws_shows_the_wait_on_a_terminal(tmp_path: Path, mock_ws: tuple[str, list[str]]) -> None:
    url, _ = mock_ws
    db = f"sqlite:///{tmp_path / 'tty.db'}"
    master, slave = pty.openpty()
    try:
        with running(
            [POLYBOT, "ingest-ws", url, "abc", "--first-frame-timeout", "2", "--db-url", db, "--migrate"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
        ) as proc:  # fmt: skip
            os.close(slave)
            slave = -1
            seen = b""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:  # the process closed its end
                        break
                    if not chunk:
                        break
                    seen += chunk
                elif proc.poll() is not None:
                    break
            assert proc.wait(30) == 1
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = seen.decode(errors="replace")
    assert "waiting for the first frames of 1 asset(s)" in text, text
    assert "no frames for abc after 2s" in text, text
