"""An in-process Bot API double: a ``BaseRequest`` that records every call and answers as Telegram would.

Used by the offline update runner, the demo and the tests, so the real ``Application`` runs with no
network. It can be told to answer the next N calls with 429 ``retry_after`` to exercise flood handling.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram.request import BaseRequest, RequestData

DEFAULT_USERNAME = "polybot_local_bot"
BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Polybot", "username": DEFAULT_USERNAME}


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    sent_id: int | None = None
    """The id of the message this call sent (sendMessage, sendPhoto): what a tap on its buttons names."""

    @property
    def chat_id(self) -> int | None:
        chat = self.params.get("chat_id")
        return int(chat) if chat is not None else None

    @property
    def text(self) -> str | None:
        return self.params.get("text")

    @property
    def buttons(self) -> list[list[dict[str, str]]]:
        markup = self.params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        if not markup:
            return []
        return [
            [{k: v for k, v in b.items() if k in ("text", "callback_data")} for b in row]
            for row in markup.get("inline_keyboard", [])
        ]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.chat_id is not None:
            out["chat_id"] = self.chat_id
        if "message_id" in self.params:
            out["message_id"] = int(self.params["message_id"])
        if self.text is not None:
            out["text"] = self.text
        if self.buttons:
            out["buttons"] = self.buttons
        if self.method == "answerCallbackQuery" and self.params.get("text"):
            out["text"] = self.params["text"]
        if "photo_bytes" in self.params:
            out["photo"] = {k: self.params[k] for k in ("photo_bytes", "photo_size", "photo_path") if k in self.params}
            out["text"] = self.params.get("caption")
        if self.method in ("setMyCommands", "deleteMyCommands"):  # the menu, and whose it is
            out["scope"] = _decoded(self.params.get("scope")) or {"type": "default"}
            if self.method == "setMyCommands":
                out["commands"] = [c["command"] for c in _decoded(self.params.get("commands")) or []]
        return out


def _decoded(value: Any) -> Any:
    """A parameter as sent: python-telegram-bot passes nested objects as JSON text or as dicts."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class FakeBotApi(BaseRequest):
    calls: list[ApiCall] = field(default_factory=list)
    throttle_next: int = 0
    retry_after: int = 1
    flood_limited: bool = False
    """No Telegram behind this double: ``build_bot`` then skips the 30 msg/s throttle (set True to keep it)."""
    username: str = DEFAULT_USERNAME
    """The bot's own @username (getMe): what a ``/command@username`` suffix must name to run here."""
    photo_dir: Path | None = None
    """Where a sent photo is saved (under the upload's own ``.png`` name, else ``photo-<message id>.png``);
    None keeps only its size."""
    _next_message_id: int = 1000

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        photo = (lambda: self._photo(request_data)) if api_method == "sendPhoto" and request_data is not None else None
        return self.answer(api_method, params, photo=photo)

    def answer(
        self, api_method: str, params: dict[str, Any], *, photo: Callable[[], dict[str, Any]] | None = None
    ) -> tuple[int, bytes]:
        """Telegram's answer to one call (recorded): the in-process transport above, or the same
        double served over HTTP (:mod:`polybot.bot_api_server`). ``photo`` reads an upload."""
        if api_method not in ("getMe", "deleteWebhook", "getUpdates") and self.throttle_next > 0:
            self.throttle_next -= 1
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {self.retry_after}",
                "parameters": {"retry_after": self.retry_after},
            }
            self.calls.append(ApiCall(f"{api_method}!429", params))
            return 429, json.dumps(body).encode()
        if photo is not None:
            params.update(photo())
        result = self._result(api_method, params)
        if api_method not in ("getMe", "getUpdates", "deleteWebhook"):
            sent = result.get("message_id") if api_method in ("sendMessage", "sendPhoto") else None
            self.calls.append(ApiCall(api_method, params, sent_id=sent))
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return {**self.bot_user, "can_join_groups": False, "can_read_all_group_messages": False}
        if method == "getUpdates":
            return []
        if method in ("sendMessage", "sendPhoto", "editMessageText", "editMessageReplyMarkup"):
            if method in ("sendMessage", "sendPhoto"):
                self._next_message_id += 1
                message_id = self._next_message_id
            else:
                message_id = int(params.get("message_id", 0))
            chat_id = int(params.get("chat_id", 0))
            msg: dict[str, Any] = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": self.bot_user,
            }
            if "text" in params:
                msg["text"] = params["text"]
            if method == "sendPhoto":
                width, height = params.get("photo_size") or (0, 0)
                file = {"file_id": f"photo{message_id}", "file_unique_id": f"p{message_id}"}
                msg["photo"] = [{**file, "width": width, "height": height}]
                if params.get("caption"):
                    msg["caption"] = params["caption"]
            return msg
        return True

    def _photo(self, request_data: RequestData) -> dict[str, Any]:
        """The uploaded photo's size (and, with ``photo_dir``, the file it was saved to)."""
        parts = request_data.multipart_data
        if not parts:
            return {}
        name, content = next(iter(parts.values()))[:2]
        data = content if isinstance(content, bytes) else content.read()
        out: dict[str, Any] = {"photo_bytes": len(data), "photo_size": png_size(data)}
        if self.photo_dir is not None:
            self.photo_dir.mkdir(parents=True, exist_ok=True)
            # the name the bot gave the upload (chart-<slug>.png): a run saves the same paths every time
            stem = Path(str(name)).name if name and str(name).endswith(".png") else ""
            path = self.photo_dir / (stem or f"photo-{self._next_message_id + 1}.png")
            path.write_bytes(data)
            out["photo_path"] = str(path)
        return out

    async def get_me_username(self) -> str:
        """``getMe`` as the bot would ask it, answered here: the preflight's Telegram check of a bot
        that runs on this double (:data:`core.preflight.telegram.BotIdentity`)."""
        _, body = await self.do_request("getMe", "POST")
        return str(json.loads(body)["result"]["username"])

    @property
    def bot_user(self) -> dict[str, Any]:
        return {**BOT_USER, "username": self.username}

    def transcript(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.calls]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG (its IHDR chunk), or None when the bytes are not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
