"""A Telegram chat in a terminal: what ``polybot sandbox`` reads and prints.

Each line typed becomes what the Telegram app would send — a message (``/status``, ``/order …``)
or, for ``1`` / ``tap 1``, a tap on the numbered button of the last message that has buttons —
and goes through the real python-telegram-bot Application on the Bot API double
(:class:`bot.offline.OfflineRunner`). What the bot sends comes back as text, rendered as the
person reads it (:func:`bot.offline.call_lines`: tags rendered, buttons numbered
``[1 Confirm] [2 Cancel]``), including what arrives on its own: alerts, a card edited when its
confirmation expires.

Lines starting with ``:`` talk to the sandbox, not the bot: ``:mode paper|dry-run|live``,
``:wait SECONDS``, ``:help``, ``:quit``; ``#`` starts a comment (scripts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bot.fake_api import ApiCall, FakeBotApi
from bot.offline import call_lines
from polybot.updates import Updates

MODES = ("paper", "dry-run", "live")
HELP = """\
  /command …      a message to the bot (/status, /quotes, /arm, /order …, /orders, /kill, /help)
  1   or  tap 1   tap button 1 of the last message with buttons ([1 Confirm] [2 Cancel])
  :mode live      restart the service in another mode (paper, dry-run, live) over the same doubles
  :wait 2         let 2 seconds pass (fills, alerts)
  :help           this list        :quit (or Ctrl-C, or Ctrl-D)  stop everything"""
SHOWN = frozenset({"sendMessage", "sendPhoto", "editMessageText", "editMessageReplyMarkup", "answerCallbackQuery"})
MAX_WAIT_S = 600.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One line typed: ``kind`` is text (a message), tap, mode, wait, help, quit or none."""

    kind: str
    value: str = ""


def parse(line: str) -> Entry:
    """What a typed line asks for; a line the sandbox cannot take is ``Entry("error", why)``."""
    text = line.strip()
    if not text or text.startswith("#"):
        return Entry("none")
    words = text.split()
    if words[0].lower() == "tap" and len(words) == 2:
        words = words[1:]
    if len(words) == 1 and words[0].isdigit() and (text.isdigit() or text.lower().startswith("tap")):
        return Entry("tap", words[0])
    if not text.startswith(":"):
        return Entry("text", text)
    name, args = words[0][1:].lower(), words[1:]
    if name in ("quit", "exit", "q") and not args:
        return Entry("quit")
    if name == "help":
        return Entry("help")
    if name == "mode":
        if len(args) == 1 and args[0].lower() in MODES:
            return Entry("mode", args[0].lower())
        return Entry("error", f":mode takes one of {', '.join(MODES)}")
    if name == "wait":
        try:
            seconds = float(args[0]) if len(args) == 1 else -1.0
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= MAX_WAIT_S:
            return Entry("error", f":wait takes a number of seconds from 0 to {MAX_WAIT_S:g}, e.g. :wait 2")
        return Entry("wait", args[0])
    return Entry("error", f"unknown {words[0]}: try :help")


@dataclass
class Keyboard:
    chat_id: int
    message_id: int
    buttons: list[dict[str, str]]


class ChatView:
    """Prints the bot's calls to the double as they are made (from ``start`` on); remembers the
    buttons of the last message that has some, for :meth:`tap`."""

    def __init__(self, api: FakeBotApi, out: TextIO, chat_id: int) -> None:
        self.api = api
        self.out = out
        self.chat_id = chat_id
        self.shown = len(api.calls)
        self.keyboard: Keyboard | None = None

    def flush(self) -> int:
        """Print every call not printed yet; returns how many were new."""
        calls = self.api.calls[self.shown :]
        self.shown += len(calls)
        for call in calls:
            self._remember(call)
            if call.method in SHOWN:
                self.say(self._head(call), call_lines(call.as_dict(), plain=True, numbered=True))
        return len(calls)

    def say(self, head: str, lines: list[str]) -> None:
        pad = " " * (len(head) + 1)
        first, *rest = lines or [""]
        self.out.write(f"{head} {first}\n" + "".join(f"{pad}{line}\n" for line in rest))
        self.out.flush()

    def note(self, text: str) -> None:
        """A line from the sandbox itself (not the bot)."""
        self.out.write(f"-- {text}\n")
        self.out.flush()

    def _head(self, call: ApiCall) -> str:
        where = "" if call.chat_id in (None, self.chat_id) else f" to chat {call.chat_id}"
        if call.method == "answerCallbackQuery":
            return "bot (answers the tap)>"
        if call.method.startswith("edit"):
            return f"bot (edits message {call.params.get('message_id')}{where})>"
        return f"bot{where}>"

    def _remember(self, call: ApiCall) -> None:
        chat = call.chat_id
        if chat is None or call.method not in ("sendMessage", "sendPhoto", "editMessageText", "editMessageReplyMarkup"):
            return
        message_id = call.sent_id if call.sent_id is not None else int(call.params.get("message_id", 0))
        buttons = [b for row in call.buttons for b in row if "callback_data" in b]
        if buttons:
            self.keyboard = Keyboard(chat, message_id, buttons)
        elif self.keyboard is not None and (self.keyboard.chat_id, self.keyboard.message_id) == (chat, message_id):
            self.keyboard = None  # an edit without buttons takes them away

    def tap(self, updates: Updates, user_id: int, number: str) -> dict[str, Any] | str:
        """The callback query a tap on button ``number`` sends, or why there is none."""
        keyboard = self.keyboard
        if keyboard is None:
            return "no buttons to tap: the last message with buttons has none left"
        n = int(number)
        if not 1 <= n <= len(keyboard.buttons):
            return f"no button {n}: the last buttons are numbered 1 to {len(keyboard.buttons)}"
        update = updates.tap(user_id, keyboard.buttons[n - 1]["callback_data"], chat_id=keyboard.chat_id)
        update["callback_query"]["message"]["message_id"] = keyboard.message_id
        return update


# --------------------------------------------------------------------------------------------
# where the lines come from
# --------------------------------------------------------------------------------------------


class Lines:
    """Lines typed on stdin (a terminal or a pipe), read as they come without blocking the loop,
    or the lines of a script file; :meth:`next` is None at the end (Ctrl-D, EOF, the script's end)."""

    def __init__(self, script: Path | None = None, stream: TextIO | None = None) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._fd: int | None = None
        self._pending = b""
        self.echo = True
        """Print each line as read (``you> …``): it is not on the screen already (a script, a pipe)."""
        if script is not None:
            self._feed_all(script.read_text())
            return
        stream = stream if stream is not None else sys.stdin
        fd = stream.fileno()
        self.echo = not os.isatty(fd)
        try:
            asyncio.get_running_loop().add_reader(fd, self._readable)
        except (OSError, ValueError, PermissionError):  # a regular file cannot be polled: read it at once
            self._feed_all(stream.read())
            return
        self._fd = fd

    def _feed_all(self, text: str) -> None:
        for line in text.splitlines():
            self._queue.put_nowait(line)
        self._queue.put_nowait(None)

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            if self._pending:
                self._queue.put_nowait(self._pending.decode(errors="replace"))
            self._queue.put_nowait(None)
            return
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            self._queue.put_nowait(line.decode(errors="replace").rstrip("\r"))

    async def next(self) -> str | None:
        return await self._queue.get()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None


async def next_line(lines: Lines, stop: asyncio.Event) -> str | None:
    """The next line, or None when the input ended or a stop was asked for (Ctrl-C)."""
    if stop.is_set():
        return None
    reading = asyncio.ensure_future(lines.next())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if reading.done():
        return reading.result()
    reading.cancel()
    return None
