"""A row is written in the order its changes were made: an order's, an alert's, the arm state's.

Two changes of one order can be in flight at once: a placed order's answer ("live") still being
committed when a cancel made on that answer commits "canceled". The store's connections commit in
whatever order they get the write lock (SQLite's busy handler sleeps and retries, PostgreSQL's
connections are independent), so the older write could land last and put the row back to "live"
while the engine knows the order canceled. Each write of an order's row therefore waits for the
write issued before it for the same order: the row ends as the engine's memory does. An alert's
row and its clearing likewise (:mod:`core.execution.alert_rows`), and the arm state's row
(:class:`core.execution.risk_gate.RiskGate`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class OrderedWrites:
    """Per key (a client order id, an alert's kind and key, the arm state's key), the write issued
    last; a new one runs once those before it ended."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}
        self._waiting = 0

    async def run(self, keys: Sequence[str], write: Callable[[], Awaitable[T]]) -> T:
        """``write()`` (it writes the rows of ``keys``) after every earlier write of any of them,
        whether that one succeeded or not. Called on the loop, in the order the changes were made."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        before = {id(f): f for k in keys if (f := self._last.get(k)) is not None and not f.done()}
        for key in keys:
            self._last[key] = done
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
            for key in keys:
                if self._last.get(key) is done:
                    del self._last[key]

    def pending(self) -> int:
        """Keys with a write under way (for tests and diagnostics)."""
        return len(self._last)

    def waiting(self) -> int:
        """Writes issued and not yet started: each waits for an earlier one (tests, diagnostics)."""
        return self._waiting
