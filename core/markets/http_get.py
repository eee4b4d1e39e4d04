"""One rate-limited GET, and its retry log: what the Gamma and Data API clients share.

Both read JSON over HTTP with the same failure rules: timeouts, connection errors and
408/425/429/5xx are worth another try (a 429/503 ``Retry-After`` is the server's wait hint),
any other non-2xx status is final. :func:`get_once` makes one attempt under a client's limiter
and says which of the three it was; :meth:`RetriedGets._get` repeats it on
:func:`core.retry.retry_call`. Each client keeps its own error class, stats and log prefix.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

import httpx
from aiolimiter import AsyncLimiter

from core.retry import Backoff, Outcome, Retry, RetryAfter, Sleep, retry_after_seconds, retry_call

RETRYABLE_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUS: Final = frozenset({429, 503})

Query = Mapping[str, str | int | Sequence[str]]


@dataclass(frozen=True, slots=True)
class Failure:
    """An attempt that may succeed if repeated: what went wrong, and the server's wait hint."""

    text: str
    status: int | None = None
    retry_after_s: float | None = None


class GetStats(Protocol):
    """The counters :func:`get_once` and :func:`log_retry` keep (a client's stats hold more)."""

    requests: int
    retries: int
    failures: Counter[str]  # by status, or "timeout" / "network"


class FinalError(Protocol):
    """A client's error class: raised for a status not worth retrying."""

    def __call__(self, message: str, *, url: str, status: int | None = None) -> Exception: ...


def failure_of(outcome: Outcome[bytes | Failure]) -> Failure | None:
    return outcome.result if isinstance(outcome.result, Failure) else None


def hinted_wait(outcome: Outcome[bytes | Failure]) -> float | None:
    """The server's ``Retry-After`` for :class:`core.retry.RetryAfter` (None: no hint, back off)."""
    failure = failure_of(outcome)
    return failure.retry_after_s if failure is not None else None


async def get_once(
    http: httpx.AsyncClient,
    limiter: AsyncLimiter,
    url: str,
    query: Query,
    *,
    stats: GetStats,
    timeout_s: float,
    error: FinalError,
    named: str,
) -> bytes | Failure:
    """One GET: the body of a 2xx, a :class:`Failure` worth retrying, or ``error`` naming ``named``."""
    async with limiter:
        stats.requests += 1
        try:
            resp = await http.get(url, params=query)
        except httpx.TimeoutException:
            stats.failures["timeout"] += 1
            return Failure(f"timed out after {timeout_s:g}s")
        except httpx.TransportError as exc:
            stats.failures["network"] += 1
            return Failure(f"{type(exc).__name__}: {exc}".rstrip(": "))
    status = resp.status_code
    if 200 <= status < 300:
        return resp.content
    body = resp.text[:200].strip()
    text = f"HTTP {status}" + (f" {body}" if body else "")
    stats.failures[str(status)] += 1
    if status not in RETRYABLE_STATUS:
        raise error(f"GET {named} failed: {text}", url=named, status=status)
    hint = retry_after_seconds(resp.headers.get("Retry-After")) if status in RETRY_AFTER_STATUS else None
    return Failure(text, status, hint)


def log_retry(
    log: logging.Logger, prefix: str, shown: str, event: Retry[bytes | Failure], *, stats: GetStats, max_retries: int
) -> None:
    """Count a retry and say it (on the client's own logger, after its ``prefix``)."""
    failure = failure_of(event.outcome)
    stats.retries += 1
    log.info(
        "%s: GET %s -> %s; retry %d/%d in %.2fs",
        prefix,
        shown,
        failure.text if failure is not None else event.outcome.error,
        event.attempt,
        max_retries,
        event.delay_s,
    )


class RetriedGets:
    """The retried GET of a client (subclass): its ``__init__`` sets the attributes declared here.

    ``_LOG`` / ``_LOG_PREFIX`` are where and under what name retries are logged; ``_ERROR`` is the
    client's error class, raised for a final status and when the retries run out."""

    _LOG: ClassVar[logging.Logger]
    _LOG_PREFIX: ClassVar[str]
    _ERROR: ClassVar[FinalError]
    _http: httpx.AsyncClient
    limiter: AsyncLimiter
    stats: GetStats
    timeout_s: float
    max_retries: int
    backoff: Backoff
    retry_after: RetryAfter[bytes | Failure]
    _rng: random.Random | None
    _sleep: Sleep

    async def _get(self, url: str, query: Query, *, shown: str, named: str) -> bytes:
        """The body of a 2xx answer to ``GET url?query``, transient failures retried.

        ``shown`` (the URL with its query) names the request in logs and in the error once the
        retries run out; ``named`` names it in the error for a status not worth retrying."""

        async def attempt() -> bytes | Failure:  # tenacity awaits a coroutine function, not a lambda
            return await get_once(
                self._http,
                self.limiter,
                url,
                query,
                stats=self.stats,
                timeout_s=self.timeout_s,
                error=self._ERROR,
                named=named,
            )

        outcome = await retry_call(
            attempt,
            backoff=self.backoff,
            max_retries=self.max_retries,
            retry_result=lambda r: isinstance(r, Failure),
            retry_after=self.retry_after,
            on_retry=lambda event: self._on_retry(shown, event),
            rng=self._rng,
            sleep=self._sleep,
        )
        if isinstance(outcome, Failure):  # every Failure is retried: this one was the last allowed
            raise self._ERROR(
                f"GET {shown} failed after {self.max_retries + 1} attempts: last {outcome.text}",
                url=shown,
                status=outcome.status,
            )
        return outcome

    def _on_retry(self, shown: str, event: Retry[bytes | Failure]) -> None:
        log_retry(self._LOG, self._LOG_PREFIX, shown, event, stats=self.stats, max_retries=self.max_retries)
