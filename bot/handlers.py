"""Telegram command handlers: parse, call ``core.control``, render. No business rule lives here.

Every update first passes :func:`Gatekeeper.gate` (group -1), which denies strangers for every
update type — messages, edited messages, button presses, inline queries, group chats — records
an audit row, and stops the update before any handler sees it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import render
from bot.auth import Authoriser, RateDecision, Role, UserRateLimiter
from bot.confirm import ConfirmationStore, TapResult
from bot.sender import Sender
from bot.views import (
    render_markets,
    render_order_result,
    render_orders,
    render_positions,
    render_quotes,
    render_status,
    render_ticket,
)
from core.control.facade import Control
from core.control.types import ControlError, OrderTicket
from core.money import parse_plain_decimal
from core.types import Side

log = logging.getLogger(__name__)

NEUTRAL_REPLY = "This bot is private."


@dataclass(frozen=True)
class CommandSpec:
    name: str
    role: Role
    usage: str
    summary: str
    rate_limited: bool = True
    """False for the safe direction: a trader over the limit must still be able to stop trading."""


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in [
        CommandSpec("start", Role.VIEWER, "/start", "introduction and your role"),
        CommandSpec("help", Role.VIEWER, "/help", "list the commands you may use"),
        CommandSpec("status", Role.VIEWER, "/status", "mode, arm state, feeds, books, orders, PnL"),
        CommandSpec("quotes", Role.VIEWER, "/quotes [market|slug]", "top of book, spread and Dutch edge"),
        CommandSpec("markets", Role.VIEWER, "/markets [filter]", "tracked markets"),
        CommandSpec("arm", Role.OPERATOR, "/arm", "allow trading (live mode needs a passing preflight)"),
        CommandSpec("disarm", Role.OPERATOR, "/disarm", "stop placing orders", rate_limited=False),
        CommandSpec("preflight", Role.VIEWER, "/preflight", "run the pre-trade checks"),
        CommandSpec(
            "order",
            Role.OPERATOR,
            "/order MARKET OUTCOME BUY|SELL PRICE SIZE",
            "place an order (live mode asks for confirmation)",
        ),
        CommandSpec("orders", Role.VIEWER, "/orders", "open orders"),
        CommandSpec("cancel", Role.OPERATOR, "/cancel ORDER_ID", "cancel one order"),
        CommandSpec("cancelall", Role.OPERATOR, "/cancelall", "cancel every open order"),
        CommandSpec("positions", Role.VIEWER, "/positions", "positions and PnL per token"),
        CommandSpec("pnl", Role.VIEWER, "/pnl", "realised and unrealised PnL"),
        CommandSpec("health", Role.VIEWER, "/health", "health checks with reasons"),
        CommandSpec("alerts", Role.VIEWER, "/alerts on|off|mute DURATION", "alerts for this chat (e.g. mute 1h)"),
        CommandSpec("kill", Role.OPERATOR, "/kill", "disarm and cancel every open order", rate_limited=False),
    ]
}


class UsageProblem(Exception):
    """Wrong arguments: the reply is the command's usage line."""


def _decimal(text: str, what: str) -> Decimal:
    try:
        return parse_plain_decimal(text)
    except ValueError as exc:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise UsageProblem(f"{what} {exc}, got {shown!r}") from None


def parse_duration(text: str) -> float:
    """'30m', '1h', '2h30m', '90s', '1d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total, number = 0.0, ""
    for ch in text.strip().lower():
        if ch in "0123456789":  # str.isdigit() also takes '١' and '５': ASCII only, as for prices
            number += ch
        elif ch in units and number:
            total += int(number) * units[ch]
            number = ""
        else:
            raise UsageProblem(f"bad duration {text!r} (use e.g. 30m, 1h, 1d)")
    if number or total <= 0 or total > 7 * 86400:
        raise UsageProblem(f"bad duration {text!r} (use e.g. 30m, 1h, 1d; at most 7d)")
    return total


class BotHandlers:
    def __init__(
        self,
        control: Control,
        authoriser: Authoriser,
        sender: Sender,
        confirmations: ConfirmationStore,
        limiter: UserRateLimiter,
        mute_chat: Callable[[int, float | None], str],
    ) -> None:
        self.control = control
        self.auth = authoriser
        self.sender = sender
        self.confirmations = confirmations
        self.limiter = limiter
        self.mute_chat = mute_chat
        self._warned: set[int] = set()

    # ---- registration -------------------------------------------------------------------
    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        app.add_handler(TypeHandler(Update, self.gate), group=-1)
        # New messages only: PTB's default also matches edits, and an edited /order would trade again.
        new_message = filters.UpdateType.MESSAGE
        for name in COMMANDS:
            app.add_handler(CommandHandler(name, self._wrap(name), filters=new_message))
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.COMMAND, self.on_edited_command))
        app.add_handler(MessageHandler(new_message & filters.COMMAND, self.on_unknown_command))
        # Anything else an authorised user sends is answered and audited, never dropped silently.
        app.add_handler(MessageHandler(new_message & ~filters.COMMAND, self.on_not_a_command))
        app.add_handler(InlineQueryHandler(self.on_inline_query))
        app.add_error_handler(self.on_error)

    # ---- the gate -----------------------------------------------------------------------
    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        chat = update.effective_chat
        user_id = user.id if user else None
        allowed = self.auth.role_of(user_id) is not None and (chat is None or chat.type == ChatType.PRIVATE)
        if allowed:
            return
        kind = _update_kind(update)
        if update.callback_query is not None:  # the button's data, not the text of the card it sits on
            text = update.callback_query.data or ""
        elif update.inline_query is not None:
            text = update.inline_query.query
        else:
            text = update.effective_message.text if update.effective_message and update.effective_message.text else ""
        await self.control.audit_command(
            "telegram",
            user_id,
            _split_command(text)[0] or kind,
            text[:200],
            "denied",
            f"unauthorised {kind} in {chat.type if chat else 'no chat'}",
        )
        if update.callback_query is not None:
            await _safe(update.callback_query.answer())
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

    # ---- commands -----------------------------------------------------------------------
    def _wrap(self, name: str) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
        spec = COMMANDS[name]
        method = getattr(self, f"cmd_{name}")

        async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            user = update.effective_user
            chat = update.effective_chat
            assert user is not None and chat is not None
            args = list(context.args or [])
            arg_text = " ".join(args)[:200]
            permitted = self.auth.allows(user.id, spec.role)
            # /disarm and /kill, for those allowed to run them, neither check nor use up the limit:
            # a trader over it can always stop trading, and stopping never blocks a later /status.
            if (spec.rate_limited or not permitted) and not await self._within_limit(user.id, chat.id, name, arg_text):
                return
            if not permitted:
                await self.control.audit_command("telegram", user.id, name, arg_text, "forbidden", spec.role.name)
                await self.sender.send(chat.id, f"/{name} needs the {spec.role.name.lower()} role.")
                return
            try:
                result = await method(update, context, args)
            except UsageProblem as exc:
                await self.control.audit_command("telegram", user.id, name, arg_text, "usage", str(exc))
                await self.sender.send(
                    chat.id,
                    f"{render.esc(self.control.mask_typed(str(exc)))}\nUsage: <code>{render.esc(spec.usage)}</code>",
                )
                return
            except ControlError as exc:
                await self.control.audit_command("telegram", user.id, name, arg_text, "error", str(exc))
                await self.sender.send(chat.id, f"⚠️ {render.esc(self.control.mask_typed(str(exc)))}")
                return
            await self.control.audit_command("telegram", user.id, name, arg_text, "ok", result or "")

        return handler

    async def cmd_start(self, update: Update, context: Any, args: list[str]) -> str:
        return await self.cmd_help(update, context, args)

    async def cmd_help(self, update: Update, context: Any, args: list[str]) -> str:
        role = self.auth.role_of(update.effective_user.id if update.effective_user else None)
        lines = [f"<b>Polybot</b> — your role: <b>{render.esc(role.name.lower() if role else '-')}</b>", ""]
        for spec in COMMANDS.values():
            if role is not None and role >= spec.role:
                lines.append(f"<code>{render.esc(spec.usage)}</code> — {render.esc(spec.summary)}")
        await self._reply(update, "\n".join(lines))
        return ""

    async def cmd_status(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        await self._reply(update, render_status(await self.control.status()))
        return ""

    async def cmd_quotes(self, update: Update, context: Any, args: list[str]) -> str:
        if len(args) > 1:
            raise UsageProblem("at most one market")
        rows = await self.control.quotes(args[0] if args else None)
        await self._reply(update, render_quotes(rows))
        return f"{len(rows)} rows"

    async def cmd_markets(self, update: Update, context: Any, args: list[str]) -> str:
        rows = await self.control.markets(" ".join(args) if args else None)
        await self._reply(update, render_markets(rows))
        return f"{len(rows)} markets"

    async def cmd_arm(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        result = await self.control.arm(_who(update))
        await self._reply(update, ("✅ " if result.ok else "⛔ ") + render.esc(result.message))
        return result.message

    async def cmd_disarm(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        result = await self.control.disarm(_who(update))
        await self._reply(update, "🛑 " + render.esc(result.message))
        return result.message

    async def cmd_preflight(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        report = await self.control.preflight(offline=False)
        rows = [("PASS" if c.ok else ("SKIP" if c.skipped else "FAIL"), c.name, c.detail) for c in report.checks]
        verdict = "✅ preflight passed" if report.ok else "⛔ preflight failed"
        await self._reply(update, f"<b>{verdict}</b>\n" + render.table(rows))
        return "pass" if report.ok else "fail"

    async def cmd_order(self, update: Update, context: Any, args: list[str]) -> str:
        if len(args) != 5:
            raise UsageProblem("expected 5 arguments")
        market, outcome, side_text, price_text, size_text = args
        try:
            side = Side(side_text.upper())
        except ValueError:
            raise UsageProblem(f"SIDE must be BUY or SELL, got {side_text!r}") from None
        price = _decimal(price_text, "PRICE")
        size = _decimal(size_text, "SIZE")
        ticket = await self.control.prepare_order(market, outcome, side, price, size, user=_who(update))
        if ticket.needs_confirmation:
            return await self._ask_confirmation(update, context, ticket)
        result = await self.control.execute_order(ticket, user=_who(update), confirmed=False)
        await self._reply(update, render_order_result(result))
        return result.summary

    async def _ask_confirmation(self, update: Update, context: Any, ticket: OrderTicket) -> str:
        user = update.effective_user
        chat = update.effective_chat
        assert user is not None and chat is not None
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
        message = await self.sender.send(chat.id, render_ticket(ticket, ttl), reply_markup=buttons)
        pending.message_id = message.message_id if message is not None else None
        if context is not None and getattr(context, "job_queue", None) is not None:
            context.job_queue.run_once(self._expire_job, when=self.confirmations.ttl_s + 0.05, name=pending.nonce)
        return f"confirmation requested {pending.nonce}"

    async def _expire_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.expire_confirmations()

    async def expire_confirmations(self) -> int:
        expired = self.confirmations.expire_due()
        for pending in expired:
            if pending.message_id is not None:
                await self.sender.edit(
                    pending.chat_id, pending.message_id, "⌛ Confirmation expired; nothing was sent."
                )
            await self.control.audit_command("telegram", pending.user_id, "order.confirm", pending.nonce, "expired", "")
        return len(expired)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None:
            return
        data = query.data or ""
        action, _, nonce = data.partition(":")
        if action not in ("c", "x") or not nonce:
            await self.control.audit_command("telegram", user.id, "button", data[:64], "unknown", "")
            await _safe(query.answer("Unknown button."))
            return
        if not self.auth.allows(user.id, Role.OPERATOR):
            await self.control.audit_command("telegram", user.id, "order.confirm", nonce, "forbidden", "")
            await _safe(query.answer("Not allowed."))
            return
        result, pending = self.confirmations.take(nonce, user.id)
        command = "order.confirm" if action == "c" else "order.cancel"
        if result is TapResult.WRONG_USER:
            await self.control.audit_command("telegram", user.id, command, nonce, "wrong_user", "")
            await _safe(query.answer("This confirmation belongs to another user."))
            return
        if result is TapResult.UNKNOWN:
            await self.control.audit_command("telegram", user.id, command, nonce, "already_used", "")
            await _safe(query.answer("Already handled."))
            return
        if result is TapResult.EXPIRED:
            await self.control.audit_command("telegram", user.id, command, nonce, "expired", "")
            await _safe(query.answer("Expired."))
            await _safe(query.edit_message_text("⌛ Confirmation expired; nothing was sent."))
            return
        assert pending is not None
        if action == "x":
            await self.control.audit_command("telegram", user.id, command, nonce, "cancelled", "")
            await _safe(query.answer("Cancelled."))
            await _safe(query.edit_message_text("✖️ Cancelled; nothing was sent."))
            return
        await _safe(query.answer("Sending…"))
        try:
            outcome = await self.control.execute_order(pending.payload, user=_who(update), confirmed=True)
        except ControlError as exc:
            await self.control.audit_command("telegram", user.id, command, nonce, "refused", str(exc))
            await _safe(
                query.edit_message_text(
                    f"⛔ Not sent: {render.esc(self.control.mask_typed(str(exc)))}", parse_mode="HTML"
                )
            )
            return
        await self.control.audit_command("telegram", user.id, command, nonce, "ok", outcome.summary)
        await _safe(query.edit_message_text(render_order_result(outcome), parse_mode="HTML"))

    async def cmd_orders(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        rows = await self.control.orders()
        await self._reply(update, render_orders(rows))
        return f"{len(rows)} orders"

    async def cmd_cancel(self, update: Update, context: Any, args: list[str]) -> str:
        if len(args) != 1:
            raise UsageProblem("expected one order id")
        result = await self.control.cancel(args[0], user=_who(update))
        await self._reply(update, render.esc(result.message))
        return result.message

    async def cmd_cancelall(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        result = await self.control.cancel_all(user=_who(update))
        await self._reply(update, render.esc(result.message))
        return result.message

    async def cmd_positions(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        rows = await self.control.positions()
        await self._reply(update, render_positions(rows))
        return f"{len(rows)} positions"

    async def cmd_pnl(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        pnl = await self.control.pnl()
        await self._reply(
            update,
            f"<b>PnL</b>\nrealised today: {render.money(pnl.realised_today)} pUSD\n"
            f"realised total: {render.money(pnl.realised_total)} pUSD\n"
            f"unrealised: {render.money(pnl.unrealised)} pUSD",
        )
        return ""

    async def cmd_health(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        report = await self.control.health()
        head = "✅ healthy" if report.ok else "⚠️ unhealthy"
        body = "\n".join(f"• {render.esc(r)}" for r in report.reasons) or "all checks pass"
        await self._reply(update, f"<b>{head}</b>\n{body}")
        return "ok" if report.ok else "unhealthy"

    async def cmd_alerts(self, update: Update, context: Any, args: list[str]) -> str:
        chat = update.effective_chat
        assert chat is not None
        if not args or args[0].lower() not in ("on", "off", "mute"):
            raise UsageProblem("expected on, off or mute DURATION")
        word = args[0].lower()
        if word == "mute":
            if len(args) != 2:
                raise UsageProblem("mute needs a duration, e.g. 1h")
            message = self.mute_chat(chat.id, parse_duration(args[1]))
        elif len(args) != 1:
            raise UsageProblem("on/off take no further argument")
        else:
            message = self.mute_chat(chat.id, 0.0 if word == "on" else None)
        await self._reply(update, render.esc(message))
        return message

    async def cmd_kill(self, update: Update, context: Any, args: list[str]) -> str:
        self._no_args(args)
        result = await self.control.kill(_who(update))
        await self._reply(update, "🛑 " + render.esc(result.message))
        return result.message

    async def _audit_and_reply(
        self, update: Update, result: str, reply: Callable[[str], str], *, command: str | None = None, detail: str = ""
    ) -> None:
        """Messages no command handler took: one audit row and one short reply (the text is escaped)."""
        user = update.effective_user
        chat = update.effective_chat
        if user is None or chat is None or update.effective_message is None:
            return
        text = update.effective_message.text or ""
        name = command or _split_command(text)[0] or "?"
        if not await self._within_limit(user.id, chat.id, name, text[:200]):
            return
        await self.control.audit_command("telegram", user.id, name, text[:200], result, detail)
        await self.sender.send(chat.id, reply(render.esc(name)))

    async def _within_limit(self, user_id: int, chat_id: int, command: str, arguments: str) -> bool:
        """The per-user limit: a refused command is audited every time, answered once per window."""
        decision = self.limiter.check(user_id)
        if decision.allowed:
            return True
        told = "answered" if decision.tell else "not answered (already told this minute)"
        detail = f"over {self.limiter.per_minute}/min; next accepted in {decision.retry_after_s} s; {told}"
        await self.control.audit_command("telegram", user_id, command, arguments, "rate_limited", detail)
        if decision.tell:
            await self.sender.send(chat_id, slow_down_text(decision, self.limiter.per_minute))
        return False

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        name, target = _split_command((message.text or "") if message is not None else "")
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
            "telegram", query.from_user.id, "inline_query", query.query[:200], "unsupported", ""
        )
        await _safe(query.answer([], cache_time=0, is_personal=True))  # inline mode is not offered

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

    # ---- helpers ------------------------------------------------------------------------
    @staticmethod
    def _no_args(args: list[str]) -> None:
        if args:
            raise UsageProblem("this command takes no arguments")

    async def _reply(self, update: Update, text: str) -> None:
        chat = update.effective_chat
        assert chat is not None
        await self.sender.send(chat.id, text)


def _who(update: Update) -> str:
    user = update.effective_user
    return f"telegram:{user.id}" if user else "telegram:?"


def _update_kind(update: Update) -> str:
    for kind in ("message", "edited_message", "callback_query", "inline_query", "channel_post", "my_chat_member"):
        if getattr(update, kind, None) is not None:
            return kind
    return "update"


_COMMAND = re.compile(r"/(\S+)")


def _split_command(text: str) -> tuple[str, str | None]:
    """'/status@some_bot now' -> ('status', 'some_bot'); no suffix -> ('status', None); not a command -> ('', None)."""
    match = _COMMAND.match(text)
    if match is None:
        return "", None
    name, at, target = match.group(1).partition("@")
    return name[:32], target[:64] if at else None


def _own_username(context: ContextTypes.DEFAULT_TYPE) -> str:
    try:
        return context.bot.username  # known from getMe once the Application is initialised
    except RuntimeError:
        return ""


def slow_down_text(decision: RateDecision, per_minute: int) -> str:
    return (
        f"Too many commands (over {per_minute} a minute): this one was not run. "
        f"Wait {decision.retry_after_s} s. For the next minute, commands over the limit are refused "
        "without another reply. /disarm and /kill are never limited."
    )


async def _safe(awaitable: Awaitable[Any]) -> None:
    """Telegram calls whose failure must not break the handler ('message is not modified', old query)."""
    try:
        await awaitable
    except Exception as exc:
        log.info("telegram call ignored: %s", exc)
