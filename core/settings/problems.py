"""A validation error as problem lines a person can act on: ``file:line: dotted.key: reason``.

Each line names where the offending value came from (the file and its line, or ``env NAME``), the
dotted key, and the reason; an unknown key gets a "did you mean"; a rejected value is echoed
``(got …)`` only when it is not a secret, masked as typed text first and shortened after.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from core.redact import redact_typed
from core.settings.fields import CrossFieldProblems
from core.settings.root import Settings
from core.settings.sources import Merged
from core.settings.walk import field_at, is_secret, model_at, plain_values

Loc = tuple[int | str, ...]

_MAX_SHOWN_TEXT = 60
_MAX_SHOWN_NUMBER = 24
"""A longer number is described, not shown: a private key written as a TOML hex integer
(``0x4c08…`` unquoted) reads as a 77-digit int, and its digits are the key."""


def describe(exc: ValidationError, merged: Merged) -> list[str]:
    """One line per problem of ``exc``; a cross-field rule gives one line per key it names."""
    problems: list[str] = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldProblems):
            problems += _cross_field(tuple(err["loc"]), cause, merged)
        else:
            loc = tuple(err["loc"])
            where = _where(merged.source_of(_key(loc)), loc, merged.texts)
            problems.append(f"{where}: {_dotted(loc)}: {_reason(err, loc)}")
    return problems


def recheck(settings: Settings) -> list[str]:
    """Every rule again on settings that may have changed since they were loaded (a service, a
    test): ``dotted.key: reason`` lines, without values (one may be a secret) or places."""
    try:
        Settings.model_validate(plain_values(settings))
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors():
            loc = _key(err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, CrossFieldProblems):
                problems += [f"{loc + '.' if loc else ''}{key}: {reason}" for key, reason, _ in cause.items]
            else:
                problems.append(f"{loc or 'settings'}: {str(err['msg']).removeprefix('Value error, ')}")
        return problems
    return []


def _cross_field(loc: Loc, cause: CrossFieldProblems, merged: Merged) -> list[str]:
    lines = []
    for key, reason, related in cause.items:
        full = (*loc, *key.split("."))
        # Name the layer that set the offending key, else the one that set a related key.
        candidates = [full, *[(*loc, *r.split(".")) for r in related]]
        found = next((c for c in candidates if _key(c) in merged.origin), None)
        if found is not None:
            where = _where(merged.origin[_key(found)], found, merged.texts)
        else:
            where = _where(merged.source_of(_key(full)), full, merged.texts)
        lines.append(f"{where}: {_dotted(full)}: {reason}")
    return lines


def _reason(err: ErrorDetails, loc: Loc) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key" + _did_you_mean(loc)
    if err["type"] == "missing":
        return "required value is missing"
    reason = str(err["msg"]).removeprefix("Value error, ")
    names = [p for p in loc if isinstance(p, str)]
    shown = None if is_secret(field_at(Settings, names)) else _show_input(err.get("input"))
    return reason if shown is None else f"{reason} (got {shown})"


def _did_you_mean(loc: Loc) -> str:
    model = model_at(Settings, [p for p in loc[:-1] if isinstance(p, str)])
    if model is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _key(loc: Sequence[int | str]) -> str:
    return ".".join(str(p) for p in loc)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        # key names come from the person's file too: a value pasted as a key stays masked
        out += f"[{part}]" if isinstance(part, int) else (f".{redact_typed(part)}" if out else redact_typed(part))
    return out


def _where(label: str | None, loc: Loc, texts: Mapping[str, str]) -> str:
    if label is None:
        return "defaults"
    kind, _, rest = label.partition(":")
    if kind == "env":
        return f"env {rest}"
    line = find_line(texts.get(label, ""), loc)
    return f"{rest}:{line}" if line else rest


def _show_input(value: object) -> str | None:
    """How a rejected value is echoed in ``(got …)``: anything secret-shaped masked first, then
    shortened (shortening first would leave most of a key unmasked)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = redact_typed(value)
        return json.dumps(shown if len(shown) <= _MAX_SHOWN_TEXT else shown[: _MAX_SHOWN_TEXT - 3] + "...")
    if isinstance(value, int | Decimal | float):
        text = str(value)
        return text if len(text) <= _MAX_SHOWN_NUMBER else f"a number of {len(text)} characters, not shown"
    return None


# ---- the line of a key in a TOML text (tomllib keeps no positions)

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _split_key(key: str) -> list[str]:
    return [p.strip().strip("\"'") for p in key.split(".")]


def _key_lines(text: str) -> dict[Loc, int]:
    """The first line of every key and table header, by its location (array tables counted)."""
    keys: dict[Loc, int] = {}
    table: list[int | str] = []
    array_counts: dict[tuple[str, ...], int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            names = _split_key(header.group(2))
            if header.group(1) == "[[":
                count = array_counts.get(tuple(names), 0)
                array_counts[tuple(names)] = count + 1
                table = [*names, count]
            else:
                table = list(names)
            keys.setdefault(tuple(table), lineno)
            keys.setdefault(tuple(names), lineno)
            continue
        match = _KEY_RE.match(line)
        if match and not line.lstrip().startswith("#"):
            keys.setdefault((*table, *_split_key(match.group(1))), lineno)
    return keys


def find_line(text: str, loc: Loc) -> int | None:
    """Best-effort line of ``loc`` in a TOML text: the key, else its closest table header."""
    if not text:
        return None
    keys = _key_lines(text)
    target = list(loc)
    while target:
        if tuple(target) in keys:
            return keys[tuple(target)]
        target.pop()
    return None
