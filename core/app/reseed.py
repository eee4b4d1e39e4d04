"""Re-seed an inconsistent book from the venue's ``GET /book`` (the feed's next snapshot also heals it).

At most one re-seed per asset per ``cooldown_s``: a feed that keeps disagreeing must not become a
storm of GET /book calls that starves the loop. A fault inside the cooldown is not dropped but
answered by one deferred re-seed when it ends. The HTTP call is behind :class:`BookFetcher`, so
the policy is tested without a network and the service shares one client for all re-seeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import httpx

from core.feed.events import FeedEvent
from core.feed.processor import FeedProcessor
from core.types import BookStatus

log = logging.getLogger(__name__)

RESEED_COOLDOWN_S = 2.0


class BookUnavailable(Exception):
    """The venue gave no book: a non-200 answer or a transport error (the message says which)."""


class BookFetcher(Protocol):
    async def fetch_book(self, token_id: str) -> bytes:
        """The raw ``GET /book?token_id=`` body; raises :class:`BookUnavailable`."""
        ...


class ClobBookFetcher:
    """The CLOB's public ``GET /book`` over one pooled client (closed with :meth:`aclose`)."""

    def __init__(self, base_url: str, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._url = f"{base_url.rstrip('/')}/book"
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def fetch_book(self, token_id: str) -> bytes:
        try:
            resp = await self._client.get(self._url, params={"token_id": token_id})
        except httpx.HTTPError as exc:
            raise BookUnavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        if resp.status_code != 200:
            raise BookUnavailable(f"GET /book answered {resp.status_code}")
        return resp.content

    async def aclose(self) -> None:
        await self._client.aclose()


class Reseeder:
    def __init__(
        self,
        processor: FeedProcessor,
        fetcher: BookFetcher,
        label: Callable[[str], str],
        *,
        cooldown_s: float = RESEED_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._processor = processor
        self._fetcher = fetcher
        self._label = label
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._sleep = sleep
        self._last: dict[str, float] = {}
        self._waiting: set[str] = set()

    def claim(self, asset_id: str) -> bool:
        """True when no re-seed of this asset is waiting yet: the caller then runs :meth:`reseed`
        (a re-seed already waiting answers this fault too)."""
        if asset_id in self._waiting:
            return False
        self._waiting.add(asset_id)
        return True

    async def reseed(self, asset_id: str) -> list[FeedEvent]:
        """When the cooldown allows, fetch the book and apply it; returns the events that produced
        (none when the book healed meanwhile or the venue gave no book)."""
        try:
            last = self._last.get(asset_id)
            wait = 0.0 if last is None else last + self._cooldown_s - self._clock()
            if wait > 0:
                log.debug("re-seed of %s in %.1fs (one per %ss)", self._label(asset_id), wait, self._cooldown_s)
                await self._sleep(wait)
        finally:
            self._waiting.discard(asset_id)
        book = self._processor.books.get(asset_id)
        if book is None or book.raw_status is not BookStatus.INCONSISTENT:
            return []  # healed meanwhile (a snapshot from the feed)
        self._last[asset_id] = self._clock()
        try:
            body = await self._fetcher.fetch_book(asset_id)
        except BookUnavailable as exc:
            log.warning("re-seed of %s failed: %s", self._label(asset_id), exc)
            return []
        return self._processor.apply_rest_book(asset_id, body)
