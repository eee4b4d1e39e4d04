"""``polybot sandbox``: the real service on local doubles of Polymarket and Telegram, driven from
a terminal chat.

One market universe: the Gamma double serves ``fixtures/gamma/markets.json``; the market
websocket double plays ``fixtures/recordings/demo_feed.jsonl`` (the same markets' tokens) in a
loop; the CLOB double lists the markets the service discovered from Gamma
(:func:`polybot.sandbox.discover_markets`) and its books follow the feed's
(:class:`polybot.sandbox.FeedBooks`); the chain double shares the CLOB double's ledger (merges,
redeems), as in ``polybot demo``. The Bot API double answers the bot in-process (the same
python-telegram-bot Application the service always runs, fed by
:class:`bot.offline.OfflineRunner`) and over HTTP on loopback for anything else that asks it
(``polybot preflight --config var/sandbox/service.toml`` in another terminal).

The configuration the service runs is written to ``VAR_DIR/service.toml`` with its throwaway
secrets in ``secrets.local.toml`` beside it, and loaded from there as ``run-service`` would.
The mode is configuration, as in the product: ``:mode live`` rewrites the file and starts the
service again over the same doubles and database (the service always starts disarmed).
Each run starts from an empty database. Nothing listens or connects past 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.fake_api import FakeBotApi
from polybot.sandbox import (
    OFFLINE_BOT_TOKEN,
    FeedBooks,
    SandboxOptions,
    Values,
    chat_settings,
    discover_markets,
    exchange_settings,
    fresh_sqlite,
    mode_settings,
    offline_service,
)
from polybot.terminal_chat import HELP, ChatView, Entry, Lines, next_line, parse
from polybot.updates import Updates

if TYPE_CHECKING:
    from core.settings import LoadedSettings
    from core.sim.mock_chain import MockChain
    from core.sim.mock_clob import MockClobServer
    from core.sim.mock_gamma import MockGammaServer
    from core.sim.mock_ws import MockMarketServer
    from core.types import Mode
    from polybot.bot_api_server import BotApiServer
    from polybot.sandbox import Sandbox

FEED_HZ = 50.0
"""The recording's own pace (a frame every 20 ms), looped."""
STALENESS_MS = 30_000
WARMUP_S = 30.0
"""At most this long for every book to be OK before the chat opens (it opens anyway, and /status says why)."""
FLUSH_S = 0.2
"""How often what the bot sends by itself (alerts, an expired card) is printed."""
ORDER_SIZE = 5

SERVICE_HEADER = """\
# Written by `polybot sandbox` for its local doubles (rewritten at every start and every :mode).
# Every URL below is a double inside the sandbox process on 127.0.0.1: nothing reaches the internet.
# The secrets (throwaway) are in secrets.local.toml beside this file, which the loader overlays.
# While the sandbox runs, try: uv run polybot preflight --config {config}
"""
SECRETS_HEADER = """\
# THROWAWAY secrets written by `polybot sandbox`: never use them, or this file, for real trading.
# relayer.private_key is the Ethereum documentation's example key (it holds nothing); it signs only
# for the sandbox's CLOB double, which issued the API credentials below for its address.
# telegram.token is a placeholder that only the sandbox's local Bot API double accepts.
"""


def throwaway_secrets(live: Values) -> Values:
    """The key and the API credentials out of live mode's settings."""
    return {k: v for k, v in live.items() if k == "relayer__private_key" or k.startswith("relayer__api_")}


@dataclass(frozen=True, slots=True)
class SandboxArgs:
    var_dir: Path
    mode: Mode
    user_id: int = 1001
    role: str = "admin"
    script: Path | None = None


@dataclass(frozen=True, slots=True)
class Doubles:
    gamma: MockGammaServer
    ws: MockMarketServer
    clob: MockClobServer
    chain: MockChain
    telegram: BotApiServer


@dataclass
class World:
    """The doubles and the database of one sandbox run; started once, the service restarts over it."""

    var_dir: Path
    api: FakeBotApi = field(default_factory=FakeBotApi)
    slugs: list[str] = field(default_factory=list)
    binary: str = ""
    """A binary market of the universe (the hint's and the README's example)."""
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _doubles: Doubles | None = None

    @property
    def doubles(self) -> Doubles:
        if self._doubles is None:
            raise RuntimeError("the sandbox's doubles are not started")
        return self._doubles

    @property
    def db_path(self) -> Path:
        return self.var_dir / "sandbox.db"

    @property
    def config_path(self) -> Path:
        return self.var_dir / "service.toml"

    async def start(self) -> None:
        from core.sim.demo_data import DEMO_RECORDING, GAMMA_FIXTURE, demo_synth_markets
        from core.sim.mock_chain import MockChain
        from core.sim.mock_clob import MockClobServer
        from core.sim.mock_gamma import MockGammaServer
        from core.sim.mock_ws import MockMarketServer
        from polybot.bot_api_server import BotApiServer
        from polybot.sandbox import Exchange

        fresh_sqlite(self.db_path)
        gamma = MockGammaServer(markets=GAMMA_FIXTURE)
        ws = MockMarketServer(recording=DEMO_RECORDING, rate_hz=FEED_HZ, loop_recording=True)
        clob = MockClobServer(demo=False)  # it lists the universe's markets, not its own two
        telegram = BotApiServer(self.api, token=OFFLINE_BOT_TOKEN)
        await self._stack.enter_async_context(Exchange(gamma, ws, clob, telegram))
        await discover_markets(f"sqlite:///{self.db_path}", gamma.url, clob)
        chain = MockChain.beside(clob, blocks_per_receipt_poll=1)  # after the listing: it knows the markets
        await chain.start()
        self._stack.push_async_callback(chain.close)
        books = FeedBooks(ws, clob)
        await books.start()
        self._stack.push_async_callback(books.stop)
        self._doubles = Doubles(gamma, ws, clob, chain, telegram)
        markets = demo_synth_markets()  # what the recording plays: the fixture's open binary markets
        self.slugs = [m.slug for m in markets]
        self.binary = next((m.slug for m in markets if not m.neg_risk), self.slugs[0])

    async def stop(self) -> None:
        await self._stack.aclose()

    def values(self, mode: Mode, user_id: int, role: str) -> Values:
        from core.types import Mode

        d = self.doubles
        return {
            **exchange_settings(ws_url=d.ws.url, gamma_url=d.gamma.url, clob=d.clob),
            "feed__markets": self.slugs,
            "db__url": f"sqlite:///{self.db_path}",
            "strategies__dutch__enabled": "false",  # nothing trades unless the person in the chat says so
            "strategies__spread__enabled": "false",
            "metrics__enabled": "false",
            "service__staleness_ms": str(STALENESS_MS),
            "service__health_ping_minutes": "0",
            "service__cancel_on_shutdown": "true",
            **chat_settings({user_id: role}, [user_id]),
            "telegram__base_url": d.telegram.url,
            **throwaway_secrets(mode_settings(Mode.LIVE, d.clob)),  # in every mode: the file is ready for live
            **mode_settings(mode, d.clob),
            **({} if mode is Mode.PAPER else {"chain__rpc_url": d.chain.url}),
        }

    def configure(self, mode: Mode, user_id: int, role: str) -> LoadedSettings:
        from polybot.settings_files import write_settings_files

        header = SERVICE_HEADER.format(config=self.config_path)
        return write_settings_files(
            self.values(mode, user_id, role), self.var_dir, header=header, secrets_header=SECRETS_HEADER
        )

    def where(self) -> list[str]:
        d = self.doubles
        return [
            f"market websocket  {d.ws.url}  (fixtures/recordings/demo_feed.jsonl, looped)",
            f"Gamma             {d.gamma.url}  (fixtures/gamma/markets.json)",
            f"CLOB              {d.clob.url}  (the same markets; its books follow the feed)",
            f"chain (JSON-RPC)  {d.chain.url}",
            f"Telegram Bot API  {d.telegram.url}  (@{self.api.username}, local double)",
        ]

    def venue_orders(self) -> int:
        clob = self.doubles.clob
        return len(clob.requests_to("POST", "/order")) + len(clob.requests_to("POST", "/orders"))


class Chat:
    """One service's chat: each line typed goes through the bot; returns on :mode, quit or end."""

    def __init__(self, sandbox: Sandbox, view: ChatView, user_id: int, updates: Updates) -> None:
        self.sandbox = sandbox
        self.view = view
        self.user_id = user_id
        self.updates = updates
        self.errors: list[str] = []

        async def record_error(update: object, context: Any) -> None:
            self.errors.append(f"{type(context.error).__name__}: {context.error}")

        sandbox.bot.app.add_error_handler(record_error)

    async def run(self, lines: Lines, stop: asyncio.Event, out: TextIO) -> Entry | None:
        printer = asyncio.create_task(self._print_loop(), name="sandbox-chat-printer")
        try:
            while (line := await next_line(lines, stop)) is not None:
                entry = parse(line)
                if lines.echo and entry.kind != "none":
                    out.write(f"you> {line.strip()}\n")
                    out.flush()
                done = await self._one(entry, stop, out)
                if done:
                    return entry if entry.kind == "mode" else None
            return None
        finally:
            printer.cancel()
            await asyncio.gather(printer, return_exceptions=True)
            self.view.flush()

    async def _one(self, entry: Entry, stop: asyncio.Event, out: TextIO) -> bool:
        """Do what one line asks; True when the chat ends here (:mode, :quit)."""
        if entry.kind in ("mode", "quit"):
            return True
        if entry.kind == "error":
            self.view.note(entry.value)
        elif entry.kind == "help":
            out.write(HELP + "\n")
        elif entry.kind == "wait":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), float(entry.value))
        elif entry.kind == "tap":
            update = self.view.tap(self.updates, self.user_id, entry.value)
            if isinstance(update, str):
                self.view.note(update)
            else:
                await self._feed(update)
        elif entry.kind == "text":
            await self._feed(self.updates.msg(self.user_id, entry.value))
        return False

    async def _feed(self, update: dict[str, Any]) -> None:
        self.view.flush()  # what came before this line is printed before its answer
        await self.sandbox.runner.feed([update])
        self.view.flush()

    async def _print_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            self.view.flush()


def _hint(world: World, sandbox: Sandbox) -> str:
    """``/order SLUG Yes BUY PRICE 5`` at the YES token's best bid now (it rests: nothing crosses)."""
    service = sandbox.service
    price = "0.40"
    with contextlib.suppress(Exception):
        market = service.registry.resolve(world.binary)
        book = service.processor.books.get(market.token("Yes").token_id)
        bid = book.best_bid() if book is not None else None
        price = f"{bid:f}" if bid is not None else price
    return f"/order {world.binary} Yes BUY {price} {ORDER_SIZE}"


async def run_sandbox(args: SandboxArgs, out: TextIO) -> int:
    from core.types import Mode

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():  # asked twice: the next Ctrl-C interrupts as Python does
            loop.remove_signal_handler(sig)
            return
        stop.set()
        out.write("-- stopping: the service, then the doubles (Ctrl-C again to interrupt)\n")
        out.flush()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    world = World(args.var_dir)
    lines = Lines(args.script)
    errors: list[str] = []
    try:
        await world.start()
        out.write("polybot sandbox: the real service on local doubles (no network, no Telegram token)\n")
        out.write("".join(f"  {line}\n" for line in world.where()))
        view = ChatView(world.api, out, args.user_id)
        updates, mode, first = Updates(), args.mode, True
        while not stop.is_set():
            loaded = world.configure(mode, args.user_id, args.role)
            options = SandboxOptions(api=world.api, wall_clock=True)
            async with offline_service(loaded, options) as sandbox:
                chat = Chat(sandbox, view, args.user_id, updates)
                await _opened(world, sandbox, view, args, mode, out, first=first)
                first = False
                entry = await chat.run(lines, stop, out)
                errors += chat.errors
            if entry is None:
                break
            mode = Mode(entry.value)
            view.note(f"restarting the service in {mode.value} mode ({world.config_path} rewritten)")
        view.flush()
        out.write(
            f"-- stopped: {world.venue_orders()} order(s) posted to the CLOB double; "
            f"database {world.db_path}, config {world.config_path}\n"
        )
    finally:
        lines.close()
        await world.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 1 if errors else 0


async def _opened(
    world: World, sandbox: Sandbox, view: ChatView, args: SandboxArgs, mode: Mode, out: TextIO, *, first: bool
) -> None:
    """Wait for the books, then say where things are and what to try (after a restart: the mode)."""
    if not await sandbox.wait_books_ok(WARMUP_S):
        view.note(f"not every book is OK after {WARMUP_S:g}s: /status says which")
    view.flush()
    service = (
        f"service  {mode.value} mode, DISARMED; you are Telegram user {args.user_id} ({args.role}), "
        f"chatting with @{world.api.username}\n"
    )
    if not first:
        arm = "/arm runs the preflight first" if mode.value == "live" else "/arm to trade"
        out.write(f"{service}-- the service started again from {world.config_path}: {arm}\n")
        out.flush()
        return
    out.write(
        f"config   {world.config_path} (+ secrets.local.toml: THROWAWAY key and API credentials)\n"
        f"database {world.db_path}\n"
        f"{service}"
        f"try: /status, /quotes {world.binary}, /arm, {_hint(world, sandbox)}, /orders, /kill\n"
        "     a button: type its number (1) or 'tap 1'; ':mode live' restarts in live mode; ':help'; "
        "Ctrl-C stops\n"
    )
    out.flush()
