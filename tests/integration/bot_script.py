"""Telegram updates built in a test, fed through the offline runner: messages, button taps, and
what the bot answered to each (replies, callback answers, edits, buttons)."""

from __future__ import annotations

import itertools
from typing import Any

from bot.offline import TranscriptEntry

ADMIN, VIEWER, OPERATOR, STRANGER = 1001, 1002, 1003, 6666
_ids = itertools.count(1)


def msg(user: int, text: str) -> dict[str, Any]:
    n = next(_ids)
    person = {"id": user, "is_bot": False, "first_name": f"u{user}"}
    return {
        "message": {
            "message_id": n,
            "date": 1793000000 + n,
            "chat": {"id": user, "type": "private", "first_name": f"u{user}"},
            "from": person,
            "text": text,
        }
    }


def tap(user: int, data: str, message_id: int = 1) -> dict[str, Any]:
    n = next(_ids)
    person = {"id": user, "is_bot": False, "first_name": f"u{user}"}
    return {
        "callback_query": {
            "id": f"q{n}",
            "from": person,
            "chat_instance": "ci",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": 1793000000 + n,
                "chat": {"id": user, "type": "private", "first_name": f"u{user}"},
                "from": {"id": 4242, "is_bot": True, "first_name": "Polybot"},
                "text": "card",
            },
        }
    }


def texts(entry: TranscriptEntry, method: str = "sendMessage") -> list[str]:
    return [c.get("text", "") for c in entry.calls if c["method"] == method]


def reply(entry: TranscriptEntry) -> str:
    sent = texts(entry)
    assert len(sent) == 1, entry.calls
    return sent[0]


def buttons(entry: TranscriptEntry) -> list[dict[str, str]]:
    """Every button of the entry's messages, in order."""
    return [b for c in entry.calls for row in c.get("buttons", []) for b in row]
