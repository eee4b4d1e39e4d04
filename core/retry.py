"""The one retry/backoff helper: every retry loop in core runs on it (it runs on tenacity).

Two shapes of loop:

- :func:`retry_call` calls an async function until its outcome is final: it succeeded, it
  failed in a way retrying cannot fix, or the retries ran out. Used for a Gamma GET
  (bounded, honouring Retry-After), a store batch commit (until it commits) and an order
  post (bounded, Retry-After, fixed pauses).
- :func:`reconnect_forever` runs a connection session again and again until told to stop.
  The wait grows while sessions fail and starts over after a healthy one (one that delivered
  data), so a flapping server is not hammered and a healthy feed reconnects at once. Used
  for the market feed and the user channel.

Waits: :class:`Backoff` gives ``initial * multiplier**n`` capped at ``max_s``, times a
:class:`Jitter` factor drawn from the ``random.Random`` passed in. A server's Retry-After
(:class:`RetryAfter`) either replaces the backoff or is a floor under it, capped.

A server's Retry-After header is read by :func:`retry_after_seconds` (the Gamma client and the
CLOB relayer both).

Tests are exact: pass a seeded ``random.Random`` and a recording ``sleep``. All waiting goes
through that ``sleep`` (it is the clock of these loops; tenacity's own timestamps feed only its
statistics, never a decision), so a test sees every delay without waiting for any of it.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, retry_if_result, stop_after_attempt, stop_never
from tenacity.stop import stop_base
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

_SYSTEM_RNG = random.Random()  # jitter needs no cryptographic quality


@dataclass(frozen=True, slots=True)
class Jitter:
    """Multiply each delay by a factor drawn uniformly from ``[low, high]``.

    ``capped``: the jittered delay is held to the backoff's ``max_s`` too (otherwise only the
    un-jittered base is). ``low == high`` draws nothing from the random source.
    """

    low: float = 1.0
    high: float = 1.0
    capped: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0.0 <= self.low <= self.high):
            raise ValueError(f"jitter needs finite 0 <= low <= high (got {self.low}, {self.high})")

    def apply(self, base: float, cap: float, rng: random.Random) -> float:
        factor = self.low if self.low == self.high else rng.uniform(self.low, self.high)
        delay = base * factor
        return min(cap, delay) if self.capped else delay


NO_JITTER = Jitter()
EQUAL_JITTER = Jitter(0.5, 1.0)
"""Half the delay fixed, half random: ``base * U[0.5, 1]`` (store writer, user channel)."""


def symmetric_jitter(fraction: float) -> Jitter:
    """``base`` plus or minus ``fraction`` of it, held to the cap (market feed)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError("jitter fraction must be in [0, 1)")
    return Jitter(1.0 - fraction, 1.0 + fraction)


def upward_jitter(fraction: float) -> Jitter:
    """``base`` plus up to ``fraction`` of it, which may pass the cap (Gamma client)."""
    if not 0.0 <= fraction:
        raise ValueError("jitter fraction must be >= 0")
    return Jitter(1.0, 1.0 + fraction, capped=False)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry ``n`` (0-based): ``min(max_s, initial_s * multiplier**n)``, jittered."""

    initial_s: float
    max_s: float
    multiplier: float = 2.0
    jitter: Jitter = NO_JITTER

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_s) and math.isfinite(self.max_s) and 0.0 <= self.initial_s <= self.max_s):
            raise ValueError(f"backoff needs finite 0 <= initial_s <= max_s (got {self.initial_s}, {self.max_s})")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1.0):
            raise ValueError(f"backoff multiplier must be finite and >= 1 (got {self.multiplier})")

    @classmethod
    def fixed(cls, delay_s: float) -> Backoff:
        """The same pause before every retry, no jitter."""
        return cls(delay_s, delay_s, 1.0)

    def base(self, n: int) -> float:
        """The un-jittered delay before retry ``n``."""
        if n < 0:
            raise ValueError("retry number must be >= 0")
        try:
            grown = self.initial_s * self.multiplier**n
        except OverflowError:  # float ** int past the float range
            return self.max_s
        return min(self.max_s, grown)

    def delay(self, n: int, rng: random.Random) -> float:
        return self.jitter.apply(self.base(n), self.max_s, rng)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What one attempt did: returned ``result`` or raised ``error``."""

    result: T | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class RetryAfter(Generic[T]):
    """A server's hint for the wait, read from a failed attempt's outcome (None: no hint).

    The hint is clamped to ``[0, cap_s]``. ``replaces_backoff``: the hint is the wait (else it
    is a floor under the backoff: ``max(backoff, hint)``).
    """

    read: Callable[[Outcome[T]], float | None]
    cap_s: float = math.inf
    replaces_backoff: bool = True

    def wait(self, backoff_s: float, outcome: Outcome[T]) -> float:
        hint = self.read(outcome)
        if hint is None or hint != hint:  # no hint, or NaN
            return backoff_s
        hint = min(self.cap_s, max(0.0, hint))
        return hint if self.replaces_backoff else max(backoff_s, hint)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110).

    None when there is no usable hint (absent, blank, unreadable, NaN or infinite); a wait in
    the past or a negative number is 0. An HTTP date is always GMT, so a date without a zone
    is read as UTC (not as this machine's local time). ``now``: the clock for an HTTP date.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class Retry(Generic[T]):
    """Attempt ``attempt`` (1-based) failed with ``outcome``; the next starts after ``delay_s``."""

    attempt: int
    outcome: Outcome[T]
    delay_s: float


def _outcome(state: RetryCallState) -> Outcome[T]:
    fut = state.outcome
    if fut is None:  # tenacity calls waits and hooks only after an attempt
        raise RuntimeError("no outcome yet")
    if fut.failed:
        return Outcome(error=fut.exception())
    return Outcome(result=cast(T, fut.result()))


class _CallWait(wait_base, Generic[T]):
    def __init__(self, backoff: Backoff, rng: random.Random, retry_after: RetryAfter[T] | None) -> None:
        self._backoff = backoff
        self._rng = rng
        self._retry_after = retry_after

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._backoff.delay(retry_state.attempt_number - 1, self._rng)
        if self._retry_after is None:
            return delay
        return self._retry_after.wait(delay, _outcome(retry_state))


class _ReconnectWait(wait_base):
    """Grows with each unhealthy session in a row; a healthy one starts it over."""

    def __init__(self, backoff: Backoff, rng: random.Random) -> None:
        self._backoff = backoff
        self._rng = rng
        self._n = 0

    def __call__(self, retry_state: RetryCallState) -> float:
        fut = retry_state.outcome
        if fut is not None and not fut.failed and fut.result() is True:
            self._n = 0
        delay = self._backoff.delay(self._n, self._rng)
        self._n += 1
        return delay


class _StopWhen(stop_base):
    def __init__(self, stopped: Callable[[], bool]) -> None:
        self._stopped = stopped

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._stopped()


def _never(_: object) -> bool:
    return False


def _is_plain_error(exc: BaseException) -> bool:
    # CancelledError, KeyboardInterrupt, SystemExit are BaseException only: never retried
    return isinstance(exc, Exception)


def _before_sleep(on_retry: Callable[[Retry[T]], None]) -> Callable[[RetryCallState], None]:
    def hook(state: RetryCallState) -> None:
        on_retry(Retry(state.attempt_number, _outcome(state), state.upcoming_sleep))

    return hook


def _last_result(state: RetryCallState) -> object:
    """Retries exhausted: give back the last outcome (its result, or raise its exception)."""
    fut = state.outcome
    if fut is None:
        raise RuntimeError("no outcome yet")
    return fut.result()


async def retry_call(
    attempt: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    max_retries: int | None = None,
    retry_error: Callable[[Exception], bool] = _never,
    retry_result: Callable[[T], bool] = _never,
    retry_after: RetryAfter[T] | None = None,
    on_retry: Callable[[Retry[T]], None] | None = None,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Await ``attempt()`` until its outcome is final, and return (or raise) that outcome.

    An exception for which ``retry_error`` is true, or a result for which ``retry_result`` is
    true, is retried after a wait (``backoff``, or ``retry_after``'s hint), up to
    ``max_retries`` times (None: without end). Anything else is final at once: the result is
    returned, the exception propagates. When the retries run out, the last outcome is final
    all the same: its result is returned, its exception raised. ``asyncio.CancelledError``
    is never retried. ``on_retry`` hears of each retry before its wait (to count and log).
    """
    if max_retries is not None and max_retries < 0:
        raise ValueError("max_retries must be >= 0")

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, Exception) and retry_error(exc)

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_never if max_retries is None else stop_after_attempt(max_retries + 1),
        wait=_CallWait(backoff, rng or _SYSTEM_RNG, retry_after),
        retry=retry_if_exception(retryable) | retry_if_result(retry_result),
        before_sleep=None if on_retry is None else _before_sleep(on_retry),
        retry_error_callback=_last_result,
    )
    return cast(T, await retrying(attempt))


async def reconnect_forever(
    session: Callable[[], Awaitable[bool]],
    *,
    backoff: Backoff,
    stopped: Callable[[], bool],
    on_retry: Callable[[Retry[bool]], None] | None = None,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Run ``session()`` again and again until ``stopped()`` is true.

    ``session`` returns whether it was healthy (it delivered data). The wait before the next
    session is ``backoff.delay(n)``, with ``n`` counting sessions since the last healthy one
    (which itself waits ``delay(0)``). A session that raises an ``Exception`` counts as
    unhealthy; ``on_retry`` hears of it (logged as a warning when there is no ``on_retry``).
    ``stopped()`` is checked after every session and every wait (pass a ``sleep`` that returns
    early on stop to end the wait itself early); ``asyncio.CancelledError`` ends the loop.
    """

    async def one() -> bool:
        if stopped():  # stopped during the wait: start nothing
            return True
        return await session()

    def report(event: Retry[bool]) -> None:
        if on_retry is not None:
            on_retry(event)
        elif event.outcome.error is not None:
            log.warning("session %d failed (%r); next in %.2fs", event.attempt, event.outcome.error, event.delay_s)

    def quiet_end(_: RetryCallState) -> None:
        return None  # stopped: an error from the last session was already reported or is moot

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=_StopWhen(stopped),
        wait=_ReconnectWait(backoff, rng or _SYSTEM_RNG),
        retry=retry_if_exception(_is_plain_error) | retry_if_result(lambda _: True),
        before_sleep=_before_sleep(report),
        retry_error_callback=quiet_end,
    )
    await retrying(one)
