"""Rendering for Telegram: HTML parse mode, every dynamic value escaped, 4096-char splitting."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from decimal import Decimal

TELEGRAM_MAX_CHARS = 4096


def esc(value: object) -> str:
    """Escape any dynamic value for HTML parse mode (market titles contain <, &, _)."""
    return html.escape("" if value is None else str(value), quote=False)


def money(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{places}f}"


def price(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}" if value == value.to_integral() else f"{value:f}"


def trimmed(value: Decimal | None) -> str:
    """A computed figure (an average, a fee) without the trailing zeros of its quantum: 0.400000 -> 0.4."""
    return "-" if value is None else f"{value.normalize():f}"


def table(rows: Sequence[Sequence[object]], header: Sequence[str] | None = None) -> str:
    """A monospaced table inside <pre>, every cell escaped."""
    all_rows = [list(map(str, header))] if header else []
    all_rows += [[str(c) for c in row] for row in rows]
    if not all_rows:
        return ""
    widths = [max(len(r[i]) for r in all_rows if i < len(r)) for i in range(max(len(r) for r in all_rows))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in all_rows]
    return "<pre>" + esc("\n".join(lines)) + "</pre>"


def split_message(text: str, limit: int = TELEGRAM_MAX_CHARS) -> list[str]:
    """Split text into chunks of at most ``limit`` characters, preferring line boundaries.

    A chunk never ends inside an HTML entity; an open <pre> block is closed and reopened across
    chunks so each message stays valid HTML.
    """
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    in_pre = False
    for line in _lines_no_longer_than(text.split("\n"), limit - 12):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) + (6 if in_pre or "<pre>" in line else 0) > limit:
            if in_pre:
                current += "</pre>"
            chunks.append(current)
            current = ("<pre>" if in_pre else "") + line
        else:
            current = candidate
        in_pre = _pre_open_after(line, in_pre)
    if current:
        chunks.append(current)
    return chunks


def _pre_open_after(line: str, was_open: bool) -> bool:
    opens, closes = line.count("<pre>"), line.count("</pre>")
    return (was_open and closes <= opens) or (not was_open and opens > closes)


def _lines_no_longer_than(lines: Iterable[str], limit: int) -> Iterable[str]:
    for line in lines:
        while len(line) > limit:
            cut = limit
            amp = line.rfind("&", 0, cut)
            if amp != -1 and ";" not in line[amp:cut]:
                cut = amp  # do not split an entity such as &amp;
            yield line[:cut]
            line = line[cut:]
        yield line
