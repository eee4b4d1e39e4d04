"""`polybot run-service --config FILE` as a subprocess: starts against the local doubles (market
websocket, Gamma, CLOB; paper relayer; SQLite), ingests, and stops cleanly on SIGTERM — exit 0,
writer flushed, and no "Task was destroyed but it is pending" / "never awaited" in stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.sim.demo_data import DEMO_RECORDING
from core.sim.mock_clob import MockClobServer
from core.sim.mock_gamma import MockGammaServer
from core.sim.mock_ws import MockMarketServer
from polybot.cli.main import main
from tests.conftest import REPO_ROOT
from tests.procs import Lines, console_script, group_members, spawn, stop_group, wait_until

T = TypeVar("T")
START_TIMEOUT_S = 90.0  # a ceiling: each wait returns as soon as its condition holds
STOP_TIMEOUT_S = 30.0
BAD_SIGNS = ("Task was destroyed but it is pending", "never awaited", "Traceback", "Unclosed", "Exception ignored")


class Doubles:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gamma = MockGammaServer()
        self.clob = MockClobServer()
        self.ws = MockMarketServer(recording=DEMO_RECORDING, rate_hz=200.0, loop_recording=True)
        for server in (self.gamma, self.clob, self.ws):
            self.call(server.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def close(self) -> None:
        for server in (self.ws, self.clob, self.gamma):
            self.call(server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def doubles() -> Iterator[Doubles]:
    d = Doubles()
    try:
        yield d
    finally:
        d.close()


def write_config(path: Path, d: Doubles, db_path: Path) -> None:
    path.write_text(
        f"""
[service]
mode = "paper"
staleness_ms = 5000
health_ping_minutes = 0

[feed]
ws_url = "{d.ws.url}"
markets = ["demo-btc-above-150k-2026", "demo-cup-2026-aurora"]
ping_interval_s = 1
dead_after_s = 5

[gamma]
url = "{d.gamma.url}"

[clob]
url = "{d.clob.url}"

[relayer]
type = "fake"

[strategies.dutch]
enabled = true
markets = ["demo-cup-2026-aurora"]

[metrics]
enabled = true
host = "127.0.0.1"
port = 0

[db]
url = "sqlite:///{db_path}"

[logging]
level = "INFO"
"""
    )


def start_service(config: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], Lines]:
    """``polybot run-service`` from the venv's console script, leading its own process group (nothing
    outlives the test), and its stderr read line by line."""
    proc = spawn(
        [console_script("polybot"), "run-service", "--config", str(config)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, Lines(proc, proc.stderr)


def _snapshots_stored(db_path: Path) -> int:
    """Book snapshots in the service's database so far (0 while it is busy or not created)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)) as conn:
            return int(conn.execute("select count(*) from book_snapshots").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_run_service_stops_cleanly_on_sigterm(doubles: Doubles, tmp_path: Path) -> None:
    db_path = tmp_path / "service.db"
    assert main(["refresh-markets", doubles.gamma.url, "--db-url", f"sqlite:///{db_path}", "--migrate"]) == 0
    config = tmp_path / "service.toml"
    write_config(config, doubles, db_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env["PYTHONWARNINGS"] = "default"  # RuntimeWarning "coroutine ... was never awaited" must show
    proc, stderr_lines = start_service(config, env)
    try:
        stderr_lines.wait_for("polybot: running in paper mode, DISARMED", START_TIMEOUT_S)
        # the feed reached the service and its books reached the database: it is really running
        wait_until(lambda: _snapshots_stored(db_path) >= 4, START_TIMEOUT_S, "the first books in the database")
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT_S)
        stopped_in_time = proc.poll() is not None
    finally:
        rc = stop_group(proc)  # SIGTERM, then SIGKILL, to the whole group; also when the test failed
        stderr = stderr_lines.close()
    assert not group_members(proc.pid), "a process of the service's group survived"
    assert stopped_in_time, f"no exit within {STOP_TIMEOUT_S:g}s of SIGTERM:\n{stderr}"
    assert rc == 0, stderr
    assert "running without the bot" in stderr  # no token: Telegram is optional and says so once
    assert "polybot: stopped cleanly" in stderr
    assert stderr.count("running without the bot") == 1
    for bad in BAD_SIGNS:
        assert bad not in stderr, f"{bad!r} in stderr:\n{stderr}"
    with sqlite3.connect(db_path) as conn:
        snapshots = conn.execute("select count(*) from book_snapshots").fetchone()[0]
        lifecycle = [r[0] for r in conn.execute("select message from alerts where kind = 'service' order by id")]
    assert snapshots >= 4
    # the writer was flushed on the way out: the stop alert, written during the shutdown, is stored
    assert lifecycle[0].startswith("Polybot started in paper mode") and lifecycle[-1] == "Polybot stopping"
