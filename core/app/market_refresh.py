"""The scheduled market refresh: discover markets on Gamma, store them, and make them known to
the registry and the engine; a failure is one ``market_refresh`` alert, cleared by the next success."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.app.ports import MarketRules
from core.events import Alert, AlertCleared, EventBus, Severity
from core.markets import GammaClient, MarketFilters, load_markets, refresh_markets
from core.registry import MarketRegistry
from core.settings import GammaSettings

log = logging.getLogger(__name__)


class MarketRefresh:
    def __init__(
        self,
        gamma: GammaSettings,
        sessions: async_sessionmaker[AsyncSession],
        registry: MarketRegistry,
        rules: MarketRules,
        bus: EventBus,
    ) -> None:
        self._gamma = gamma
        self._sessions = sessions
        self._registry = registry
        self._rules = rules
        self._bus = bus

    async def run(self) -> None:
        g = self._gamma
        try:
            async with GammaClient(g.url, timeout_s=g.timeout_s, max_retries=g.max_retries) as client:
                filters = MarketFilters(active=g.active, closed=g.closed, limit=g.page_limit)
                result = await refresh_markets(self._sessions, client, filters)
            self._registry.update(await load_markets(self._sessions))
            self._rules.register_markets(self._registry.all())
        except Exception as exc:
            self._bus.publish(
                Alert(
                    kind="market_refresh",
                    severity=Severity.WARNING,
                    key="gamma",
                    message=f"Gamma refresh failed: {exc}",
                )
            )
            return
        self._bus.publish(AlertCleared(kind="market_refresh", key="gamma"))
        log.info("market refresh: %s", result)
