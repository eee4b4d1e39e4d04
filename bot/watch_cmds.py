"""/watch and /unwatch: what the live feed follows besides the configuration (core.app.watch).

``/watch`` alone lists the watch list; ``/watch MARKET|EVENT`` adds a market (slug, condition
id) or a whole neg-risk event, subscribed on the live sockets at once and kept across restarts;
``/unwatch`` takes it off again. Both are audited like every command (bot.handlers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Update

from bot import render
from bot.commands import UsageProblem, who
from core.control.facade import Control

Reply = Callable[[Update, str], Awaitable[None]]
ONE_REF = "expected one market (slug or condition id) or neg-risk event id"


def render_watch_list(names: list[str]) -> str:
    if not names:
        return "Nothing on the watch list (the feed follows the configured markets and the feed.watch rules)."
    return "<b>Watching</b>\n" + "\n".join(f"• {render.esc(n)}" for n in names)


async def watch(control: Control, reply: Reply, update: Update, args: list[str], *, stop: bool) -> str:
    """One /watch or /unwatch; returns the audit detail."""
    if len(args) > 1 or (stop and not args):
        raise UsageProblem(ONE_REF)
    if not args:
        names = await control.watched()
        await reply(update, render_watch_list(names))
        return f"{len(names)} watched"
    result = await control.watch(args[0], user=who(update), stop=stop)
    await reply(update, ("👁 " if result.ok else "▫️ ") + render.esc(result.message))
    return result.message
