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
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.fake_api import FakeBotApi
from core.events import Alert, AlertCleared
from core.feed.pipeline import IngestPipeline
from core.sim.demo_data import DEMO_RECORDING, GAMMA_FIXTURE
from core.sim.mock_clob import MockClobServer
from core.sim.mock_ws import MockMarketServer
from core.types import BookStatus

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEMO_CONFIG = REPO_ROOT / "config" / "demo.toml"
# A throwaway key used only against the local CLOB double (never a funded wallet).
TEST_PRIVATE_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
BOT_TOKEN = "123456:OFFLINE_FAULT_SUITE_TOKEN_NOT_REAL_"  # the shape of a real token, not one
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


class Updates:
    """Telegram Bot API ``Update`` objects for scripted chats."""

    def __init__(self) -> None:
        self.n = 0

    @staticmethod
    def user(uid: int) -> dict[str, Any]:
        return {"id": uid, "is_bot": False, "first_name": f"user{uid}"}

    def msg(
        self, uid: int, text: str, *, chat_type: str = "private", chat_id: int | None = None, edited: bool = False
    ) -> dict[str, Any]:
        self.n += 1
        entities = []
        if text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        chat: dict[str, Any] = {"id": chat_id if chat_id is not None else uid, "type": chat_type}
        if chat_type != "private":
            chat["title"] = "a group"
        message: dict[str, Any] = {
            "message_id": self.n,
            "date": int(time.time()),
            "chat": chat,
            "from": self.user(uid),
            "text": text,
            "entities": entities,
        }
        if edited:
            message["edit_date"] = int(time.time())
        return {"update_id": self.n, "edited_message" if edited else "message": message}

    def tap(self, uid: int, data: str, *, chat_id: int | None = None) -> dict[str, Any]:
        self.n += 1
        return {
            "update_id": self.n,
            "callback_query": {
                "id": str(self.n),
                "from": self.user(uid),
                "chat_instance": "faults",
                "data": data,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": chat_id if chat_id is not None else uid, "type": "private"},
                    "text": "card",
                },
            },
        }

    def inline(self, uid: int, query: str) -> dict[str, Any]:
        self.n += 1
        return {
            "update_id": self.n,
            "inline_query": {"id": str(self.n), "from": self.user(uid), "query": query, "offset": ""},
        }


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
    service: Any
    api: FakeBotApi
    ws: TapMarketServer
    db_url: str
    clock: Clock
    clob: Any = None
    gamma: Any = None
    frames: list[str] = field(default_factory=list)
    events: list[Alert | AlertCleared] = field(default_factory=list)
    updates: Updates = field(default_factory=Updates)
    runner: Any = None
    proxies: dict[str, TcpProxy] = field(default_factory=dict)

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
        return [t for t in self.telegram(f"<b>{kind}</b>:") if "recovered" not in t]

    def tg_recovered(self, kind: str) -> list[str]:
        return self.telegram(f"<b>recovered</b>: {kind} ")

    def books_ok(self) -> bool:
        books = self.service.processor.books.values()
        return bool(books) and all(b.status is BookStatus.OK for b in books)

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


class TcpProxy:
    """A loopback TCP proxy the test can cut: ``cut()`` resets every connection, ``block(s)``
    refuses new ones for ``s`` seconds (accepted, then closed at once)."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self.refused = 0
        self._blocked_until = 0.0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def cut(self) -> int:
        pairs = list(self._pairs)
        for a, b in pairs:
            for w in (a, b):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self._pairs.clear()
        return len(pairs)

    def block(self, seconds: float) -> None:
        self._blocked_until = time.monotonic() + seconds

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._blocked_until:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst, pair))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._pairs.discard(pair)
            for w in pair:
                with contextlib.suppress(Exception):
                    w.transport.abort()


def _env(**values: Any) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        name = "POLYBOT_" + key.upper()
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


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
    start: bool = True,
) -> AsyncIterator[Rig]:
    """Start the doubles and a real Service; stop everything afterwards (bounded)."""
    from bot.app import start_telegram
    from bot.offline import ManualClock, OfflineRunner
    from core.service import Service, ServiceOptions
    from core.settings import load_settings

    frames: list[str] = []
    original = IngestPipeline.on_frame

    def tee(self: IngestPipeline, text: str, recv_ns: int) -> Any:
        frames.append(text)
        return original(self, text, recv_ns)

    monkeypatch.setattr(IngestPipeline, "on_frame", tee)

    stack = contextlib.AsyncExitStack()
    await stack.__aenter__()
    try:
        values: dict[str, Any] = {
            "db__url": db_url,
            "metrics__enabled": "false",
            "strategies__dutch__enabled": "false",
            "strategies__spread__enabled": "false",
            "telegram__enabled": "true",
            "telegram__token": BOT_TOKEN,
            "telegram__users": [{"id": TRADER, "role": "admin"}, {"id": VIEWER, "role": "viewer"}],
            "telegram__alert_chats": [TRADER],
            "service__mode": "paper",
            "service__staleness_ms": "5000",
            "service__relayer_max_retries": "2",
            "service__relayer_retry_sleep_ms": "50",
            "service__engine_max_retries": "1",
            "service__engine_retry_sleep_ms": "100",
            # quick enough for the dead-socket scenarios, slack enough that a loaded machine's
            # stalled event loop is not taken for a dead socket (which re-snapshots every book)
            "feed__ping_interval_s": "1",
            "feed__dead_after_s": "4",
            "feed__reconnect_initial_ms": "100",
            "feed__reconnect_max_ms": "1000",
            "feed__max_frame_bytes": str(256 * 1024),
            "clob__timeout_s": "1",
        }
        clob = gamma = None
        if feed == "generated":
            ws = TapMarketServer(assets=assets, seed=7, rate_hz=rate_hz)
        else:
            ws = TapMarketServer(recording=DEMO_RECORDING, rate_hz=rate_hz, loop_recording=True)
        await ws.start()
        stack.push_async_callback(ws.stop)
        values["feed__ws_url"] = ws.url
        proxies: dict[str, TcpProxy] = {}
        if ws_proxy:
            proxies["ws"] = TcpProxy(ws.port)
            await proxies["ws"].start()
            stack.push_async_callback(proxies["ws"].stop)
            values["feed__ws_url"] = proxies["ws"].url("ws", "/ws/market")
        if feed == "generated":
            values["feed__assets"] = ws.asset_ids
        else:
            values["feed__markets"] = [BINARY]
            gamma, clob = await _exchange(db_url, stack, clob_kwargs or {})
            values["gamma__url"] = gamma.url
            values["clob__url"] = clob.url
            values["feed__user_ws_url"] = clob.ws_url
            if user_proxy:
                proxies["user"] = TcpProxy(clob.ws_port)
                await proxies["user"].start()
                stack.push_async_callback(proxies["user"].stop)
                values["feed__user_ws_url"] = proxies["user"].url("ws", "/ws/user")
        if live:
            from eth_account import Account

            creds = clob.creds_for(Account.from_key(TEST_PRIVATE_KEY).address)
            values.update(
                {
                    "service__mode": "live",
                    "relayer__type": "real",
                    "relayer__dry_run": "false",
                    "relayer__private_key": TEST_PRIVATE_KEY,
                    "relayer__api_key": creds.api_key,
                    "relayer__api_secret": creds.secret,
                    "relayer__api_passphrase": creds.passphrase,
                }
            )
        values.update(env or {})
        # a private copy of the demo config: no secrets.local.toml of this checkout is overlaid
        config_dir = Path(tempfile.mkdtemp(prefix="polybot-faults-"))
        stack.callback(shutil.rmtree, config_dir, True)
        config = config_dir / "service.toml"
        config.write_text(DEMO_CONFIG.read_text())
        loaded = load_settings(config, env=_env(**values))
        api = bot_api or FakeBotApi()
        clock = Clock()
        service = Service(
            loaded,
            ServiceOptions(
                migrate=True, bot_request=api, with_bot=True, staleness_tick_s=0.5, clock=clock, frontend=start_telegram
            ),
        )
        rig = Rig(
            service=service,
            api=api,
            ws=ws,
            db_url=db_url,
            clock=clock,
            clob=clob,
            gamma=gamma,
            frames=frames,
            proxies=proxies,
        )
        service.bus.subscribe(Alert, rig.events.append)
        service.bus.subscribe(AlertCleared, rig.events.append)

        async def stop_service() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service.stop(), WAIT_S)

        if start:
            await service.start()
            stack.push_async_callback(stop_service)
            rig.runner = OfflineRunner(service.bot, api, ManualClock())
            service.bot.confirmations._clock = rig.runner.clock
        yield rig
    finally:
        await stack.aclose()


async def _exchange(db_url: str, stack: contextlib.AsyncExitStack, clob_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """Gamma and CLOB doubles; the database discovers the markets (migrated first)."""
    from core.markets import GammaClient, load_markets, refresh_markets
    from core.sim.mock_clob_state import MockMarket
    from core.sim.mock_gamma import MockGammaServer
    from core.store.db import create_engine, session_factory
    from core.store.migrate import upgrade_engine

    gamma = MockGammaServer(markets=GAMMA_FIXTURE)
    await gamma.start()
    stack.push_async_callback(gamma.stop)
    clob = TapClobServer(**{"confirm_delay_s": 0.2, **clob_kwargs})
    await clob.start()
    stack.push_async_callback(clob.stop)
    engine = create_engine(db_url)
    try:
        await upgrade_engine(engine)
        sessions = session_factory(engine)
        async with GammaClient(gamma.url) as client:
            await refresh_markets(sessions, client)
        for info in await load_markets(sessions):
            clob.add_market(
                MockMarket(
                    condition_id=info.condition_id,
                    tokens=tuple((t.token_id, t.outcome) for t in info.tokens),
                    tick_size=info.tick_size,
                    min_order_size=info.min_order_size,
                    neg_risk=info.neg_risk,
                    fee_rate=info.fee_rate,
                    question=info.question,
                )
            )
    finally:
        await engine.dispose()
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
