"""The gate's shortcut for groups that pass (core/execution/risk_fast.py) only ever allows what the
exact check allows: on the random worlds of test_risk_gate_legs, with limits drawn around each
group's own bound (so both sides of every limit occur), every group the shortcut passes is one the
reference gate (tests/unit/risk_gate_reference.py) allows, and it passes most of the allowed ones."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from decimal import Decimal as D

from core.events import EventBus
from core.execution.exposure import ExposureSnapshot
from core.execution.funds import Funds
from core.execution.leg_exposure import GroupExposure
from core.execution.risk_fast import group_passes
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.store import MemoryExecutionStore
from core.execution.types import OrderRequest
from core.types import MarketInfo, Side
from tests.unit.risk_gate_reference import ReferenceRiskGate
from tests.unit.test_risk_gate_legs import T0, World

CASES = 1500


def _near(rng: random.Random, value: D) -> D | None:
    """None (no limit), or a limit a little below, at, or above ``value``."""
    roll = rng.random()
    if roll < 0.25:
        return None
    if roll < 0.35:
        return max(D("0.01"), value)
    return max(D("0.01"), (value * D(rng.randint(80, 125)) / 100).quantize(D("0.01")))


def _limits(rng: random.Random, legs: list[tuple[OrderRequest, MarketInfo]], snap: ExposureSnapshot) -> RiskLimits:
    buys = sum((r.price * r.size for r, _ in legs if r.side is Side.BUY), D(0))
    total = snap.total_exposure() + buys
    markets = [snap.market_exposure(r.market) + r.price * r.size for r, m in legs if r.market in snap.markets]
    events = [snap.event_exposure(m.neg_risk_market_id) + buys for _, m in legs if m.neg_risk_market_id]
    return replace(
        RiskLimits.configured(),
        max_order_notional=_near(rng, max(r.price * r.size for r, _ in legs)),
        max_market_notional=_near(rng, max(markets, default=buys)),
        max_event_notional=_near(rng, max(events, default=buys)),
        max_total_exposure=_near(rng, total),
        daily_loss_limit=None,
        orders_per_s=1e9,
        order_burst=10**9,
    )


def _rich(rng: random.Random, snap: ExposureSnapshot) -> ExposureSnapshot:
    """Mostly enough collateral, so that the exposure limits (not the balance) decide."""
    if snap.funds is not None and snap.funds.collateral is not None and rng.random() < 0.7:
        return replace(snap, funds=Funds(D(rng.randint(1000, 5000)), snap.funds.shares, "test"))
    return snap


async def test_the_shortcut_only_passes_what_the_exact_check_allows() -> None:
    rng = random.Random(1515)
    ref = ReferenceRiskGate(RiskLimits.configured(), MemoryExecutionStore(), lambda: T0, EventBus())
    gate = RiskGate(RiskLimits.configured(), MemoryExecutionStore(), lambda: T0, EventBus())
    for g in (ref, gate):
        await g.start()
        assert (await g.arm("t")).ok
    seen: Counter[str] = Counter()
    for _ in range(CASES):
        world = World(rng)
        legs = world.legs()
        snap = _rich(rng, world.snapshot())
        limits = _limits(rng, legs, snap)
        ref.set_limits(limits)
        gate.set_limits(limits)
        args = [(r, m, None) for r, m in legs]
        fresh = replace(snap, group_cache=dict(snap.group_cache) if snap.group_cache is not None else None)
        passed = group_passes(args, fresh, clock=lambda: T0, limits=limits)
        want = await ref.check_many(args, snap)
        got = await gate.check_many(args, replace(snap, group_cache=None))
        assert (got.ok, got.reason_code, got.detail) == (want.ok, want.reason_code, want.detail)
        if passed:
            assert want.ok, (legs, limits, want)
        covered = GroupExposure.covers(snap, legs)
        seen[f"{'allowed' if want.ok else 'refused'} {'covered' if covered else 'chain'} passed={passed}"] += 1
    allowed_covered = seen["allowed covered passed=True"] + seen["allowed covered passed=False"]
    # the shortcut takes a good share of what it can (a bound below the limit), and both sides occur
    assert seen["allowed covered passed=True"] > 0.3 * allowed_covered, seen
    assert seen["allowed covered passed=False"] >= 20, seen
    assert seen["refused covered passed=False"] >= 200, seen
    assert seen["allowed chain passed=True"] == 0, seen  # outside what covers() proves, never a shortcut


def _event(n: int) -> list[MarketInfo]:
    from core.types import TokenInfo

    return [
        MarketInfo(
            f"m{i}",
            f"m{i}?",
            f"slug-{i}",
            (TokenInfo(f"y{i}", "Yes"), TokenInfo(f"n{i}", "No")),
            tick_size=D("0.001"),
            neg_risk=True,
            neg_risk_market_id="E",
        )
        for i in range(n)
    ]


async def test_a_dutch_group_on_a_quiet_book_takes_the_shortcut_and_a_limit_still_refuses() -> None:
    """The tick-to-wire case: ten YES buys of one event, nothing held. Wide limits: passed by the
    shortcut. An event limit a cent below the group's cost: refused, with the exact check's message."""
    markets = _event(10)
    legs = [
        (
            OrderRequest(
                f"c{i}",
                m.condition_id,
                m.tokens[0].token_id,
                Side.BUY,
                D("0.098"),
                D("40"),
                tick_size=D("0.001"),
                neg_risk=True,
            ),
            m,
            None,
        )
        for i, m in enumerate(markets)
    ]
    snap = ExposureSnapshot(
        markets={m.condition_id: m for m in markets}, event_index={"E": [m.condition_id for m in markets]}
    )
    wide = replace(
        RiskLimits.configured(),
        max_event_notional=D("1000"),
        max_total_exposure=D("1000"),
        max_market_notional=D("100"),
    )
    assert group_passes(legs, snap, clock=lambda: T0, limits=wide)
    gate = RiskGate(wide, MemoryExecutionStore(), lambda: T0, EventBus())
    await gate.start()
    await gate.arm("t")
    assert (await gate.check_many(legs, snap)).ok
    # 10 x 0.098 x 40 = 39.2: the last leg takes the event from 35.28 to 39.2 (the "other" outcome)
    tight = replace(wide, max_event_notional=D("39.19"))
    assert not group_passes(legs, snap, clock=lambda: T0, limits=tight)
    gate.set_limits(tight)
    decision = await gate.check_many(legs, snap)
    assert not decision.ok and decision.detail == "event E worst-case exposure would be 39.200 > limit 39.19"


async def test_a_member_an_event_lists_twice_counts_twice() -> None:
    """An event index that lists a member twice counts its tokens twice (as the exposure measure does):
    the bound counts the leg twice too, so a limit between once and twice the leg's cost refuses."""
    markets = _event(3)
    m = markets[0]
    leg = OrderRequest("c", m.condition_id, m.tokens[0].token_id, Side.BUY, D("0.098"), D("40"), tick_size=D("0.001"))
    ids = [x.condition_id for x in markets] + [m.condition_id]
    snap = ExposureSnapshot(markets={x.condition_id: x for x in markets}, event_index={"E": ids})
    limits = replace(
        RiskLimits.configured(), max_event_notional=D("5"), max_total_exposure=None, max_market_notional=None
    )
    assert not group_passes([(leg, m, None)], snap, clock=lambda: T0, limits=limits)
    gate = RiskGate(limits, MemoryExecutionStore(), lambda: T0, EventBus())
    await gate.start()
    await gate.arm("t")
    decision = await gate.check_many([(leg, m, None)], snap)
    assert not decision.ok and decision.detail == "event E worst-case exposure would be 7.840 > limit 5"
