"""Waiting on state that no event announces (the engine's memory before a held write, a write
queued behind another, a row in another connection): polled, with a generous ceiling for loaded
machines."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

WAIT_S = 30.0


async def until(pred: Callable[[], object], what: str, within_s: float = WAIT_S) -> None:
    """Poll ``pred`` (plain or async) until it is true; fail after ``within_s``."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = pred()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        assert asyncio.get_running_loop().time() < deadline, f"timed out after {within_s}s waiting for {what}"
        await asyncio.sleep(0.005)
