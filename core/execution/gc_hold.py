"""The garbage collector held off while a group is on its way to the wire.

The engine keeps every order it placed (rows, requests, signed bodies), so the objects a group
leaves behind survive their first collections: with the start-up heap frozen (``gc.freeze`` at
service start), a generation-1 collection still walks the recent orders (~1 ms after a few hundred
groups) and a full one everything made since the start. A collection triggered by an allocation
between the tick and the request's last byte is paid by that group. :class:`GcHold` switches
automatic collection off while a group is placed (no more than the group's few thousand objects
are made meanwhile) and back on when the last group in flight is through, or after ``max_s`` at
the latest (a venue that does not answer never keeps the collector off for long); the collection
then runs on a later allocation, after the wire. Only when the collector was on: a process that
turned it off keeps it off.
"""

from __future__ import annotations

import asyncio
import gc
from types import TracebackType

MAX_HOLD_S = 0.25


class GcHold:
    """A counted hold (groups may be in flight together), released with the last one out or at ``max_s``."""

    def __init__(self, max_s: float = MAX_HOLD_S) -> None:
        self.max_s = max_s
        self._depth = 0
        self._turned_off = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def held(self) -> bool:
        return self._turned_off

    def __enter__(self) -> GcHold:
        if self._depth == 0 and gc.isenabled():
            gc.disable()
            self._turned_off = True
            self._timer = asyncio.get_running_loop().call_later(self.max_s, self._release)
        self._depth += 1
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._release()

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._turned_off:
            self._turned_off = False
            gc.enable()


HOLD = GcHold()
"""The process's one hold (the collector is the process's)."""
