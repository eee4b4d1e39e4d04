"""Build the python-telegram-bot Application around the control facade.

The service runs it with the manual lifecycle on its own loop (initialize / start /
updater.start_polling); the offline runner feeds updates with ``process_update`` through an
in-process Bot API double. Either way the same handlers, gate, sender and notifier are used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder
from telegram.request import BaseRequest

from bot.auth import Authoriser, UserRateLimiter
from bot.confirm import ConfirmationStore
from bot.handlers import BotHandlers
from bot.notify import Notifier
from bot.sender import Sender
from core.control.facade import Control

if TYPE_CHECKING:
    from core.service import Service

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "inline_query", "my_chat_member"]


@dataclass
class BotParts:
    app: Application[Any, Any, Any, Any, Any, Any]
    handlers: BotHandlers
    sender: Sender
    notifier: Notifier
    confirmations: ConfirmationStore

    async def notify_admins(self, text: str) -> None:
        await self.notifier.ping_admins(text)

    async def stop(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        await self.app.stop()
        await self.app.shutdown()


def build_bot(
    control: Control,
    *,
    token: str,
    users: Iterable[tuple[int, str]],
    alert_chats: Iterable[int],
    base_url: str = "https://api.telegram.org/bot",
    confirm_ttl_s: float = 30.0,
    commands_per_minute: int = 30,
    alert_cooldown_s: float = 300.0,
    request: BaseRequest | None = None,
    clock: Callable[[], float] | None = None,
    rate_limit_retries: int = 3,
) -> BotParts:
    builder = ApplicationBuilder().token(token).base_url(base_url)
    # Telegram's flood limits (30 messages/s overall, 20/min per group) protect the real Bot API.
    # An in-process double (offline runner, tests, bench) declares it has none; 429 retries stay on.
    if getattr(request, "flood_limited", True):
        limiter = AIORateLimiter(max_retries=rate_limit_retries)
    else:
        limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=rate_limit_retries)
    builder = builder.rate_limiter(limiter)
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    app = builder.build()
    sender = Sender(app.bot)
    clock_kw = {"clock": clock} if clock is not None else {}
    confirmations = ConfirmationStore(ttl_s=confirm_ttl_s, **clock_kw)
    notifier = Notifier(sender, alert_chats, cooldown_s=alert_cooldown_s, **clock_kw)
    handlers = BotHandlers(
        control,
        Authoriser.from_entries(users),
        sender,
        confirmations,
        UserRateLimiter(commands_per_minute, **clock_kw),
        notifier.mute,
    )
    handlers.install(app)
    return BotParts(app, handlers, sender, notifier, confirmations)


async def start_telegram(service: Service) -> BotParts:
    """The service's chat front end: the bot around its control facade, on the service's loop.

    Polls Telegram unless the service was given a Bot API double (``ServiceOptions.bot_request``).
    """
    t = service.settings.telegram
    token = t.token.get_secret_value() if t.token is not None else "1:OFFLINE"
    parts = build_bot(
        service.control,
        token=token,
        users=[(u.id, str(u.role)) for u in t.users],
        alert_chats=t.alert_chats,
        base_url=t.base_url,
        confirm_ttl_s=t.confirm_ttl_s,
        commands_per_minute=t.commands_per_minute,
        request=service.opts.bot_request,
        clock=service.opts.bot_clock,
    )
    parts.notifier.attach(service.bus)
    parts.notifier.admins = [u.id for u in t.users if str(u.role) == "admin"]
    app = parts.app
    await app.initialize()
    await app.start()
    if service.opts.bot_request is None and app.updater is not None:

        def polling_error(exc: Exception) -> None:
            log.warning("telegram polling error: %s", exc)

        await app.updater.start_polling(
            drop_pending_updates=True, allowed_updates=ALLOWED_UPDATES, error_callback=polling_error
        )
    for alert in service.startup_alerts:  # e.g. "was armed at shutdown; always start disarmed"
        await parts.notifier.on_alert(alert)
    return parts
