"""`polybot run-service --config FILE` as a subprocess: starts against the local doubles (market
websocket, Gamma, CLOB; paper relayer; SQLite), ingests, and stops cleanly on SIGTERM — exit 0,
writer flushed, and no "Task was destroyed but it is pending" / "never awaited" in stderr.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.cli.main import main
from core.sim.demo_data import DEMO_RECORDING
from core.sim.mock_clob import MockClobServer
from core.sim.mock_gamma import MockGammaServer
from core.sim.mock_ws import MockMarketServer
from tests.conftest import REPO_ROOT

T = TypeVar("T")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
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


def read_until(proc: subprocess.Popen[str], needle: str, timeout_s: float) -> str:
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout_s
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"no {needle!r} within {timeout_s}s; stderr so far:\n{seen}"
        ready, _, _ = select.select([proc.stderr], [], [], min(left, 0.5))
        if ready:
            line = proc.stderr.readline()
            seen += line
    return seen


def test_run_service_stops_cleanly_on_sigterm(doubles: Doubles, tmp_path: Path) -> None:
    db_path = tmp_path / "service.db"
    assert main(["refresh-markets", doubles.gamma.url, "--db-url", f"sqlite:///{db_path}", "--migrate"]) == 0
    config = tmp_path / "service.toml"
    write_config(config, doubles, db_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    env["PYTHONWARNINGS"] = "default"  # RuntimeWarning "coroutine ... was never awaited" must show
    proc = subprocess.Popen(
        ["uv", "run", "--no-sync", "polybot", "run-service", "--config", str(config)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        early = read_until(proc, "polybot: running in paper mode, DISARMED", START_TIMEOUT_S)
        assert "running without the bot" in early  # no token: Telegram is optional and says so once
        deadline = time.monotonic() + 10
        while doubles.ws.frames_sent < 50:
            assert time.monotonic() < deadline, "the mock feed sent nothing to the service"
            time.sleep(0.1)
        time.sleep(1.0)  # let the feed, the strategies and the writer run for a moment
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    stderr = early + rest
    assert proc.returncode == 0, stderr
    assert "polybot: stopped cleanly" in stderr
    assert stderr.count("running without the bot") == 1
    for bad in BAD_SIGNS:
        assert bad not in stderr, f"{bad!r} in stderr:\n{stderr}"
    # the writer was flushed before exit: the books the feed delivered are in the database
    with sqlite3.connect(db_path) as conn:
        snapshots = conn.execute("select count(*) from book_snapshots").fetchone()[0]
        lifecycle = [r[0] for r in conn.execute("select message from alerts where kind = 'service' order by id")]
    assert snapshots >= 4
    assert lifecycle[0].startswith("Polybot started in paper mode") and lifecycle[-1] == "Polybot stopping"
