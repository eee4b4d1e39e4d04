"""A market refresh: scan Gamma by keyset cursor, translate each page, store it; one result to show."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.markets.client import GammaClient
from core.markets.discovery import MarketFilters, iter_keyset_pages, prefetched
from core.markets.repository import SessionSource, UpsertCounts, upsert_markets
from core.markets.translate import GammaMarket, ParseStats, parse_markets

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RefreshResult:
    """A refresh so far: ``bad_reasons`` holds items Gamma sent that were not parsed and
    markets the database did not take; ``warnings`` recoverable oddities, by reason."""

    pages: int = 0
    requests: int = 0
    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None  # "end" | "max_pages"
    elapsed_s: float = 0.0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated

    @property
    def markets_per_s(self) -> float:
        return self.seen / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "pages": self.pages,
            "requests": self.requests,
            "seen": self.seen,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "bad": self.bad,
            "bad_reasons": dict(self.bad_reasons),
            "warnings": dict(self.warnings),
            "stop_reason": self.stop_reason,
            "elapsed_s": round(self.elapsed_s, 3),
        }


ProgressCallback = Callable[[RefreshResult], None]


@dataclass(slots=True)
class _Totals:
    """Running totals of a refresh: what parsing and storing each counted."""

    parsed: ParseStats = field(default_factory=ParseStats)
    stored: UpsertCounts = field(default_factory=UpsertCounts)

    def fill(self, result: RefreshResult) -> None:
        bad = self.parsed.bad + self.stored.refused
        result.seen = self.parsed.seen
        result.inserted = self.stored.inserted
        result.updated = self.stored.updated
        result.unchanged = self.stored.unchanged
        result.bad = bad.total()
        result.bad_reasons = {str(k): v for k, v in bad.items()}
        result.warnings = {str(k): v for k, v in (self.parsed.warnings + self.stored.warnings).items()}


async def refresh_markets(
    target: SessionSource,
    client: GammaClient,
    filters: MarketFilters | None = None,
    progress: ProgressCallback | None = None,
) -> RefreshResult:
    """Scan Gamma ``/markets/keyset`` to the end and upsert markets and tokens; idempotent.

    The cursor has no offset cap: every market the filters select is stored. The next page is
    fetched while one is stored. Each page is one transaction, so an interrupted refresh keeps the pages already stored.
    A second run over the same data reports 0 inserted and 0 updated. ``progress`` is called
    after each page with the running totals.
    """
    filters = filters or MarketFilters()
    result = RefreshResult()
    totals = _Totals()
    started = time.monotonic()
    requests_before = client.stats.requests
    async with contextlib.aclosing(prefetched(iter_keyset_pages(client, filters))) as pages:
        async for page in pages:
            markets, _ = parse_markets(page.items, stats=totals.parsed)
            totals.stored.add(await upsert_markets(target, markets))
            result.pages += 1
            result.requests = client.stats.requests - requests_before
            totals.fill(result)
            result.stop_reason = page.stop_reason
            result.elapsed_s = time.monotonic() - started
            if progress is not None:
                progress(result)
    result.elapsed_s = time.monotonic() - started
    log.info("gamma refresh: %s", result.as_dict())
    return result


async def store_markets(target: SessionSource, markets: Sequence[GammaMarket]) -> RefreshResult:
    """Upsert already-parsed markets (e.g. from a file) with the same rules as a refresh."""
    totals = _Totals(parsed=ParseStats(seen=len(markets), parsed=len(markets)))
    totals.stored = await upsert_markets(target, markets)
    result = RefreshResult(pages=1)
    totals.fill(result)
    return result
