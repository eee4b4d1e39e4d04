"""A Telegram Bot API double over real HTTP on loopback, for a ``polybot run-service`` subprocess.

The service's bot polls ``getUpdates`` here (``[telegram] base_url = "http://127.0.0.1:PORT/bot"``)
exactly as it would poll Telegram; the test pushes Update objects with :meth:`push` and reads
what the bot sent (``calls``). A wrong token is answered 401 like the real API.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from core.sim.http_double import HttpRequest, HttpResponse, MiniHttpServer

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Polybot", "username": "polybot_local_bot"}


@dataclass
class BotCall:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        return str(self.params.get("text") or "")

    def buttons(self) -> list[str]:
        markup = self.params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        if not isinstance(markup, dict):
            return []
        return [str(b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]


class FakeTelegramHttp:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[BotCall] = []
        self.raw_requests: list[str] = []  # every request target + body, for secret greps
        self._updates: list[dict[str, Any]] = []
        self._next_id = 1
        self._arrived = asyncio.Event()
        self._next_message_id = 5000
        self._http = MiniHttpServer(self._handle)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}/bot"

    async def start(self) -> None:
        await self._http.start()

    async def stop(self) -> None:
        self._arrived.set()
        await self._http.stop()

    def push(self, update: dict[str, Any]) -> int:
        update = dict(update)
        update["update_id"] = self._next_id
        self._next_id += 1
        self._updates.append(update)
        self._arrived.set()
        return int(update["update_id"])

    def sent(self, needle: str = "") -> list[BotCall]:
        return [c for c in self.calls if c.method in ("sendMessage", "editMessageText") and needle in c.text]

    async def wait_sent(self, needle: str, within_s: float, after: int = 0) -> BotCall:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            for call in self.calls[after:]:
                if call.method in ("sendMessage", "editMessageText") and needle in call.text:
                    return call
            await asyncio.sleep(0.05)
        seen = [c.text[:80] for c in self.calls[after:]]
        raise AssertionError(f"the bot never sent {needle!r} within {within_s}s; it sent {seen}")

    @staticmethod
    def _params(req: HttpRequest) -> dict[str, Any]:
        ctype = req.headers.get("content-type", "")
        if not req.body:
            return {}
        if "json" in ctype:
            data = req.json()
            return data if isinstance(data, dict) else {}
        if "multipart" in ctype:
            return {"_multipart": req.body.decode("utf-8", "replace")}
        return {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8"), keep_blank_values=True).items()}

    async def _handle(self, req: HttpRequest) -> HttpResponse:
        self.raw_requests.append(req.target + " " + req.body.decode("utf-8", "replace"))
        prefix, _, method = req.path.strip("/").partition("/")
        if prefix != f"bot{self.token}":
            return HttpResponse.json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        params = self._params(req)
        if method == "getUpdates":
            return HttpResponse.json({"ok": True, "result": await self._get_updates(params)})
        self.calls.append(BotCall(method, params))
        return HttpResponse.json({"ok": True, "result": self._result(method, params)})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            self._arrived.clear()
            wait = min(float(params.get("timeout") or 0), 1.0)
            try:
                await asyncio.wait_for(self._arrived.wait(), wait)
            except TimeoutError:
                pass
        return list(self._updates)

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return {**BOT_USER, "can_join_groups": False, "can_read_all_group_messages": False}
        if method in ("sendMessage", "editMessageText"):
            if method == "sendMessage":
                self._next_message_id += 1
                message_id = self._next_message_id
            else:
                message_id = int(params.get("message_id") or 0)
            chat_id = int(params.get("chat_id") or 0)
            return {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT_USER,
                "text": str(params.get("text") or ""),
            }
        return True
