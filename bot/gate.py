"""Who may talk to the bot, how often, and what happens to everything that is not a command it runs.

:meth:`Gatekeeper.gate` runs first for every update (handler group -1): it denies strangers for
every update type — messages, edited messages, button presses, inline queries, group chats —
records an audit row, and stops the update before any handler sees it. The other handlers here
answer, once and audited, what no command handler took: unknown commands, commands addressed to
another bot, plain text, edited commands, inline queries. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot import render
from bot.auth import Authoriser, UserRateLimiter
from bot.commands import COMMANDS, NEUTRAL_REPLY, safe, slow_down_text, split_command, update_kind
from bot.sender import Sender
from core.control.facade import Control

log = logging.getLogger(__name__)

FRONT_END = "telegram"
SHOWN_TEXT_CHARS = 200


class Gatekeeper:
    def __init__(self, control: Control, authoriser: Authoriser, sender: Sender, limiter: UserRateLimiter) -> None:
        self.control = control
        self.auth = authoriser
        self.sender = sender
        self.limiter = limiter
        self._warned: set[int] = set()

    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        chat = update.effective_chat
        user_id = user.id if user else None
        allowed = self.auth.role_of(user_id) is not None and (chat is None or chat.type == ChatType.PRIVATE)
        if allowed:
            return
        kind = update_kind(update)
        text = _typed_text(update)
        await self.control.audit_command(
            FRONT_END,
            user_id,
            split_command(text)[0] or kind,
            text[:SHOWN_TEXT_CHARS],
            "denied",
            f"unauthorised {kind} in {chat.type if chat else 'no chat'}",
        )
        if update.callback_query is not None:
            await safe(update.callback_query.answer())
        elif (
            update.message is not None
            and chat is not None
            and chat.type == ChatType.PRIVATE
            and user_id is not None
            and user_id not in self._warned
        ):
            self._warned.add(user_id)  # at most one neutral reply per stranger
            await self.sender.send(chat.id, NEUTRAL_REPLY)
        raise ApplicationHandlerStop

    async def within_limit(self, user_id: int, chat_id: int, command: str, arguments: str) -> bool:
        """The per-user limit: a refused command is audited every time, answered once per window."""
        decision = self.limiter.check(user_id)
        if decision.allowed:
            return True
        told = "answered" if decision.tell else "not answered (already told this minute)"
        detail = f"over {self.limiter.per_minute}/min; next accepted in {decision.retry_after_s} s; {told}"
        await self.control.audit_command(FRONT_END, user_id, command, arguments, "rate_limited", detail)
        if decision.tell:
            await self.sender.send(chat_id, slow_down_text(decision, self.limiter.per_minute))
        return False

    async def _audit_and_reply(
        self, update: Update, result: str, reply: Callable[[str], str], *, command: str | None = None, detail: str = ""
    ) -> None:
        """Messages no command handler took: one audit row and one short reply (the text is escaped)."""
        user = update.effective_user
        chat = update.effective_chat
        if user is None or chat is None or update.effective_message is None:
            return
        text = update.effective_message.text or ""
        name = command or split_command(text)[0] or "?"
        if not await self.within_limit(user.id, chat.id, name, text[:SHOWN_TEXT_CHARS]):
            return
        await self.control.audit_command(FRONT_END, user.id, name, text[:SHOWN_TEXT_CHARS], result, detail)
        await self.sender.send(chat.id, reply(render.esc(name)))

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        name, target = split_command((message.text or "") if message is not None else "")
        me = _own_username(context)
        # PTB runs /cmd@<our username> itself; a suffix naming another bot is that bot's command.
        if target is not None and target.lower() != me.lower():
            whom = f"@{render.esc(target)}" if target else "another bot"
            hint = f" Send /{render.esc(name)} to run it here." if name in COMMANDS else " Try /help."
            await self._audit_and_reply(
                update,
                "other_bot",
                lambda n: (
                    f"/{n}@{render.esc(target)} is for {whom}, not for me (@{render.esc(me)}): nothing was run.{hint}"
                ),
                detail=f"addressed to @{target}",
            )
            return
        await self._audit_and_reply(update, "unknown_command", lambda name: f"Unknown command /{name}. Try /help.")

    async def on_not_a_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._audit_and_reply(update, "not_a_command", lambda _: "Not a command. Try /help.", command="message")

    async def on_inline_query(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.inline_query
        if query is None:
            return
        await self.control.audit_command(
            FRONT_END, query.from_user.id, "inline_query", query.query[:SHOWN_TEXT_CHARS], "unsupported", ""
        )
        await safe(query.answer([], cache_time=0, is_personal=True))  # inline mode is not offered

    async def on_edited_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._audit_and_reply(
            update,
            "edited",
            lambda _: "An edited command is not run; send it again as a new message.",
            detail="not executed",
        )

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram handler failed: %s", context.error, exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            await self.sender.send(update.effective_chat.id, "⚠️ Internal error; it has been logged.")


def _typed_text(update: Update) -> str:
    """What the stranger sent: a button's data (not the card it sits on), an inline query, or text."""
    if update.callback_query is not None:
        return update.callback_query.data or ""
    if update.inline_query is not None:
        return update.inline_query.query
    message = update.effective_message
    return message.text if message is not None and message.text else ""


def _own_username(context: ContextTypes.DEFAULT_TYPE) -> str:
    try:
        return context.bot.username  # known from getMe once the Application is initialised
    except RuntimeError:
        return ""
