"""/chart MARKET and /chart pnl [7d|30d]: a picture, drawn off the event loop (core.control.charts)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.commands import UsageProblem
from bot.sender import Sender
from core.control import charts
from core.control.facade import Control

Context = ContextTypes.DEFAULT_TYPE


class ChartCommands:
    def __init__(self, control: Control, sender: Sender) -> None:
        self.control = control
        self.sender = sender

    async def cmd_chart(self, update: Update, context: Context, args: list[str]) -> str:
        if not args or len(args) > 2:
            raise UsageProblem("expected a market, or pnl and optionally 7d or 30d")
        if args[0].lower() == "pnl":
            image = await charts.pnl_chart(self.control, args[1] if len(args) == 2 else "7d")
        elif len(args) == 2:
            raise UsageProblem("a market chart takes only the market")
        else:
            image = await charts.market_chart(self.control, args[0])
        chat = update.effective_chat
        assert chat is not None  # a command handler only runs in a chat
        await self.sender.send_photo(chat.id, image.png, image.caption, image.filename)
        return f"{image.filename} {len(image.png)} bytes"
