"""What the market feed follows while the service runs: the desired set, and its reconciler.

The set is desired state, recomputed whenever one of its inputs changes and diffed against what
the sockets hold (:meth:`core.feed.ws.MarketFeed.set_assets`):

- the markets of the configuration (``feed.markets``, the strategies' markets, ``feed.assets``);
- the names operators watch (``/watch``, ``/unwatch``: markets and whole neg-risk events,
  persisted in the ``state`` table under ``feed.watch`` so they survive a restart);
- what the ``feed.watch`` rules select from the stored markets after each refresh
  (:mod:`core.app.watch_rules`);
- the markets we hold open orders or positions in (their books value and exit them);

minus every market that is closed or resolved, which leaves on its own. A new asset's book is
created ``awaiting_snapshot`` before it is subscribed, exactly as at start, so nothing trades on
it until its first snapshot; an asset that leaves is unsubscribed and its book dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.app.watch_rules import RuleSelection, select_markets, stored_candidates
from core.errors import UsageError
from core.events import Alert, AlertCleared, EventBus, Severity
from core.execution.positions import PositionBook
from core.execution.records import OrderRecord
from core.feed.subscriptions import SubscriptionChange
from core.registry import MarketRegistry
from core.settings.watch import WatchRule
from core.store.repo import get_state, set_state
from core.types import MarketInfo

log = logging.getLogger(__name__)

WATCH_KEY = "feed.watch"
CAPPED_ALERT = "watch_capped"


class FeedTarget(Protocol):
    async def set_assets(self, asset_ids: Sequence[str]) -> SubscriptionChange: ...


class BookTracker(Protocol):
    """The feed processor: books exist (awaiting a snapshot) before their asset is subscribed."""

    def track(self, asset_ids: Iterable[str], tick_sizes: Mapping[str, Decimal] | None = ...) -> None: ...

    def untrack(self, asset_ids: Iterable[str]) -> None: ...


class Holdings(Protocol):
    """The engine: our open orders and positions."""

    def open_orders(self) -> list[OrderRecord]: ...

    @property
    def positions(self) -> PositionBook: ...


@dataclass
class WatchNames:
    """What operators asked to follow: condition ids and neg-risk event ids, in the order asked."""

    markets: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def as_value(self) -> dict[str, list[str]]:
        return {"markets": list(self.markets), "events": list(self.events)}

    @classmethod
    def from_value(cls, value: object) -> WatchNames:
        doc = value if isinstance(value, dict) else {}

        def ids(key: str) -> list[str]:
            items = doc.get(key)
            return list(dict.fromkeys(str(i) for i in items)) if isinstance(items, list) else []

        return cls(ids("markets"), ids("events"))


@dataclass(frozen=True, slots=True)
class WatchResult:
    ok: bool
    message: str


def held_markets(holdings: Holdings) -> set[str]:
    """Condition ids with an open order or a position (shares held)."""
    markets = {o.market for o in holdings.open_orders() if o.market}
    markets |= {p.market for p in holdings.positions.open_positions() if p.market}
    return markets


class Watcher:
    def __init__(
        self,
        *,
        registry: MarketRegistry,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        rules: Sequence[WatchRule] = (),
        configured: Sequence[MarketInfo] = (),
        raw_assets: Sequence[str] = (),
    ) -> None:
        self._registry = registry
        self._sessions = sessions
        self._bus = bus
        self.rules = list(rules)
        self._configured = [m.condition_id for m in configured]
        self._raw_assets = list(raw_assets)
        self.names = WatchNames()
        self.selected: list[RuleSelection] = []
        # attached once the rest of the system exists (see core.app.system)
        self.books: BookTracker | None = None
        self.feed: FeedTarget | None = None
        self.holdings: Holdings | None = None
        self.resolved: Callable[[], Iterable[str]] = tuple
        self._applying = asyncio.Lock()
        self._names_lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        """Whether anything beyond the configuration may join the set (rules or a watch list)."""
        return bool(self.rules or self.names.markets or self.names.events)

    # ---- the desired set ----------------------------------------------------------------
    async def load(self) -> None:
        """The names persisted by earlier runs, and the rules' selection of the stored markets."""
        async with self._sessions() as session:
            self.names = WatchNames.from_value(await get_state(session, WATCH_KEY))
        await self.select()

    def desired_markets(self) -> list[MarketInfo]:
        ids = list(self._configured)
        for event_id in self.names.events:
            ids += [m.condition_id for m in self._registry.event_members(event_id)]
        ids += self.names.markets
        ids += [m.condition_id for sel in self.selected for m in sel.markets]
        if self.holdings is not None:
            ids += sorted(held_markets(self.holdings))
        done = set(self.resolved())
        out: list[MarketInfo] = []
        for cid in dict.fromkeys(ids):
            market = self._registry.get(cid)
            if market is not None and not market.closed and cid not in done:
                out.append(market)
        return out

    def desired_assets(self) -> list[str]:
        tokens = [t.token_id for m in self.desired_markets() for t in m.tokens]
        return list(dict.fromkeys(tokens + self._raw_assets))

    async def apply(self) -> SubscriptionChange:
        """Bring the feed to the desired set (books first, then the sockets)."""
        async with self._applying:
            if self.feed is None or self.books is None:
                return SubscriptionChange()
            markets = self.desired_markets()
            assets = self.desired_assets()
            ticks: dict[str, Decimal] = {t.token_id: m.tick_size for m in markets for t in m.tokens}
            self.books.track(assets, ticks)
            change = await self.feed.set_assets(assets)
            if change.removed:
                self.books.untrack(change.removed)
            return change

    async def select(self) -> list[RuleSelection]:
        """Apply the rules to the stored markets (after each refresh); a cap that cuts is said once."""
        if not self.rules:
            self.selected = []
            return []
        self.selected = select_markets(self.rules, await stored_candidates(self._sessions))
        for sel in self.selected:
            key = f"rule{sel.rule}"
            if sel.capped:
                message = (
                    f"feed.watch rule {sel.rule + 1} matched {sel.matched} markets; its max_assets "
                    f"{self.rules[sel.rule].max_assets} keeps {len(sel.markets)} ({sel.assets} assets)"
                )
                log.warning(message)
                self._bus.publish(Alert(kind=CAPPED_ALERT, severity=Severity.WARNING, key=key, message=message))
            else:
                self._bus.publish(AlertCleared(kind=CAPPED_ALERT, key=key))
        return self.selected

    # ---- /watch and /unwatch ------------------------------------------------------------
    def _lookup(self, ref: str) -> tuple[str, str, list[MarketInfo]]:
        """("event" | "market", id, its markets) for a slug, condition id, token id or neg-risk event id."""
        key = ref.strip().lower()
        members = self._registry.event_members(key) if key else []
        if members:
            return "event", key, members
        market = self._registry.resolve(ref)  # UsageError names the problem
        return "market", market.condition_id, [market]

    async def watch(self, ref: str, by: str) -> WatchResult:
        kind, ident, markets = self._lookup(ref)
        open_markets = [m for m in markets if not m.closed and m.condition_id not in set(self.resolved())]
        if not open_markets:
            raise UsageError(f"{_label(kind, ident, markets)} is closed: nothing to follow")
        async with self._names_lock:
            listed = self.names.events if kind == "event" else self.names.markets
            if ident in listed:
                return WatchResult(True, f"already watching {_label(kind, ident, markets)}")
            listed.append(ident)
            await self._save()
        change = await self.apply()
        log.info("%s watches %s %s", by, kind, ident)
        return WatchResult(True, f"watching {_label(kind, ident, markets)}: {_change_text(change)}")

    async def unwatch(self, ref: str, by: str) -> WatchResult:
        kind, ident, markets = self._lookup(ref)
        async with self._names_lock:
            listed = self.names.events if kind == "event" else self.names.markets
            if ident not in listed:
                return WatchResult(False, f"{_label(kind, ident, markets)} is not on the watch list")
            listed.remove(ident)
            await self._save()
        change = await self.apply()
        log.info("%s unwatches %s %s", by, kind, ident)
        kept = "" if change.removed else " (still followed: configured, selected by a rule, or held)"
        return WatchResult(True, f"stopped watching {_label(kind, ident, markets)}: {_change_text(change)}{kept}")

    def watched(self) -> list[str]:
        """The watch list as people read it: slugs (or ids) of markets, then events."""
        out = []
        for cid in self.names.markets:
            market = self._registry.get(cid)
            out.append(market.slug or cid if market is not None else cid)
        out += [f"event {e}" for e in self.names.events]
        return out

    async def _save(self) -> None:
        async with self._sessions() as session, session.begin():
            await set_state(session, WATCH_KEY, self.names.as_value())


def _label(kind: str, ident: str, markets: Sequence[MarketInfo]) -> str:
    if kind == "event":
        return f"event {ident} ({len(markets)} markets)"
    return markets[0].slug or ident if markets else ident


def _change_text(change: SubscriptionChange) -> str:
    return f"+{len(change.added)} / -{len(change.removed)} assets on the feed"
