"""Which markets and assets the service follows, from the settings and the known markets."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import UsageError
from core.registry import MarketRegistry, UnknownMarket
from core.settings import Settings
from core.types import MarketInfo


def tracked_markets(settings: Settings, registry: MarketRegistry) -> list[MarketInfo]:
    """Markets named in [feed] markets and the strategies, plus whole neg-risk events for Dutch
    (a Dutch book needs every outcome of its event). An unknown reference raises ``UsageError``."""
    dutch_refs = settings.strategies.dutch.markets
    named = [
        *(("feed.markets", r) for r in settings.feed.markets),
        *(("strategies.dutch.markets", r) for r in dutch_refs),
        *(("strategies.spread.markets", r) for r in settings.strategies.spread.markets),
    ]
    out: dict[str, MarketInfo] = {}
    for key, ref in named:
        try:
            market = registry.resolve(ref)
        except UnknownMarket as exc:  # said where the service starts: a terminal, a log
            raise UsageError(
                f"{key}: {exc} ({len(registry)} markets stored); polybot refresh-markets stores Gamma's "
                "markets, polybot markets lists them"
            ) from None
        out[market.condition_id] = market
        if market.neg_risk and market.neg_risk_market_id and ref in dutch_refs:
            for member in registry.event_members(market.neg_risk_market_id):
                out[member.condition_id] = member
    return list(out.values())


def feed_assets(settings: Settings, tracked: Sequence[MarketInfo]) -> list[str]:
    """The tracked markets' tokens, then the raw [feed] assets, without repeats, in that order."""
    return list(dict.fromkeys([t.token_id for m in tracked for t in m.tokens] + list(settings.feed.assets)))


def neg_risk_events(markets: Sequence[MarketInfo]) -> dict[str, list[MarketInfo]]:
    """Neg-risk event id -> its member markets (markets outside an event are left out)."""
    events: dict[str, list[MarketInfo]] = {}
    for m in markets:
        if m.neg_risk and m.neg_risk_market_id:
            events.setdefault(m.neg_risk_market_id, []).append(m)
    return events
