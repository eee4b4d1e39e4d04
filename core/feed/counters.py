"""Counters for bad input and integrity faults, with rate-bounded logging.

Every rejected input is counted by reason and logged, but a flood of garbage must not flood
the log: each reason logs its first ``burst`` occurrences, then at most one line per
``interval_s`` that also says how many were suppressed since the last line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final

# reasons a frame or an entry is rejected (processor.counters)
MALFORMED_JSON: Final = "malformed_json"
WRONG_TYPE: Final = "wrong_type"
UNKNOWN_EVENT: Final = "unknown_event"
NEGATIVE_SIZE: Final = "negative_size"
PRICE_OUT_OF_RANGE: Final = "price_out_of_range"
OFF_TICK: Final = "off_tick"
UNKNOWN_ASSET: Final = "unknown_asset"
OVERSIZED_FRAME: Final = "oversized_frame"
NO_SNAPSHOT: Final = "no_snapshot"  # a delta for a book without a snapshot in this epoch (not applied)
INTERNAL_ERROR: Final = "internal_error"  # a bug while applying a frame (logged with its traceback at debug)
ERROR_REASONS: Final = (
    MALFORMED_JSON,
    WRONG_TYPE,
    UNKNOWN_EVENT,
    NEGATIVE_SIZE,
    PRICE_OUT_OF_RANGE,
    OFF_TICK,
    UNKNOWN_ASSET,
    OVERSIZED_FRAME,
    NO_SNAPSHOT,
    INTERNAL_ERROR,
)

# integrity faults (processor.faults); each one makes a book inconsistent
FAULT_MISMATCH: Final = "mismatch"
FAULT_CROSSED: Final = "crossed"
FAULT_DELTA_BEFORE_SNAPSHOT: Final = "delta_before_snapshot"
FAULT_KINDS: Final = (FAULT_MISMATCH, FAULT_CROSSED, FAULT_DELTA_BEFORE_SNAPSHOT)


def short_id(asset_id: str) -> str:
    """A token id short enough for a log line (they are 77 digits long)."""
    return asset_id if len(asset_id) <= 16 else f"{asset_id[:8]}…{asset_id[-6:]}"


class Counters(Mapping[str, int]):
    """A read-only mapping reason -> count (missing reasons read 0) with bounded logging."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        burst: int = 5,
        interval_s: float = 10.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counts: dict[str, int] = {}
        self._log = logger
        self._what = what
        self._burst = burst
        self._interval = interval_s
        self._level = level
        self._clock = clock
        self._logged: dict[str, int] = {}
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def record(self, reason: str, detail: str = "") -> None:
        """Count one occurrence of ``reason`` and maybe log it."""
        self._counts[reason] = self._counts.get(reason, 0) + 1
        logged = self._logged.get(reason, 0)
        now = self._clock()
        if logged < self._burst or now - self._last_log.get(reason, float("-inf")) >= self._interval:
            suppressed = self._suppressed.pop(reason, 0)
            extra = f" ({suppressed} similar suppressed)" if suppressed else ""
            self._log.log(self._level, "%s %s: %s%s", self._what, reason, detail, extra)
            self._logged[reason] = logged + 1
            self._last_log[reason] = now
        else:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1

    def __getitem__(self, reason: str) -> int:
        return self._counts.get(reason, 0)

    def __contains__(self, reason: object) -> bool:
        return reason in self._counts

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    def __repr__(self) -> str:
        return f"Counters({self._what}: {self.as_dict()})"


LATE_WINDOW_S: Final = 30.0
"""How long frames for an unsubscribed asset count as late (on their way when we unsubscribed):
the venue, like the feed double, sends what it had queued before it reads the operation (the
soak measured them up to about 2.3 s after, on a loaded machine). Later ones are unknown_asset."""


class LateFrames:
    """Frames for assets just unsubscribed: expected (the venue had sent them before it read the
    ``unsubscribe``), so counted here and not as rejected input (``unknown_asset``)."""

    def __init__(self, window_s: float = LATE_WINDOW_S, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.window_ns = int(window_s * 1e9)
        self._clock = clock_ns
        self._since: dict[str, int] = {}  # asset -> when unsubscribed (ns)
        self.count = 0
        self.latest_ms = 0.0  # the longest after its unsubscribe a late frame came

    def unsubscribed(self, asset_id: str) -> None:
        now = self._clock()
        if len(self._since) > 1024 and len(self._since) % 1024 == 0:  # drop the expired now and then
            self._since = {a: t for a, t in self._since.items() if now - t <= self.window_ns}
        self._since[asset_id] = now

    def subscribed(self, asset_id: str) -> None:
        self._since.pop(asset_id, None)

    def seen(self, asset_id: str) -> bool:
        """A frame for ``asset_id``, which the feed does not follow: is it a late one (counted)?"""
        since = self._since.get(asset_id)
        if since is None:
            return False
        after = self._clock() - since
        if after > self.window_ns:
            del self._since[asset_id]
            return False
        self.count += 1
        self.latest_ms = max(self.latest_ms, after / 1e6)
        return True
