"""What a scripted Telegram ``Update`` line must look like (offline runner, ``tgbot-run-local``).

python-telegram-bot builds an ``Update`` from nearly anything (``"update_id": "x"`` included) and
fails later, deep inside the runner, with a bare ``ValueError`` or ``TypeError`` that names no line
and no field. Each line is checked here first: the fields the bot reads are typed strictly
(pydantic), anything else goes through PTB's own ``Update.de_json``, and the one-line error names
the field (``message.chat.id: ...``); the caller adds the file and line.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from telegram import Bot, Update
from telegram.constants import UpdateType

DIRECTIVES = ("_advance_s", "_comment")
UPDATE_KINDS = frozenset(str(kind) for kind in UpdateType)
KINDS_HINT = "message, edited_message, callback_query, inline_query ..."


class _Strict(BaseModel):
    # strict: "5" is not an integer and true is not an id; extra: Telegram sends many more fields
    model_config = ConfigDict(strict=True, extra="allow")


class _User(_Strict):
    id: int
    is_bot: bool
    first_name: str


class _Chat(_Strict):
    id: int
    type: str


class _Entity(_Strict):
    type: str
    offset: int = Field(ge=0)
    length: int = Field(ge=1)


class _Message(_Strict):
    message_id: int
    date: int
    chat: _Chat
    from_: _User | None = Field(default=None, alias="from")
    text: str | None = None
    entities: list[_Entity] | None = None


class _CallbackQuery(_Strict):
    id: str
    from_: _User = Field(alias="from")
    chat_instance: str
    data: str | None = None
    message: _Message | None = None


class _InlineQuery(_Strict):
    id: str
    from_: _User = Field(alias="from")
    query: str
    offset: str


class _Update(_Strict):
    update_id: int | None = Field(default=None, ge=0)
    message: _Message | None = None
    edited_message: _Message | None = None
    callback_query: _CallbackQuery | None = None
    inline_query: _InlineQuery | None = None


def is_comment(data: dict[str, Any]) -> bool:
    return set(data) == {"_comment"}


def check_line(data: dict[str, Any]) -> None:
    """A directive or an Update the bot can take; ``ValueError`` naming the field otherwise."""
    if is_comment(data):
        return
    if "_advance_s" in data:
        _check_advance(data)
        return
    _to_update(data, None)


def parse_update(data: dict[str, Any], bot: Bot) -> Update:
    """The ``Update`` bound to ``bot``, checked as :func:`check_line` does."""
    return _to_update(data, bot)


def _to_update(data: dict[str, Any], bot: Bot | None) -> Update:
    unknown_directives = sorted(k for k in data if k.startswith("_") and k not in DIRECTIVES)
    if unknown_directives:
        raise ValueError(f"unknown directive {unknown_directives[0]!r} (directives: {', '.join(DIRECTIVES)})")
    kinds = [k for k in data if k in UPDATE_KINDS]
    unknown = sorted(k for k in data if k not in UPDATE_KINDS and k != "update_id" and not k.startswith("_"))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (an Update has update_id and one of {KINDS_HINT})")
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        raise ValueError(f"an Update carries exactly one of {KINDS_HINT}; found {found}")
    try:
        _Update.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_first_problem(exc)) from None
    try:  # the kinds not typed above (channel_post, my_chat_member ...): PTB's own constructor
        return Update.de_json(json.loads(json.dumps(data)), bot)
    except Exception as exc:
        raise ValueError(f"{kinds[0]}: not a Telegram {kinds[0]} ({type(exc).__name__}: {exc})") from None


def _check_advance(data: dict[str, Any]) -> None:
    extra = sorted(set(data) - set(DIRECTIVES))
    if extra:
        raise ValueError(f"a directive line carries nothing else; found {extra[0]!r} next to _advance_s")
    value = data["_advance_s"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"_advance_s must be a number of seconds >= 0, got {_shown(value)}")


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"])
    if error["type"] == "model_type":  # pydantic names its model class here: say what the line needs
        message = "must be a JSON object"
    message = message[:1].lower() + message[1:]
    if error["type"] == "missing":
        return f"{where}: {message}"
    return f"{where}: {message}, got {_shown(error['input'])}"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:40] + "…"
