"""Build the python-telegram-bot Application around the control facade.

The service runs it with the manual lifecycle on its own loop (initialize / start /
updater.start_polling); the offline runner feeds updates with ``process_update`` through an
in-process Bot API double. Either way the same handlers, gate, sender and notifier are used.
Against the real Bot API the service does not wait for Telegram: :mod:`bot.chat_link` makes the
first attempt and, when Telegram cannot be reached, keeps trying in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder
from telegram.request import BaseRequest

from bot.auth import Authoriser, UserRateLimiter
from bot.chat_link import ChatLink
from bot.confirm import ConfirmationStore
from bot.handlers import BotHandlers
from bot.menu import MenuReport, publish_menus
from bot.notify import Notifier
from bot.order_flow import Ticket
from bot.sender import Sender
from core.control.facade import Control
from core.control.frontend import FrontEndHost
from core.events import Alert

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "inline_query", "my_chat_member"]
OFFLINE_TOKEN = "1:OFFLINE"
"""The token of a bot that never reaches Telegram (a Bot API double answers it)."""


@runtime_checkable
class FloodLimits(Protocol):
    """A Bot API transport that says whether Telegram's flood limits apply to it (a double: no)."""

    flood_limited: bool


@dataclass
class BotParts:
    app: Application[Any, Any, Any, Any, Any, Any]
    handlers: BotHandlers
    sender: Sender
    notifier: Notifier
    confirmations: ConfirmationStore[Ticket]
    menus: MenuReport | None = None
    """The command menus set at start (:mod:`bot.menu`): each authorised user's, by role."""
    link: ChatLink | None = None
    """The connection to Telegram (None on a Bot API double, which is always there)."""
    warm_up: asyncio.Task[None] | None = None
    """The charts' drawing made ready in a worker thread at start (against Telegram only)."""

    @property
    def up(self) -> bool:
        """Whether the bot has reached its Bot API (and polls it, against Telegram)."""
        return self.link.up if self.link is not None else self.app.running

    async def notify_admins(self, text: str) -> None:
        if self.up:
            await self.notifier.ping_admins(text)

    async def stop(self) -> None:
        if self.warm_up is not None:
            self.warm_up.cancel()
        if self.link is not None:
            await self.link.stop()  # no attempt to reach Telegram from here on
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()
        await self.app.bot.shutdown()  # its HTTP clients, also when Telegram was never reached


def build_bot(
    control: Control,
    *,
    token: str,
    users: Iterable[tuple[int, str]],
    alert_chats: Iterable[int],
    base_url: str,
    confirm_ttl_s: float = 30.0,
    commands_per_minute: int = 30,
    alert_cooldown_s: float = 300.0,
    request: BaseRequest | None = None,
    clock: Callable[[], float] | None = None,
    rate_limit_retries: int = 3,
) -> BotParts:
    # Telegram's flood limits (30 messages/s overall, 20/min per group) protect the real Bot API.
    # An in-process double (offline runner, tests, bench) declares it has none; 429 retries stay on.
    if not _flood_limited(request):
        limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=rate_limit_retries)
    else:
        limiter = AIORateLimiter(max_retries=rate_limit_retries)
    builder = ApplicationBuilder().token(token).base_url(base_url).rate_limiter(limiter)
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    app = builder.build()
    sender = Sender(app.bot, mask=control.redact_outgoing)
    now = clock if clock is not None else time.monotonic
    confirmations: ConfirmationStore[Ticket] = ConfirmationStore(ttl_s=confirm_ttl_s, clock=now)
    notifier = Notifier(sender, alert_chats, cooldown_s=alert_cooldown_s, clock=now)
    handlers = BotHandlers(
        control,
        Authoriser.from_entries(users),
        sender,
        confirmations,
        UserRateLimiter(commands_per_minute, clock=now),
        notifier.mute,
    )
    handlers.alert_state = notifier.state
    handlers.install(app)
    return BotParts(app, handlers, sender, notifier, confirmations)


class TelegramFrontEnd:
    """:func:`start_telegram` as the service's front-end factory, keeping the bot it started.

    An offline runner (tgbot-run-local, the demo, tests) drives that bot itself: its Application
    and its handlers. ``ServiceOptions(frontend=front_end)``, then ``front_end.parts``.
    """

    def __init__(self) -> None:
        self._parts: BotParts | None = None

    async def __call__(self, host: FrontEndHost) -> BotParts:
        self._parts = await start_telegram(host)
        return self._parts

    @property
    def parts(self) -> BotParts:
        if self._parts is None:
            raise RuntimeError("the chat front end has not been started (is telegram enabled for this service?)")
        return self._parts


def _flood_limited(request: object) -> bool:
    """True unless the transport declares Telegram's flood limits do not apply to it."""
    return request.flood_limited if isinstance(request, FloodLimits) else True


def _bot_request(value: object) -> BaseRequest | None:
    if value is None or isinstance(value, BaseRequest):
        return value
    raise TypeError(f"the service's bot_request must be a telegram BaseRequest, not {type(value).__name__}")


async def start_telegram(host: FrontEndHost) -> BotParts:
    """The service's chat front end: the bot around its control facade, on the service's loop.

    Polls Telegram unless the service was given a Bot API double (``ServiceOptions.bot_request``).
    Telegram unreachable at start is not a failure: the bot comes up when it answers
    (:class:`bot.chat_link.ChatLink`); a token Telegram rejects is (``ConfigError``).
    """
    t = host.settings.telegram
    token = t.token.get_secret_value() if t.token is not None else OFFLINE_TOKEN
    request = _bot_request(host.opts.bot_request)
    parts = build_bot(
        host.control,
        token=token,
        users=[(u.id, str(u.role)) for u in t.users],
        alert_chats=t.alert_chats,
        base_url=t.base_url,
        confirm_ttl_s=t.confirm_ttl_s,
        commands_per_minute=t.commands_per_minute,
        request=request,
        clock=host.opts.bot_clock,
    )
    parts.notifier.admins = [u.id for u in t.users if str(u.role) == "admin"]

    async def connect() -> None:
        await _bring_up(parts, polling=request is None)

    async def deliver(held: list[Alert]) -> None:
        parts.notifier.attach(host.bus)
        shown: set[int] = set()
        for alert in [*host.startup_alerts, *held]:  # e.g. "was armed at shutdown; always start disarmed"
            if id(alert) not in shown:
                shown.add(id(alert))
                await parts.notifier.on_alert(alert)

    if request is not None:  # a Bot API double answers at once
        await connect()
        await deliver([])
        return parts
    parts.link = ChatLink(host, t.base_url, connect, deliver)
    try:
        await parts.link.start()
    except BaseException:
        await parts.stop()
        raise
    # the first /chart would otherwise pay matplotlib's import and set-up (~1.2 s against ~0.14 s);
    # not on a Bot API double, where tests and the demo start a service by the hundred
    parts.warm_up = asyncio.create_task(_warm_charts(), name="chart-warm-up")
    return parts


async def _warm_charts() -> None:
    from core.control.charts import warm_up

    try:
        await warm_up()
    except Exception:  # a chart that cannot be drawn says so when asked; nothing else depends on it
        log.warning("charts could not be made ready at start; the first /chart will be slower", exc_info=True)


async def _bring_up(parts: BotParts, *, polling: bool) -> None:
    """Initialise, start, set the menus, poll: each step once, so a retry goes on where it failed."""
    app = parts.app
    await app.initialize()  # getMe: the first call to reach the Bot API
    if not app.running:
        await app.start()
    if parts.menus is None:
        parts.menus = await publish_menus(app.bot, parts.handlers.auth)
    if polling and app.updater is not None and not app.updater.running:

        def polling_error(exc: Exception) -> None:
            log.warning("telegram polling error: %s", exc)

        await app.updater.start_polling(
            drop_pending_updates=True, allowed_updates=ALLOWED_UPDATES, error_callback=polling_error
        )
