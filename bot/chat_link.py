"""Telegram at start: reached at once, or later — the service never waits for it.

The chat is how a person arms the service, so without it the service cannot trade: it starts
DISARMED as always and stays so until someone arms it in chat. What it must not do is exit
because Telegram did not answer at that moment (a network blip, a proxy still starting), nor
print a bare ``NetworkError: httpx.ConnectError``.

:class:`ChatLink` makes the first attempt while the service starts. If Telegram cannot be
reached it says so in one line naming Telegram and where it was asked (never the token), and
keeps trying in the background with a growing, capped backoff (:mod:`core.retry`), each retry
logged at debug level only. Alerts raised meanwhile are held; once Telegram answers, the bot
starts polling, the held alerts are delivered, one alert says how long the chat was down, and
one log line says the same. A token Telegram rejects is a configuration error: at start the
service stops with a line saying what to put where; found while retrying, it is logged once and
the retries end (the service runs on without chat).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from telegram.error import InvalidToken, NetworkError, TelegramError

from bot.alert_titles import duration
from core.control.frontend import FrontEndHost
from core.errors import ConfigError
from core.events import Alert, Severity
from core.retry import Backoff, Retry, retry_call, upward_jitter

log = logging.getLogger(__name__)

RETRY = Backoff(1.0, 60.0, 2.0, upward_jitter(0.2))
"""Between attempts to reach Telegram: 1 s, 2 s, 4 s … at most a minute (up to 20% longer)."""
TOKEN_ADVICE = "put the token @BotFather gave you in secrets.local.toml as telegram.token"
MAX_HELD = 50
"""Alerts held while Telegram is down: the latest this many are delivered (all are in the alerts table)."""


def origin(base_url: str) -> str:
    """``https://api.telegram.org``: where the bot asks, without the path (the token follows it)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def reason(exc: BaseException) -> str:
    """``NetworkError: httpx.ConnectError: All connection attempts failed`` (one line)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


class ChatLink:
    """The chat's connection to Telegram for one service run (see the module docstring).

    ``connect`` brings the bot up (initialise, start, menus, polling; each step done once, so a
    retry after a half-way failure goes on from there); ``deliver`` hands the held alerts to the
    notifier once it is attached. Both are the bot's own (:mod:`bot.app`)."""

    def __init__(
        self,
        host: FrontEndHost,
        base_url: str,
        connect: Callable[[], Awaitable[None]],
        deliver: Callable[[list[Alert]], Awaitable[None]],
        *,
        backoff: Backoff = RETRY,
    ) -> None:
        self._host = host
        self._where = origin(base_url)
        self._connect = connect
        self._deliver = deliver
        self._backoff = backoff
        self.up = False
        self.attempts = 0
        self._down_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._held: list[Alert] = []
        self._dropped = 0
        self._release = host.bus.subscribe(Alert, self._hold)  # until the notifier hears them

    def _hold(self, alert: Alert) -> None:
        self._held.append(alert)
        if len(self._held) > MAX_HELD:
            del self._held[0]
            self._dropped += 1

    async def start(self) -> None:
        """The first attempt: returns connected, or with the retries running in the background.
        Raises :class:`ConfigError` when Telegram rejects the token."""
        try:
            await self._attempt()
        except InvalidToken:
            self._release()
            raise ConfigError(
                [f"telegram.token: Telegram rejected it (getMe at {self._where}); {TOKEN_ADVICE}"]
            ) from None
        except NetworkError as exc:
            self._down_since = time.monotonic()
            log.error(
                "Telegram unreachable at %s (%s): the service runs on without chat, DISARMED (it can only "
                "be armed in chat); retrying in the background until Telegram answers",
                self._where,
                reason(exc),
            )
            self._task = asyncio.create_task(self._keep_trying(), name="telegram-connect")
            return
        await self._now_up()

    async def stop(self) -> None:
        self._release()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _attempt(self) -> None:
        self.attempts += 1
        await self._connect()

    async def _keep_trying(self) -> None:
        def waiting(retry: Retry[None]) -> None:
            log.debug(
                "Telegram still unreachable (%s); attempt %d in %.1f s",
                retry.outcome.error,
                retry.attempt + 1,
                retry.delay_s,
            )

        try:
            await retry_call(
                self._attempt,
                backoff=self._backoff,
                retry_error=lambda exc: isinstance(exc, NetworkError),
                on_retry=waiting,
            )
        except InvalidToken:
            log.error("Telegram rejected telegram.token (getMe at %s): no more attempts; %s", self._where, TOKEN_ADVICE)
            return
        except TelegramError as exc:
            log.error(
                "Telegram refused the bot's start (%s): no more attempts; the service runs on without chat", reason(exc)
            )
            return
        await self._now_up()

    async def _now_up(self) -> None:
        self.up = True
        self._release()
        held, self._held = self._held, []
        await self._deliver(held)  # attaches the notifier first: nothing published from here on is missed
        if self._down_since is not None:
            down = duration(time.monotonic() - self._down_since)
            log.warning(
                "Telegram reached at %s after %d attempts (%s): the chat is up", self._where, self.attempts, down
            )
            message = (
                f"Chat connected: Telegram was unreachable for {down} ({self.attempts} attempts). "
                "The service ran on meanwhile, disarmed; /arm when you want it to trade."
            )
            if self._dropped:
                message += f" {self._dropped} older alert(s) of that time are not repeated here (polybot status)."
            self._host.bus.publish(Alert(kind="service", severity=Severity.WARNING, key="telegram", message=message))
