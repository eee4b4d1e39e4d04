"""The Bot API double over real HTTP: :class:`bot.fake_api.FakeBotApi` served on loopback.

A service whose ``telegram.base_url`` is :attr:`BotApiServer.url` runs its python-telegram-bot
Application exactly as against Telegram — ``getMe`` at start, ``deleteWebhook``, long-polled
``getUpdates``, ``sendMessage`` … over sockets — and every call lands in the same
:class:`~bot.fake_api.FakeBotApi` record the offline runner reads (``api.calls``). Updates a
test (or a person) wants the bot to receive are queued with :meth:`BotApiServer.push`.

Only the token given (if one is) is answered; any other gets Telegram's 401. The server can be
stopped and started again on the same port (a Telegram outage and its end). Nothing here
listens past 127.0.0.1 unless told.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qs

from bot.fake_api import FakeBotApi
from core.sim.http_double import HttpRequest, HttpResponse, MiniHttpServer

_PATH = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)")
MAX_POLL_S = 10.0
"""A long poll is held at most this long (the client asks for its own timeout, often 10 s)."""


def _params(req: HttpRequest) -> dict[str, Any]:
    """The call's parameters: query string, form body or JSON body (python-telegram-bot sends a
    form; an upload comes as multipart, of which only the plain fields are read)."""
    params: dict[str, Any] = {k: v[0] for k, v in req.query.items()}
    kind = req.headers.get("content-type", "")
    if not req.body:
        return params
    if kind.startswith("application/json"):
        decoded = json.loads(req.body)
        if isinstance(decoded, dict):
            params.update(decoded)
    elif kind.startswith("application/x-www-form-urlencoded"):
        params.update({k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()})
    return params


class BotApiServer:
    def __init__(
        self, api: FakeBotApi | None = None, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None
    ) -> None:
        self.api = api if api is not None else FakeBotApi()
        self.token = token
        self._http = MiniHttpServer(self._handle, host, port)
        self._host = host
        self._updates: list[dict[str, Any]] = []
        self._next_id = 1
        self._arrived = asyncio.Event()
        self._stopped = asyncio.Event()
        self.polls = 0
        """``getUpdates`` calls answered (a polling bot asks again and again)."""
        self.get_me = 0
        """``getMe`` calls answered (what a bot starting, or a preflight, asks first)."""

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        """The ``telegram.base_url`` that points a bot here (the token follows it)."""
        return f"http://{self._host}:{self.port}/bot"

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        await self._http.start()

    async def stop(self) -> None:
        self._stopped.set()  # held long polls answer now
        await self._http.stop()

    async def __aenter__(self) -> BotApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def push(self, update: dict[str, Any]) -> int:
        """Queue an ``Update`` for the bot's next ``getUpdates``; returns its ``update_id``."""
        item = dict(update)
        item.setdefault("update_id", self._next_id)
        self._next_id = max(self._next_id, int(item["update_id"])) + 1
        self._updates.append(item)
        self._arrived.set()
        return int(item["update_id"])

    async def _handle(self, req: HttpRequest) -> HttpResponse:
        match = _PATH.fullmatch(req.path)
        if match is None:
            return HttpResponse.json({"ok": False, "error_code": 404, "description": "Not Found"}, 404)
        method = match["method"]
        if method == "getMe":
            self.get_me += 1
        if self.token is not None and match["token"] != self.token:
            return HttpResponse.json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        try:
            params = _params(req)
        except (ValueError, UnicodeDecodeError):
            return HttpResponse.json({"ok": False, "error_code": 400, "description": "Bad Request: body"}, 400)
        if method == "getUpdates":
            return HttpResponse.json({"ok": True, "result": await self._poll(params)})
        status, body = self.api.answer(method, params)
        return HttpResponse(status, body, {"Content-Type": "application/json"})

    async def _poll(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.polls += 1
        offset = int(params.get("offset") or 0)
        self._updates = [u for u in self._updates if int(u["update_id"]) >= offset]  # the rest are confirmed
        if not self._updates:
            self._arrived.clear()
            wait = min(float(params.get("timeout") or 0), MAX_POLL_S)
            if wait > 0:
                waiters = {asyncio.ensure_future(self._arrived.wait()), asyncio.ensure_future(self._stopped.wait())}
                try:
                    await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        return list(self._updates)
