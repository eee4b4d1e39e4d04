"""/strategy, /params and /set: runtime control from the chat.

The rules (which parameters, which direction loosens one, persistence) live in
:mod:`core.control.tuning`; here: parsing, rendering and the role rule for a loosening. A change
that loosens a risk limit (or removes one) needs the admin role and a tap on a confirmation card —
the same single-use, user-bound, expiring nonce as a live order (:class:`bot.confirm.ConfirmationStore`),
with its own button prefixes (``pk:`` confirm, ``px:`` cancel) so the order buttons never see it.
"""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import render
from bot.auth import Authoriser, Role
from bot.commands import UsageProblem, safe, who
from bot.confirm import ConfirmationStore, TapResult
from bot.sender import Sender
from core.control.facade import Control
from core.control.tuning import ParamChange, ParamRow, StrategyRow, show
from core.control.types import ControlError

FRONT_END = "telegram"
BUTTONS = r"^p[kx]:"
EXPIRED_TEXT = "⌛ Confirmation expired; nothing was changed."
JOB_SLACK_S = 0.05

Context = ContextTypes.DEFAULT_TYPE


class TuningCommands:
    def __init__(self, control: Control, authoriser: Authoriser, sender: Sender, like: ConfirmationStore[Any]) -> None:
        """``like``: the order cards' store, whose time-to-live and clock these cards share."""
        self.control = control
        self.auth = authoriser
        self.sender = sender
        self.cards: ConfirmationStore[ParamChange] = ConfirmationStore(ttl_s=like.ttl_s, clock=like.clock)

    # ---- commands ---------------------------------------------------------------------------
    async def cmd_strategy(self, update: Update, context: Context, args: list[str]) -> str:
        if not args:
            await self._reply(update, render_strategies(self.control.tuning.strategies()))
            return ""
        if len(args) not in (2, 3) or args[1].lower() not in ("on", "off"):
            raise UsageProblem("expected dutch|spread on|off [MARKET]")
        result = await self.control.tuning.set_strategy(
            args[0], args[1].lower() == "on", args[2] if len(args) == 3 else None, by=who(update)
        )
        icon = "▶️ " if args[1].lower() == "on" else "⏸ "
        await self._reply(update, icon + render.esc(result.message))
        return result.message

    async def cmd_params(self, update: Update, context: Context, args: list[str]) -> str:
        if args:
            raise UsageProblem("this command takes no arguments")
        rows = self.control.tuning.params()
        await self._reply(update, render_params(rows))
        return f"{len(rows)} params"

    async def cmd_set(self, update: Update, context: Context, args: list[str]) -> str:
        if len(args) != 2:
            raise UsageProblem("expected KEY VALUE (see /params)")
        change = self.control.tuning.prepare_set(args[0], args[1], user=who(update))
        user = update.effective_user
        if not change.loosens:
            result = await self.control.tuning.apply(change, by=who(update))
            await self._reply(update, "✅ " + render.esc(result.message))
            return result.message
        if not self.auth.allows(user.id if user else None, Role.ADMIN):
            refusal = f"{change.line()} loosens a risk limit: that needs the admin role. Nothing changed."
            await self._reply(update, "⛔ " + render.esc(refusal))
            return "refused: loosening needs admin"
        return await self._ask(update, context, change)

    # ---- the card ---------------------------------------------------------------------------
    async def _ask(self, update: Update, context: Context | None, change: ParamChange) -> str:
        user, chat = update.effective_user, update.effective_chat
        assert user is not None and chat is not None  # a command handler only runs for a user in a chat
        pending = self.cards.create(user.id, chat.id, change)
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm", callback_data=f"pk:{pending.nonce}"),
                    InlineKeyboardButton("Cancel", callback_data=f"px:{pending.nonce}"),
                ]
            ]
        )
        text = (
            f"<b>Loosen a risk limit?</b>\n{render.esc(change.line())}\n"
            f"Confirm within {int(self.cards.ttl_s)} s; it applies at once and is kept across restarts."
        )
        message = await self.sender.send(chat.id, text, reply_markup=buttons)
        pending.message_id = message.message_id if message is not None else None
        if context is not None and context.job_queue is not None:
            context.job_queue.run_once(self._expire_job, when=self.cards.ttl_s + JOB_SLACK_S, name=pending.nonce)
        return f"confirmation requested {pending.nonce}"

    async def _expire_job(self, context: Context) -> None:
        await self.expire_due()

    async def expire_due(self) -> int:
        expired = self.cards.expire_due()
        for pending in expired:
            if pending.message_id is not None:
                await self.sender.edit(pending.chat_id, pending.message_id, EXPIRED_TEXT)
            await self.control.audit_command(FRONT_END, pending.user_id, "set.confirm", pending.nonce, "expired", "")
        return len(expired)

    async def on_button(self, update: Update, context: Context) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None:
            return
        action, _, nonce = (query.data or "").partition(":")
        command = "set.confirm" if action == "pk" else "set.cancel"
        audit = self.control.audit_command
        if not self.auth.allows(user.id, Role.ADMIN):
            await audit(FRONT_END, user.id, command, nonce, "forbidden", "")
            await safe(query.answer("Not allowed: loosening a risk limit needs the admin role."))
            return
        result, pending = self.cards.take(nonce, user.id)
        if result is not TapResult.OK or pending is None:
            await audit(FRONT_END, user.id, command, nonce, result.value, "")
            await safe(query.answer(_TAP_ANSWER.get(result, "Already handled.")))
            if result is TapResult.EXPIRED:
                await safe(query.edit_message_text(EXPIRED_TEXT))
            return
        if action != "pk":
            await audit(FRONT_END, user.id, command, nonce, "cancelled", pending.payload.line())
            await safe(query.answer("Cancelled; nothing changed."))
            await safe(query.edit_message_text("✖️ Cancelled; nothing changed."))
            return
        try:
            done = await self.control.tuning.apply(pending.payload, by=who(update))
        except ControlError as exc:
            await audit(FRONT_END, user.id, command, nonce, "refused", str(exc))
            await safe(query.answer("Not applied."))
            await safe(query.edit_message_text(f"⛔ Not applied: {render.esc(str(exc))}", parse_mode="HTML"))
            return
        await audit(FRONT_END, user.id, command, nonce, "ok", done.message)
        await safe(query.answer("Applied."))
        await safe(query.edit_message_text(f"✅ {render.esc(done.message)}", parse_mode="HTML"))

    async def _reply(self, update: Update, text: str) -> None:
        chat = update.effective_chat
        assert chat is not None  # every reply answers a chat
        await self.sender.send(chat.id, text)


_TAP_ANSWER = {
    TapResult.WRONG_USER: "This confirmation belongs to another user.",
    TapResult.UNKNOWN: "Already handled.",
    TapResult.EXPIRED: "Expired.",
}


def render_params(rows: list[ParamRow]) -> str:
    table = render.table(
        [(r.key, show(r.value) + (" *" if r.changed else ""), r.unit) for r in rows], header=("key", "value", "unit")
    )
    notes = "\n".join(f"• <code>{render.esc(r.key)}</code>: {render.esc(r.summary)}" for r in rows)
    return (
        f"<b>Parameters</b> (* = set at runtime)\n{table}\n{notes}\n"
        "Change one with <code>/set KEY VALUE</code> (<code>none</code> removes a limit); "
        "loosening a risk limit needs the admin role and a confirmation."
    )


def render_strategies(rows: list[StrategyRow]) -> str:
    lines = ["<b>Strategies</b>"]
    for r in rows:
        state = "on" if r.running and not r.paused else "off" if r.paused and not r.running else "partly on"
        if not r.running and not r.paused:
            state = "no runner"
        line = f"{render.esc(r.name)}: <b>{state}</b> ({r.running} running, {r.paused} paused)"
        if r.paused_markets:
            line += "\n  paused: " + render.esc(", ".join(r.paused_markets))
        if r.kept_off:
            line += "\n  kept off across restarts: " + render.esc(", ".join(r.kept_off))
        lines.append(line)
    lines.append("Switch with <code>/strategy dutch|spread on|off [MARKET]</code>.")
    return "\n".join(lines)
