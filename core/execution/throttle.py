"""Rate limits and the error breaker of the risk gate, on an injected clock.

Rates are not money: floats are fine here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class TokenBucket:
    """Classic token bucket on an injected clock (rates are not money: floats are fine here).

    ``_EPS`` absorbs float error in ``now - then`` at epoch magnitudes (~1e-7 s): without it a
    caller that waits exactly ``wait_time()`` could find 0.99999 of a token.
    """

    _EPS = 1e-4

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float]) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("token bucket needs rate > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_take(self, n: int = 1) -> bool:
        self._refill()
        if self._tokens + self._EPS >= n:
            self._tokens -= n
            return True
        return False

    def wait_time(self, n: int = 1) -> float:
        """Seconds until ``n`` tokens are available (0 when they are now)."""
        self._refill()
        missing = n - self._tokens
        return 0.0 if missing <= self._EPS else missing / self.rate


class ErrorBreaker:
    """Trips when ``max_errors`` order errors happened within ``window_s``; clears as they age out."""

    def __init__(self, max_errors: int, window_s: float, clock: Callable[[], float]) -> None:
        self.max_errors = max_errors
        self.window_s = window_s
        self._clock = clock
        self._errors: deque[float] = deque()

    def reconfigure(self, max_errors: int, window_s: float) -> None:
        """New limits; the errors already recorded still count."""
        self.max_errors = max_errors
        self.window_s = window_s

    def record(self) -> None:
        self._errors.append(self._clock())

    def recent(self) -> int:
        cutoff = self._clock() - self.window_s
        while self._errors and self._errors[0] <= cutoff:
            self._errors.popleft()
        return len(self._errors)

    @property
    def tripped(self) -> bool:
        return self.recent() >= self.max_errors
