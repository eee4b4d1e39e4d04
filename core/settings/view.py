"""The configuration as a person may see it (``polybot config show``): JSON-safe, secrets masked."""

from __future__ import annotations

from decimal import Decimal
from typing import TypeAlias

from pydantic import BaseModel

from core.redact import DISPLAY_MASK, mask_url_password, redact_typed
from core.settings.fields import MarketRef
from core.settings.sections import DbSettings
from core.settings.walk import is_secret

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"

_MARKET_LIST = list[MarketRef]
"""Condition ids, by design: they have the shape of a key, but they are public."""


def masked(model: BaseModel) -> dict[str, JsonValue]:
    """Set secrets ``**********``, unset ones ``""``, a URL's password masked, and any secret shape
    pasted under a key that takes any text (``service.name``, ``logging.file``, …) masked as typed."""
    out: dict[str, JsonValue] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out[name] = masked(value)
        elif is_secret(info):
            out[name] = DISPLAY_MASK if value is not None else ""
        elif isinstance(model, DbSettings) and name == "url":
            out[name] = mask_url_password(value)  # the password is a secret, the rest is not
        elif info.annotation == _MARKET_LIST:
            out[name] = _jsonable(value)
        else:
            out[name] = _typed_masked(_jsonable(value))
    return out


def _typed_masked(value: JsonValue) -> JsonValue:
    if isinstance(value, str):
        return redact_typed(value)
    if isinstance(value, list):
        return [_typed_masked(v) for v in value]
    return value


def _jsonable(value: object) -> JsonValue:
    if isinstance(value, BaseModel):
        return masked(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
