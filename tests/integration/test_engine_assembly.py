"""The execution side assembled without patching: the sink first, the relayer built with it, the
engine connected to it; what the relayer reports later reaches the engine through the sink only."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.execution.assembly import EngineOptions, assemble
from core.execution.engine import Engine, OneLegPolicy
from core.execution.events import EventSink, OrderUpdate
from core.execution.funds import PaperFunds
from core.execution.positions import PositionBook
from core.execution.relayers.paper import PaperRelayer
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.types import OrderStatus
from core.store import models as m
from tests.integration.engine_world import BIN, YES, World, intent


async def test_assembled_engine_hears_fills_through_the_sink_it_was_built_with(world: World) -> None:
    book = world.books.set(YES, asks=[("0.60", "100")], bids=[("0.40", "100")])
    gate = RiskGate(RiskLimits.configured(), world.store, world.clock, world.bus)
    positions = PositionBook(clock=world.clock)
    built = assemble(
        lambda events: PaperRelayer(world.books, events=events, clock=world.clock),
        gate,
        world.store,
        world.bus,
        options=EngineOptions(one_leg_policy="unwind", relayer_max_retries=0),
        positions=positions,
        funds=lambda relayer: PaperFunds(D("1000"), positions),
        books=world.books,
        clock=world.clock,
        sleep=world.sleeps,
    )
    engine = built.engine
    assert built.relayer.events is built.events and built.events.connected
    assert engine.one_leg_policy is OneLegPolicy.UNWIND and engine.bounds.relayer_max_retries == 0
    assert engine.positions is positions and isinstance(engine.funds, PaperFunds)
    await engine.start()
    assert (await gate.arm("tester")).ok
    res = await engine.submit(intent(price="0.50", size="20"), BIN)
    assert res.status is OrderStatus.LIVE
    book.ask_levels = [(D("0.50"), D("30"))]
    await built.relayer.on_book_update(YES)  # the paper venue trades through the order
    rec = engine.order(res.client_order_id)
    assert rec is not None and rec.status is OrderStatus.FILLED and positions.get(YES).shares == D("20")  # type: ignore[union-attr]
    assert [r.status for r in await world.rows(m.Fill)] == ["confirmed"]
    # an order update pushed by the venue arrives the same way
    await built.events.order_update(OrderUpdate(str(res.venue_order_id), None, OrderStatus.CANCELED))
    assert built.events.stats == {}  # delivered, nothing counted as lost or failed


async def test_a_relayer_built_without_the_handed_sink_is_refused(world: World) -> None:
    gate = RiskGate(RiskLimits.configured(), world.store, world.clock, world.bus)
    with pytest.raises(ValueError, match="not built with the event sink"):
        assemble(lambda events: PaperRelayer(world.books), gate, world.store, world.bus)


async def test_an_engine_built_on_a_relayer_connects_to_its_sink(world: World) -> None:
    sink = EventSink()
    relayer = PaperRelayer(world.books, events=sink)
    assert not sink.connected
    Engine(relayer, RiskGate(RiskLimits.configured(), world.store, world.clock, world.bus), world.store, world.bus)
    assert sink.connected
