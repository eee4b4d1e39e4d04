"""Polymarket's Data API: the positions an address holds at the venue (``GET /positions``).

Venue sync (:mod:`core.app.venue_sync`) compares them with Polybot's own ledger, so that a
position opened on the website, or a fill missed while the bot was down, does not go unseen.

The answer is a JSON array of position objects; only the fields the sync uses are declared and
unknown ones are skipped. The read is all or nothing: an answer that is not a JSON array of
well-formed positions fails the whole read with a :class:`DataApiError` (counted in
``stats.malformed`` and logged), because comparing against half a list would report every
position it lost as a mismatch. Pages of ``page_size`` are read until a short one.

Requests go through a client-side limiter of 150 per 10 s (the Data API's published limit for
``/positions``; aiolimiter, a leaky bucket); timeouts, connection errors and 408/425/429/5xx are
retried on :func:`core.retry.retry_call`, a 429/503 ``Retry-After`` honoured (capped).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import httpx
import msgspec
from aiolimiter import AsyncLimiter

from core.defaults import DEFAULT_DATA_API_URL
from core.errors import PolybotError
from core.markets.http_get import Failure, RetriedGets, hinted_wait
from core.retry import Backoff, RetryAfter, Sleep, upward_jitter

log = logging.getLogger(__name__)

POSITIONS_PER_10S: Final = 150
PAGE_SIZE: Final = 500  # the Data API's largest ``limit`` for /positions
MAX_OFFSET: Final = 10_000  # past it the API refuses the offset: a list that long is read no further


class DataApiError(PolybotError):
    """The Data API could not be read, or answered something that is not a list of positions."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class VenuePosition(msgspec.Struct, frozen=True, kw_only=True):
    """One position at the venue, as ``/positions`` lists it (fields named as on the wire)."""

    asset: str  # the outcome token id
    conditionId: str
    size: Decimal
    outcome: str = ""
    outcomeIndex: int | None = None
    title: str = ""
    slug: str = ""
    proxyWallet: str = ""
    avgPrice: Decimal | None = None
    curPrice: Decimal | None = None
    currentValue: Decimal | None = None
    redeemable: bool = False
    mergeable: bool = False
    negativeRisk: bool = False
    endDate: str | None = None

    @property
    def token_id(self) -> str:
        return self.asset


_POSITIONS = msgspec.json.Decoder(list[VenuePosition])


def parse_positions(body: bytes) -> list[VenuePosition]:
    """One page of ``/positions``; a ValueError says what is wrong with it (nothing is guessed)."""
    try:
        items = _POSITIONS.decode(body)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
        raise ValueError(f"not a list of positions ({exc})") from None
    except msgspec.DecodeError:
        raise ValueError(f"not JSON: {body[:80]!r}") from None
    for item in items:
        if not item.asset or not item.size.is_finite() or item.size < 0:
            raise ValueError(f"bad position for asset {item.asset!r}: size {item.size}")
    return items


@dataclass(slots=True)
class DataApiStats:
    requests: int = 0
    retries: int = 0
    malformed: int = 0  # answers refused as not a list of positions
    failures: Counter[str] = field(default_factory=Counter)  # by status or "timeout" / "network"


class DataApiClient(RetriedGets):
    """Async reader of ``/positions`` (rate-limited, retried; see the module docstring)."""

    _LOG = log
    _LOG_PREFIX = "data api"
    stats: DataApiStats
    _ERROR = DataApiError

    def __init__(
        self,
        base_url: str = DEFAULT_DATA_API_URL,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 30.0,
        page_size: int = PAGE_SIZE,
        limiter: AsyncLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{PAGE_SIZE}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.page_size = page_size
        self.limiter = limiter or AsyncLimiter(POSITIONS_PER_10S, 10)
        self.stats = DataApiStats()
        self.backoff = Backoff(min(backoff_s, max_backoff_s), max_backoff_s, 2.0, upward_jitter(0.1))
        self.retry_after: RetryAfter[bytes | Failure] = RetryAfter(hinted_wait, cap_s=max_retry_after_s)
        self._rng = rng
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "polybot"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def positions(self, user: str) -> list[VenuePosition]:
        """Every position ``user`` holds (all pages; ``sizeThreshold=0``: dust included)."""
        out: list[VenuePosition] = []
        offset = 0
        while offset <= MAX_OFFSET:
            query = {"user": user, "sizeThreshold": "0", "limit": str(self.page_size), "offset": str(offset)}
            page = await self._page(query)
            out.extend(page)
            if len(page) < self.page_size:
                return out
            offset += self.page_size
        log.warning("data api: %s holds more than %d positions; the rest is not read", user, MAX_OFFSET)
        return out

    async def _page(self, query: dict[str, str]) -> list[VenuePosition]:
        url = f"{self.base_url}/positions"
        shown = str(httpx.URL(url, params=query))
        body = await self._get(url, query, shown=shown, named=url)
        try:
            return parse_positions(body)
        except ValueError as exc:
            self.stats.malformed += 1
            # debug: the caller reports the raised error (venue sync's warning, a command's error line)
            log.debug("data api: GET %s answered HTTP 200 with a malformed body: %s", shown, exc)
            raise DataApiError(f"GET {shown}: malformed answer: {exc}", url=shown, status=200) from None
