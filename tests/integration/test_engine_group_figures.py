"""Dutch group figures and complete-set accounting on a real database (SQLite and PostgreSQL):

- the one-legged alert names each leg by market slug and outcome, with filled/requested size;
- every group is counted once: completed, one-legged by cause (a venue rejection, a moved book, a
  latency overrun) and unwound, with the expected edge at decision time against the realised one;
- complete sets (binary YES+NO, YES of every member of a neg-risk event) are worth 1 pUSD in the
  control facade's /positions and /pnl, the bot's rendering and the metrics; marks apply only to
  the remainder, and the locked edge carries the taker fees.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bot.views import render_pnl, render_positions
from core.control.facade import Control, Runtime
from core.events import Alert, AlertKind
from core.execution.engine import Engine, GroupState, OneLegPolicy
from core.execution.relayers.paper import PaperRelayer
from core.execution.types import Outcome
from core.metrics.collect import Metrics
from core.registry import MarketRegistry
from core.store import models as m
from core.types import Intent, MarketInfo, Mode, OrderType, Side, TokenInfo
from tests.integration.engine_world import World, neg_risk_market

YES, NO = "1010", "2020"
FEE = MarketInfo("0xfee", "Will it?", "demo-will-it", (TokenInfo(YES, "Yes"), TokenInfo(NO, "No")), fee_rate=D("0.02"))


@pytest.fixture
def world(world: World) -> World:
    world.books.set(YES, asks=[("0.45", "1000")], bids=[("0.43", "1000")])
    world.books.set(NO, asks=[("0.50", "1000")], bids=[("0.48", "1000")])
    return world


def legs(group: str, size: str = "10", order_type: OrderType = OrderType.FOK) -> list[Intent]:
    return [
        Intent(FEE.condition_id, YES, Side.BUY, D("0.45"), D(size), order_type, group_id=group),
        Intent(FEE.condition_id, NO, Side.BUY, D("0.50"), D(size), order_type, group_id=group),
    ]


def one_legged(world: World) -> list[str]:
    return [a.message for a in world.recorder.of(Alert) if a.kind == AlertKind.ONE_LEGGED]


def control(world: World, engine: Engine, *markets: MarketInfo) -> Control:
    return Control(
        Runtime(
            mode=Mode.PAPER,
            bus=world.bus,
            registry=MarketRegistry(markets),
            books=world.books.books,
            risk=engine.risk,
            engine=engine,
        )
    )


async def test_the_one_legged_alert_names_legs_by_slug_outcome_and_size(world: World) -> None:
    engine = await world.engine(policy=OneLegPolicy.UNWIND)
    world.inject.next(Outcome.REJECTED, token_id=NO, error="not enough balance / allowance")
    res = await engine.submit_group(legs("g-1a2b"), [FEE])
    assert res.state is GroupState.SETTLED
    assert one_legged(world) == [
        "Dutch group g-1a2b is one-legged: demo-will-it Yes 10/10 (filled), demo-will-it No 0/10 (rejected); "
        "policy unwind"
    ]


async def test_group_figures_by_cause_with_unwinds_and_edges(world: World) -> None:
    # every request takes 0.2 s of the test's clock: within a 1 s latency budget, but not within 0.1 s
    world.relayer = PaperRelayer(world.books, latency_s=0.2, clock=world.clock, sleep=world.sleeps)
    engine = await world.engine(policy=OneLegPolicy.UNWIND)
    engine._groups.latency_budget_s = 1.0  # until Engine takes the budget (its group manager does)
    # completed: 10 sets for 4.5 + 0.0495 fee + 5.0 + 0.05 fee -> edge 0.4005, as expected at decision
    assert (await engine.submit_group(legs("g-ok"), [FEE])).state is GroupState.COMPLETE
    # a venue rejection
    world.inject.next(Outcome.REJECTED, token_id=NO, error="not enough balance / allowance")
    assert (await engine.submit_group(legs("g-rejected"), [FEE])).state is GroupState.SETTLED
    # a moved book: NO has only 4 at the limit when the FOK arrives (killed), answered within the budget
    world.books.set(NO, asks=[("0.50", "4"), ("0.60", "1000")], bids=[("0.48", "1000")])
    assert (await engine.submit_group(legs("g-moved"), [FEE])).state is GroupState.SETTLED
    # the same kill answered after the budget: the book moved during our latency
    engine._groups.latency_budget_s = 0.1
    assert (await engine.submit_group(legs("g-late"), [FEE])).state is GroupState.SETTLED
    world.books.set(NO, asks=[("0.50", "1000")], bids=[("0.48", "1000")])
    # refused by the gate as a whole: not a group sent
    bad = [legs("g-bad")[0], Intent(FEE.condition_id, NO, Side.BUY, D("0.505"), D("10"), OrderType.FOK)]
    assert not (await engine.submit_group(bad, [FEE])).ok

    figures = await control(world, engine, FEE).groups()
    assert (figures.sent, figures.completed, figures.one_legged, figures.failed) == (4, 1, 3, 0)
    assert figures.one_legged_by_cause == {"venue_rejected": 1, "book_moved": 1, "latency_budget_exceeded": 1}
    assert (figures.unwound, figures.hedged, figures.unbalanced, figures.pending) == (3, 0, 0, 0)
    set_edge = D(10) - (D("4.5") + D("0.04950") + D("5.0") + D("0.05"))
    assert figures.expected_edge == 4 * set_edge
    # each unwind: bought 10 YES at 0.45 (+0.0495 fee), sold at 0.43 (-0.04902 fee: 10 x 0.02 x 0.43 x 0.57)
    unwind = D("4.3") - D("0.04902") - D("4.5") - D("0.04950")
    assert figures.realised_edge == set_edge + 3 * unwind
    assert "one-legged 3 (venue rejected 1, book moved 1, latency budget exceeded 1), unwound 3" in figures.line()

    metrics = Metrics(process_metrics=False)
    metrics.bind(engine=engine)
    text = metrics.exposition().decode()
    for sample in (
        "polybot_dutch_groups_sent_total 4.0",
        'polybot_dutch_groups_ended_total{outcome="completed"} 1.0',
        'polybot_dutch_groups_one_legged_total{cause="book_moved"} 1.0',
        'polybot_dutch_groups_one_legged_total{cause="latency_budget_exceeded"} 1.0',
        'polybot_dutch_groups_balanced_total{policy="unwind"} 3.0',
        f'polybot_dutch_edge_pusd{{kind="realised"}} {float(figures.realised_edge)}',
        "polybot_complete_sets 10.0",
        f"polybot_locked_edge_pusd {float(set_edge)}",
    ):
        assert sample in text, sample


async def test_a_kill_answered_after_the_latency_budget_is_latency(world: World) -> None:
    world.relayer = PaperRelayer(world.books, latency_s=0.2, clock=world.clock, sleep=world.sleeps)
    engine = await world.engine(policy=OneLegPolicy.ALERT)
    world.books.set(NO, asks=[("0.50", "4")], bids=[("0.48", "1000")])
    engine._groups.latency_budget_s = 0.1  # until Engine takes the budget (its group manager does)
    assert (await engine.submit_group(legs("g-slow"), [FEE])).state is GroupState.ONE_LEGGED
    engine._groups.latency_budget_s = None
    assert (await engine.submit_group(legs("g-moved"), [FEE])).state is GroupState.ONE_LEGGED
    figures = await control(world, engine, FEE).groups()
    assert figures.one_legged_by_cause == {"venue_rejected": 0, "book_moved": 1, "latency_budget_exceeded": 1}
    assert figures.unbalanced == 2 and figures.unwound == 0
    # alert only: the filled YES legs stay unmatched, so nothing is booked yet
    assert figures.realised_edge == 0


async def test_a_binary_complete_set_is_worth_one_with_the_remainder_at_marks(world: World) -> None:
    engine = await world.engine()
    assert (await engine.submit_group(legs("g-set"), [FEE])).state is GroupState.COMPLETE
    extra = Intent(FEE.condition_id, YES, Side.BUY, D("0.45"), D("5"), OrderType.FOK)
    assert (await engine.submit(extra, FEE)).ok
    c = control(world, engine, FEE)
    pnl = await c.pnl()
    set_cost = D("4.5") + D("0.04950") + D("5.0") + D("0.05")
    assert (pnl.complete_sets, pnl.locked_edge) == (D(10), D(10) - set_cost)
    # only the 5 extra YES are marked: mid 0.44 x 5 - (2.25 + 0.02475 fee)
    assert pnl.unrealised == D("0.44") * 5 - (D("2.25") + D("0.02475"))
    assert engine.unrealised_pnl() == 0  # the engine was built without marks
    rows = {r.outcome: r for r in await c.positions()}
    assert (rows["Yes"].size, rows["Yes"].in_sets, rows["No"].in_sets) == (D(15), D(10), D(10))
    assert rows["No"].unrealised == 0  # all NO shares are in the set: no mark applies
    assert rows["Yes"].unrealised == pnl.unrealised
    [s] = await c.complete_sets()
    assert (s.unit, s.kind, s.sets, s.value, s.locked_edge) == ("demo-will-it", "binary", D(10), D(10), pnl.locked_edge)
    text = render_positions(await c.positions(), await c.complete_sets())
    assert "complete sets 10, locked edge 0.4005 pUSD" in text
    assert "complete sets 10, locked edge 0.4005 pUSD" in render_pnl(pnl)


async def test_a_neg_risk_complete_set_is_yes_of_every_member(world: World) -> None:
    members = [neg_risk_market(i, event="CUP") for i in (1, 2, 3)]
    for i, price in zip((1, 2, 3), ("0.30", "0.25", "0.20"), strict=True):
        world.books.set(f"{i}01", asks=[(price, "100")], bids=[(str(D(price) - D("0.02")), "100")])
    engine = await world.engine()
    engine.register_markets(members)
    engine.set_event_markets("CUP", [m.condition_id for m in members])
    group = [
        Intent(m.condition_id, f"{i}01", Side.BUY, D(p), D(8), OrderType.FOK, group_id="g-cup")
        for i, m, p in zip((1, 2, 3), members, ("0.30", "0.25", "0.20"), strict=True)
    ]
    assert (await engine.submit_group(group, members)).state is GroupState.COMPLETE
    extra = Intent(members[2].condition_id, "301", Side.BUY, D("0.20"), D("5"), OrderType.FOK)
    assert (await engine.submit(extra, members[2])).ok
    c = control(world, engine, *members)
    pnl = await c.pnl()
    assert (pnl.complete_sets, pnl.locked_edge) == (D(8), D(8) - D("6.00"))  # fee-free members
    assert pnl.unrealised == D("0.19") * 5 - D("1.00")  # only the 5 extra shares of member 3, at mid
    [s] = await c.complete_sets()
    assert (s.unit, s.kind, s.sets) == ("outcome", "neg_risk", D(8))
    figures = await c.groups()
    assert (figures.completed, figures.expected_edge, figures.realised_edge) == (1, D("2.00"), D("2.00"))


async def test_fak_legs_stay_fak_and_a_short_fak_is_a_moved_book(world: World) -> None:
    engine = await world.engine(policy=OneLegPolicy.ALERT)
    world.books.set(NO, asks=[("0.50", "4"), ("0.60", "1000")], bids=[("0.48", "1000")])
    res = await engine.submit_group(legs("g-fak", order_type=OrderType.FAK), [FEE])
    assert res.state is GroupState.ONE_LEGGED
    rows = {r.token_id: r for r in await world.rows(m.Order)}
    assert {r.order_type for r in rows.values()} == {"FAK"}
    assert one_legged(world) == [
        "Dutch group g-fak is one-legged: demo-will-it Yes 10/10 (filled), demo-will-it No 4/10 (canceled); "
        "policy alert"
    ]
    figures = await control(world, engine, FEE).groups()
    assert figures.one_legged_by_cause["book_moved"] == 1
    # 4 complete sets booked; the 6 unmatched YES are left at their cost
    set_cost = D("0.45") + D("0.004950") + D("0.50") + D("0.005")
    assert figures.realised_edge == 4 * (1 - set_cost)


async def test_the_expected_edge_is_the_books_at_decision_time_though_summed_after_the_post(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await world.engine()
    relayer = engine.relayer
    real_place_batch = relayer.place_batch

    async def book_moves_on_the_way(orders: list[object]) -> object:
        # the YES asks get cheaper while the group is on its way: the edge the strategy saw stays the figure
        world.books.set(YES, asks=[("0.40", "1000")], bids=[("0.38", "1000")])
        return await real_place_batch(orders)  # type: ignore[arg-type]

    monkeypatch.setattr(relayer, "place_batch", book_moves_on_the_way)
    assert (await engine.submit_group(legs("g-decided"), [FEE])).state is GroupState.COMPLETE
    figures = await control(world, engine, FEE).groups()
    assert figures.expected_edge == D(10) - (D("4.5") + D("0.04950") + D("5.0") + D("0.05"))
