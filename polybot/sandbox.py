"""The whole product on this machine: local exchange doubles, a real service and an offline bot.

One bring-up for everything that runs the service end to end without a network: ``polybot demo``,
``polybot tgbot-run-local``, the fault suite and the end-to-end tests.

- :class:`Exchange` starts and stops the doubles of the market websocket, Gamma and the CLOB
  together; :func:`discover_markets` fills a database from the Gamma double the way
  ``polybot refresh-markets`` does and lists the same markets on the CLOB double.
- :func:`exchange_settings`, :func:`chat_settings` and :func:`mode_settings` are the settings that
  point a service at them; :func:`load_sandbox_settings` loads them over a private copy of a
  configuration file, so no ``secrets.local.toml`` of the checkout is ever overlaid.
- :func:`offline_service` starts a real :class:`core.service.Service` whose chat front end is the
  real Telegram bot on the in-process Bot API double (:class:`bot.fake_api.FakeBotApi`), driven by
  a manual clock, and yields it with the runner that feeds it updates; it is stopped on exit.

Nothing here listens or connects past 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from bot.app import BotParts, TelegramFrontEnd
from bot.fake_api import FakeBotApi
from bot.offline import ManualClock, OfflineRunner, WallClock
from core.service import Service, ServiceOptions
from core.settings import LoadedSettings, load_settings
from core.sim.demo_data import REPO_ROOT
from core.types import BookStatus, Mode

if TYPE_CHECKING:
    from core.control.types import PreflightReport
    from core.markets import RefreshResult
    from core.sim.mock_clob import MockClobServer
    from core.sim.mock_ws import MockMarketServer
    from core.types import MarketInfo

log = logging.getLogger(__name__)

DEMO_CONFIG = REPO_ROOT / "config" / "demo.toml"
THROWAWAY_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
"""The Ethereum documentation's example key: it holds nothing and only ever signs for the CLOB double."""
OFFLINE_BOT_TOKEN = "123456:OFFLINE_SANDBOX_TOKEN_NOT_REAL_0000"
"""Shaped like a Telegram bot token (so redaction treats it as one); only the Bot API double sees it."""


class Double(Protocol):
    """A local double of one venue service: it listens on loopback between start and stop."""

    async def start(self) -> object: ...

    async def stop(self) -> None: ...


# --------------------------------------------------------------------------------------------
# the exchange doubles
# --------------------------------------------------------------------------------------------


class Exchange:
    """Starts the given doubles in the order given and stops them in reverse.

    ``async with Exchange(ws=..., gamma=..., clob=...)``, or :meth:`start` / :meth:`stop` from a
    loop of the caller's choosing (a synchronous test runs them on a background loop). When one
    fails to start, the ones already started are stopped before the error goes on.
    """

    def __init__(self, *doubles: Double) -> None:
        self._doubles = doubles
        self._started = AsyncExitStack()

    async def start(self) -> None:
        try:
            for double in self._doubles:
                await double.start()
                self._started.push_async_callback(double.stop)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self._started.aclose()

    async def __aenter__(self) -> Exchange:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def fresh_sqlite(path: Path) -> Path:
    """An empty SQLite database at ``path`` (the file and its journals removed; the directory made):
    a run that describes only itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def list_markets(clob: MockClobServer, markets: Iterable[MarketInfo]) -> None:
    """Make the CLOB double trade these markets (tokens, tick, minimum size, neg-risk, fee)."""
    from core.sim.mock_clob_state import MockMarket

    for info in markets:
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


async def discover_markets(db_url: str, gamma_url: str, clob: MockClobServer | None = None) -> RefreshResult:
    """Migrate the database, discover Gamma's markets into it, and list them on the CLOB double."""
    from core.markets import GammaClient, load_markets, refresh_markets
    from core.store.db import create_engine, session_factory
    from core.store.migrate import upgrade_engine

    engine = create_engine(db_url)
    try:
        await upgrade_engine(engine)
        sessions = session_factory(engine)
        async with GammaClient(gamma_url) as client:
            refreshed = await refresh_markets(sessions, client)
        if clob is not None:
            list_markets(clob, await load_markets(sessions))
    finally:
        await engine.dispose()
    return refreshed


class FeedBooks:
    """Keeps the CLOB double's books equal to the market-websocket double's: one market universe.

    The socket double plays its recording into its own copy of every book; every ``every_s`` each
    token the CLOB double lists gets that book as its external liquidity, so an order priced off
    ``/quotes`` meets at the venue double the book the feed showed (what it takes comes back
    with the next copy, as other traders' orders would). A :class:`Double`: ``start``/``stop``.
    """

    def __init__(self, ws: MockMarketServer, clob: MockClobServer, *, every_s: float = 0.1) -> None:
        self.ws = ws
        self.clob = clob
        self.every_s = every_s
        self.copies = 0
        self._task: asyncio.Task[None] | None = None

    def copy(self) -> int:
        """Copy every book both doubles know now; returns how many."""
        from decimal import Decimal

        served = set(self.ws.asset_ids)
        n = 0
        for token in self.clob.books:
            if token in served:
                book = self.ws.book(token)
                self.clob.set_book(
                    token,
                    [(Decimal(p), Decimal(q)) for p, q in book.bids.values()],
                    [(Decimal(p), Decimal(q)) for p, q in book.asks.values()],
                )
                n += 1
        self.copies += 1
        return n

    async def _run(self) -> None:
        while True:
            self.copy()
            await asyncio.sleep(self.every_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sandbox-feed-books")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# --------------------------------------------------------------------------------------------
# settings that point a service at the doubles
# --------------------------------------------------------------------------------------------

Values = dict[str, object]
"""Settings as ``section__key`` (``feed__ws_url``) -> value; a value that is not a string is JSON."""


def exchange_settings(
    *, ws_url: str | None = None, gamma_url: str | None = None, clob: MockClobServer | None = None
) -> Values:
    """The market feed, Gamma, the CLOB (with its user channel and the Data API) at the doubles given."""
    values: Values = {}
    if ws_url is not None:
        values["feed__ws_url"] = ws_url
    if gamma_url is not None:
        values["gamma__url"] = gamma_url
    if clob is not None:
        values["clob__url"] = clob.url
        values["feed__user_ws_url"] = clob.ws_url
        values["data_api__url"] = clob.url  # the CLOB double also answers the Data API's /positions
    return values


def chat_settings(users: Mapping[int, str], alert_chats: Sequence[int]) -> Values:
    """Telegram on, with these users (id -> role) and alert chats, and a token only the double sees."""
    return {
        "telegram__enabled": "true",
        "telegram__token": OFFLINE_BOT_TOKEN,
        "telegram__users": [{"id": uid, "role": role} for uid, role in users.items()],
        "telegram__alert_chats": list(alert_chats),
    }


def mode_settings(mode: Mode, clob: MockClobServer | None = None, *, key: str = THROWAWAY_KEY) -> Values:
    """Paper, dry-run (a real CLOB V2 order signed with ``key``, never posted) or live against the CLOB
    double, with the API credentials the double issues for ``key``'s address."""
    values: Values = {"service__mode": mode.value}
    if mode is Mode.PAPER:
        return values
    values |= {
        "relayer__type": "real",
        "relayer__private_key": key,
        "relayer__dry_run": str(mode is Mode.DRY_RUN).lower(),
    }
    if mode is Mode.LIVE:
        if clob is None:
            raise ValueError("live mode needs the CLOB double (its API credentials)")
        from eth_account import Account

        creds = clob.creds_for(Account.from_key(key).address)
        values |= {
            "relayer__api_key": creds.api_key,
            "relayer__api_secret": creds.secret,
            "relayer__api_passphrase": creds.passphrase,
        }
    return values


def environment(values: Mapping[str, object]) -> dict[str, str]:
    """The ``POLYBOT_*`` variables that set ``values`` (and nothing from this process's environment)."""
    return {"POLYBOT_" + key.upper(): v if isinstance(v, str) else json.dumps(v) for key, v in values.items()}


def load_sandbox_settings(values: Mapping[str, object], directory: Path, config: Path = DEMO_CONFIG) -> LoadedSettings:
    """``config`` copied into ``directory`` (a secrets overlay beside the original is not read), then
    ``values`` over it as the environment."""
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / config.name
    shutil.copyfile(config, private)
    return load_settings(private, env=environment(values))


# --------------------------------------------------------------------------------------------
# the service with its offline bot
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    migrate: bool = True
    api: FakeBotApi | None = None
    """The Bot API double (None: a fresh one)."""
    clock: Callable[[], float] = time.time
    """The service's wall clock (engine, risk gate); a test may move it."""
    staleness_tick_s: float = 2.0
    preflight: Callable[[bool], Awaitable[PreflightReport]] | None = None
    """What /preflight and /arm check (None: the configuration's own preflight, Telegram's getMe
    answered by the Bot API double)."""
    pause_jobs: bool = False
    """Scheduled jobs paused once started: the script alone moves time."""
    on_built: Callable[[Service], object] | None = None
    """Called with the service before it starts (e.g. to hear the alerts starting raises)."""
    wall_clock: bool = False
    """The bot's clock follows real time (a person typing: confirmations expire on time); False:
    it moves only when the script says so (``_advance_s``)."""
    stop_within_s: float | None = None
    """When set, a stop that overruns or fails is logged, not raised (fault scenarios break the
    service on purpose); None: stop as the product does and let any error through."""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A started service and the offline bot it hosts."""

    service: Service
    api: FakeBotApi
    clock: ManualClock
    """The bot's clock: confirmation expiry, the per-user command limit, alert cooldowns."""
    bot: BotParts
    runner: OfflineRunner
    """Feeds updates through the bot; each one's effects settle (the event bus drains) before the next."""

    def books_ok(self) -> bool:
        """Every subscribed book tradable, or closed for good (its market resolved)."""
        books = self.service.processor.books.values()
        return bool(books) and all(b.status in (BookStatus.OK, BookStatus.CLOSED) for b in books)

    async def wait_books_ok(self, within_s: float) -> bool:
        """Poll until every subscribed book is OK, at most ``within_s``; whether they are."""
        deadline = time.monotonic() + within_s
        while not self.books_ok():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True


@asynccontextmanager
async def offline_service(loaded: LoadedSettings, options: SandboxOptions | None = None) -> AsyncIterator[Sandbox]:
    """A real service with the Telegram bot on the Bot API double; stopped on exit (also when starting fails)."""
    opts = options or SandboxOptions()
    api = opts.api if opts.api is not None else FakeBotApi()
    clock = WallClock() if opts.wall_clock else ManualClock()
    front_end = TelegramFrontEnd()  # keeps the bot it starts: the runner drives it
    service = Service(
        loaded,
        ServiceOptions(
            migrate=opts.migrate,
            bot_request=api,
            with_bot=True,
            staleness_tick_s=opts.staleness_tick_s,
            bot_clock=clock,
            frontend=front_end,
            clock=opts.clock,
            preflight=opts.preflight or _preflight_on_double(loaded, api),
        ),
    )
    if opts.on_built is not None:
        opts.on_built(service)
    try:
        await service.start()
        if opts.pause_jobs and service.scheduler is not None:
            service.scheduler.pause()
        runner = OfflineRunner(front_end.parts, api, clock, settle=service.bus.drain)
        yield Sandbox(service=service, api=api, clock=clock, bot=front_end.parts, runner=runner)
    finally:
        await _stop(service, opts.stop_within_s)


def _preflight_on_double(loaded: LoadedSettings, api: FakeBotApi) -> Callable[[bool], Awaitable[PreflightReport]]:
    """The configuration's preflight, Telegram's getMe answered by the Bot API double the bot runs on."""
    from core.preflight import run_preflight

    async def preflight(offline: bool) -> PreflightReport:
        return await run_preflight(loaded, offline=offline, telegram_identity=api.get_me_username)

    return preflight


async def _stop(service: Service, within_s: float | None) -> None:
    if within_s is None:
        await service.stop()
        return
    try:
        await asyncio.wait_for(service.stop(), within_s)
    except Exception as exc:  # the scenario broke the service on purpose; its checks already ran
        log.warning(
            "the sandbox's service did not stop cleanly within %.0f s: %s: %s", within_s, type(exc).__name__, exc
        )
