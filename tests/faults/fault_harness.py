"""A real Service wired to the local exchange doubles over real sockets, for fault scenarios.

``running_service`` starts the market-websocket double (generated stream or the demo recording),
optionally the Gamma and CLOB doubles (markets are discovered into the database first), and a
real :class:`core.service.Service` with the Telegram bot on the in-process Bot API double. It
records:

- every frame the ingest pipeline received (``rig.frames``), so the rows the database must hold
  can be counted independently of the product's own counters;
- every Alert / AlertCleared published on the service's bus (``rig.events``);
- every Bot API call (``rig.api.calls``).

Every wait polls a condition under a generous ceiling (``wait_for``, ``WAIT_S``) and returns as
soon as it holds: fast on an idle machine, still passing on a loaded one; a scenario that hangs
fails with what it waited for. Faults that would otherwise race the clock are held open by the
test until it has seen their effect (``TapMarketServer.resume``, ``TapClobServer.hold_settlements``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot import alert_titles
from bot.app import BotParts
from bot.fake_api import FakeBotApi
from bot.offline import OfflineRunner
from core.events import Alert, AlertCleared
from core.feed.pipeline import IngestPipeline
from core.service import Service
from core.sim.demo_data import DEMO_RECORDING, GAMMA_FIXTURE
from core.sim.mock_clob import MockClobServer
from core.sim.mock_gamma import MockGammaServer
from core.sim.mock_ws import MockMarketServer
from core.types import Mode
from polybot.sandbox import DEMO_CONFIG as DEMO_CONFIG  # the fault and end-to-end tests name these from here
from polybot.sandbox import (
    OFFLINE_BOT_TOKEN,
    THROWAWAY_KEY,
    Exchange,
    Sandbox,
    SandboxOptions,
    Values,
    chat_settings,
    discover_markets,
    exchange_settings,
    load_sandbox_settings,
    mode_settings,
    offline_service,
)
from polybot.updates import Updates as Updates
from tests.faults.tcp_proxy import TcpProxy as TcpProxy

TEST_PRIVATE_KEY = THROWAWAY_KEY  # only the local CLOB double ever sees it
BOT_TOKEN = OFFLINE_BOT_TOKEN
TRADER = 1001
VIEWER = 1002
BINARY = "demo-btc-above-150k-2026"
EVENT_MEMBER = "demo-cup-2026-aurora"

# The ceiling of a wait for something that must happen (CI machines run at load 4-5 on 2 cores).
WAIT_S = 30.0

RESULTS: dict[str, FaultRecord] = {}


@dataclass
class FaultRecord:
    """One row of the summary table (filled by the scenario, outcome set by the conftest hook)."""

    test: str
    backend: str = ""
    scenario: str = ""
    outcome: str = "ok"
    orders_placed: int | None = None  # orders that exist at the venue (double) / paper relayer
    orders_expected: int | None = None
    posts: int | None = None  # POST /order requests the CLOB double received
    rows_expected: int | None = None
    rows_stored: int | None = None
    alerts: str = ""
    counters: dict[str, Any] = field(default_factory=dict)
    bug: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TapMarketServer(MockMarketServer):
    """The market double, counting every frame it actually wrote to a socket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_texts = 0
        self.sent_market_frames = 0

    async def _write(self, client: Any) -> None:
        queue, ws = client.queue, client.ws
        from websockets.exceptions import ConnectionClosed

        while True:
            text = await queue.get()
            if not self._resumed.is_set():
                await self._resumed.wait()
            try:
                await ws.send(text)
            except ConnectionClosed:
                return
            self.frames_sent += 1
            self.sent_texts += 1
            if text != "PONG":
                self.sent_market_frames += 1

    def resume(self) -> None:
        """End a :meth:`stall` now (the test saw what the stall was for; no timer to race)."""
        for handle in self._resume_handles:
            handle.cancel()
        self._resume_handles.clear()
        self._stall_until = 0.0
        self._resumed.set()


class TapClobServer(MockClobServer):
    """The CLOB double; a test can hold trade settlement (MATCHED, then nothing) until it has
    done what must happen in between, then release it (MINED/CONFIRMED or FAILED follow)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settle_gate = asyncio.Event()
        self._settle_gate.set()

    def hold_settlements(self) -> None:
        self._settle_gate.clear()

    def release_settlements(self) -> None:
        self._settle_gate.set()

    async def _settle(self, trade: Any) -> None:
        await self._settle_gate.wait()
        await super()._settle(trade)


def expected_feed_rows(frames: Iterable[str], assets: set[str]) -> dict[str, int]:
    """Rows the feed tables must hold for these received frames, counted from the raw JSON."""
    out = {"book_snapshots": 0, "book_deltas": 0, "trades": 0}
    for text in frames:
        try:
            data = json.loads(text)
        except ValueError:
            continue
        for ev in data if isinstance(data, list) else [data]:
            if not isinstance(ev, dict):
                continue
            kind = ev.get("event_type")
            if kind == "book" and ev.get("asset_id") in assets:
                out["book_snapshots"] += 1
            elif kind == "price_change":
                out["book_deltas"] += sum(
                    1 for c in ev.get("price_changes") or () if isinstance(c, dict) and c.get("asset_id") in assets
                )
            elif kind == "last_trade_price" and ev.get("asset_id") in assets:
                out["trades"] += 1
    return out


async def count_rows(db_url: str, tables: Iterable[str]) -> dict[str, int]:
    from sqlalchemy import text

    from core.store.db import create_engine

    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return {t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()) for t in tables}
    finally:
        await engine.dispose()


async def query(db_url: str, sql: str, **params: Any) -> list[Any]:
    from sqlalchemy import text

    from core.store.db import create_engine

    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def wait_for(pred: Callable[[], Any], within_s: float, what: str, *, step: float = 0.02) -> Any:
    """Poll ``pred`` (a plain or async callable) until it returns something true, which is returned."""
    deadline = time.monotonic() + within_s
    while True:
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {within_s}s waiting for {what}")
        await asyncio.sleep(step)


class Clock:
    """Wall clock plus an offset the test can move (the engine's and risk gate's clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Rig:
    sandbox: Sandbox
    ws: TapMarketServer
    db_url: str
    clock: Clock
    clob: TapClobServer | None = None
    gamma: MockGammaServer | None = None
    frames: list[str] = field(default_factory=list)
    events: list[Alert | AlertCleared] = field(default_factory=list)
    updates: Updates = field(default_factory=Updates)
    proxies: dict[str, TcpProxy] = field(default_factory=dict)

    @property
    def service(self) -> Service:
        return self.sandbox.service

    @property
    def api(self) -> FakeBotApi:
        return self.sandbox.api

    @property
    def bot(self) -> BotParts:
        return self.sandbox.bot

    @property
    def runner(self) -> OfflineRunner:
        return self.sandbox.runner

    @property
    def assets(self) -> set[str]:
        return set(self.service.processor.books)

    def alerts(self, kind: str) -> list[Alert]:
        return [e for e in self.events if isinstance(e, Alert) and e.kind == kind]

    def cleared(self, kind: str) -> list[AlertCleared]:
        """Clears that followed an alert of ``kind`` (the service also clears on a first connect)."""
        out: list[AlertCleared] = []
        active = False
        for e in self.events:
            if e.kind != kind:
                continue
            if isinstance(e, Alert):
                active = True
            elif active:
                out.append(e)
                active = False
        return out

    def alert_summary(self, *kinds: str) -> str:
        parts = []
        for kind in kinds:
            parts.append(f"{kind} x{len(self.alerts(kind))} / recovered x{len(self.cleared(kind))}")
        return "; ".join(parts)

    def telegram(self, needle: str, method: str = "sendMessage") -> list[str]:
        return [c.text or "" for c in self.api.calls if c.method == method and needle in (c.text or "")]

    def tg_alerts(self, kind: str) -> list[str]:
        """Alert messages pushed to Telegram for ``kind`` (not the recovery notes)."""
        return self.telegram(f"<b>{alert_titles.title(kind)}</b>\n")

    def tg_recovered(self, kind: str) -> list[str]:
        return self.telegram(f"<b>{alert_titles.recovered_title(kind)}</b> after ")

    def books_ok(self) -> bool:
        return self.sandbox.books_ok()

    async def wait_books_ok(self, within_s: float = WAIT_S) -> None:
        await wait_for(self.books_ok, within_s, "every book ok")

    async def frames_advance(self, n: int = 20, within_s: float = WAIT_S) -> None:
        """The service is alive: the pipeline keeps taking frames."""
        start = self.service.pipeline.stats.frames
        await wait_for(lambda: self.service.pipeline.stats.frames >= start + n, within_s, f"{n} more frames")

    async def telegram_feed(self, updates: list[dict[str, Any]]) -> list[Any]:
        return await self.runner.feed(updates)

    def posts(self) -> int:
        return len(self.clob.requests_to("POST", "/order")) if self.clob is not None else 0


# quick enough for the dead-socket scenarios, slack enough that a loaded machine's stalled event
# loop is not taken for a dead socket (which re-snapshots every book); short relayer/engine retries
RIG_SETTINGS: Values = {
    "metrics__enabled": "false",
    "strategies__dutch__enabled": "false",
    "strategies__spread__enabled": "false",
    "service__staleness_ms": "5000",
    "service__relayer_max_retries": "2",
    "service__relayer_retry_sleep_ms": "50",
    "service__engine_max_retries": "1",
    "service__engine_retry_sleep_ms": "100",
    "feed__ping_interval_s": "1",
    "feed__dead_after_s": "4",
    "feed__reconnect_initial_ms": "100",
    "feed__reconnect_max_ms": "1000",
    "feed__max_frame_bytes": str(256 * 1024),
    "clob__timeout_s": "1",
}


@contextlib.asynccontextmanager
async def running_service(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    feed: str = "generated",
    assets: int = 6,
    rate_hz: float = 200.0,
    live: bool = False,
    clob_kwargs: dict[str, Any] | None = None,
    ws_proxy: bool = False,
    user_proxy: bool = False,
    env: dict[str, Any] | None = None,
    bot_api: FakeBotApi | None = None,
) -> AsyncIterator[Rig]:
    """Start the doubles and a real Service (:func:`polybot.sandbox.offline_service`); stop
    everything afterwards (bounded).

    ``feed="generated"``: a generated stream of ``assets`` assets, subscribed by asset id, no Gamma
    or CLOB double; ``feed="demo"``: the demo recording, the binary market discovered from the Gamma
    double and listed on the CLOB double (``live`` trades there). ``ws_proxy``/``user_proxy`` put a
    :class:`TcpProxy` in front of the market/user channel; ``env``: more settings (``section__key``).
    """
    frames: list[str] = []
    original = IngestPipeline.on_frame

    def tee(self: IngestPipeline, text: str, recv_ns: int) -> Any:
        frames.append(text)
        return original(self, text, recv_ns)

    monkeypatch.setattr(IngestPipeline, "on_frame", tee)

    async with contextlib.AsyncExitStack() as stack:
        if feed == "generated":
            ws = TapMarketServer(assets=assets, seed=7, rate_hz=rate_hz)
        else:
            ws = TapMarketServer(recording=DEMO_RECORDING, rate_hz=rate_hz, loop_recording=True)
        await stack.enter_async_context(Exchange(ws))
        gamma = clob = None
        if feed != "generated":
            gamma, clob = await _exchange(db_url, stack, clob_kwargs or {})
        values: Values = {
            **RIG_SETTINGS,
            **exchange_settings(ws_url=ws.url, gamma_url=gamma.url if gamma else None, clob=clob),
            **chat_settings({TRADER: "admin", VIEWER: "viewer"}, [TRADER]),
            **mode_settings(Mode.LIVE if live else Mode.PAPER, clob, key=TEST_PRIVATE_KEY),
            "db__url": db_url,
        }
        if feed == "generated":
            values["feed__assets"] = ws.asset_ids
        else:
            values["feed__markets"] = [BINARY]
        proxies: dict[str, TcpProxy] = {}
        if ws_proxy:
            proxies["ws"] = await _proxy(stack, ws.port)
            values["feed__ws_url"] = proxies["ws"].url("ws", "/ws/market")
        if user_proxy and clob is not None:
            proxies["user"] = await _proxy(stack, clob.ws_port)
            values["feed__user_ws_url"] = proxies["user"].url("ws", "/ws/user")
        values.update(env or {})
        # a private copy of the demo config: no secrets.local.toml of this checkout is overlaid
        config_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="polybot-faults-"))
        loaded = load_sandbox_settings(values, Path(config_dir))
        clock = Clock()
        events: list[Alert | AlertCleared] = []

        def hear_alerts(service: Service) -> None:  # from the start: starting raises some
            service.bus.subscribe(Alert, events.append)
            service.bus.subscribe(AlertCleared, events.append)

        options = SandboxOptions(
            api=bot_api, clock=clock, staleness_tick_s=0.5, on_built=hear_alerts, stop_within_s=WAIT_S
        )
        sandbox = await stack.enter_async_context(offline_service(loaded, options))
        yield Rig(sandbox, ws, db_url, clock, clob, gamma, frames, events, proxies=proxies)


async def _proxy(stack: contextlib.AsyncExitStack, port: int) -> TcpProxy:
    proxy = TcpProxy(port)
    await proxy.start()
    stack.push_async_callback(proxy.stop)
    return proxy


async def _exchange(
    db_url: str, stack: contextlib.AsyncExitStack, clob_kwargs: dict[str, Any]
) -> tuple[MockGammaServer, TapClobServer]:
    """Gamma and CLOB doubles (stopped with ``stack``); the database discovers the markets (migrated first)."""
    gamma = MockGammaServer(markets=GAMMA_FIXTURE)
    clob = TapClobServer(**{"confirm_delay_s": 0.2, **clob_kwargs})
    await stack.enter_async_context(Exchange(gamma, clob))
    await discover_markets(db_url, gamma.url, clob)
    return gamma, clob


def binary_yes(rig: Rig) -> str:
    market = rig.service.registry.resolve(BINARY)
    return str(market.token("Yes").token_id)


async def arm(rig: Rig) -> None:
    """Books ok, then armed. Live arming runs an online preflight against the doubles, whose probes
    use the rig's short CLOB timeout: on a loaded machine one may time out, so a refusal by the
    preflight is retried (bounded); any other refusal fails the test at once."""
    await rig.wait_books_ok()
    deadline = time.monotonic() + WAIT_S
    while True:
        result = await rig.service.control.arm("test")
        if result.ok:
            return
        if result.reason_code != "preflight" or time.monotonic() >= deadline:
            pytest.fail(f"could not arm: {result.message}")
        await asyncio.sleep(0.5)


async def prepare(rig: Rig, price: str, size: str = "10", outcome: str = "Yes", side: str = "BUY") -> Any:
    from core.types import Side

    return await rig.service.control.prepare_order(
        BINARY, outcome, Side(side), Decimal(price), Decimal(size), user="telegram:1001"
    )


async def execute(rig: Rig, ticket: Any) -> Any:
    """What a tap on Confirm does with the pending ticket."""
    return await rig.service.control.execute_order(ticket, user="1001", confirmed=True)


async def place_via_control(rig: Rig, price: str, size: str = "10", outcome: str = "Yes", side: str = "BUY") -> Any:
    """The path a confirmed Telegram /order takes: prepare, then execute with confirmed=True."""
    return await execute(rig, await prepare(rig, price, size, outcome, side))


async def order_rows(db_url: str) -> list[Any]:
    return await query(db_url, "SELECT client_order_id, status, filled_size, venue_order_id FROM orders ORDER BY id")
