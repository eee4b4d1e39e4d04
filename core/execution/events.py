"""What a relayer tells the engine: typed events through a sink it receives at construction.

A relayer reports three kinds of event, and nothing else of its reaches the engine:

- :class:`OrderUpdate`: the venue says an order of ours is now in some status (user channel, REST
  resync);
- :class:`TradeUpdate`: a trade of ours was seen or moved on; ``fill`` is our part of it, final only
  when ``status`` is CONFIRMED (paper fills are confirmed at once);
- :class:`SettlementFailure`: a matched trade of ours FAILED on chain, so its fill never happened.

The :class:`EventSink` is created before the relayer and handed to it; the engine connects to it as
the one :class:`RelayerEvents` consumer. An event that finds no consumer, or whose consumer raises,
is counted and logged, never silently dropped, and never raised back into the relayer's read loop
(a bug in the consumer must not kill the user channel).
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.types import Fill, OrderStatus

log = logging.getLogger(__name__)


class TradeStatus(enum.StrEnum):
    """A trade's settlement: MATCHED -> MINED -> CONFIRMED, or RETRYING -> FAILED."""

    MATCHED = "MATCHED"
    MINED = "MINED"
    CONFIRMED = "CONFIRMED"
    RETRYING = "RETRYING"
    FAILED = "FAILED"

    @property
    def rank(self) -> int:
        return _TRADE_RANK[self]

    @property
    def final(self) -> bool:
        return self in (TradeStatus.CONFIRMED, TradeStatus.FAILED)


_TRADE_RANK = {
    TradeStatus.MATCHED: 1,
    TradeStatus.MINED: 2,
    TradeStatus.RETRYING: 2,
    TradeStatus.CONFIRMED: 3,
    TradeStatus.FAILED: 3,
}


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The venue's word on one of our orders."""

    venue_order_id: str
    client_order_id: str | None
    status: OrderStatus
    size_matched: Decimal | None = None
    source: str = "ws"  # ws (user channel), rest (resync)


@dataclass(frozen=True, slots=True)
class TradeUpdate:
    """A trade of ours, first seen or moved on; ``fill.confirmed`` is ``status is CONFIRMED``."""

    fill: Fill
    status: TradeStatus
    source: str = "ws"  # ws, rest, paper


@dataclass(frozen=True, slots=True)
class SettlementFailure:
    """A matched trade of ours failed to settle on chain: ``fill`` never happened."""

    trade_id: str
    client_order_id: str | None
    fill: Fill


RelayerEvent = OrderUpdate | TradeUpdate | SettlementFailure


class RelayerEvents(Protocol):
    """The consumer of a relayer's events (the engine)."""

    async def order_update(self, update: OrderUpdate) -> None: ...

    async def trade(self, update: TradeUpdate) -> None: ...

    async def settlement_failed(self, failure: SettlementFailure) -> None: ...


class EventSink:
    """A relayer's outlet: the relayer calls it, the one connected consumer receives.

    ``stats`` counts ``undelivered_<kind>`` (no consumer connected) and ``consumer_errors``.
    """

    def __init__(self) -> None:
        self._consumer: RelayerEvents | None = None
        self.stats: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"EventSink(connected={self.connected}, stats={dict(self.stats)})"

    @property
    def connected(self) -> bool:
        return self._consumer is not None

    def connect(self, consumer: RelayerEvents) -> None:
        """Make ``consumer`` the receiver (a restarted engine replaces the one before it)."""
        self._consumer = consumer

    def disconnect(self) -> None:
        self._consumer = None

    async def order_update(self, update: OrderUpdate) -> None:
        consumer = self._receiver("order_update", update)
        if consumer is not None:
            await self._run("order_update", update, consumer.order_update(update))

    async def trade(self, update: TradeUpdate) -> None:
        consumer = self._receiver("trade", update)
        if consumer is not None:
            await self._run("trade", update, consumer.trade(update))

    async def settlement_failed(self, failure: SettlementFailure) -> None:
        consumer = self._receiver("settlement_failed", failure)
        if consumer is not None:
            await self._run("settlement_failed", failure, consumer.settlement_failed(failure))

    def _receiver(self, kind: str, event: RelayerEvent) -> RelayerEvents | None:
        if self._consumer is None:
            self.stats[f"undelivered_{kind}"] += 1
            log.warning("relayer event with no engine connected to hear it (counted): %s", event)
        return self._consumer

    async def _run(self, kind: str, event: RelayerEvent, delivery: Awaitable[None]) -> None:
        try:
            await delivery
        except Exception:
            self.stats["consumer_errors"] += 1
            log.exception("the engine failed on a relayer %s event: %s", kind, event)
