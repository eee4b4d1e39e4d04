"""Live orders in chat: the confirmation card, its Confirm / Cancel buttons, and its expiry.

The card's buttons carry only a nonce; the ticket waits in :class:`bot.confirm.ConfirmationStore`,
valid once, for the user who asked, for ``confirm_ttl_s``. A card is only shown for an order that
would be sent (the facade screens it first); at Confirm the control facade checks the order again
(arm state, mode, book, risk limits) before anything is sent, and the tap's answer says what came
of it. The [Cancel n] buttons under /orders (:mod:`bot.cancel_buttons`) come through here too; a
live order's cancel waits on the same kind of card.
"""

from __future__ import annotations

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import render
from bot.auth import Authoriser, Role
from bot.cancel_buttons import CancelButtons, CancelTicket, render_cancel_result, render_cancel_ticket, toast
from bot.commands import safe, who
from bot.confirm import ConfirmationStore, TapResult
from bot.sender import Sender
from bot.settle_views import render_settle_report, render_settle_ticket
from bot.views import render_order_result, render_refusal, render_ticket
from core.control.facade import Control
from core.control.orders import OrderRefused, mode_label, status_words
from core.control.settlement import SettleTicket
from core.control.types import ControlError, OrderTicket

FRONT_END = "telegram"
EXPIRED_TEXT = "⌛ Confirmation expired; nothing was sent."
EXPIRED_CANCEL_TEXT = "⌛ Confirmation expired; nothing was canceled."
JOB_SLACK_S = 0.05
"""The expiry job runs just after the deadline, so the store already counts the card as expired."""

Ticket = OrderTicket | SettleTicket | CancelTicket
"""What a card waits to execute: a live order, a live merge / redeem, or a live order's cancel
(same nonce, user, expiry)."""


def _expired_text(ticket: Ticket) -> str:
    return EXPIRED_CANCEL_TEXT if isinstance(ticket, CancelTicket) else EXPIRED_TEXT


def _card_text(ticket: Ticket, ttl: int) -> str:
    if isinstance(ticket, OrderTicket):
        return render_ticket(ticket, ttl)
    if isinstance(ticket, CancelTicket):
        return render_cancel_ticket(ticket, ttl)
    return render_settle_ticket(ticket, ttl)


class OrderConfirmations:
    def __init__(
        self,
        control: Control,
        authoriser: Authoriser,
        sender: Sender,
        confirmations: ConfirmationStore[Ticket],
    ) -> None:
        self.control = control
        self.auth = authoriser
        self.sender = sender
        self.confirmations = confirmations
        self.cancel_buttons = CancelButtons(control, authoriser, sender, self.ask)

    async def ask(self, update: Update, context: ContextTypes.DEFAULT_TYPE | None, ticket: Ticket) -> str:
        """Show the card; returns the audit detail of the command that asked for it."""
        user = update.effective_user
        chat = update.effective_chat
        assert user is not None and chat is not None  # a command handler only runs for a user in a chat
        pending = self.confirmations.create(user.id, chat.id, ticket)
        keep = "Keep the order" if isinstance(ticket, CancelTicket) else "Cancel"
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm", callback_data=f"c:{pending.nonce}"),
                    InlineKeyboardButton(keep, callback_data=f"x:{pending.nonce}"),
                ]
            ]
        )
        text = _card_text(ticket, int(self.confirmations.ttl_s))
        message = await self.sender.send(chat.id, text, reply_markup=buttons)
        pending.message_id = message.message_id if message is not None else None
        if context is not None and context.job_queue is not None:
            context.job_queue.run_once(
                self._expire_job, when=self.confirmations.ttl_s + JOB_SLACK_S, name=pending.nonce
            )
        return f"confirmation requested {pending.nonce}"

    async def _expire_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.expire_due()

    async def expire_due(self) -> int:
        """Edit every card past its deadline to say nothing was sent; returns how many."""
        expired = self.confirmations.expire_due()
        for pending in expired:
            if pending.message_id is not None:
                await self.sender.edit(pending.chat_id, pending.message_id, _expired_text(pending.payload))
            await self.control.audit_command(FRONT_END, pending.user_id, "order.confirm", pending.nonce, "expired", "")
        return len(expired)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None:
            return
        data = query.data or ""
        action, _, nonce = data.partition(":")
        audit = self.control.audit_command
        if action == "k" and nonce:
            await self.cancel_buttons.on_tap(update, context, nonce)
            return
        if action not in ("c", "x") or not nonce:
            await audit(FRONT_END, user.id, "button", data[:64], "unknown", "")
            await safe(query.answer("Unknown button."))
            return
        if not self.auth.allows(user.id, Role.OPERATOR):
            await audit(FRONT_END, user.id, "order.confirm", nonce, "forbidden", "")
            await safe(query.answer("Not allowed."))
            return
        result, pending = self.confirmations.take(nonce, user.id)
        command = "order.confirm" if action == "c" else "order.cancel"
        if result is not TapResult.OK:
            await audit(FRONT_END, user.id, command, nonce, _TAP_AUDIT[result], "")
            await safe(query.answer(_TAP_ANSWER[result]))
            if result is TapResult.EXPIRED and pending is not None:
                await safe(query.edit_message_text(_expired_text(pending.payload)))
            return
        assert pending is not None  # an accepted tap always carries its confirmation
        if isinstance(pending.payload, CancelTicket):
            command = "cancel.confirm" if action == "c" else "cancel.keep"
        if action == "x":
            await self._dropped(query, user.id, command, nonce, kept=isinstance(pending.payload, CancelTicket))
            return
        try:
            summary, answer, text = await self._execute(pending.payload, who(update))
        except ControlError as exc:
            await audit(FRONT_END, user.id, command, nonce, "refused", str(exc))
            await self._refused(query, exc)
            return
        await audit(FRONT_END, user.id, command, nonce, "ok", summary)
        await safe(query.answer(toast(answer)))
        await safe(query.edit_message_text(text, parse_mode="HTML"))

    async def _dropped(self, query: CallbackQuery, user_id: int, command: str, nonce: str, *, kept: bool) -> None:
        """The card's second button: nothing is sent (an order's card) or canceled (a cancel's card)."""
        await self.control.audit_command(FRONT_END, user_id, command, nonce, "cancelled", "")
        await safe(query.answer("Kept: the order stays open." if kept else "Cancelled: nothing was sent."))
        await safe(
            query.edit_message_text("✖️ Kept; nothing was canceled." if kept else "✖️ Cancelled; nothing was sent.")
        )

    async def _refused(self, query: CallbackQuery, exc: ControlError) -> None:
        """Refused at the Confirm tap (the re-check): said once, on the card and in the tap's answer."""
        why = self.control.mask_typed(str(exc))
        await safe(query.answer(toast(f"Not sent: {why}")))
        refusal = (
            render_refusal(exc.ticket, why) if isinstance(exc, OrderRefused) else f"⛔ Not sent: {render.esc(why)}"
        )
        await safe(query.edit_message_text(refusal, parse_mode="HTML"))

    async def _execute(self, ticket: Ticket, user: str) -> tuple[str, str, str]:
        """(audit summary, the tap's answer, card text) of a confirmed ticket."""
        if isinstance(ticket, OrderTicket):
            outcome = await self.control.execute_order(ticket, user=user, confirmed=True)
            answer = f"{mode_label(outcome.mode)} order {status_words(outcome.status)}"
            return outcome.summary, answer, render_order_result(outcome)
        if isinstance(ticket, CancelTicket):
            result = await self.control.cancel(ticket.order.client_order_id, user=user)
            answer = ("Canceled: " if result.ok else "Not canceled: ") + ticket.order.client_order_id
            return result.message, answer, render_cancel_result(result.ok, result.message)
        report = await self.control.execute_merge(ticket, user=user, confirmed=True)
        return report.summary(), report.summary(), render_settle_report(report)


_TAP_AUDIT = {TapResult.WRONG_USER: "wrong_user", TapResult.UNKNOWN: "already_used", TapResult.EXPIRED: "expired"}
_TAP_ANSWER = {
    TapResult.WRONG_USER: "This confirmation belongs to another user.",
    TapResult.UNKNOWN: "Already handled.",
    TapResult.EXPIRED: "Expired.",
}
