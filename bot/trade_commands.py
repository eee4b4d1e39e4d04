"""The trading commands: /order (with its time in force and post-only), /close, /orders (ids that
/cancel takes, [Cancel n] buttons for operators), /cancel by id or unique prefix, and /fills [N].

Each only parses, calls :class:`core.control.facade.Control` and renders. A refused order
(:class:`core.control.orders.OrderRefused`, raised while it is prepared) reaches the command
wrapper in :mod:`bot.handlers`, which answers it at once with the order it refused.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot import render
from bot.auth import Authoriser, Role
from bot.cancel_buttons import cancel_keyboard
from bot.commands import SHOWN_CHARS, UsageProblem, decimal_arg, no_args, parse_duration, who
from bot.order_flow import OrderConfirmations
from bot.sender import Sender
from bot.views import render_fills, render_order_result, render_orders
from core.control.facade import Control
from core.control.fills import DEFAULT_FILLS, MAX_FILLS
from core.control.orders import OrderOptions, short_ids
from core.control.types import OrderTicket
from core.types import OrderType, Side

Context = ContextTypes.DEFAULT_TYPE
POST_ONLY_WORDS = frozenset({"postonly", "post-only", "post_only"})
TYPE_WORDS = {"gtc": OrderType.GTC, "gtd": OrderType.GTD, "fok": OrderType.FOK, "fak": OrderType.FAK}


def parse_side(text: str) -> Side:
    try:
        return Side(text.upper())
    except ValueError:
        raise UsageProblem(f"SIDE must be BUY or SELL, got {_shown(text)!r}") from None


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def parse_order_options(words: list[str]) -> OrderOptions:
    """``[gtc|gtd DURATION|fok|fak] [postonly]`` in any order, each at most once (default GTC)."""
    order_type: OrderType | None = None
    post_only = False
    lifetime: int | None = None
    rest = [w.lower() for w in words]
    while rest:
        word = rest.pop(0)
        if word in POST_ONLY_WORDS:
            if post_only:
                raise UsageProblem("postonly given twice")
            post_only = True
        elif word in TYPE_WORDS:
            if order_type is not None:
                raise UsageProblem(f"one order type only (got {order_type.value.lower()} and {word})")
            order_type = TYPE_WORDS[word]
            if order_type is OrderType.GTD:
                if not rest:
                    raise UsageProblem("gtd needs a duration, e.g. gtd 1h")
                lifetime = int(parse_duration(rest.pop(0)))
        else:
            raise UsageProblem(f"unknown option {_shown(word)!r}: use gtc, gtd DURATION, fok, fak or postonly")
    kind = order_type or OrderType.GTC
    if post_only and kind in (OrderType.FOK, OrderType.FAK):
        raise UsageProblem("postonly goes only with gtc or gtd (a FOK/FAK order takes liquidity)")
    return OrderOptions(kind, post_only, lifetime)


class TradeCommands:
    def __init__(
        self, control: Control, authoriser: Authoriser, sender: Sender, orders_in_chat: OrderConfirmations
    ) -> None:
        self.control = control
        self.auth = authoriser
        self.sender = sender
        self.orders_in_chat = orders_in_chat

    async def cmd_order(self, update: Update, context: Context, args: list[str]) -> str:
        if len(args) < 5:
            raise UsageProblem("expected at least 5 arguments")
        market, outcome, side_text, price_text, size_text, *rest = args
        side = parse_side(side_text)
        price = decimal_arg(price_text, "PRICE")
        size = decimal_arg(size_text, "SIZE")
        options = parse_order_options(rest)
        ticket = await self.control.prepare_order(market, outcome, side, price, size, user=who(update), options=options)
        return await self._send_or_ask(update, context, ticket)

    async def cmd_close(self, update: Update, context: Context, args: list[str]) -> str:
        if len(args) not in (2, 3):
            raise UsageProblem("expected MARKET OUTCOME and optionally a PRICE")
        price = decimal_arg(args[2], "PRICE") if len(args) == 3 else None
        ticket = await self.control.prepare_close(args[0], args[1], price, user=who(update))
        return await self._send_or_ask(update, context, ticket)

    async def _send_or_ask(self, update: Update, context: Context, ticket: OrderTicket) -> str:
        """Live mode: the confirmation card (the ticket passed the screening); otherwise send now."""
        if ticket.needs_confirmation:
            return await self.orders_in_chat.ask(update, context, ticket)
        result = await self.control.execute_order(ticket, user=who(update), confirmed=False)
        await self._reply(update, render_order_result(result))
        return result.summary

    async def cmd_orders(self, update: Update, context: Context, args: list[str]) -> str:
        no_args(args)
        rows = await self.control.orders()
        ids = short_ids(r.client_order_id for r in rows)
        user = update.effective_user
        operator = self.auth.allows(user.id if user else None, Role.OPERATOR)
        keyboard = cancel_keyboard(rows, ids) if operator and rows else None
        buttons = len(keyboard.inline_keyboard) if keyboard is not None else 0
        chat = update.effective_chat
        assert chat is not None  # a command handler only runs in a chat
        await self.sender.send(chat.id, render_orders(rows, ids, buttons=buttons), reply_markup=keyboard)
        return f"{len(rows)} orders"

    async def cmd_cancel(self, update: Update, context: Context, args: list[str]) -> str:
        if len(args) != 1:
            raise UsageProblem("expected one order id (or a unique start of it, 8+ characters)")
        result = await self.control.cancel(args[0], user=who(update))
        await self._reply(update, ("✅ " if result.ok else "⛔ ") + render.esc(result.message))
        return result.message

    async def cmd_fills(self, update: Update, context: Context, args: list[str]) -> str:
        if len(args) > 1:
            raise UsageProblem("at most one number")
        limit = DEFAULT_FILLS
        if args:
            text = args[0]
            if not (text.isascii() and text.isdigit() and len(text) <= 3) or not 1 <= int(text) <= MAX_FILLS:
                raise UsageProblem(f"N must be a whole number from 1 to {MAX_FILLS}, got {_shown(text)!r}")
            limit = int(text)
        rows = await self.control.fills(limit)
        await self._reply(update, render_fills(rows))
        return f"{len(rows)} fills"

    async def _reply(self, update: Update, text: str) -> None:
        chat = update.effective_chat
        assert chat is not None  # every reply answers a chat
        await self.sender.send(chat.id, text)
