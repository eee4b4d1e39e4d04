"""The relayer's event sink: typed events reach the one connected consumer; none is lost in silence,
none is raised back into the relayer; and relayers expose optional capabilities as checked Protocols."""

from __future__ import annotations

import logging
from decimal import Decimal as D

import pytest

from core.execution.events import EventSink, OrderUpdate, SettlementFailure, TradeStatus, TradeUpdate
from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.paper import PaperRelayer
from core.execution.types import (
    BookFills,
    MarketPrewarm,
    OrderMemory,
    OrderStatus,
    TickAware,
    TradeResync,
    VenueReporter,
)
from core.types import Fill, Side

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
FILL = Fill("c1", "v1", "7111", Side.BUY, D("0.5"), D("10"), trade_id="t1", confirmed=False)


class Consumer:
    def __init__(self, *, fail: bool = False) -> None:
        self.heard: list[object] = []
        self.fail = fail

    async def order_update(self, update: OrderUpdate) -> None:
        self._hear(update)

    async def trade(self, update: TradeUpdate) -> None:
        self._hear(update)

    async def settlement_failed(self, failure: SettlementFailure) -> None:
        self._hear(failure)

    def _hear(self, event: object) -> None:
        if self.fail:
            raise RuntimeError("engine bug")
        self.heard.append(event)


EVENTS = (
    OrderUpdate("v1", "c1", OrderStatus.CANCELED),
    TradeUpdate(FILL, TradeStatus.MATCHED),
    SettlementFailure("t1", "c1", FILL),
)


async def _send_all(sink: EventSink) -> None:
    update, trade, failure = EVENTS
    await sink.order_update(update)
    await sink.trade(trade)
    await sink.settlement_failed(failure)


async def test_each_event_reaches_the_connected_consumer_as_its_own_class() -> None:
    sink, consumer = EventSink(), Consumer()
    sink.connect(consumer)
    await _send_all(sink)
    assert consumer.heard == list(EVENTS)
    replaced = Consumer()
    sink.connect(replaced)  # a restarted engine takes over
    await sink.trade(EVENTS[1])  # type: ignore[arg-type]
    assert replaced.heard == [EVENTS[1]] and len(consumer.heard) == 3


async def test_events_with_no_consumer_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    sink = EventSink()
    with caplog.at_level(logging.WARNING, logger="core.execution.events"):
        await _send_all(sink)
    assert dict(sink.stats) == {
        "undelivered_order_update": 1,
        "undelivered_trade": 1,
        "undelivered_settlement_failed": 1,
    }
    assert sum("no engine connected" in r.getMessage() for r in caplog.records) == 3


async def test_a_failing_consumer_is_counted_never_raised_into_the_relayer(caplog: pytest.LogCaptureFixture) -> None:
    sink = EventSink()
    sink.connect(Consumer(fail=True))
    with caplog.at_level(logging.ERROR, logger="core.execution.events"):
        await _send_all(sink)  # raises nothing
    assert sink.stats["consumer_errors"] == 3
    assert any("engine bug" in (r.exc_text or "") for r in caplog.records)


def test_relayers_are_built_with_their_sink_and_declare_their_capabilities() -> None:
    sink = EventSink()
    paper = PaperRelayer(lambda token: None, events=sink)
    clob = ClobRelayer("http://127.0.0.1:9", 137, KEY, dry_run=True, events=sink)
    assert paper.events is sink and clob.events is sink
    assert isinstance(PaperRelayer(lambda token: None).events, EventSink)  # one of its own when none is given
    assert isinstance(paper, BookFills) and not isinstance(clob, BookFills)
    for capability in (TradeResync, TickAware, OrderMemory, MarketPrewarm, VenueReporter):
        assert isinstance(clob, capability) and not isinstance(paper, capability), capability
