"""What the bus tests share: the NATS server, unique names per test, the doubles, the processes.

- :func:`require_nats`: the server at ``POLYBOT_TEST_NATS_URL`` (default 127.0.0.1:4222); the test
  skips with the reason when none answers, and fails instead when ``POLYBOT_REQUIRE_NATS`` is set.
- :class:`BusNames`: a subject prefix, stream and lease bucket of the test's own (so reruns and
  xdist workers never share subjects), deleted at the end.
- :class:`Doubles`: the market websocket, Gamma and CLOB doubles on a loop thread of their own.
- :func:`start_worker`: ``polybot feed-worker`` from the venv's console script, in its own process
  group, its stderr read line by line.
- :class:`Reference`: the single process: a feed processor on its own websocket to the same double.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from core.feed.numbers import decimal_to_units
from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.ws import MarketFeed
from core.sim.demo_data import DEMO_RECORDING
from core.sim.mock_clob import MockClobServer
from core.sim.mock_gamma import MockGammaServer
from core.sim.mock_ws import MockMarketServer
from tests.conftest import REPO_ROOT
from tests.procs import Lines, console_script, spawn

T = TypeVar("T")
NATS_URL = os.environ.get("POLYBOT_TEST_NATS_URL", "nats://127.0.0.1:4222")
DEAD_AFTER_S = 200
"""Sockets stay up through :meth:`Doubles.freeze` (which silences PONGs too)."""
FREEZE_S = 150.0


def require_nats() -> str:
    parts = urlsplit(NATS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=2) as conn:
            conn.settimeout(2)
            answered = conn.recv(4) == b"INFO"
    except OSError as exc:
        answered, why = False, f"{type(exc).__name__}: {exc}"
    else:
        why = "it does not speak NATS"
    if not answered:
        reason = f"no NATS server at {NATS_URL} ({why}); start one with `nats-server -js -a 127.0.0.1`"
        if os.environ.get("POLYBOT_REQUIRE_NATS"):
            pytest.fail(f"POLYBOT_REQUIRE_NATS is set but {reason}")
        pytest.skip(reason)
    return NATS_URL


class BusNames:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.prefix = f"t{tag}"
        self.stream = f"T{tag}"
        self.bucket = f"tl{tag}"

    async def cleanup(self) -> None:
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            for delete in (js.delete_stream(self.stream), js.delete_key_value(self.bucket)):
                try:
                    await delete
                except Exception:  # not created (the test failed early)
                    pass
        finally:
            await nc.close()


class Doubles:
    def __init__(self, *, rate_hz: float, loop_recording: bool) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gamma = MockGammaServer()
        self.clob = MockClobServer()
        self.ws = MockMarketServer(recording=DEMO_RECORDING, rate_hz=rate_hz, loop_recording=loop_recording)
        for server in (self.gamma, self.clob, self.ws):
            self.call(server.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def freeze(self, seconds: float = FREEZE_S) -> None:
        """Stop the market (no frame for ``seconds``, sockets open): the books can settle."""
        self.on_loop(lambda: self.ws.stall(seconds))

    def on_loop(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()

        return self.call(run())

    def server_books(self, assets: list[str]) -> dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
        """The double's own books (the truth), best first, in 10^-6 units."""

        def read() -> dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
            out = {}
            for a in assets:
                b = self.ws.book(a)
                bids = sorted(((_u(p), _u(s)) for p, s in b.bids.values()), reverse=True)
                asks = sorted((_u(p), _u(s)) for p, s in b.asks.values())
                out[a] = (bids, asks)
            return out

        result: dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = self.on_loop(read)
        return result

    def close(self) -> None:
        for server in (self.ws, self.clob, self.gamma):
            self.call(server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _u(text: str) -> int:
    return decimal_to_units(Decimal(text))


def integrity(db_path: Path) -> str:
    """SQLite's own check of a database file ("ok" when sound)."""
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return str(conn.execute("pragma quick_check").fetchone()[0])


def recording_assets() -> list[str]:
    """The asset ids of the demo recording's ``book`` events."""
    out: dict[str, None] = {}
    for line in DEMO_RECORDING.read_text().splitlines():
        try:
            frame = json.loads(json.loads(line)["frame"])
        except (ValueError, KeyError):
            continue
        for ev in frame if isinstance(frame, list) else [frame]:
            if isinstance(ev, dict) and ev.get("event_type") == "book":
                out[ev["asset_id"]] = None
    return list(out)


def recording_markets() -> list[str]:
    """The condition ids the demo recording streams."""
    out: dict[str, None] = {}
    for line in DEMO_RECORDING.read_text().splitlines():
        try:
            frame = json.loads(json.loads(line)["frame"])
        except (ValueError, KeyError):
            continue
        for ev in frame if isinstance(frame, list) else [frame]:
            if isinstance(ev, dict) and ev.get("market"):
                out[ev["market"]] = None
    return list(out)


def write_config(
    path: Path, d: Doubles, db_path: Path, names: BusNames, markets: list[str], *, lease_ttl_s: float = 3.0
) -> None:
    quoted = ", ".join(f'"{m}"' for m in markets)
    path.write_text(
        f"""
[service]
mode = "paper"
staleness_ms = 60000
health_ping_minutes = 0

[feed]
ws_url = "{d.ws.url}"
markets = [{quoted}]
ping_interval_s = 5
dead_after_s = {DEAD_AFTER_S}
source = "bus"

[gamma]
url = "{d.gamma.url}"

[clob]
url = "{d.clob.url}"

[relayer]
type = "fake"

[db]
url = "sqlite:///{db_path}"

[bus]
url = "{NATS_URL}"
prefix = "{names.prefix}"
stream = "{names.stream}"
lease_bucket = "{names.bucket}"
lease_ttl_s = {lease_ttl_s}
max_age_s = 600
max_bytes = 67108864
request_timeout_s = 1

[logging]
level = "INFO"
"""
    )


def start_worker(config: Path, shard: str, name: str) -> tuple[subprocess.Popen[str], Lines]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBOT_")}
    proc = spawn(
        [console_script("polybot"), "feed-worker", "--config", str(config), "--shard", shard, "--name", name],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, Lines(proc, proc.stderr)


class Reference:
    """One process on the websocket, as ``feed.source = "ws"`` runs it: the books to match."""

    def __init__(self, ws_url: str, assets: list[str]) -> None:
        self.processor = FeedProcessor(known_assets=set(assets), burst_quiet_ms=LIVE_BURST_QUIET_MS)
        self.pipeline = IngestPipeline(self.processor, None)
        self.feed = MarketFeed(
            ws_url,
            assets,
            self.pipeline.on_frame,
            on_state=self.pipeline.on_connection_event,
            ping_interval_s=5,
            dead_after_s=DEAD_AFTER_S,
        )

    def books(self, assets: list[str]) -> dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
        return {a: (self.processor.books[a].bids_units(), self.processor.books[a].asks_units()) for a in assets}
