"""Gamma market discovery: read Gamma, translate its items, store and look up markets.

Gamma (``https://gamma-api.polymarket.com``) is Polymarket's public market catalogue. The
package is split along the way a market travels:

- :mod:`~core.markets.client`: HTTP, rate limits and retries; bytes out.
- :mod:`~core.markets.discovery`: keyset scans (no offset cap) and loads of named markets by
  condition id or slug, 100 per request; parsed markets out, nothing stored.
- :mod:`~core.markets.wire`: frozen msgspec Structs of Gamma's items; the JSON-in-a-string list
  fields are decoded here, once.
- :mod:`~core.markets.translate`: wire structs to :class:`core.types.MarketInfo` (the domain
  rules) plus the stored record, :class:`GammaMarket`.
- :mod:`~core.markets.repository`: the idempotent upsert into the markets and tokens tables
  (the database's limits); :mod:`~core.markets.queries`: reading them back.
- :mod:`~core.markets.refresh`: one refresh, Gamma to database.

The names below are the package's public face; import them from ``core.markets``.
"""

import importlib
from typing import TYPE_CHECKING

# The names are loaded on first use (PEP 562): a caller that only reads stored markets
# (``polybot markets``, ``status``) does not pay for the Gamma client's httpx and rate limiter.
if TYPE_CHECKING:
    from core.markets.client import ClientStats, GammaClient, GammaPage, gamma_limiter
    from core.markets.discovery import (
        CursorLoopError,
        MarketFilters,
        ScanResult,
        iter_keyset_pages,
        load_by_condition_ids,
        load_by_events,
        load_by_slugs,
        scan_all,
    )
    from core.markets.errors import BadReason, GammaError, GammaParseError, MarketLookupError, RefusedReason
    from core.markets.queries import (
        StoredMarket,
        list_markets,
        load_markets,
        market_for_token,
        market_info_from_row,
        resolve_market,
    )
    from core.markets.refresh import ProgressCallback, RefreshResult, refresh_markets, store_markets
    from core.markets.repository import SessionSource, UpsertCounts, upsert_markets
    from core.markets.translate import (
        DEFAULT_MIN_SIZE,
        DEFAULT_TICK,
        UNKNOWN_FEE_RATE,
        GammaMarket,
        ParseStats,
        parse_events,
        parse_market,
        parse_markets,
        translate_market,
    )

_WHERE = {
    "BadReason": "errors",
    "ClientStats": "client",
    "CursorLoopError": "discovery",
    "DEFAULT_MIN_SIZE": "translate",
    "DEFAULT_TICK": "translate",
    "GammaClient": "client",
    "GammaError": "errors",
    "GammaMarket": "translate",
    "GammaPage": "client",
    "GammaParseError": "errors",
    "MarketFilters": "discovery",
    "MarketLookupError": "errors",
    "ParseStats": "translate",
    "ProgressCallback": "refresh",
    "RefreshResult": "refresh",
    "RefusedReason": "errors",
    "ScanResult": "discovery",
    "SessionSource": "repository",
    "StoredMarket": "queries",
    "UNKNOWN_FEE_RATE": "translate",
    "UpsertCounts": "repository",
    "gamma_limiter": "client",
    "iter_keyset_pages": "discovery",
    "list_markets": "queries",
    "load_by_condition_ids": "discovery",
    "load_by_events": "discovery",
    "load_by_slugs": "discovery",
    "load_markets": "queries",
    "market_for_token": "queries",
    "market_info_from_row": "queries",
    "parse_events": "translate",
    "parse_market": "translate",
    "parse_markets": "translate",
    "refresh_markets": "refresh",
    "resolve_market": "queries",
    "scan_all": "discovery",
    "store_markets": "refresh",
    "translate_market": "translate",
    "upsert_markets": "repository",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_MIN_SIZE",
    "DEFAULT_TICK",
    "UNKNOWN_FEE_RATE",
    "BadReason",
    "ClientStats",
    "CursorLoopError",
    "GammaClient",
    "GammaError",
    "GammaMarket",
    "GammaPage",
    "GammaParseError",
    "MarketFilters",
    "MarketLookupError",
    "ParseStats",
    "ProgressCallback",
    "RefreshResult",
    "RefusedReason",
    "ScanResult",
    "SessionSource",
    "StoredMarket",
    "UpsertCounts",
    "gamma_limiter",
    "iter_keyset_pages",
    "list_markets",
    "load_by_condition_ids",
    "load_by_events",
    "load_by_slugs",
    "load_markets",
    "market_for_token",
    "market_info_from_row",
    "parse_events",
    "parse_market",
    "parse_markets",
    "refresh_markets",
    "resolve_market",
    "scan_all",
    "store_markets",
    "translate_market",
    "upsert_markets",
]
