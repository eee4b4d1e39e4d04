"""Push alerts to the configured chats: one message per incident, a recovery message, per-chat mute.

Core publishes :class:`core.events.Alert` / :class:`core.events.AlertCleared` on its bus; this module
subscribes. Core never imports ``bot``.

An alert reads as a person would say it (:mod:`bot.alert_titles`: "Feed down", not ``feed_dead``).
A condition core clears when it is over (a dead socket, a one-legged group) is one incident: one
message when it starts, however often core repeats it, and one when it ends, with how long it
lasted. Other alerts (an order failed, the kill switch) are each their own message; the same one
repeated within the cooldown is held back and counted in the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.alert_titles import duration, incident, recovered_title, title
from bot.render import esc
from bot.sender import Sender
from core.events import Alert, AlertCleared, EventBus, Severity

log = logging.getLogger(__name__)

ICONS = {Severity.INFO: "ℹ️", Severity.WARNING: "⚠️", Severity.CRITICAL: "🚨"}
OFF = float("inf")


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
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.sender = sender
        self.chats = list(dict.fromkeys(int(c) for c in chats))
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._wall = wall
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
            self._muted_until[chat_id] = OFF
            return "Alerts off for this chat (/alerts on to resume)."
        if seconds == 0:
            self._muted_until.pop(chat_id, None)
            return "Alerts on for this chat."
        self._muted_until[chat_id] = self._clock() + seconds
        return f"Alerts muted for {duration(seconds)} (until {self._until(seconds)})."

    def state(self, chat_id: int) -> str:
        """This chat's alert state as /alerts shows it: on, off, or muted until when."""
        receives = chat_id in self.chats
        where = "" if receives else " This chat is not an alert chat: alerts go to the configured ones."
        if not self.is_muted(chat_id):
            return f"Alerts are on for this chat.{where}"
        left = self._muted_until[chat_id] - self._clock()
        if left == OFF:
            return f"Alerts are off for this chat (/alerts on to resume).{where}"
        return f"Alerts are muted until {self._until(left)} ({duration(left)} left; /alerts on to resume).{where}"

    def _until(self, seconds: float) -> str:
        return datetime.fromtimestamp(self._wall() + seconds, UTC).strftime("%H:%M UTC")

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
        if active is not None and (incident(alert.kind) or now - active.last_sent < self.cooldown_s):
            active.suppressed += 1
            self.suppressed += 1
            return
        extra = f"\n(again: {active.suppressed + 1}× in {duration(now - active.first)})" if active else ""
        self._active[key] = _Active(first=active.first if active else now, last_sent=now)
        icon = ICONS.get(alert.severity, "⚠️")
        await self._broadcast(f"{icon} <b>{esc(title(alert.kind))}</b>\n{esc(alert.message)}{esc(extra)}")

    async def on_cleared(self, cleared: AlertCleared) -> None:
        active = self._active.pop((cleared.kind, cleared.key), None)
        if active is None:
            return
        lasted = cleared.duration_s if cleared.duration_s is not None else self._clock() - active.first
        lines = [f"✅ <b>{esc(recovered_title(cleared.kind))}</b> after {duration(lasted)}"]
        if cleared.message:
            lines.append(esc(cleared.message))
        if active.suppressed:
            lines.append(f"({active.suppressed} repeat(s) of this alert held back meanwhile)")
        await self._broadcast("\n".join(lines))

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
