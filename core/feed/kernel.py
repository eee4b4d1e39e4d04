"""Loads the feed's C accelerator (``core/feed/_kernel.c``) when it is built and current.

:func:`load` gives the compiled ``apply_msg`` (or None) and a status line saying which path the
feed runs and why, in words a trader can act on (``FeedProcessor.kernel_status`` carries it; the
service logs it at start). The accelerator only ever takes the common case of a ``price_change`` entry
and hands everything else to the pure-Python path in :mod:`core.feed.processor`, which stays the
reference (tests compare the two on the same streams).

It is built by ``hatch_build.py`` when uv installs the project (a C compiler and the Python
headers are needed; without them the build goes on without it). A build from an older
``_kernel.c`` is never used: the module carries the SHA-256 of the source it was built from.
``POLYBOT_FEED_KERNEL=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("core.feed.kernel")

SOURCE = Path(__file__).with_name("_kernel.c")
ENV_SWITCH = "POLYBOT_FEED_KERNEL"
REBUILD_HINT = "uv sync --reinstall-package polybot"

ApplyMsg = Callable[[Any, dict[str, Any], int, dict[str, Any], list[Any]], int]


def _load() -> tuple[ApplyMsg | None, str]:
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
        return None, f"pure Python ({ENV_SWITCH}=0)"
    try:
        from core.feed import _kernel  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"pure Python (C kernel not built: {exc}; build it with `{REBUILD_HINT}`)"
    if SOURCE.exists():
        current = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
        if _kernel.SOURCE_SHA256 != current:
            return None, f"pure Python (C kernel built from an older _kernel.c; rebuild with `{REBUILD_HINT}`)"
    from core.feed.book import Book
    from core.feed.events import PriceChange
    from core.feed.wire import UNIT, PriceChangeEntry, PriceChangeMsg
    from core.types import Side

    try:
        _kernel.configure(Book, PriceChangeEntry, PriceChangeMsg, PriceChange, Side.BUY, UNIT)
    except (AttributeError, TypeError, ValueError) as exc:  # a struct changed shape: safe, just slower
        return None, f"pure Python (C kernel refused the feed types: {exc})"
    return _kernel.apply_msg, "C kernel (core/feed/_kernel.c)"


_loaded: tuple[ApplyMsg | None, str] | None = None


def load() -> tuple[ApplyMsg | None, str]:
    """(apply_msg or None, status text); loaded once."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
        log.debug("feed fast path: %s", _loaded[1])
    return _loaded
