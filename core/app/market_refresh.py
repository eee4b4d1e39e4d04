"""The scheduled market refresh: discover markets on Gamma, store them, and make them known to
the registry and the engine; a failure is one ``market_refresh`` alert, cleared by the next success.

After a successful refresh the feed's followed set is brought up to date (:mod:`core.app.watch`):
the ``feed.watch`` rules select from the markets just stored, markets Gamma now shows closed
leave, and the sockets subscribe and unsubscribe accordingly, without a reconnect."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.app.ports import MarketRules
from core.app.resolution import MarketResolutions, gamma_resolution
from core.app.watch import Watcher
from core.defaults import GAMMA_MAX_LIMIT
from core.events import Alert, AlertCleared, EventBus, Severity
from core.markets import (
    GammaClient,
    GammaMarket,
    MarketFilters,
    load_markets,
    parse_markets,
    refresh_markets,
    upsert_markets,
)
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
        resolutions: MarketResolutions | None = None,
        watch: Watcher | None = None,
    ) -> None:
        self._watch = watch
        self._gamma = gamma
        self._sessions = sessions
        self._registry = registry
        self._rules = rules
        self._bus = bus
        self._resolutions = resolutions

    async def run(self) -> None:
        g = self._gamma
        try:
            async with GammaClient(g.url, timeout_s=g.timeout_s, max_retries=g.max_retries) as client:
                filters = MarketFilters(active=g.active, closed=g.closed, limit=g.page_limit)
                try:
                    result = await refresh_markets(self._sessions, client, filters)
                    closed = await self._closed_at_gamma(client)
                finally:
                    # the refresh may have stored a lagging "open" for a resolved market before a
                    # later call failed: put it back to closed whatever happens, or a restart trades it
                    if self._resolutions is not None:
                        await self._resolutions.keep_closed()
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
        if self._resolutions is not None:
            followed = set(self._resolutions.watched())
            for gm in closed:
                res = gamma_resolution(gm)
                if res is not None and gm.condition_id in followed:
                    self._resolutions.resolve(res)
        if self._watch is not None:
            await self._follow()

    async def _follow(self) -> None:
        """The rules over the markets just stored, then the feed brought to the desired set."""
        assert self._watch is not None
        try:
            await self._watch.select()
            change = await self._watch.apply()
        except Exception:  # the refresh itself succeeded; the next one tries again
            log.exception("updating the followed markets after the refresh failed")
            return
        if change.changed:
            log.info("followed set after the refresh: +%d / -%d assets", len(change.added), len(change.removed))

    async def _closed_at_gamma(self, client: GammaClient) -> list[GammaMarket]:
        """The followed markets Gamma now shows closed (a refresh of open markets leaves them out),
        stored as Gamma has them."""
        watched = [] if self._resolutions is None else self._resolutions.watched()
        if self._watch is not None:  # what the watch list and the rules follow must leave once closed too
            watched = list(dict.fromkeys(watched + [m.condition_id for m in self._watch.desired_markets()]))
        closed: list[GammaMarket] = []
        for start in range(0, len(watched), GAMMA_MAX_LIMIT):
            chunk = watched[start : start + GAMMA_MAX_LIMIT]
            items = await client.get_markets(condition_ids=chunk, closed=True, limit=GAMMA_MAX_LIMIT)
            markets, _ = parse_markets(items)
            closed += [gm for gm in markets if gm.info.closed and gm.condition_id in chunk]
        if closed:
            await upsert_markets(self._sessions, closed)
        return closed
