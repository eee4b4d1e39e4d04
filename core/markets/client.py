"""The Gamma HTTP client: ``GET /markets``, ``/markets/keyset`` and ``/events``; rate limit, retries.

The client moves bytes; it does not interpret markets. A page comes back as one undecoded
JSON text per item (:func:`core.markets.wire.split_items`), so that the translation can refuse
one bad item without losing the page.

Every request waits its turn on a client-side limiter sized to Gamma's published ``/markets``
limit (300 per 10 s, :func:`gamma_limiter`), then goes through :func:`core.retry.retry_call`:
a 429 that slips through anyway is retried after its ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import httpx
import msgspec
from aiolimiter import AsyncLimiter

from core.defaults import DEFAULT_GAMMA_URL, GAMMA_MAX_LIMIT, GAMMA_MAX_OFFSET
from core.markets.errors import GammaError
from core.markets.http_get import Failure, RetriedGets, hinted_wait
from core.markets.wire import KeysetBody, split_items, split_keyset
from core.retry import Backoff, Retry, RetryAfter, Sleep, upward_jitter

log = logging.getLogger(__name__)


_JITTER: Final = upward_jitter(0.1)
MARKETS_PER_WINDOW: Final = 300
"""Gamma's published rate limit for ``/markets``: 300 requests per 10 s window."""
WINDOW_S: Final = 10.0
_BURST: Final = 30


def gamma_limiter(requests: int = MARKETS_PER_WINDOW, window_s: float = WINDOW_S, burst: int = _BURST) -> AsyncLimiter:
    """A limiter that lets at most ``requests`` through in any ``window_s`` window.

    aiolimiter is a leaky bucket: ``burst`` may go at once and the bucket then drains at
    ``rate`` per second, so a window of ``window_s`` can see ``burst + rate * window_s``
    requests. ``AsyncLimiter(requests, window_s)`` would allow twice ``requests`` in the first
    window; sizing the rate to what is left after the burst holds every window to ``requests``.
    """
    if not 1 <= burst < requests:
        raise ValueError(f"burst must be in 1..{requests - 1}")
    if not window_s > 0:
        raise ValueError("window_s must be > 0")
    rate = (requests - burst) / window_s
    return AsyncLimiter(burst, burst / rate)


Params = Mapping[str, str | int | Sequence[str] | None]


@dataclass(frozen=True, slots=True)
class GammaPage:
    """One ``/markets/keyset`` page (undecoded items); ``stop_reason`` is set on the last page only.

    ``cursor`` is the ``after_cursor`` it was asked with (None: the first page)."""

    number: int
    cursor: str | None
    items: list[msgspec.Raw]
    next_cursor: str | None
    stop_reason: str | None = None  # "end" | "max_pages"


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    """The most recent waits before a retry, in seconds."""


class GammaClient(RetriedGets):
    """Async Gamma reader with bounded retries (on :func:`core.retry.retry_call`).

    Retried: timeouts, connection errors, 408/425/429/5xx (``Retry-After`` honoured on 429/503,
    capped at ``max_retry_after_s``); other statuses fail at once. Backoff doubles from
    ``backoff_s`` up to ``max_backoff_s`` with up to 10% jitter on top. After ``max_retries``
    retries a :class:`GammaError` names the URL and the last status or error. ``rng`` and
    ``sleep`` are the jitter's randomness and the waits' clock (tests pass their own).
    """

    _LOG = log
    _LOG_PREFIX = "gamma"
    stats: ClientStats
    _ERROR = GammaError

    def __init__(
        self,
        base_url: str = DEFAULT_GAMMA_URL,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 30.0,
        limiter: AsyncLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff = Backoff(min(backoff_s, max_backoff_s), max_backoff_s, 2.0, _JITTER)
        self.retry_after: RetryAfter[bytes | Failure] = RetryAfter(hinted_wait, cap_s=max_retry_after_s)
        self.stats = ClientStats()
        self.limiter = limiter if limiter is not None else gamma_limiter()
        self._rng = rng
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "polybot"},
            follow_redirects=True,
        )

    async def __aenter__(self) -> GammaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _on_retry(self, shown: str, event: Retry[bytes | Failure]) -> None:
        self.stats.delays.append(event.delay_s)
        super()._on_retry(shown, event)

    async def get_body(self, path: str, params: Params | None = None) -> bytes:
        """GET ``base_url + path`` and return the body of its 2xx answer, retrying transient failures."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        shown = str(httpx.URL(url, params=query))
        return await self._get(url, query, shown=shown, named=shown)

    async def get_items(self, path: str, params: Params | None = None, *, what: str = "items") -> list[msgspec.Raw]:
        """GET a JSON list: one undecoded JSON text per item."""
        body = await self.get_body(path, params)
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            return split_items(body)
        except msgspec.DecodeError:
            raise GammaError(f"GET {url}: HTTP 200 but the body is not JSON: {body[:120]!r}", url=url) from None
        except msgspec.ValidationError as exc:
            raise GammaError(f"GET {url}: expected a JSON list of {what} ({exc})", url=url) from None

    async def get_markets(
        self,
        *,
        limit: int = GAMMA_MAX_LIMIT,
        offset: int = 0,
        active: bool | None = None,
        closed: bool | None = None,
        condition_ids: Sequence[str] | None = None,
        slugs: Sequence[str] | None = None,
    ) -> list[msgspec.Raw]:
        """One ``GET /markets`` page (undecoded items)."""
        if not 1 <= limit <= GAMMA_MAX_LIMIT:
            raise ValueError(f"limit must be in 1..{GAMMA_MAX_LIMIT}")
        if not 0 <= offset <= GAMMA_MAX_OFFSET:
            raise ValueError(f"offset must be in 0..{GAMMA_MAX_OFFSET}")
        _check_ids(condition_ids)
        if slugs is not None and len(slugs) > GAMMA_MAX_LIMIT:
            raise ValueError(f"at most {GAMMA_MAX_LIMIT} slugs per request")
        params = {
            "limit": limit,
            "offset": offset,
            "active": _flag_param(active),
            "closed": _flag_param(closed),
            "condition_ids": list(condition_ids) if condition_ids else None,
            "slug": list(slugs) if slugs else None,
        }
        return await self.get_items("/markets", params, what="markets")

    async def get_keyset(
        self,
        *,
        limit: int = GAMMA_MAX_LIMIT,
        after_cursor: str | None = None,
        active: bool | None = None,
        closed: bool | None = None,
        condition_ids: Sequence[str] | None = None,
    ) -> KeysetBody:
        """One ``GET /markets/keyset`` page: its items (undecoded) and the next page's cursor.

        An empty ``next_cursor`` is returned as None: Gamma ends a scan by leaving it out, a
        server that sends ``""`` or ``null`` means the same.
        """
        if not 1 <= limit <= GAMMA_MAX_LIMIT:
            raise ValueError(f"limit must be in 1..{GAMMA_MAX_LIMIT}")
        _check_ids(condition_ids)
        params = {
            "limit": limit,
            "after_cursor": after_cursor or None,
            "active": _flag_param(active),
            "closed": _flag_param(closed),
            "condition_ids": list(condition_ids) if condition_ids else None,
        }
        body = await self.get_body("/markets/keyset", params)
        url = f"{self.base_url}/markets/keyset"
        try:
            page = split_keyset(body)
        except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
            raise GammaError(f"GET {url}: expected {{markets, next_cursor}} ({exc})", url=url) from None
        except msgspec.DecodeError:
            raise GammaError(f"GET {url}: HTTP 200 but the body is not JSON: {body[:120]!r}", url=url) from None
        return page if page.next_cursor else KeysetBody(page.markets, None)

    async def get_events(
        self,
        *,
        limit: int = GAMMA_MAX_LIMIT,
        offset: int = 0,
        active: bool | None = None,
        closed: bool | None = None,
        slugs: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[msgspec.Raw]:
        """One ``GET /events`` page (undecoded events, each with its ``markets``); ``slug`` / ``id`` repeated."""
        params = {
            "limit": limit,
            "offset": offset,
            "active": _flag_param(active),
            "closed": _flag_param(closed),
            "slug": list(slugs) if slugs else None,
            "id": list(ids) if ids else None,
        }
        return await self.get_items("/events", params, what="events")


def _flag_param(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _check_ids(condition_ids: Sequence[str] | None) -> None:
    if condition_ids is not None and len(condition_ids) > GAMMA_MAX_LIMIT:
        raise ValueError(f"at most {GAMMA_MAX_LIMIT} condition ids per request")
