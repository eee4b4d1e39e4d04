"""The Gamma double's ``GET /markets/keyset``: cursor paging over the served markets.

Like Gamma: ``limit`` capped at 100, ``offset`` refused (422: keyset pages have none), the cursor
opaque (``after_cursor``), the last page without ``next_cursor``. The cursor is the position in
the served list after the last item sent, so markets appended during a scan are still reached and
none is sent twice. Knobs for tests: ``end`` (how the last page says so: the key left out, null
or an empty string) and ``ignore_cursor`` (every request answered as the first page, with the
same ``next_cursor``: the server bug the client's cursor-loop guard exists for).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from core.defaults import GAMMA_MAX_LIMIT

_PREFIX = "gk1:"

KeysetEnd = Literal["absent", "null", "empty"]


class CursorError(ValueError):
    """An ``after_cursor`` this double never issued."""


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        text = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError(f"invalid after_cursor {cursor[:40]!r}") from None
    if not text.startswith(_PREFIX) or not text[len(_PREFIX) :].isdigit():
        raise CursorError(f"invalid after_cursor {cursor[:40]!r}")
    return int(text[len(_PREFIX) :])


@dataclass(slots=True)
class KeysetOptions:
    end: KeysetEnd = "absent"
    ignore_cursor: bool = False


def keyset_page(
    markets: Sequence[object],
    matches: Callable[[object], bool],
    *,
    limit: int,
    after_cursor: str | None,
    options: KeysetOptions,
) -> dict[str, object]:
    """The body of one keyset answer; raises :class:`CursorError` for a cursor it cannot read."""
    limit = max(1, min(GAMMA_MAX_LIMIT, limit))
    start = 0 if after_cursor is None or options.ignore_cursor else decode_cursor(after_cursor)
    page: list[object] = []
    position = start
    # one match past the page tells whether there is a next page (the last one has no cursor)
    more = False
    while position < len(markets):
        item = markets[position]
        if matches(item):
            if len(page) == limit:
                more = True
                break
            page.append(item)
        position += 1
    body: dict[str, object] = {"markets": page}
    if more:
        body["next_cursor"] = encode_cursor(position)
    elif options.end == "null":
        body["next_cursor"] = None
    elif options.end == "empty":
        body["next_cursor"] = ""
    return body


def multi(params: Mapping[str, list[str]], name: str) -> list[str]:
    """A repeated (or comma-separated) query key's values."""
    values: list[str] = []
    for raw in params.get(name, []):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values
