"""``polybot tgbot-run-local``: feed Telegram updates (JSONL) through the real bot and service, offline.

The real :class:`core.service.Service` is built in-process with the Telegram Bot API replaced by
:class:`bot.fake_api.FakeBotApi`; the market feed is not started (no websocket): a recording is
fed through the service's ingest pipeline instead, so books exist for /quotes, /order and
/status. Scheduled jobs are paused (the script's ``_advance_s`` directives move the bot's clock),
and /preflight probes the network only when every endpoint is a loopback address.

:func:`local_session` is the reusable part (tests and ``bench/bot.py`` drive it directly); the
service and its offline bot come up through :func:`polybot.sandbox.offline_service`, as in the demo.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.errors import ConfigError, UsageError
from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:
    from bot.fake_api import FakeBotApi
    from bot.offline import ManualClock, OfflineRunner, TranscriptEntry
    from core.control.types import PreflightReport
    from core.service import Service
    from core.settings import LoadedSettings
    from polybot.cli.main import Subcommands

# Used when the configuration authorises nobody (or there is no --config): a local test table.
DEFAULT_USERS: tuple[tuple[int, str], ...] = ((1001, "admin"), (1002, "viewer"), (1003, "operator"))
DEFAULT_ALERT_CHATS: tuple[int, ...] = (1001,)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_CODE = re.compile(r"<code>([^<]+)</code>")
MIN_ID_PREFIX = 8  # the shortest order id prefix the bot accepts (core.control.orders.MIN_ID_PREFIX)
_BOT_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{1,28}[Bb][Oo][Tt]")  # Telegram: 5-32 characters, ends in "bot"

_DESCRIPTION = """\
Feed each line of UPDATES.jsonl (a Telegram Bot API Update object: message, edited_message,
callback_query, inline_query ...) through the real bot and service, with no network, and print
a transcript of every Bot API call the bot made (method, chat, text, buttons).

What runs: the real service (control facade, risk gate, engine, relayer from the config: paper
by default) and the real python-telegram-bot Application, talking to an in-process Bot API
double. The market websocket is NOT started; instead a recording is fed through the service's
ingest pipeline so books exist (--replay; by default fixtures/recordings/demo_feed.jsonl when
MARKET is given or the database has markets; --no-replay for none). With no subscribed markets
no strategy runs, and scheduled jobs are paused: the script alone drives the bot.

The database must be migrated and hold markets for /quotes, /markets and /order, e.g.:
  polybot mock-gamma --port 8081 &                      # serves fixtures/gamma/markets.json
  polybot refresh-markets http://127.0.0.1:8081 --db-url sqlite:///var/bot.db --migrate
The default recording matches those markets' token ids.

Users: the config's [telegram] users and alert_chats. When no user is configured (or without
--config) this local table applies: 1001 admin, 1002 viewer, 1003 operator (numeric Telegram
user ids; anyone else is a stranger); alerts go to chat 1001.

In message texts $MARKET and $OUTCOME become the MARKET and OUTCOME arguments. A message whose
text starts with / gets its bot_command entity when the line has none. Directives (lines that
are not updates): {"_advance_s": 31} moves the bot's clock (confirmations expire, cards are
edited), {"_comment": "..."} is ignored; "$LAST_NONCE" in callback data is the nonce of the last
confirmation card shown, and "$LAST_ORDER" in a message is the open order the bot named last.
That clock also drives the per-user command limit ([telegram] commands_per_minute, default
30): a script sending more from one user advances it with {"_advance_s": 60}. /disarm and /kill
are never limited.

The offline bot is @polybot_local_bot (--bot-username to change it): /status@polybot_local_bot
runs like /status, while a command addressed to another bot (/status@other_bot) is not run and
the reply says so.

Every line is checked before anything starts: a line that is not a Telegram Update the bot can
take (e.g. "update_id": "x") stops the command with exit status 2 and one line naming the file,
the line and the field (FILE:LINE: update_id: ...). Nothing is run, because a script with a line
left out is a different script: a skipped /arm or tap changes what every later line does.

Scripts in fixtures/updates/: commands, usage (wrong arguments), roles, unauthorised, edited,
and live_confirm_{accepted,expired,twice,other_user,recheck}. The live ones need a live --config:
[relayer] type = "real", dry_run = false, a throwaway private_key and the api_key/api_secret/
api_passphrase the CLOB double issued for it (in secrets.local.toml beside the config: live
mode's preflight fails while a secret is in the main file), [clob] url and [feed] user_ws_url
of a CLOB double that lists the database's markets (tests/e2e/test_bot_run_local.py builds one
from the Gamma fixture, as polybot demo does; polybot mock-clob serves only its own demo
markets), and [feed] ws_url of a market double for /preflight (polybot mock-ws).

Dry-run and live modes (relayer type "real") are allowed only when the CLOB and user-channel
URLs are loopback addresses (a local CLOB double): this command never leaves the machine.
/preflight probes the feed and the CLOB only when their URLs are loopback; otherwise those
checks are reported as skipped.

Exit status: 0; 1 when a handler raised (the transcript shows "Internal error"); 2 for a bad
argument or a bad line in UPDATES.jsonl (nothing is run)."""


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "tgbot-run-local",
        help="feed Telegram updates from a JSONL file through the real bot, offline, and print the transcript",
        description=_DESCRIPTION,
        example=(
            "polybot refresh-markets --config var/sandbox/service.toml --db-url sqlite:///var/bot.db --migrate && "
            "polybot tgbot-run-local fixtures/updates/commands.jsonl demo-btc-above-150k-2026 Yes "
            "--db-url sqlite:///var/bot.db  # while polybot sandbox runs"
        ),
    )
    p.add_argument("updates", metavar="UPDATES.jsonl", help="one Telegram Update object (JSON) per line")
    p.add_argument("market", nargs="?", default=None, metavar="MARKET", help="replaces $MARKET (slug or condition id)")
    p.add_argument("outcome", nargs="?", default=None, metavar="OUTCOME", help="replaces $OUTCOME (e.g. Yes)")
    p.add_argument(
        "--db-url", type=common.db_url, required=True, help="sqlite:///PATH or postgresql://user@host:5432/db"
    )
    p.add_argument("--config", default=None, help="service TOML (default: built-in defaults, paper mode)")
    p.add_argument(
        "--replay",
        type=common.input_file("recording"),
        default=None,
        metavar="FILE",
        help="recording fed through the pipeline first",
    )
    p.add_argument("--no-replay", action="store_true", help="feed no recording (books stay empty)")
    p.add_argument("--migrate", action="store_true", help="apply pending database migrations first")
    p.add_argument("--json", action="store_true", help="print every Bot API call as JSON")
    p.add_argument(
        "--bot-username",
        default=None,
        metavar="NAME",
        help="the offline bot's own @username, the one /command@NAME runs for (default polybot_local_bot)",
    )
    p.set_defaults(func=_run)


# --------------------------------------------------------------------------------------------
# the reusable session
# --------------------------------------------------------------------------------------------


@dataclass
class LocalOptions:
    db_url: str
    config: Path | None = None
    market: str | None = None
    outcome: str | None = None
    replay: Path | None = None
    no_replay: bool = False
    migrate: bool = False
    bot_username: str | None = None
    """What the Bot API double's getMe answers (None: its default): /command@bot_username runs, another
    suffix does not."""
    env: Mapping[str, str] | None = None
    """Extra POLYBOT_* overrides (tests, bench); applied after the process environment."""


@dataclass
class LocalSession:
    service: Service
    api: FakeBotApi
    clock: ManualClock
    runner: OfflineRunner
    market: str | None
    outcome: str | None
    frames_replayed: int = 0
    replay_path: Path | None = None
    startup_calls: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fed_calls: int = 0
    """Bot API calls made up to the end of the last :meth:`feed` (later ones: shutdown)."""

    async def feed(self, updates: Iterable[dict[str, Any]]) -> list[TranscriptEntry]:
        """Run updates through the Application; returns the whole transcript so far."""
        transcript = self.runner.transcript
        for raw in updates:
            data = prepare_update(raw, self.market, self.outcome)
            if "$LAST_ORDER" in json.dumps(data):
                data = json.loads(json.dumps(data).replace("$LAST_ORDER", self._last_order()))
            transcript = await self.runner.feed([data])
        self.fed_calls = len(self.api.calls)
        return transcript

    def _last_order(self) -> str:
        """The open order the bot named most recently, as it named it: a full id or the unique
        prefix /orders shows (the engine's open set has no order)."""
        open_ids = {o.client_order_id for o in self.service.engine.open_orders()}
        for call in reversed(self.api.calls):
            for code in reversed(_CODE.findall(call.text or "")):
                if len(code) >= MIN_ID_PREFIX and sum(1 for i in open_ids if i.startswith(code)) == 1:
                    return str(code)
        return "none"


def prepare_update(raw: dict[str, Any], market: str | None, outcome: str | None) -> dict[str, Any]:
    """$MARKET/$OUTCOME substitution and a bot_command entity for a leading /command."""
    data: dict[str, Any] = json.loads(json.dumps(raw))
    for kind in ("message", "edited_message"):
        msg = data.get(kind)
        if not isinstance(msg, dict) or not isinstance(msg.get("text"), str):
            continue
        text: str = msg["text"]
        for token, value in (("$MARKET", market), ("$OUTCOME", outcome)):
            if token in text:
                if value is None:
                    raise UsageError(f"the updates use {token}: give MARKET and OUTCOME after the file name")
                text = text.replace(token, value)
        msg["text"] = text
        if text.startswith("/") and "entities" not in msg:
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        msg.setdefault("date", int(time.time()))
    return data


def bot_username_arg(text: str) -> str:
    name = text.removeprefix("@")
    if not _BOT_USERNAME.fullmatch(name):
        raise UsageError(
            f"--bot-username must be a Telegram bot username (5-32 letters, digits or _, ending in 'bot'), got {text!r}"
        )
    return name


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _json_list(values: Iterable[Any]) -> str:
    return json.dumps(list(values))


def _load(opts: LocalOptions) -> LoadedSettings:
    from core.settings import load_settings

    environ = {**os.environ, **(opts.env or {})}
    # The feed is replaced by the replay: nothing may name markets or assets to subscribe to.
    environ.update(
        {
            "POLYBOT_DB__URL": opts.db_url,
            "POLYBOT_FEED__MARKETS": "[]",
            "POLYBOT_FEED__ASSETS": "[]",
            "POLYBOT_STRATEGIES__DUTCH__MARKETS": "[]",
            "POLYBOT_STRATEGIES__SPREAD__MARKETS": "[]",
            "POLYBOT_METRICS__ENABLED": "false",
        }
    )
    loaded = load_settings(opts.config, env=environ)
    if not loaded.settings.telegram.users:
        environ["POLYBOT_TELEGRAM__USERS"] = _json_list({"id": u, "role": r} for u, r in DEFAULT_USERS)
        if not loaded.settings.telegram.alert_chats:
            environ["POLYBOT_TELEGRAM__ALERT_CHATS"] = _json_list(DEFAULT_ALERT_CHATS)
        loaded = load_settings(opts.config, env=environ)
    if not _is_loopback(loaded.settings.feed.ws_url):
        # /watch subscribes on the market feed: never the venue's, a loopback port at most
        environ["POLYBOT_FEED__WS_URL"] = "ws://127.0.0.1:9/ws/market"
        loaded = load_settings(opts.config, env=environ)
    s = loaded.settings
    if s.relayer.type == "real":
        endpoints = [("clob.url", s.clob.url)]
        if not s.relayer.dry_run:  # only a live relayer opens the user channel
            endpoints.append(("feed.user_ws_url", s.feed.user_ws_url))
        remote = [f"{name} = {url}" for name, url in endpoints if not _is_loopback(url)]
        if remote:
            raise ConfigError(
                [
                    'tgbot-run-local never leaves the machine: with relayer.type = "real" these must be '
                    f"loopback URLs (a local CLOB double): {', '.join(remote)}"
                ]
            )
    return loaded


def replaced_markets(opts: LocalOptions) -> str | None:
    """What the configuration names for the feed that this command does not follow (the recording
    stands in for the feed), in words; None when it names nothing."""
    from core.settings import load_settings

    if opts.config is None:
        return None
    s = load_settings(opts.config, env={**os.environ, **(opts.env or {})}).settings
    named = [
        (key, n)
        for key, n in (
            ("feed.markets", len(s.feed.markets)),
            ("feed.assets", len(s.feed.assets)),
            ("strategies.dutch.markets", len(s.strategies.dutch.markets)),
            ("strategies.spread.markets", len(s.strategies.spread.markets)),
        )
        if n
    ]
    if not named:
        return None
    listed = ", ".join(f"{key} ({n})" for key, n in named)
    return f"{listed} of {opts.config} not followed: a recording stands in for the market feed here"


def _preflight_for(loaded: LoadedSettings, api: FakeBotApi) -> Callable[[bool], Awaitable[PreflightReport]]:
    """The configuration's preflight, offline unless every endpoint it would probe is loopback;
    Telegram's getMe is answered by the Bot API double."""
    from core.preflight import run_preflight

    s = loaded.settings
    urls = [s.feed.ws_url, s.clob.url] + ([s.chain.rpc_url] if s.chain.rpc_url else [])
    local = all(_is_loopback(u) for u in urls)

    async def preflight(offline: bool) -> PreflightReport:
        return await run_preflight(loaded, offline=offline or not local, telegram_identity=api.get_me_username)

    return preflight


def _replay_frames(service: Service, path: Path) -> int:
    """Feed a recording through the service's pipeline, its timing rebased so it ends now."""
    from core.feed.replay import iter_frames

    frames = list(iter_frames(path))
    if not frames:
        return 0
    shift = time.time_ns() - frames[-1][0]
    on_frame = service.pipeline.on_frame
    for recv_ns, text in frames:
        on_frame(text, recv_ns + shift)
    return len(frames)


@asynccontextmanager
async def local_session(opts: LocalOptions) -> AsyncIterator[LocalSession]:
    """A started service with an offline bot (:func:`polybot.sandbox.offline_service`); stopped on exit."""
    from bot.fake_api import FakeBotApi
    from core.sim.demo_data import DEMO_RECORDING
    from polybot.sandbox import SandboxOptions, offline_service

    loaded = _load(opts)
    api = FakeBotApi() if opts.bot_username is None else FakeBotApi(username=bot_username_arg(opts.bot_username))
    # time belongs to the script (and no job may reach Gamma); /preflight probes loopback only
    options = SandboxOptions(migrate=opts.migrate, api=api, preflight=_preflight_for(loaded, api), pause_jobs=True)
    async with offline_service(loaded, options) as sandbox:
        service = sandbox.service
        errors: list[str] = []

        async def record_error(update: object, context: Any) -> None:
            errors.append(f"{type(context.error).__name__}: {context.error}")

        sandbox.bot.app.add_error_handler(record_error)

        replay = None if opts.no_replay else opts.replay
        if replay is None and not opts.no_replay and (opts.market or len(service.registry)):
            replay = DEMO_RECORDING
        frames = _replay_frames(service, Path(replay)) if replay is not None else 0
        if opts.market is not None:
            try:
                service.registry.resolve(opts.market)
            except UsageError as exc:
                raise UsageError(f"MARKET: {exc} (did polybot refresh-markets fill this database?)") from None
        await service.bus.drain()
        yield LocalSession(
            service=service,
            api=api,
            clock=sandbox.clock,
            runner=sandbox.runner,
            market=opts.market,
            outcome=opts.outcome,
            frames_replayed=frames,
            replay_path=Path(replay) if replay is not None else None,
            startup_calls=[c.as_dict() for c in api.calls],
            errors=errors,
        )


async def run_local(updates: list[dict[str, Any]], opts: LocalOptions) -> tuple[LocalSession, list[TranscriptEntry]]:
    async with local_session(opts) as session:
        transcript = await session.feed(updates)
    return session, transcript


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from bot.offline import format_transcript, read_updates
    from core.logsetup import setup_cli_logging
    from polybot.cli.common import db_url_arg

    if (args.market is None) != (args.outcome is None):
        raise UsageError("give both MARKET and OUTCOME, or neither")
    if args.replay is not None and args.no_replay:
        raise UsageError("--replay and --no-replay exclude each other")
    if args.config is not None and not Path(args.config).is_file():
        raise UsageError(f"config file not found: {args.config}")
    bot_username = bot_username_arg(args.bot_username) if args.bot_username is not None else None
    # every line is checked as it will run ($MARKET filled in) before anything starts
    updates = read_updates(Path(args.updates), prepare=lambda raw: prepare_update(raw, args.market, args.outcome))
    opts = LocalOptions(
        db_url=db_url_arg(args),
        config=Path(args.config) if args.config else None,
        market=args.market,
        outcome=args.outcome,
        replay=Path(args.replay) if args.replay else None,
        no_replay=args.no_replay,
        migrate=args.migrate,
        bot_username=bot_username,
    )
    setup_cli_logging(args.verbose)
    if (replaced := replaced_markets(opts)) is not None:
        sys.stderr.write(f"tgbot-run-local: {replaced}\n")
    session, transcript = asyncio.run(run_local(updates, opts))
    shutdown = [c.as_dict() for c in session.api.calls[session.fed_calls :]]
    if args.json:
        out = {
            "mode": session.service.mode.value,
            "bot_username": session.api.username,
            "frames_replayed": session.frames_replayed,
            "replay": str(session.replay_path) if session.replay_path else None,
            "updates": len(transcript),
            "transcript": [e.as_dict() for e in transcript],
            "startup_calls": session.startup_calls,
            "shutdown_calls": shutdown,
            "errors": session.errors,
        }
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_transcript(transcript) + "\n")
        sys.stderr.write(
            f"tgbot-run-local: {len(transcript)} update(s), {session.service.mode.value} mode, "
            f"{session.frames_replayed} frame(s) replayed, {len(session.api.calls)} Bot API call(s) as @{session.api.username}"
            + (f", {len(session.errors)} handler error(s)" if session.errors else "")
            + "\n"
        )
    return 1 if session.errors else 0
