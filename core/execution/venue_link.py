"""Is the venue reachable? What the CLOB relayer's calls and user channel saw, for alerts and /status.

The relayer records the outcome of every REST call (a transport error or a 5xx is a failure; any
other answer, a 4xx included, proves the venue is there) and whether its user channel is
connected. The service turns a run of failures into one ``venue_unreachable`` alert and its
recovery into one message that measures the outage from its first failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class VenueLink:
    """Consecutive failures of one channel and when the current run of them began (wall clock)."""

    clock: Callable[[], float] = field(default=time.time, repr=False)
    failures: int = 0
    down_since: float | None = None
    last_ok: float | None = None
    last_error: str = ""

    def ok(self) -> None:
        self.failures = 0
        self.down_since = None
        self.last_ok = self.clock()

    def failed(self, error: str) -> None:
        if self.failures == 0:
            self.down_since = self.clock()
        self.failures += 1
        self.last_error = error


@dataclass(frozen=True, slots=True)
class VenueStatus:
    """A snapshot for the service (alert policy) and the control facade (/status, /health)."""

    rest_failures: int
    rest_down_since: float | None
    rest_error: str
    user_channel: str  # "connected" | "disconnected" | "off"
    user_down_since: float | None
    heartbeat_age_s: float | None  # since the last successful venue heartbeat; None: none yet / not live

    @property
    def rest_ok(self) -> bool:
        return self.rest_failures == 0

    def down_since(self) -> float | None:
        """When the first of the current problems began (None: nothing is wrong)."""
        starts = [t for t in (self.rest_down_since, self.user_down_since) if t is not None]
        return min(starts) if starts else None
