"""Market resolution: a market that resolved (``market_resolved`` on the feed) or that Gamma shows
closed (the scheduled refresh) is done with.

Once per market: its strategies stop (the Dutch runners that trade it, a neg-risk event's runner
when any member resolves, and its quoters), its tokens' books become ``closed`` (not ``stale``:
nothing more will come, and that is not a fault), its open orders are canceled through the
engine, the markets table marks it closed, and one ``market_resolved`` alert says what won and
what we hold of it. A second notice for the same market does nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.events import Alert, AlertKind, EventBus, Severity
from core.execution.positions import PositionBook
from core.execution.records import OrderRecord
from core.execution.types import CancelResult
from core.feed.events import BookStatusChanged, FeedEvent, MarketResolved
from core.markets import GammaMarket
from core.registry import MarketRegistry
from core.store.models import Market
from core.types import BookStatus, MarketInfo

log = logging.getLogger(__name__)

ZERO = Decimal(0)
ONE = Decimal(1)
PUSD_PER_WINNING_SHARE = Decimal(1)


class ClosableBook(Protocol):
    def set_status(self, status: BookStatus) -> None: ...


class OrderCanceller(Protocol):
    @property
    def positions(self) -> PositionBook: ...

    def open_orders(self) -> list[OrderRecord]: ...

    async def cancel(self, client_order_id: str) -> CancelResult: ...


class StrategyStopper(Protocol):
    def stop_market(self, condition_id: str) -> int: ...


Spawn = Callable[[Coroutine[object, object, None], str], None]


@dataclass(frozen=True, slots=True)
class Resolution:
    condition_id: str
    winning_token: str  # "" when not known (Gamma closed the market without a clear winner yet)
    winning_outcome: str
    source: str  # "feed" | "gamma"


def gamma_resolution(gm: GammaMarket) -> Resolution | None:
    """A Gamma market that is closed, as a resolution (its winner: the outcome priced at 1)."""
    if not gm.info.closed:
        return None
    token, outcome = "", ""
    for tok, price in zip(gm.info.tokens, gm.outcome_prices, strict=False):
        if price == ONE:
            token, outcome = tok.token_id, tok.outcome
    return Resolution(gm.condition_id, token, outcome, "gamma")


class MarketResolutions:
    def __init__(
        self,
        *,
        registry: MarketRegistry,
        engine: OrderCanceller,
        books: Mapping[str, ClosableBook],
        sessions: async_sessionmaker[AsyncSession],
        strategies: StrategyStopper,
        bus: EventBus,
        spawn: Spawn,
        watched: Sequence[str] = (),
    ) -> None:
        self._registry = registry
        self._engine = engine
        self._books = books
        self._sessions = sessions
        self._strategies = strategies
        self._bus = bus
        self._spawn = spawn
        self._watched = list(dict.fromkeys(watched))
        self.resolved: dict[str, Resolution] = {}
        self._closed_tokens: set[str] = set()
        self.listeners: list[Callable[[Resolution], object]] = []
        """Told of each resolution once its orders are canceled (settlement's redeem = auto)."""

    def watched(self) -> list[str]:
        """The followed markets not resolved yet (the refresh asks Gamma about these)."""
        return [c for c in self._watched if c not in self.resolved]

    def on_events(self, events: list[FeedEvent]) -> None:
        """The ingest pipeline's sink: resolutions, and a closed book kept closed (a reconnect
        or a late snapshot must not bring a resolved market's book back to life)."""
        for ev in events:
            if type(ev) is MarketResolved:
                self.resolve(Resolution(ev.market, ev.winning_asset_id, ev.winning_outcome, "feed"))
            elif (
                type(ev) is BookStatusChanged and ev.asset_id in self._closed_tokens and ev.new is not BookStatus.CLOSED
            ):
                self._close_book(ev.asset_id)

    def resolve(self, res: Resolution) -> bool:
        """Stop trading the market now, settle the rest in a task; False when already resolved."""
        if res.condition_id in self.resolved:
            return False
        self.resolved[res.condition_id] = res
        stopped = self._strategies.stop_market(res.condition_id)
        market = self._registry.get(res.condition_id)
        for token in [t.token_id for t in market.tokens] if market is not None else []:
            self._closed_tokens.add(token)
            self._close_book(token)
        log.info("market %s resolved (%s): %d runner(s) stopped", res.condition_id, res.source, stopped)
        self._spawn(self._settle(res, market), "market-resolved")
        return True

    def already_closed(self, markets: Sequence[MarketInfo]) -> int:
        """At start: followed markets the database already has closed are not traded, their books
        are closed as they appear; no alert (it was said when they closed). Returns how many."""
        done = 0
        for market in markets:
            if market.closed and market.condition_id not in self.resolved:
                self.resolved[market.condition_id] = Resolution(market.condition_id, "", "", "database")
                self._strategies.stop_market(market.condition_id)
                for token in market.tokens:
                    self._closed_tokens.add(token.token_id)
                    self._close_book(token.token_id)
                done += 1
        return done

    async def keep_closed(self) -> None:
        """The markets resolved here stay closed in the database (a refresh whose Gamma answer
        still lists one as open must not reopen it)."""
        for condition_id in list(self.resolved):
            await self._mark_closed(condition_id)

    def _close_book(self, token_id: str) -> None:
        book = self._books.get(token_id)
        if book is not None:
            book.set_status(BookStatus.CLOSED)

    async def _settle(self, res: Resolution, market: MarketInfo | None) -> None:
        canceled = await self._cancel_orders(res.condition_id)
        await self._mark_closed(res.condition_id)
        if market is not None:
            self._registry.update([replace(market, closed=True, active=False)])
        self._bus.publish(
            Alert(
                kind=AlertKind.MARKET_RESOLVED,
                severity=Severity.INFO,
                key=res.condition_id,
                message=self.message(res, market) + (f" ({canceled} open order(s) canceled)" if canceled else ""),
            )
        )
        for listener in self.listeners:
            listener(res)

    def message(self, res: Resolution, market: MarketInfo | None) -> str:
        question = market.question if market is not None and market.question else res.condition_id
        token = res.winning_token
        if not token and market is not None and res.winning_outcome:
            token = next((t.token_id for t in market.tokens if t.outcome == res.winning_outcome), "")
        outcome = res.winning_outcome or "unknown outcome"
        pos = self._engine.positions.get(token) if token else None
        shares = pos.shares if pos is not None and pos.shares > ZERO else ZERO
        return (
            f"resolved: {question} → {outcome}; you hold {_plain(shares)} winning shares "
            f"(redeemable {_plain(shares * PUSD_PER_WINNING_SHARE)} pUSD)"
        )

    async def _cancel_orders(self, condition_id: str) -> int:
        canceled = 0
        for order in [o for o in self._engine.open_orders() if o.market == condition_id]:
            try:
                result = await self._engine.cancel(order.client_order_id)
            except Exception:  # one order's failure must not keep the others resting
                log.exception("cancel of %s on resolved market %s failed", order.client_order_id, condition_id)
                continue
            canceled += len(result.canceled)
        return canceled

    async def _mark_closed(self, condition_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Market).where(Market.condition_id == condition_id).values(closed=True, active=False)
            )


def _plain(value: Decimal) -> str:
    """A share count as people write it: no exponent, no trailing zeros."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
