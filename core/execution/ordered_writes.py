"""An order's row is written in the order its changes were made in memory.

Two changes of one order can be in flight at once: a placed order's answer ("live") still being
committed when a cancel made on that answer commits "canceled". The store's connections commit in
whatever order they get the write lock (SQLite's busy handler sleeps and retries, PostgreSQL's
connections are independent), so the older write could land last and put the row back to "live"
while the engine knows the order canceled. Each write of an order's row therefore waits for the
write issued before it for the same order: the row ends as the engine's memory does. An alert's
row and its clearing likewise (:func:`core.execution.store.record_alerts`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class OrderedWrites:
    """Per client order id, the write issued last; a new one runs once those before it ended."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}
        self._waiting = 0

    async def run(self, coids: Sequence[str], write: Callable[[], Awaitable[T]]) -> T:
        """``write()`` (it writes the rows of ``coids``) after every earlier write of any of them,
        whether that one succeeded or not. Called on the loop, in the order the changes were made."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        before = {id(f): f for c in coids if (f := self._last.get(c)) is not None and not f.done()}
        for coid in coids:
            self._last[coid] = done
        try:
            self._waiting += 1
            try:
                for earlier in before.values():
                    await asyncio.shield(earlier)  # a cancelled wait must not cancel the write it waits for
            finally:
                self._waiting -= 1
            return await write()
        finally:
            done.set_result(None)
            for coid in coids:
                if self._last.get(coid) is done:
                    del self._last[coid]

    def pending(self) -> int:
        """Orders with a write under way (for tests and diagnostics)."""
        return len(self._last)

    def waiting(self) -> int:
        """Writes issued and not yet started: each waits for an earlier one (tests, diagnostics)."""
        return self._waiting
