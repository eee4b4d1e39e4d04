"""The command menu Telegram shows beside the text box: each authorised user exactly their role's.

At start the default scope's menu is deleted (strangers and groups see none: a group's members
are not authorised by being there), then each authorised user's private chat gets its own
``BotCommandScopeChat`` menu, built from :data:`bot.commands.COMMANDS` so it always matches what
the user may run. A menu is a convenience: a Bot API failure is logged and the bot runs on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import TelegramError

from bot.auth import Authoriser, Role
from bot.commands import COMMANDS

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 256  # Telegram's limit for a command's description
MENU_TIMEOUT_S = 10.0
"""The longest the menus may hold up the bot's start (Telegram answered getMe just before)."""


def commands_for(role: Role) -> list[BotCommand]:
    """The commands a user of ``role`` may run, in the table's order."""
    return [BotCommand(spec.name, spec.summary[:MAX_DESCRIPTION]) for spec in COMMANDS.values() if role >= spec.role]


@dataclass
class MenuReport:
    chats: dict[int, int] = field(default_factory=dict)
    """Private chat -> how many commands its menu has."""
    failed: list[str] = field(default_factory=list)


async def publish_menus(bot: Bot, auth: Authoriser, timeout_s: float = MENU_TIMEOUT_S) -> MenuReport:
    report = MenuReport()
    try:
        async with asyncio.timeout(timeout_s):
            await _publish(bot, auth, report)
    except TimeoutError:
        report.failed.append(f"gave up after {timeout_s:g}s")
    if report.failed:
        log.warning("telegram command menu not fully set (the bot runs on): %s", "; ".join(report.failed))
    return report


async def _publish(bot: Bot, auth: Authoriser, report: MenuReport) -> None:
    try:
        await bot.delete_my_commands()
    except TelegramError as exc:
        report.failed.append(f"default scope: {exc}")
    for user_id in auth.user_ids:
        role = auth.role_of(user_id)
        if role is None:  # pragma: no cover - user_ids lists only users with a role
            continue
        commands = commands_for(role)
        try:
            await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id=user_id))
        except TelegramError as exc:
            report.failed.append(f"chat {user_id}: {exc}")
            continue
        report.chats[user_id] = len(commands)
