"""Which markets the service follows: those named in [feed] and the strategies, a Dutch neg-risk
market with its whole event (a Dutch set needs every outcome), the raw [feed] assets after them;
alerts name a token as "slug outcome"."""

from __future__ import annotations

import pytest

from core.app.universe import feed_assets, neg_risk_events, tracked_markets
from core.errors import UsageError
from core.registry import MarketRegistry
from core.settings import Settings, load_settings
from core.types import MarketInfo, TokenInfo


def market(n: int, slug: str, event: str | None = None) -> MarketInfo:
    tokens = (TokenInfo(f"{n}01", "Yes"), TokenInfo(f"{n}02", "No"))
    return MarketInfo(f"0x{n:064x}", f"{slug}?", slug, tokens, neg_risk=event is not None, neg_risk_market_id=event)


BINARY = market(1, "rain-tomorrow")
CUP = [market(10 + i, f"cup-team-{i}", event="0xevent") for i in range(3)]
OTHER = market(2, "other-thing")
REGISTRY = MarketRegistry([BINARY, *CUP, OTHER])


def settings(**env: str) -> Settings:
    return load_settings(None, env={f"POLYBOT_{k}": v for k, v in env.items()}).settings


def test_a_dutch_neg_risk_market_brings_its_whole_event_and_feed_markets_do_not() -> None:
    s = settings(
        FEED__MARKETS='["cup-team-1", "rain-tomorrow"]',
        STRATEGIES__DUTCH__MARKETS=f'["{CUP[0].condition_id}"]',
        FEED__ASSETS='["1001", "777"]',
    )
    tracked = tracked_markets(s, REGISTRY)
    assert tracked == [CUP[1], BINARY, CUP[0], CUP[2]]
    assert feed_assets(s, tracked) == ["1101", "1102", "101", "102", "1001", "1002", "1201", "1202", "777"]
    assert neg_risk_events(tracked) == {"0xevent": [CUP[1], CUP[0], CUP[2]]}


def test_a_feed_only_neg_risk_market_is_followed_alone() -> None:
    assert tracked_markets(settings(FEED__MARKETS='["cup-team-2"]'), REGISTRY) == [CUP[2]]


def test_an_unknown_market_reference_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="unknown market 'no-such'"):
        tracked_markets(settings(FEED__MARKETS='["no-such"]'), REGISTRY)


def test_alerts_name_a_token_by_slug_and_outcome_or_a_short_id() -> None:
    assert REGISTRY.label("1102") == "cup-team-1 No"
    assert REGISTRY.label("9876543210987654321") == "987654321098…"
    nameless = MarketRegistry([market(3, "")])
    assert nameless.label("301") == "0x00000000 Yes"
