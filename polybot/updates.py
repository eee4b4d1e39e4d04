"""Telegram Bot API ``Update`` objects for scripted chats: the demo, the fault suite, the tests.

Each builder returns the JSON object Telegram would send (``message``, ``edited_message``,
``callback_query``, ``inline_query``), numbered in order, ready for :class:`bot.offline.OfflineRunner`
or a Bot API double's ``getUpdates``. A leading ``/command`` gets its ``bot_command`` entity.
"""

from __future__ import annotations

import time
from typing import Any

Update = dict[str, Any]


class Updates:
    """Numbers the updates of one chat script (``update_id`` and ``message_id`` count up from 1)."""

    def __init__(self) -> None:
        self.n = 0

    @staticmethod
    def user(uid: int) -> dict[str, Any]:
        return {"id": uid, "is_bot": False, "first_name": f"user{uid}"}

    def msg(
        self, uid: int, text: str, *, chat_type: str = "private", chat_id: int | None = None, edited: bool = False
    ) -> Update:
        """``uid`` writes ``text`` (in their private chat unless ``chat_id``/``chat_type`` say otherwise)."""
        self.n += 1
        entities = []
        if text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        chat: dict[str, Any] = {"id": chat_id if chat_id is not None else uid, "type": chat_type}
        if chat_type != "private":
            chat["title"] = "a group"
        message: dict[str, Any] = {
            "message_id": self.n,
            "date": int(time.time()),
            "chat": chat,
            "from": self.user(uid),
            "text": text,
            "entities": entities,
        }
        if edited:
            message["edit_date"] = int(time.time())
        return {"update_id": self.n, "edited_message" if edited else "message": message}

    def tap(self, uid: int, data: str, *, chat_id: int | None = None) -> Update:
        """``uid`` taps an inline button whose callback data is ``data``."""
        self.n += 1
        return {
            "update_id": self.n,
            "callback_query": {
                "id": str(self.n),
                "from": self.user(uid),
                "chat_instance": "script",
                "data": data,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": chat_id if chat_id is not None else uid, "type": "private"},
                    "text": "card",
                },
            },
        }

    def inline(self, uid: int, query: str) -> Update:
        self.n += 1
        return {
            "update_id": self.n,
            "inline_query": {"id": str(self.n), "from": self.user(uid), "query": query, "offset": ""},
        }
