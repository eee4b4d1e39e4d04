"""Offline update runner: feed Telegram ``Update`` objects (JSONL) through the real Application.

No network: the bot talks to :class:`bot.fake_api.FakeBotApi`. Each input line is a Bot API
``Update`` object (messages, callback queries ...). Two directives help scripting:
``{"_advance_s": 31}`` moves the runner's clock forward and expires due confirmations, and
``{"_comment": "..."}`` is ignored. In callback data, ``$LAST_NONCE`` is replaced by the nonce
of the most recent confirmation card, so a script can tap the button it was just shown.
Every line is checked first (:mod:`bot.update_schema`): a bad one is an error naming its field
(and, read from a file, its line), never a half-built update.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from bot.app import BotParts
from bot.fake_api import FakeBotApi
from bot.update_schema import check_line, is_comment, parse_update
from core.errors import UsageError


class ManualClock:
    """A monotonic clock that the runner advances explicitly (directive ``_advance_s``)."""

    def __init__(self, start: float | None = None) -> None:
        # a whole number of seconds: a script's whole-second advances then land exactly on the
        # boundaries it means (a fractional origin plus 15 plus 45 can come to 59.999… past it)
        self.now = float(math.floor(time.monotonic())) if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock(ManualClock):
    """Real (monotonic) time, plus what a script moved it on with ``_advance_s``: a chat typed by
    a person (``polybot sandbox``) sees its confirmations expire on time."""

    def __init__(self) -> None:
        super().__init__(start=0.0)

    def __call__(self) -> float:
        return time.monotonic() + self.now


@dataclass
class TranscriptEntry:
    update: dict[str, Any]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"in": self.update, "out": self.calls}


def read_updates(path: Path, prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every line, checked before any runs: the first bad one is a :class:`UsageError` naming the
    file, the line and the field. ``prepare`` is what the caller will do to each line before feeding
    it (placeholders, defaults), so the line is checked as it will run; the lines come back as read.
    """
    if not path.is_file():
        raise UsageError(f"updates file not found: {path}")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise UsageError(f"{path}:{n}: each line must be a JSON object (a Telegram Update)")
        try:
            check_line(prepare(obj) if prepare is not None else obj)
        except (ValueError, UsageError) as exc:
            raise UsageError(f"{path}:{n}: {exc}") from None
        out.append(obj)
    return out


def summarise_update(data: dict[str, Any]) -> dict[str, Any]:
    msg = data.get("message") or data.get("edited_message")
    if msg:
        out = {"user": msg.get("from", {}).get("id"), "chat": msg.get("chat", {}).get("id"), "text": msg.get("text")}
        if "message" not in data:
            out["edited"] = True
        return out
    cq = data.get("callback_query")
    if cq:
        return {"user": cq.get("from", {}).get("id"), "button": cq.get("data")}
    iq = data.get("inline_query")
    if iq:
        return {"user": iq.get("from", {}).get("id"), "inline": iq.get("query")}
    return {k: v for k, v in data.items() if k.startswith("_")} or {"update": "other"}


class OfflineRunner:
    def __init__(
        self,
        parts: BotParts,
        api: FakeBotApi,
        clock: ManualClock,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``settle`` runs after each update before its calls are recorded (e.g. ``bus.drain``), so an
        alert an update caused is attributed to that update, not to whichever update comes next."""
        self.parts = parts
        self.api = api
        self.clock = clock
        self.settle = settle
        self.transcript: list[TranscriptEntry] = []
        self._next_update_id = 1

    def _last_nonce(self) -> str | None:
        for call in reversed(self.api.calls):
            for row in call.buttons:
                for button in row:
                    data = button.get("callback_data", "")
                    if data.startswith("c:"):
                        return data[2:]
        return None

    async def feed(self, updates: Iterable[dict[str, Any]]) -> list[TranscriptEntry]:
        app = self.parts.app
        for raw in updates:
            if is_comment(raw):
                continue
            before = len(self.api.calls)
            data = json.loads(json.dumps(raw))  # private copy
            if "_advance_s" in data:
                check_line(data)
                self.clock.advance(float(data["_advance_s"]))
                await self.parts.handlers.expire_confirmations()
            else:
                cq = data.get("callback_query")
                if cq and "$LAST_NONCE" in str(cq.get("data", "")):
                    cq["data"] = cq["data"].replace("$LAST_NONCE", self._last_nonce() or "none")
                data.setdefault("update_id", self._next_update_id)
                update = parse_update(data, app.bot)  # a bad update is a ValueError naming its field
                self._next_update_id = update.update_id + 1
                await app.process_update(update)
            if self.settle is not None:
                await self.settle()
            entry = TranscriptEntry(summarise_update(data), [c.as_dict() for c in self.api.calls[before:]])
            self.transcript.append(entry)
        return self.transcript


class _Plain(HTMLParser):
    """Telegram's HTML as the chat shows it: the tags' text without the tags, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(text: str) -> str:
    """``<b>PnL</b> &amp; more`` -> ``PnL & more``: what a person reads in the chat."""
    parser = _Plain()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def call_lines(call: dict[str, Any], *, plain: bool = False, numbered: bool = False) -> list[str]:
    """One Bot API call as the chat shows it: a picture's line, the text, the buttons (a row a
    line). ``plain``: the text as read (tags rendered, entities decoded); ``numbered``: each
    button shown with its number, ``[1 Confirm] [2 Cancel]``, counted across the rows."""
    lines: list[str] = []
    if call.get("photo"):
        photo = call["photo"]
        size = "x".join(map(str, photo.get("photo_size") or ())) or "not a PNG"
        where = f"saved to {photo['photo_path']}" if photo.get("photo_path") else "not saved"
        lines.append(f"[photo {size}, {photo.get('photo_bytes')} bytes, {where}]")
    if call.get("text"):
        html = call["method"] in ("sendMessage", "editMessageText")  # others carry plain text
        shown = plain_text(str(call["text"])) if plain and html else str(call["text"])
        lines.extend(shown.splitlines())
    n = 0
    for row in call.get("buttons", []):
        labels = []
        for button in row:
            n += 1
            labels.append(f"[{n} {button['text']}]" if numbered else f"[{button['text']}]")
        lines.append(" ".join(labels))
    return lines


def format_transcript(entries: list[TranscriptEntry] | list[dict[str, Any]], *, plain: bool = False) -> str:
    """The chat as lines; ``plain``: every message as the person reads it (tags rendered, entities
    decoded) instead of the HTML the bot sent."""
    lines: list[str] = []
    for raw in entries:
        entry = raw if isinstance(raw, TranscriptEntry) else TranscriptEntry(raw["in"], raw["out"])
        u = entry.update
        if "text" in u:
            where = f" in chat {u.get('chat')}" if u.get("chat") not in (None, u.get("user")) else ""
            verb = " edits" if u.get("edited") else ""
            lines.append(f">> user {u.get('user')}{where}{verb}: {u.get('text')}")
        elif "button" in u:
            lines.append(f">> user {u.get('user')} taps [{u.get('button')}]")
        elif "inline" in u:
            lines.append(f">> user {u.get('user')} inline query: {u.get('inline')}")
        else:
            lines.append(f">> {json.dumps(u)}")
        for call in entry.calls:
            head = f"<< {call['method']}"
            if call.get("chat_id") is not None:
                head += f" chat={call['chat_id']}"
            lines.append(head)
            lines.extend("   " + line for line in call_lines(call, plain=plain))
    return "\n".join(lines)
