"""Whether the service is shutting down, and the background work a shutdown waits for.

The trading wiring spawns short tasks (a Dutch group's submission, a quote replacement, a paper
fill check, a re-seed): they are kept here so that a failure is logged instead of lost, and so
that ``stop()`` can wait for them; once stopping, nothing new is started on the feed's behalf.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

log = logging.getLogger(__name__)


class Lifecycle:
    def __init__(self) -> None:
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def begin_stop(self) -> None:
        self._stopping = True

    def spawn(self, work: Coroutine[object, object, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) for the background work in flight: a stop must not hang on a stuck call."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
