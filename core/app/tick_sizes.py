"""The venue changed a market's tick: orders are checked and signed on the new grid from then on
(a finer tick would otherwise be refused until a restart)."""

from __future__ import annotations

import logging
from dataclasses import replace

from core.app.ports import MarketRules
from core.execution.types import TickAware
from core.feed.events import TickSizeChanged
from core.registry import MarketRegistry

log = logging.getLogger(__name__)


class TickSizes:
    def __init__(self, registry: MarketRegistry, rules: MarketRules, relayer: object) -> None:
        self._registry = registry
        self._rules = rules
        self._signer = relayer if isinstance(relayer, TickAware) else None

    def on_tick_size(self, ev: TickSizeChanged) -> None:
        market = self._registry.for_token(ev.asset_id)
        if market is None or market.tick_size == ev.new_tick:
            return
        updated = replace(market, tick_size=ev.new_tick)
        self._registry.update([updated])
        self._rules.register_markets([updated])
        if self._signer is not None:
            for tok in updated.tokens:
                self._signer.update_tick_size(tok.token_id, ev.new_tick)
        log.info("tick size of %s: %s -> %s", updated.slug or updated.condition_id, market.tick_size, ev.new_tick)
