"""Push alerts to the configured chats: dedup with a cooldown, "recovered" on clear, per-chat mute.

Core publishes :class:`core.events.Alert` / :class:`core.events.AlertCleared` on its bus; this module
subscribes. Core never imports ``bot``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.render import esc
from bot.sender import Sender
from core.events import Alert, AlertCleared, EventBus, Severity

log = logging.getLogger(__name__)

ICONS = {Severity.INFO: "ℹ️", Severity.WARNING: "⚠️", Severity.CRITICAL: "🚨"}


@dataclass
class _Active:
    first: float
    last_sent: float
    suppressed: int = 0


class Notifier:
    def __init__(
        self,
        sender: Sender,
        chats: Iterable[int],
        *,
        cooldown_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sender = sender
        self.chats = list(dict.fromkeys(int(c) for c in chats))
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._active: dict[tuple[str, str], _Active] = {}
        self._muted_until: dict[int, float] = {}  # chat -> monotonic deadline (inf = off)
        self.sent = 0
        self.suppressed = 0
        self.admins: list[int] = []
        self._send_lock = asyncio.Lock()

    def attach(self, bus: EventBus) -> Callable[[], None]:
        off1 = bus.subscribe(Alert, self.on_alert)
        off2 = bus.subscribe(AlertCleared, self.on_cleared)

        def detach() -> None:
            off1()
            off2()

        return detach

    # ---- mute control (the /alerts command) ------------------------------------------------
    def mute(self, chat_id: int, seconds: float | None) -> str:
        """seconds None: off until turned on; 0: on; >0: muted for that long."""
        if seconds is None:
            self._muted_until[chat_id] = float("inf")
            return "Alerts off for this chat (/alerts on to resume)."
        if seconds == 0:
            self._muted_until.pop(chat_id, None)
            return "Alerts on for this chat."
        self._muted_until[chat_id] = self._clock() + seconds
        return f"Alerts muted for {_fmt(seconds)}."

    def is_muted(self, chat_id: int) -> bool:
        until = self._muted_until.get(chat_id)
        if until is None:
            return False
        if self._clock() >= until:
            del self._muted_until[chat_id]
            return False
        return True

    # ---- events ------------------------------------------------------------------------
    async def on_alert(self, alert: Alert) -> None:
        key = (alert.kind, alert.key)
        now = self._clock()
        active = self._active.get(key)
        if active is not None and now - active.last_sent < self.cooldown_s:
            active.suppressed += 1
            self.suppressed += 1
            return
        extra = f" (repeated {active.suppressed}× since)" if active and active.suppressed else ""
        self._active[key] = _Active(first=active.first if active else now, last_sent=now)
        icon = ICONS.get(alert.severity, "⚠️")
        await self._broadcast(f"{icon} <b>{esc(alert.kind)}</b>: {esc(alert.message)}{esc(extra)}")

    async def on_cleared(self, cleared: AlertCleared) -> None:
        active = self._active.pop((cleared.kind, cleared.key), None)
        if active is None:
            return
        lasted = cleared.duration_s if cleared.duration_s is not None else self._clock() - active.first
        note = f" — {esc(cleared.message)}" if cleared.message else ""
        await self._broadcast(f"✅ <b>recovered</b>: {esc(cleared.kind)} {esc(cleared.key)} after {_fmt(lasted)}{note}")

    async def ping_admins(self, text: str) -> None:
        """The scheduled health ping: to each admin's private chat (mute applies)."""
        for chat in self.admins:
            if not self.is_muted(chat) and await self.sender.send(chat, esc(text)) is not None:
                self.sent += 1

    async def _broadcast(self, text: str) -> None:
        # One ordered path: asyncio.Lock is FIFO and each alert task reaches it in publish order,
        # so a "recovered" never overtakes the alert it recovers (e.g. while a 429 is retried).
        async with self._send_lock:
            await self._broadcast_now(text)

    async def _broadcast_now(self, text: str) -> None:
        for chat in self.chats:
            if self.is_muted(chat):
                continue
            if await self.sender.send(chat, text) is not None:
                self.sent += 1


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
