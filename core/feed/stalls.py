"""Event-loop stalls and quiet bursts: a burst is judged quiet only while the loop keeps up.

One match reaches us as several frames with the same timestamp; its book is checked against the
best prices the frames carried once the burst is over, i.e. when the asset's next timestamp
arrives or after ``burst_quiet_ms`` without a frame for it (:mod:`core.feed.integrity`). "Without
a frame" assumes the frames that were sent were also read. When the event loop stalls (a long
callback, a CPU-starved process, the GIL held by a driver thread), the next frame of a burst may
sit unread in its socket while the loop catches up: the first thing that runs after the stall,
the service's timer or a frame of another socket, would close the burst on a half-applied book
and report a false ``mismatch``.

:class:`LoopStalls` beats every ``period_ms`` on the running loop (``loop.call_later``; a few
dozen callbacks a second). A beat that comes more than ``tolerance_ms`` late, or a question asked
when the last beat is that late (the stall is still going on, or has just ended and the beat has
not run yet), holds quiet judgements for one more ``hold_ms`` (the burst quiet window): by then
the loop has had the time to read every socket, and any burst frame that was waiting has been
applied. While held, bursts still close as usual when their asset's next timestamp arrives.

Why this holds: a frame that reached the socket is read at the loop's next poll, so it waits at
most the length of one loop iteration; an iteration longer than ``period_ms + tolerance_ms``
delays a due beat by more than ``tolerance_ms`` and starts a hold. A burst judged quiet therefore
had no loop iteration longer than that since its last frame (plus one quiet window); with the
live window of 250 ms and the defaults below, any burst frame sent within about 100 ms of the
previous one is applied before the burst is judged.

``FeedProcessor.stall_guard`` takes one (``IngestPipeline(..., live=True)`` sets it up): replays
and tests that drive the processor by hand judge by their own clock as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

DEFAULT_PERIOD_MS = 20
DEFAULT_TOLERANCE_MS = 50


class StallGuard(Protocol):
    """What ``FeedProcessor.stall_guard`` asks before judging quiet bursts."""

    def resume_ns(self, now_ns: int) -> int:
        """From when quiet bursts may be judged (``now_ns`` or earlier: now)."""
        ...


class LoopStalls:
    """Heartbeat on the running event loop; says until when quiet bursts must not be judged."""

    def __init__(
        self,
        hold_ms: int,
        *,
        period_ms: int = DEFAULT_PERIOD_MS,
        tolerance_ms: int = DEFAULT_TOLERANCE_MS,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """``clock_ns`` must be the clock of the frames' ``recv_ns`` (wall clock, ns)."""
        if hold_ms <= 0 or period_ms <= 0 or tolerance_ms <= 0:
            raise ValueError("hold_ms, period_ms and tolerance_ms must be > 0")
        self.hold_ns = hold_ms * 1_000_000
        self.period_ns = period_ms * 1_000_000
        self.tolerance_ns = tolerance_ms * 1_000_000
        self._clock = clock_ns
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_beat_ns = 0
        self._hold_until_ns = 0
        self.stalls = 0  # holds started (a late beat, or a question asked while the beat was late)
        self.worst_ms = 0.0  # the latest a beat came

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> bool:
        """Start beating on the running loop (idempotent). False when no loop is running."""
        if self._handle is not None:
            return True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._last_beat_ns = self._clock()
        self._handle = self._loop.call_later(self.period_ns / 1e9, self._beat)
        return True

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _late(self, now_ns: int) -> None:
        late = now_ns - self._last_beat_ns - self.period_ns
        if late > self.tolerance_ns:
            if now_ns >= self._hold_until_ns:
                self.stalls += 1  # a new hold (a stall seen twice, asked then beaten, counts once)
            self._hold_until_ns = max(self._hold_until_ns, now_ns + self.hold_ns)
            self.worst_ms = max(self.worst_ms, late / 1e6)

    def _beat(self) -> None:
        now = self._clock()
        self._late(now)
        self._last_beat_ns = now
        assert self._loop is not None
        if self._loop.is_closed():
            self._handle = None
            return
        self._handle = self._loop.call_later(self.period_ns / 1e9, self._beat)

    def resume_ns(self, now_ns: int) -> int:
        """When quiet bursts may be judged again: ``now_ns`` or earlier means now. Not running
        (no loop): no opinion, 0."""
        if self._handle is None:
            return 0
        self._late(now_ns)  # a stall that is going on now, or whose beat has not run yet
        return self._hold_until_ns
