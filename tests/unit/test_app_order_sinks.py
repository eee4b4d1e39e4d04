"""Strategy decisions -> engine: a Dutch group is submitted once, only when armed and not stopping,
never twice while in flight, never with an unknown leg market (each miss counted by reason);
quotes replace what rests on their market, and a pull cancels it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal

from core.app.lifecycle import Lifecycle
from core.app.order_sinks import EngineDutchSink, EngineQuoteSink, TradingCounters
from core.execution.engine import GroupResult, GroupState, SubmitResult
from core.execution.rules import ReasonCode
from core.execution.types import CancelResult, OrderStatus
from core.registry import MarketRegistry
from core.strategies.dutch import DutchOpportunity
from core.strategies.spread import QuoteAction, QuoteDecision, Quotes
from core.types import Intent, MarketInfo, Side, TokenInfo

M1 = MarketInfo("0xm1", "Q1?", "q-one", (TokenInfo("y1", "Yes"), TokenInfo("n1", "No")))
M2 = MarketInfo("0xm2", "Q2?", "q-two", (TokenInfo("y2", "Yes"), TokenInfo("n2", "No")))


def opportunity(group_id: str, *markets: MarketInfo) -> DutchOpportunity:
    legs = tuple(Intent(m.condition_id, m.tokens[0].token_id, Side.BUY, Decimal("0.45"), Decimal(10)) for m in markets)
    z = Decimal(0)
    return DutchOpportunity(group_id, "neg_risk", legs, Decimal(10), z, z, z, z, z, (), ())


class Gate:
    armed = True


class GroupEngine:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.groups: list[tuple[list[str], list[str]]] = []
        self.refusal: ReasonCode | bool | None = False  # False: accepted

    async def submit_group(self, intents: Sequence[Intent], markets: Mapping[str, MarketInfo]) -> GroupResult:
        self.groups.append(([i.token_id for i in intents], sorted(markets)))
        await self.release.wait()
        if self.refusal is False:
            return GroupResult("g", True, GroupState.COMPLETE)
        return GroupResult("g", False, GroupState.FAILED, reason_code=self.refusal or None)


async def until(predicate: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, what
        await asyncio.sleep(0.01)


async def test_a_dutch_group_goes_once_and_every_miss_is_counted_by_reason() -> None:
    engine, gate, counters, life = GroupEngine(), Gate(), TradingCounters(), Lifecycle()
    sink = EngineDutchSink(engine, gate, MarketRegistry([M1, M2]), counters, life)
    sink.on_opportunity(opportunity("g1", M1, M2), {}, 1, 1)
    await until(lambda: len(engine.groups) == 1, "the group to reach the engine")
    sink.on_opportunity(opportunity("g1", M1, M2), {}, 2, 2)  # same group while in flight
    sink.on_opportunity(opportunity("g2", M1, MarketInfo("0xgone", "", "", (TokenInfo("x", "Yes"),))), {}, 3, 3)
    gate.armed = False
    sink.on_opportunity(opportunity("g3", M1, M2), {}, 4, 4)
    gate.armed = True
    engine.release.set()
    await life.drain(30)
    assert engine.groups == [(["y1", "y2"], ["0xm1", "0xm2"])]
    assert counters.opportunities == 4 and counters.groups_submitted == 1
    assert counters.missed == {"in_flight": 1, "unknown_market": 1, "not_armed": 1}
    # done: the same group may go again (the engine dedups by id), and stopping refuses it
    sink.on_opportunity(opportunity("g1", M1, M2), {}, 5, 5)
    await life.drain(30)
    assert len(engine.groups) == 2
    life.begin_stop()
    sink.on_opportunity(opportunity("g1", M1, M2), {}, 6, 6)
    assert counters.missed["stopping"] == 1 and len(engine.groups) == 2


async def test_a_group_refused_by_the_gate_is_a_miss_and_one_sent_is_sent_whatever_its_legs_did() -> None:
    """A group that went to the venue is sent even if a leg then failed (the group figures count
    one-legged groups by cause); only the gate's refusal is a missed opportunity."""
    engine, counters, life = GroupEngine(), TradingCounters(), Lifecycle()
    engine.release.set()
    sink = EngineDutchSink(engine, Gate(), MarketRegistry([M1, M2]), counters, life)
    engine.refusal = ReasonCode.MAX_EVENT_NOTIONAL
    sink.on_opportunity(opportunity("g1", M1, M2), {}, 1, 1)
    await life.drain(30)
    engine.refusal = None
    sink.on_opportunity(opportunity("g2", M1, M2), {}, 2, 2)
    await life.drain(30)
    assert counters.groups_submitted == 1
    assert counters.missed == {"max_event_notional": 1}


class QuoteEngine:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.n = 0

    async def submit(self, intent: Intent, market: MarketInfo, *, seq: int | str | None = None) -> SubmitResult:
        self.n += 1
        self.calls.append(f"place {intent.side} {intent.price} {seq}")
        return SubmitResult(f"o{self.n}", True, OrderStatus.LIVE)

    async def cancel(self, client_order_id: str) -> CancelResult:
        self.calls.append(f"cancel {client_order_id}")
        return CancelResult(canceled=[client_order_id])


def quote(bid: str, ask: str) -> QuoteDecision:
    def intent(side: Side, price: str) -> Intent:
        return Intent(M1.condition_id, "y1", side, Decimal(price), Decimal(5))

    return QuoteDecision(QuoteAction.QUOTE, Quotes(Decimal("0.5"), intent(Side.BUY, bid), intent(Side.SELL, ask)), "")


async def test_quotes_replace_what_rests_and_a_pull_cancels_it() -> None:
    engine, gate, counters, life = QuoteEngine(), Gate(), TradingCounters(), Lifecycle()
    sink = EngineQuoteSink(engine, gate, M1, counters, life)
    sink.on_quote(quote("0.45", "0.55"), 1, 1)
    await life.drain(30)
    sink.on_quote(quote("0.46", "0.56"), 2, 2)
    await life.drain(30)
    sink.on_pull("book not ok", 3, 3)
    await life.drain(30)
    sink.on_pull("book not ok", 4, 4)  # nothing rests: nothing to cancel
    gate.armed = False
    sink.on_quote(quote("0.47", "0.57"), 5, 5)  # disarmed: not placed
    await life.drain(30)
    assert engine.calls == [
        "place BUY 0.45 q1",
        "place SELL 0.55 q1",
        "cancel o1",
        "cancel o2",
        "place BUY 0.46 q2",
        "place SELL 0.56 q2",
        "cancel o3",
        "cancel o4",
    ]
    assert (counters.quotes, counters.pulls, sink.resting) == (2, 2, [])
