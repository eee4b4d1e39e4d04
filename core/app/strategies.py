"""The strategy runners the settings ask for, on the service's own books (one processor for all)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.feed.processor import FeedProcessor
from core.fees import rate_from_bps
from core.registry import MarketRegistry
from core.settings import Settings
from core.strategies.dutch import DutchConfig
from core.strategies.runner import DutchRunner, DutchSink, QuoterRunner, QuoteSink
from core.strategies.spread import SpreadConfig, SpreadQuoter
from core.types import MarketInfo, OrderType

log = logging.getLogger(__name__)


def dutch_config(settings: Settings) -> DutchConfig:
    d = settings.strategies.dutch
    return DutchConfig(
        safety_margin_usdc=d.safety_margin_usdc,
        slippage_ticks=d.slippage_ticks,
        fee_rate_override=None if d.fee_bps is None else rate_from_bps(d.fee_bps),
        max_sets=d.max_sets,
        order_type=OrderType(d.order_type),
    )


def dutch_runners(
    settings: Settings, registry: MarketRegistry, processor: FeedProcessor, sink: DutchSink
) -> list[DutchRunner]:
    """One runner per binary market and one per neg-risk event (however many of its members are
    named); an augmented event is skipped: its outcomes do not cover everything, so no set pays 1."""
    d = settings.strategies.dutch
    if not d.enabled:
        return []
    cfg = dutch_config(settings)
    runners: list[DutchRunner] = []
    seen: set[str] = set()
    for ref in d.markets:
        market = registry.resolve(ref)
        event = market.neg_risk_market_id if market.neg_risk else None
        if not event:
            runners.append(DutchRunner([market], cfg, sink, processor))
            continue
        if event in seen:
            continue
        seen.add(event)
        members = registry.event_members(event)
        if market.neg_risk_augmented or any(m.neg_risk_augmented for m in members):
            log.warning("dutch: event %s is augmented (outcomes do not cover everything): skipped", ref)
            continue
        runners.append(DutchRunner(members, cfg, sink, processor))
    return runners


def quoters(
    settings: Settings,
    registry: MarketRegistry,
    processor: FeedProcessor,
    sink_for: Callable[[MarketInfo], QuoteSink],
) -> list[QuoterRunner]:
    """One spread quoter per token of each [strategies.spread] market, disarmed until the gate arms."""
    s = settings.strategies.spread
    if not s.enabled:
        return []
    quoter = SpreadQuoter(
        SpreadConfig(
            min_spread_ticks=s.min_spread_ticks,
            requote_ticks=s.requote_ticks,
            size=s.size,
            skew_per_share=s.skew_per_share,
            max_inventory=s.max_inventory,
        )
    )
    out: list[QuoterRunner] = []
    for ref in s.markets:
        market = registry.resolve(ref)
        out += [QuoterRunner(market, tok, quoter, sink_for(market), processor, armed=False) for tok in market.tokens]
    return out
