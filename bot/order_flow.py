"""Live orders in chat: the confirmation card, its Confirm / Cancel buttons, and its expiry.

The card's buttons carry only a nonce; the ticket waits in :class:`bot.confirm.ConfirmationStore`,
valid once, for the user who asked, for ``confirm_ttl_s``. At Confirm the control facade checks the
order again (arm state, mode, book, risk limits) before anything is sent.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import render
from bot.auth import Authoriser, Role
from bot.commands import safe, who
from bot.confirm import ConfirmationStore, TapResult
from bot.sender import Sender
from bot.settle_views import render_settle_report, render_settle_ticket
from bot.views import render_order_result, render_ticket
from core.control.facade import Control
from core.control.settlement import SettleTicket
from core.control.types import ControlError, OrderTicket

FRONT_END = "telegram"
EXPIRED_TEXT = "⌛ Confirmation expired; nothing was sent."
JOB_SLACK_S = 0.05
"""The expiry job runs just after the deadline, so the store already counts the card as expired."""

Ticket = OrderTicket | SettleTicket
"""What a card waits to execute: a live order, or a live merge / redeem (same nonce, user, expiry)."""


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

    async def ask(self, update: Update, context: ContextTypes.DEFAULT_TYPE | None, ticket: Ticket) -> str:
        """Show the card; returns the audit detail of the command that asked for it."""
        user = update.effective_user
        chat = update.effective_chat
        assert user is not None and chat is not None  # a command handler only runs for a user in a chat
        pending = self.confirmations.create(user.id, chat.id, ticket)
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm", callback_data=f"c:{pending.nonce}"),
                    InlineKeyboardButton("Cancel", callback_data=f"x:{pending.nonce}"),
                ]
            ]
        )
        ttl = int(self.confirmations.ttl_s)
        text = render_ticket(ticket, ttl) if isinstance(ticket, OrderTicket) else render_settle_ticket(ticket, ttl)
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
                await self.sender.edit(pending.chat_id, pending.message_id, EXPIRED_TEXT)
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
            if result is TapResult.EXPIRED:
                await safe(query.edit_message_text(EXPIRED_TEXT))
            return
        assert pending is not None  # an accepted tap always carries its confirmation
        if action == "x":
            await audit(FRONT_END, user.id, command, nonce, "cancelled", "")
            await safe(query.answer("Cancelled."))
            await safe(query.edit_message_text("✖️ Cancelled; nothing was sent."))
            return
        await safe(query.answer("Sending…"))
        try:
            summary, text = await self._execute(pending.payload, who(update))
        except ControlError as exc:
            await audit(FRONT_END, user.id, command, nonce, "refused", str(exc))
            refusal = f"⛔ Not sent: {render.esc(self.control.mask_typed(str(exc)))}"
            await safe(query.edit_message_text(refusal, parse_mode="HTML"))
            return
        await audit(FRONT_END, user.id, command, nonce, "ok", summary)
        await safe(query.edit_message_text(text, parse_mode="HTML"))

    async def _execute(self, ticket: Ticket, user: str) -> tuple[str, str]:
        """(audit summary, card text) of a confirmed ticket."""
        if isinstance(ticket, OrderTicket):
            outcome = await self.control.execute_order(ticket, user=user, confirmed=True)
            return outcome.summary, render_order_result(outcome)
        report = await self.control.execute_merge(ticket, user=user, confirmed=True)
        return report.summary(), render_settle_report(report)


_TAP_AUDIT = {TapResult.WRONG_USER: "wrong_user", TapResult.UNKNOWN: "already_used", TapResult.EXPIRED: "expired"}
_TAP_ANSWER = {
    TapResult.WRONG_USER: "This confirmation belongs to another user.",
    TapResult.UNKNOWN: "Already handled.",
    TapResult.EXPIRED: "Expired.",
}
