"""The [Cancel n] buttons under /orders: one tap cancels a paper or dry-run order; a live order's
tap shows a confirmation card first (the /order card's mechanism: nonce, same user, expiry).

A button carries ``k:`` and the order's full client order id (37 bytes, within Telegram's 64):
the order is looked up again at the tap, so an old /orders message can never cancel anything
but the order it names, and only while it is open. Only an operator's tap counts (the gate has
already answered strangers); a viewer is told no.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import render
from bot.auth import Authoriser, Role
from bot.commands import safe, who
from bot.sender import Sender
from bot.views import order_summary
from core.control.facade import Control
from core.control.types import ControlError, OrderRow

FRONT_END = "telegram"
ACTION = "k"
MAX_BUTTONS = 20
"""Buttons under one /orders reply; the rest are cancelled with /cancel ID."""
OPEN_STATUSES = frozenset({"live", "partially_filled", "submitted_unknown", "new"})
TOAST_CHARS = 190  # Telegram shows at most 200 characters in a callback answer


@dataclass(frozen=True)
class CancelTicket:
    """A live order's cancel waiting for the Confirm tap."""

    order: OrderRow


def toast(text: str) -> str:
    return text if len(text) <= TOAST_CHARS else text[: TOAST_CHARS - 1] + "…"


def cancel_keyboard(rows: list[OrderRow], ids: dict[str, str]) -> InlineKeyboardMarkup | None:
    buttons = [
        [InlineKeyboardButton(f"Cancel {n} ({ids.get(r.client_order_id, r.client_order_id)})", callback_data=data)]
        for n, r in enumerate(rows[:MAX_BUTTONS], 1)
        if len((data := f"{ACTION}:{r.client_order_id}").encode()) <= 64
    ]
    return InlineKeyboardMarkup(buttons) if buttons else None


def render_cancel_ticket(t: CancelTicket, ttl_s: int) -> str:
    r = t.order
    return (
        "<b>⚠️ LIVE cancel — confirm</b>\n"
        f"{render.esc(order_summary(r))}\n"
        f"market: {render.esc(r.market)}\n"
        f"id: <code>{render.esc(r.client_order_id)}</code>\n"
        f"Expires in {ttl_s}s. Nothing is canceled until you tap Confirm."
    )


def render_cancel_result(ok: bool, message: str) -> str:
    return f"{'✅' if ok else '⛔'} {render.esc(message)}"


Ask = Callable[[Update, ContextTypes.DEFAULT_TYPE | None, CancelTicket], Awaitable[str]]


class CancelButtons:
    def __init__(self, control: Control, authoriser: Authoriser, sender: Sender, ask: Ask) -> None:
        self.control = control
        self.auth = authoriser
        self.sender = sender
        self.ask = ask

    async def on_tap(self, update: Update, context: ContextTypes.DEFAULT_TYPE, order_id: str) -> None:
        query = update.callback_query
        user = update.effective_user
        chat = update.effective_chat
        assert query is not None and user is not None  # routed here from a callback query
        audit = self.control.audit_command
        if not self.auth.allows(user.id, Role.OPERATOR):
            await audit(FRONT_END, user.id, "cancel.button", order_id, "forbidden", "")
            await safe(query.answer("Not allowed: cancelling needs the operator role."))
            return
        try:
            row = await self.control.find_order(order_id)
        except ControlError as exc:
            await audit(FRONT_END, user.id, "cancel.button", order_id, "unknown", str(exc))
            await safe(query.answer(toast(f"Nothing canceled: {self.control.mask_typed(str(exc))}")))
            return
        if row.status not in OPEN_STATUSES:
            await audit(FRONT_END, user.id, "cancel.button", order_id, "closed", row.status)
            await safe(query.answer(toast(f"Nothing canceled: that order is already {row.status}.")))
            return
        if row.mode == "live":
            await safe(query.answer("Confirm the cancel on the card below."))
            detail = await self.ask(update, context, CancelTicket(row))
            await audit(FRONT_END, user.id, "cancel.button", order_id, "ok", detail)
            return
        result = await self.control.cancel(row.client_order_id, user=who(update))
        await audit(FRONT_END, user.id, "cancel.button", order_id, "ok" if result.ok else "error", result.message)
        await safe(query.answer(toast(("Canceled: " if result.ok else "Not canceled: ") + order_summary(row))))
        if chat is not None:
            await self.sender.send(chat.id, render_cancel_result(result.ok, result.message))
