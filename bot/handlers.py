"""Telegram command handlers: parse, call ``core.control``, render. No business rule lives here.

Every update first passes :meth:`bot.gate.Gatekeeper.gate` (group -1), which denies strangers;
then a command runs here if the user's role allows it and the per-user limit is not exceeded
(/disarm and /kill are never limited). A live /order shows a confirmation card
(:mod:`bot.order_flow`). Every command is audited once: ok, usage, error, forbidden, rate_limited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import render, watch_cmds
from bot.auth import Authoriser, UserRateLimiter
from bot.charts import ChartCommands
from bot.commands import COMMANDS, CommandSpec, UsageProblem, decimal_arg, no_args, parse_duration, who
from bot.confirm import ConfirmationStore
from bot.gate import FRONT_END, SHOWN_TEXT_CHARS, Gatekeeper
from bot.order_flow import OrderConfirmations, Ticket
from bot.sender import Sender
from bot.settle_views import render_balance, render_settle_report
from bot.trade_commands import TradeCommands
from bot.tuning import BUTTONS as TUNING_BUTTONS
from bot.tuning import TuningCommands
from bot.views import (
    render_control_error,
    render_markets,
    render_pnl,
    render_positions,
    render_quotes,
    render_status,
)
from core.control.facade import Control
from core.control.orders import OrderRefused
from core.control.settlement import SettleTicket
from core.control.types import ControlError

__all__ = ["COMMANDS", "BotHandlers", "UsageProblem", "parse_duration"]

Context = ContextTypes.DEFAULT_TYPE
Command = Callable[[Update, Context, list[str]], Awaitable[str]]
"""A command: the update, its context and arguments in; the audit detail out."""
Callback = Callable[[Update, Context], Coroutine[Any, Any, None]]


class BotHandlers:
    def __init__(
        self,
        control: Control,
        authoriser: Authoriser,
        sender: Sender,
        confirmations: ConfirmationStore[Ticket],
        limiter: UserRateLimiter,
        mute_chat: Callable[[int, float | None], str],
    ) -> None:
        self.control = control
        self.auth = authoriser
        self.sender = sender
        self.confirmations = confirmations
        self.limiter = limiter
        self.mute_chat = mute_chat
        self.alert_state: Callable[[int], str] = _alerts_on
        """This chat's alert state (the notifier's, set by :func:`bot.app.build_bot`)."""
        self.gatekeeper = Gatekeeper(control, authoriser, sender, limiter)
        self.orders_in_chat = OrderConfirmations(control, authoriser, sender, confirmations)
        self.trading = TradeCommands(control, authoriser, sender, self.orders_in_chat)
        self.tuning = TuningCommands(control, authoriser, sender, confirmations)
        self.charts = ChartCommands(control, sender)
        self.commands: dict[str, Command] = {
            "start": self.cmd_help,
            "help": self.cmd_help,
            "status": self.cmd_status,
            "quotes": self.cmd_quotes,
            "markets": self.cmd_markets,
            "arm": self.cmd_arm,
            "disarm": self.cmd_disarm,
            "preflight": self.cmd_preflight,
            "order": self.trading.cmd_order,
            "orders": self.trading.cmd_orders,
            "cancel": self.trading.cmd_cancel,
            "close": self.trading.cmd_close,
            "fills": self.trading.cmd_fills,
            "cancelall": self.cmd_cancelall,
            "positions": self.cmd_positions,
            "pnl": self.cmd_pnl,
            "health": self.cmd_health,
            "alerts": self.cmd_alerts,
            "kill": self.cmd_kill,
            "merge": self.cmd_merge,
            "redeem": self.cmd_redeem,
            "balance": self.cmd_balance,
            "watch": lambda u, c, a: watch_cmds.watch(self.control, self._reply, u, a, stop=False),
            "unwatch": lambda u, c, a: watch_cmds.watch(self.control, self._reply, u, a, stop=True),
            "strategy": self.tuning.cmd_strategy,
            "params": self.tuning.cmd_params,
            "set": self.tuning.cmd_set,
            "chart": self.charts.cmd_chart,
        }
        missing = set(COMMANDS) ^ set(self.commands)
        if missing:  # the table users see and the handlers that run must be the same set
            raise RuntimeError(f"commands without a handler or a table entry: {sorted(missing)}")

    # ---- registration -------------------------------------------------------------------
    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        gate = self.gatekeeper
        app.add_handler(TypeHandler(Update, gate.gate), group=-1)
        # New messages only: PTB's default also matches edits, and an edited /order would trade again.
        new_message = filters.UpdateType.MESSAGE
        for name, spec in COMMANDS.items():
            app.add_handler(CommandHandler(name, self._wrap(spec, self.commands[name]), filters=new_message))
        app.add_handler(CallbackQueryHandler(self.tuning.on_button, pattern=TUNING_BUTTONS))  # before the catch-all
        app.add_handler(CallbackQueryHandler(self.orders_in_chat.on_button))
        app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.COMMAND, gate.on_edited_command))
        app.add_handler(MessageHandler(new_message & filters.COMMAND, gate.on_unknown_command))
        # Anything else an authorised user sends is answered and audited, never dropped silently.
        app.add_handler(MessageHandler(new_message & ~filters.COMMAND, gate.on_not_a_command))
        app.add_handler(InlineQueryHandler(gate.on_inline_query))
        app.add_error_handler(gate.on_error)

    async def expire_confirmations(self) -> int:
        return await self.orders_in_chat.expire_due() + await self.tuning.expire_due()

    # ---- one command: limit, role, run, audit --------------------------------------------
    def _wrap(self, spec: CommandSpec, command: Command) -> Callback:
        name = spec.name

        async def handler(update: Update, context: Context) -> None:
            user = update.effective_user
            chat = update.effective_chat
            assert user is not None and chat is not None  # CommandHandler only matches messages from users
            args = list(context.args or [])
            arg_text = " ".join(args)[:SHOWN_TEXT_CHARS]
            permitted = self.auth.allows(user.id, spec.role)
            # /disarm and /kill, for those allowed to run them, neither check nor use up the limit:
            # a trader over it can always stop trading, and stopping never blocks a later /status.
            if (spec.rate_limited or not permitted) and not await self.gatekeeper.within_limit(
                user.id, chat.id, name, arg_text
            ):
                return
            if not permitted:
                await self._audit(user.id, name, arg_text, "forbidden", spec.role.name)
                await self.sender.send(chat.id, f"/{name} needs the {spec.role.name.lower()} role.")
                return
            try:
                result = await command(update, context, args)
            except UsageProblem as exc:
                await self._audit(user.id, name, arg_text, "usage", str(exc))
                shown = render.esc(self.control.mask_typed(str(exc)))
                await self.sender.send(chat.id, f"{shown}\nUsage: <code>{render.esc(spec.usage)}</code>")
                return
            except ControlError as exc:  # a refused order is answered at once, with the order it refused
                verdict = "refused" if isinstance(exc, OrderRefused) else "error"
                await self._audit(user.id, name, arg_text, verdict, str(exc))
                await self.sender.send(chat.id, render_control_error(exc, self.control.mask_typed))
                return
            await self._audit(user.id, name, arg_text, "ok", result)

        return handler

    async def _audit(self, user_id: int, command: str, arguments: str, result: str, detail: str) -> None:
        await self.control.audit_command(FRONT_END, user_id, command, arguments, result, detail)

    # ---- the commands -------------------------------------------------------------------
    async def cmd_help(self, update: Update, context: Context, args: list[str]) -> str:
        role = self.auth.role_of(update.effective_user.id if update.effective_user else None)
        lines = [f"<b>Polybot</b> — your role: <b>{render.esc(role.name.lower() if role else '-')}</b>", ""]
        for spec in COMMANDS.values():
            if role is not None and role >= spec.role:
                lines.append(f"<code>{render.esc(spec.usage)}</code> — {render.esc(spec.summary)}")
        await self._reply(update, "\n".join(lines))
        return ""

    async def cmd_status(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        await self._reply(update, render_status(await self.control.status()))
        return ""

    async def cmd_quotes(self, update: Update, context: Context, args: list[str]) -> str:
        if len(args) > 1:
            raise UsageProblem("at most one market")
        rows = await self.control.quotes(args[0] if args else None)
        await self._reply(update, render_quotes(rows))
        return f"{len(rows)} rows"

    async def cmd_markets(self, update: Update, context: Context, args: list[str]) -> str:
        rows = await self.control.markets(" ".join(args) if args else None)
        await self._reply(update, render_markets(rows))
        return f"{len(rows)} markets"

    async def cmd_arm(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        result = await self.control.arm(who(update))
        await self._reply(update, ("✅ " if result.ok else "⛔ ") + render.esc(result.message))
        return result.message

    async def cmd_disarm(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        result = await self.control.disarm(who(update))
        await self._reply(update, "🛑 " + render.esc(result.message))
        return result.message

    async def cmd_preflight(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        report = await self.control.preflight(offline=False)
        rows = [(c.status, c.name, c.detail) for c in report.checks]
        verdict = "✅ preflight passed" if report.ok else "⛔ preflight failed"
        await self._reply(update, f"<b>{verdict}</b>\n" + render.table(rows))
        return "pass" if report.ok else "fail"

    async def cmd_cancelall(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        result = await self.control.cancel_all(user=who(update))
        await self._reply(update, render.esc(result.message))
        return result.message

    async def cmd_positions(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        rows = await self.control.positions()
        await self._reply(update, render_positions(rows, await self.control.complete_sets()))
        return f"{len(rows)} positions"

    async def cmd_pnl(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        await self._reply(update, render_pnl(await self.control.pnl()))
        return ""

    async def cmd_health(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        report = await self.control.health()
        head = "✅ healthy" if report.ok else "⚠️ unhealthy"
        body = "\n".join(f"• {render.esc(r)}" for r in report.reasons) or "all checks pass"
        await self._reply(update, f"<b>{head}</b>\n{body}")
        return "ok" if report.ok else "unhealthy"

    async def cmd_alerts(self, update: Update, context: Context, args: list[str]) -> str:
        chat = update.effective_chat
        assert chat is not None  # a command handler only runs in a chat
        if not args:  # the state, not an error: a trader asks "are my alerts on?"
            state = self.alert_state(chat.id)
            await self._reply(update, render.esc(state))
            return state
        if args[0].lower() not in ("on", "off", "mute"):
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

    async def cmd_kill(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        result = await self.control.kill(who(update))
        await self._reply(update, "🛑 " + render.esc(result.message))
        return result.message

    async def cmd_merge(self, update: Update, context: Context, args: list[str]) -> str:
        if len(args) not in (1, 2):
            raise UsageProblem("expected a market or event, and optionally a number of sets")
        sets = decimal_arg(args[1], "SETS") if len(args) == 2 else None
        ticket = await self.control.prepare_merge(args[0], sets, user=who(update))
        return await self._settle(update, context, ticket)

    async def cmd_redeem(self, update: Update, context: Context, args: list[str]) -> str:
        if len(args) > 1:
            raise UsageProblem("at most one market")
        ticket = await self.control.prepare_redeem(args[0] if args else None, user=who(update))
        return await self._settle(update, context, ticket)

    async def _settle(self, update: Update, context: Context, ticket: SettleTicket) -> str:
        if ticket.needs_confirmation:
            return await self.orders_in_chat.ask(update, context, ticket)
        report = await self.control.execute_merge(ticket, user=who(update), confirmed=False)
        await self._reply(update, render_settle_report(report))
        return report.summary()

    async def cmd_balance(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        await self._reply(update, render_balance(await self.control.balance()))
        return ""

    async def _reply(self, update: Update, text: str) -> None:
        chat = update.effective_chat
        assert chat is not None  # every reply answers a chat
        await self.sender.send(chat.id, text)


def _alerts_on(chat_id: int) -> str:
    return "Alerts are on for this chat."
