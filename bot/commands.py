"""What the bot understands: the command table, and how a typed argument becomes a value.

Numbers are typed by people: prices and sizes take the plain-decimal rule of
:func:`core.money.parse_plain_decimal` (ASCII digits, no exponent, NaN or Unicode digits), and a
duration is ASCII digits with units. A bad argument is a :class:`UsageProblem`, answered with the
command's usage line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from decimal import Decimal

from telegram import Update

from bot.auth import RateDecision, Role
from core.money import parse_plain_decimal

log = logging.getLogger(__name__)

NEUTRAL_REPLY = "This bot is private."
SHOWN_CHARS = 40
MAX_MUTE_S = 7 * 86400
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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
            "/order MARKET OUTCOME BUY|SELL PRICE SIZE [gtc|gtd DURATION|fok|fak] [postonly]",
            "place an order, GTC unless told (live mode asks for confirmation)",
        ),
        CommandSpec(
            "close",
            Role.OPERATOR,
            "/close MARKET OUTCOME [PRICE]",
            "sell every share of an outcome you hold, at the best bid unless told (live: confirm)",
        ),
        CommandSpec("orders", Role.VIEWER, "/orders", "open orders, with [Cancel] buttons for operators"),
        CommandSpec("cancel", Role.OPERATOR, "/cancel ORDER_ID", "cancel one order (id, or a unique start of 8+)"),
        CommandSpec("fills", Role.VIEWER, "/fills [N]", "the last N fills (default 10, at most 50)"),
        CommandSpec("cancelall", Role.OPERATOR, "/cancelall", "cancel every open order"),
        CommandSpec("positions", Role.VIEWER, "/positions", "positions and PnL per token"),
        CommandSpec("pnl", Role.VIEWER, "/pnl", "realised and unrealised PnL"),
        CommandSpec("health", Role.VIEWER, "/health", "health checks with reasons"),
        CommandSpec(
            "alerts", Role.VIEWER, "/alerts [on|off|mute DURATION]", "this chat's alerts: state, or on/off/mute 1h"
        ),
        CommandSpec("kill", Role.OPERATOR, "/kill", "disarm and cancel every open order", rate_limited=False),
        CommandSpec(
            "merge",
            Role.OPERATOR,
            "/merge MARKET|EVENT [SETS]",
            "complete YES+NO sets back into pUSD (live mode asks for confirmation)",
        ),
        CommandSpec("redeem", Role.OPERATOR, "/redeem [MARKET]", "resolved markets' winning shares into pUSD"),
        CommandSpec("balance", Role.VIEWER, "/balance", "pUSD, positions with value, sets mergeable, redeemable"),
        CommandSpec(
            "watch", Role.OPERATOR, "/watch [MARKET|EVENT]", "follow a market or event on the feed; alone: list"
        ),
        CommandSpec("unwatch", Role.OPERATOR, "/unwatch MARKET|EVENT", "stop following a watched market or event"),
        CommandSpec(
            "strategy", Role.OPERATOR, "/strategy [dutch|spread on|off [MARKET]]", "strategies: state, or on/off"
        ),
        CommandSpec("params", Role.VIEWER, "/params", "the parameters /set can change, with their values"),
        CommandSpec("set", Role.OPERATOR, "/set KEY VALUE", "change a parameter (loosening a risk limit: admin)"),
        CommandSpec("chart", Role.VIEWER, "/chart MARKET | /chart pnl [7d|30d]", "a picture: depth and prices, or PnL"),
    ]
}


class UsageProblem(Exception):
    """Wrong arguments: the reply is the command's usage line."""


def decimal_arg(text: str, what: str) -> Decimal:
    """A price or size as typed: the plain-decimal rule, or a UsageProblem naming ``what``."""
    try:
        return parse_plain_decimal(text)
    except ValueError as exc:
        shown = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"
        raise UsageProblem(f"{what} {exc}, got {shown!r}") from None


def parse_duration(text: str) -> float:
    """'30m', '1h', '2h30m', '90s', '1d' -> seconds."""
    total, number = 0.0, ""
    for ch in text.strip().lower():
        if ch in "0123456789":  # str.isdigit() also takes '١' and '５': ASCII only, as for prices
            number += ch
        elif ch in DURATION_UNITS and number:
            total += int(number) * DURATION_UNITS[ch]
            number = ""
        else:
            raise UsageProblem(f"bad duration {text!r} (use e.g. 30m, 1h, 1d)")
    if number or total <= 0 or total > MAX_MUTE_S:
        raise UsageProblem(f"bad duration {text!r} (use e.g. 30m, 1h, 1d; at most 7d)")
    return total


def no_args(args: list[str]) -> None:
    if args:
        raise UsageProblem("this command takes no arguments")


def who(update: Update) -> str:
    """The actor a control call records: ``telegram:<user id>``."""
    user = update.effective_user
    return f"telegram:{user.id}" if user else "telegram:?"


_UPDATE_KINDS = ("message", "edited_message", "callback_query", "inline_query", "channel_post", "my_chat_member")


def update_kind(update: Update) -> str:
    for kind in _UPDATE_KINDS:
        if getattr(update, kind, None) is not None:  # python-telegram-bot's Update, not ours
            return kind
    return "update"


_COMMAND = re.compile(r"/(\S+)")


def split_command(text: str) -> tuple[str, str | None]:
    """'/status@some_bot now' -> ('status', 'some_bot'); no suffix -> ('status', None); not a command -> ('', None)."""
    match = _COMMAND.match(text)
    if match is None:
        return "", None
    name, at, target = match.group(1).partition("@")
    return name[:32], target[:64] if at else None


def slow_down_text(decision: RateDecision, per_minute: int) -> str:
    return (
        f"Too many commands (over {per_minute} a minute): this one was not run. "
        f"Wait {decision.retry_after_s} s. For the next minute, commands over the limit are refused "
        "without another reply. /disarm and /kill are never limited."
    )


async def safe(awaitable: Awaitable[object]) -> None:
    """Telegram calls whose failure must not break the handler ('message is not modified', old query)."""
    try:
        await awaitable
    except Exception as exc:
        log.info("telegram call ignored: %s", exc)
