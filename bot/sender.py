"""The one send path: HTML parse mode, splitting above 4096 characters, errors logged not raised.

Every text is masked before it leaves (``mask``: the control facade's :meth:`redact_outgoing`,
so a secret that reached a message by mistake never reaches a chat)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError

from bot.render import split_message

log = logging.getLogger(__name__)


class Sender:
    def __init__(self, bot: Bot, *, mask: Callable[[str], str]) -> None:
        self.bot = bot
        self.mask = mask
        self.sent = 0
        self.failed = 0

    async def send(self, chat_id: int, text: str, reply_markup: InlineKeyboardMarkup | None = None) -> Message | None:
        """Send ``text`` (HTML) to a chat; long text is split; the markup goes on the last part."""
        parts = split_message(self.mask(text))
        last: Message | None = None
        for i, part in enumerate(parts):
            markup = reply_markup if i == len(parts) - 1 else None
            try:
                last = await self.bot.send_message(chat_id, part, parse_mode=ParseMode.HTML, reply_markup=markup)
                self.sent += 1
            except TelegramError as exc:
                self.failed += 1
                log.warning("telegram send to chat %s failed: %s", chat_id, exc)
                return None
        return last

    async def send_photo(self, chat_id: int, png: bytes, caption: str, filename: str) -> Message | None:
        """A picture with a caption (plain text, masked, at most 1024 characters as Telegram allows)."""
        try:
            message = await self.bot.send_photo(chat_id, png, caption=self.mask(caption)[:1024], filename=filename)
        except TelegramError as exc:
            self.failed += 1
            log.warning("telegram photo to chat %s failed: %s", chat_id, exc)
            return None
        self.sent += 1
        return message

    async def edit(self, chat_id: int, message_id: int, text: str, **kwargs: Any) -> None:
        try:
            await self.bot.edit_message_text(
                split_message(self.mask(text))[0],
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=ParseMode.HTML,
                **kwargs,
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                log.warning("telegram edit failed: %s", exc)
        except TelegramError as exc:
            log.warning("telegram edit failed: %s", exc)
