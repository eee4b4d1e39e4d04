"""Market discovery on Gamma without the offset cap: full keyset scans and targeted loads.

- :func:`iter_keyset_pages` walks ``/markets/keyset`` by cursor; there is no offset, so nothing
  stops at Gamma's offset limit (10,000). The scan ends when a page comes back without a
  ``next_cursor`` (absent, null or empty) or empty; a cursor Gamma already gave once fails the
  scan with a :class:`CursorLoopError` rather than walking the same pages forever.
- :func:`scan_all`: a whole scan parsed into markets, optionally only those a predicate selects
  (the refresh's watch rules), each condition id once.
- :func:`load_by_condition_ids` / :func:`load_by_slugs`: named markets, read with the
  ``condition_ids`` / ``slug`` query key repeated, at most 100 per request;
  :func:`load_by_events`: every market of named events (``/events`` by slug or id).

Nothing here writes to the database: :func:`core.markets.refresh.store_markets` stores what
these return, :func:`core.markets.refresh.refresh_markets` scans and stores page by page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from core.defaults import GAMMA_MAX_LIMIT
from core.markets.client import GammaClient, GammaPage
from core.markets.errors import GammaError
from core.markets.translate import GammaMarket, ParseStats, parse_events, parse_markets

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MarketFilters:
    """What a scan asks Gamma for (None = no filter on that flag); ``max_pages`` stops early."""

    active: bool | None = True
    closed: bool | None = False
    limit: int = GAMMA_MAX_LIMIT
    max_pages: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= GAMMA_MAX_LIMIT:
            raise ValueError(f"limit must be in 1..{GAMMA_MAX_LIMIT}")
        if self.max_pages is not None and self.max_pages < 1:
            raise ValueError("max_pages must be >= 1")


class CursorLoopError(GammaError):
    """Gamma handed back a cursor it had already given in this scan: following it would loop."""


async def iter_keyset_pages(
    client: GammaClient, filters: MarketFilters | None = None
) -> AsyncGenerator[GammaPage, None]:
    """Every ``/markets/keyset`` page of a scan, in order (items undecoded).

    The last page carries ``stop_reason`` ("end" or "max_pages"). A repeated cursor raises
    :class:`CursorLoopError` after the page that carried it (its items are yielded: they may
    be new; the pages it would lead to are not).
    """
    filters = filters or MarketFilters()
    used: set[str] = set()
    cursor: str | None = None
    number = 0
    while True:
        body = await client.get_keyset(
            limit=filters.limit, after_cursor=cursor, active=filters.active, closed=filters.closed
        )
        number += 1
        nxt = body.next_cursor
        stop: str | None = None
        if nxt is None or not body.markets:
            stop = "end"
        elif filters.max_pages is not None and number >= filters.max_pages:
            stop = "max_pages"
        yield GammaPage(number=number, cursor=cursor, items=body.markets, next_cursor=nxt, stop_reason=stop)
        if stop is not None or nxt is None:
            return
        if nxt in used or nxt == cursor:
            url = f"{client.base_url}/markets/keyset"
            raise CursorLoopError(
                f"GET {url}: page {number} gave next_cursor {nxt[:40]!r}, a cursor this scan already "
                "followed; stopping rather than reading the same pages again (Gamma is ignoring the cursor?)",
                url=url,
            )
        used.add(nxt)
        cursor = nxt


async def prefetched(pages: AsyncGenerator[GammaPage, None]) -> AsyncGenerator[GammaPage, None]:
    """``pages``, the next one already requested while the caller works on the one it has.

    A keyset scan cannot fan out (each cursor comes from the page before), but storing a page
    and fetching the next need not wait for each other. Use it under ``contextlib.aclosing`` so
    that a caller's failure cancels the request in flight.
    """
    ahead: asyncio.Future[GammaPage] = asyncio.ensure_future(anext(pages))
    try:
        while True:
            try:
                page = await ahead
            except StopAsyncIteration:
                return
            if page.stop_reason is None:
                ahead = asyncio.ensure_future(anext(pages))
            yield page
            if page.stop_reason is not None:
                return
    finally:
        if not ahead.done():
            ahead.cancel()
        with contextlib.suppress(BaseException):  # its outcome is moot: the scan is over
            await ahead
        await pages.aclose()


@dataclass(slots=True)
class ScanResult:
    """A whole scan: the markets kept (one per condition id, in scan order) and its counts."""

    markets: list[GammaMarket] = field(default_factory=list)
    pages: int = 0
    requests: int = 0
    parsed: ParseStats = field(default_factory=ParseStats)
    selected: int = 0
    duplicates: int = 0
    """Items whose condition id an earlier page already gave (a cursor that does not advance
    cleanly); each market is kept once."""
    stop_reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def seen(self) -> int:
        return self.parsed.seen


Select = Callable[[GammaMarket], bool]
ScanProgress = Callable[[ScanResult], None]


async def scan_all(
    client: GammaClient,
    filters: MarketFilters | None = None,
    *,
    select: Select | None = None,
    progress: ScanProgress | None = None,
) -> ScanResult:
    """Scan ``/markets/keyset`` to the end and return the markets ``select`` keeps (all: None).

    Only the kept markets are held in memory, so a predicate keeps a scan of the whole venue
    small. ``progress`` hears the running totals after every page.
    """
    result = ScanResult()
    kept: dict[str, GammaMarket] = {}
    seen_ids: set[str] = set()
    started = time.monotonic()
    requests_before = client.stats.requests
    async for page in iter_keyset_pages(client, filters):
        markets, _ = parse_markets(page.items, stats=result.parsed)
        for gm in markets:
            if gm.condition_id in seen_ids:
                result.duplicates += 1
                continue
            seen_ids.add(gm.condition_id)
            if select is None or select(gm):
                kept[gm.condition_id] = gm
        result.pages = page.number
        result.stop_reason = page.stop_reason
        result.selected = len(kept)
        result.requests = client.stats.requests - requests_before
        result.elapsed_s = time.monotonic() - started
        if progress is not None:
            progress(result)
    result.markets = list(kept.values())
    if result.duplicates:
        log.warning("gamma scan: %d items repeated a condition id already seen; kept once", result.duplicates)
    return result


def _unique(values: Iterable[str]) -> list[str]:
    """Stripped, blank ones dropped, each once (first spelling kept; condition ids case-insensitively)."""
    out: dict[str, str] = {}
    for value in values:
        text = value.strip()
        if text:
            out.setdefault(text.lower() if text.startswith("0x") else text, text)
    return list(out.values())


def chunks(values: Sequence[str], size: int = GAMMA_MAX_LIMIT) -> list[list[str]]:
    """``values`` cut in requests of at most ``size`` (Gamma's 100 ids per request)."""
    return [list(values[i : i + size]) for i in range(0, len(values), size)]


async def load_by_condition_ids(
    client: GammaClient,
    condition_ids: Iterable[str],
    *,
    active: bool | None = None,
    closed: bool | None = None,
) -> list[GammaMarket]:
    """The named markets as Gamma has them now, 100 ids per ``GET /markets`` request.

    No active/closed filter by default: a watched market that closed must come back closed.
    Ids Gamma does not know are simply absent from the result; a market Gamma sends that was
    not asked for is dropped.
    """
    out: list[GammaMarket] = []
    for chunk in chunks(_unique(condition_ids)):
        wanted = {c.lower() for c in chunk}
        items = await client.get_markets(condition_ids=chunk, limit=GAMMA_MAX_LIMIT, active=active, closed=closed)
        markets, _ = parse_markets(items)
        out.extend(gm for gm in markets if gm.condition_id.lower() in wanted)
    return _once(out)


async def load_by_slugs(
    client: GammaClient,
    slugs: Iterable[str],
    *,
    active: bool | None = None,
    closed: bool | None = None,
) -> list[GammaMarket]:
    """The markets with these slugs, 100 per ``GET /markets`` request (``slug`` repeated)."""
    out: list[GammaMarket] = []
    for chunk in chunks(_unique(slugs)):
        wanted = set(chunk)
        items = await client.get_markets(slugs=chunk, limit=GAMMA_MAX_LIMIT, active=active, closed=closed)
        markets, _ = parse_markets(items)
        out.extend(gm for gm in markets if gm.info.slug in wanted)
    return _once(out)


async def load_by_events(
    client: GammaClient,
    *,
    slugs: Iterable[str] = (),
    ids: Iterable[str] = (),
    active: bool | None = None,
    closed: bool | None = None,
) -> list[GammaMarket]:
    """Every market of the named events (``/events`` by ``slug`` and by ``id``, 100 per request)."""
    out: list[GammaMarket] = []
    requests = [{"slugs": c} for c in chunks(_unique(slugs))] + [{"ids": c} for c in chunks(_unique(ids))]
    for named in requests:
        events = await client.get_events(
            limit=GAMMA_MAX_LIMIT, active=active, closed=closed, slugs=named.get("slugs"), ids=named.get("ids")
        )
        markets, _ = parse_events(events)
        out.extend(markets)
    return _once(out)


def _once(markets: Iterable[GammaMarket]) -> list[GammaMarket]:
    by_id: dict[str, GammaMarket] = {}
    for gm in markets:
        by_id.setdefault(gm.condition_id, gm)
    return list(by_id.values())
