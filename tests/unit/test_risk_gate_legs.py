"""The group check measured once and moved leg by leg (core/execution/leg_exposure.py) decides exactly
as the old per-leg snapshot rebuild (tests/unit/risk_gate_reference.py): same decisions, reason codes
and detail text, and the same exposure figures (Decimal value and exponent) for every leg."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from decimal import Decimal as D

from core.events import EventBus
from core.execution.exposure import ExposureSnapshot, Holding
from core.execution.funds import Funds
from core.execution.leg_exposure import GroupExposure, SnapshotChain, leg_view
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.rules import ReasonCode
from core.execution.store import MemoryExecutionStore
from core.execution.types import OrderRequest
from core.types import MarketInfo, OrderType, Side, TokenInfo
from tests.unit.risk_gate_reference import ReferenceRiskGate, RefSnapshot, as_reference

T0 = 1_767_268_800.0
CASES = 1500


def _market(rng: random.Random, cid: str, event: str | None, augmented: bool = False) -> MarketInfo:
    tokens = (TokenInfo(f"{cid}Y", "Yes"), TokenInfo(f"{cid}N", "No"))
    if rng.random() < 0.2:
        tokens = tokens[::-1]
    return MarketInfo(
        cid,
        f"{cid}?",
        cid if rng.random() < 0.7 else "",
        tokens,
        neg_risk=event is not None,
        neg_risk_market_id=event or "",
        tick_size=D(rng.choice(["0.01", "0.001"])),
        neg_risk_augmented=augmented,
    )


def _amount(rng: random.Random) -> D:
    return rng.choice(
        [D(0), D("0.00"), D(rng.randint(0, 40)), D(rng.randint(0, 4000)) / 100, D(rng.randint(0, 40000)) / 1000]
    )


def _price(rng: random.Random, m: MarketInfo) -> D:
    steps = int(1 / m.tick_size)
    return m.tick_size * rng.randint(1, steps - 1)


class World:
    """Markets, holdings and a group of legs, with a bias towards the shapes that refuse."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        markets: dict[str, MarketInfo] = {}
        self.events: dict[str, list[str]] = {}
        for e in range(rng.randint(1, 3)):
            members = [f"e{e}m{i}" for i in range(rng.randint(2, 20))]
            aug = rng.random() < 0.1
            for cid in members:
                markets[cid] = _market(rng, cid, f"E{e}", aug and cid == members[-1])
            self.events[f"E{e}"] = members
        for b in range(rng.randint(1, 3)):
            markets[f"b{b}"] = _market(rng, f"b{b}", None)
        self.markets = markets
        tokens = [(t.token_id, m.condition_id) for m in markets.values() for t in m.tokens]
        self.holdings: dict[str, Holding] = {}
        for token, cid in rng.sample(tokens, rng.randint(0, min(len(tokens), 12))):
            where = cid if rng.random() < 0.9 else rng.choice(["", cid])
            self.holdings[token] = Holding(token, where, _amount(rng), _amount(rng), _amount(rng), _amount(rng))
        if rng.random() < 0.1:  # a token whose market structure is unknown
            self.holdings["stray"] = Holding("stray", rng.choice(["", "0xunknown", "b0"]), _amount(rng), _amount(rng))

    def legs(self) -> list[tuple[OrderRequest, MarketInfo]]:
        rng = self.rng
        if rng.random() < 0.7:
            event = rng.choice(sorted(self.events))
            ids = list(self.events[event])
            if rng.random() < 0.3:
                ids = rng.sample(ids, rng.randint(1, len(ids)))
            picks = [(cid, self.markets[cid].tokens[0 if rng.random() < 0.85 else 1].token_id) for cid in ids]
        else:
            m = self.markets[rng.choice([c for c in self.markets if c.startswith("b")])]
            picks = [(m.condition_id, t.token_id) for t in m.tokens]
        if rng.random() < 0.2:
            picks.append(rng.choice(picks))  # the same token twice
        out = []
        for cid, token in picks:
            market = self.markets[cid]
            side = Side.SELL if rng.random() < 0.1 else Side.BUY
            size = D(rng.randint(500, 3000)) / 100 if rng.random() < 0.95 else D("4.5")
            req = OrderRequest("c", cid, token, side, _price(rng, market), size, OrderType.GTC)
            out.append((req, market))
        if rng.random() < 0.05:  # a market the snapshot does not know yet
            req, market = out[0]
            self.markets = {k: v for k, v in self.markets.items() if k != market.condition_id}
        return out

    def snapshot(self) -> ExposureSnapshot:
        rng = self.rng
        funds: Funds | None = None
        roll = rng.random()
        if roll < 0.6:
            shares = {t: _amount(rng) for t in rng.sample(sorted(self.holdings), len(self.holdings) // 2)}
            funds = Funds(D(rng.randint(0, 30000)) / 100, shares if rng.random() < 0.5 else None, "test")
        elif roll < 0.65:
            funds = Funds(None, None, "unknown")
        complete = {e: frozenset(ms) for e, ms in self.events.items() if rng.random() < 0.5}
        index = None
        if rng.random() < 0.6:
            index = {e: [c for c in ms if c in self.markets] for e, ms in self.events.items()}
            for ms in index.values():
                if ms and rng.random() < 0.15:  # a member listed twice: its tokens count twice
                    ms.append(rng.choice(ms))
        cache: dict[str, D] | None = None
        if rng.random() < 0.5:
            cache = {}
            ExposureSnapshot(
                dict(self.holdings), self.markets, complete, event_index=index, group_cache=cache
            ).total_exposure()
        return ExposureSnapshot(
            dict(self.holdings),
            self.markets,
            complete,
            event_index=index,
            group_cache=cache,
            funds=funds,
        )


def _limits(rng: random.Random, legs: list[tuple[OrderRequest, MarketInfo]], snap: ExposureSnapshot) -> RiskLimits:
    scale = sum((r.notional for r, _ in legs), D(0)) + snap.total_exposure()

    def pick(p: float) -> D | None:
        if rng.random() > p:
            return None
        return max(D("0.01"), (scale * D(rng.randint(1, 120)) / 100).quantize(D("0.01")))

    order = max((r.notional for r, _ in legs)) * D(rng.randint(60, 110)) / 100 if rng.random() < 0.2 else None
    return replace(
        RiskLimits.configured(),
        max_order_notional=order,
        max_market_notional=pick(0.4),
        max_event_notional=pick(0.5),
        max_total_exposure=pick(0.5),
        daily_loss_limit=None,
        orders_per_s=1e9,
        order_burst=10**9,
    )


async def _gates() -> tuple[RiskGate, RiskGate]:
    gates: list[RiskGate] = []
    for cls in (RiskGate, ReferenceRiskGate):
        gate = cls(RiskLimits.configured(), MemoryExecutionStore(), lambda: T0, EventBus())
        await gate.start()
        assert (await gate.arm("t")).ok
        gates.append(gate)
    return gates[0], gates[1]


async def test_group_decisions_are_the_old_ones() -> None:
    rng = random.Random(15)
    new, ref = await _gates()
    codes: Counter[str] = Counter()
    views: Counter[str] = Counter()
    for _ in range(CASES):
        world = World(rng)
        legs = world.legs()
        snap = world.snapshot()
        limits = _limits(rng, legs, snap)
        new.set_limits(limits)
        ref.set_limits(limits)
        views[type(leg_view(snap, legs)).__name__] += 1
        args = [(r, m, None) for r, m in legs]
        got = await new.check_many(
            args, replace(snap, group_cache=dict(snap.group_cache) if snap.group_cache is not None else None)
        )
        want = await ref.check_many(args, snap)
        assert (got.ok, got.reason_code, got.detail) == (want.ok, want.reason_code, want.detail)
        codes[str(got.reason_code) if got.reason_code else "ok"] += 1
    assert new.refusals == ref.refusals
    for code in (
        "ok",
        ReasonCode.MAX_ORDER_NOTIONAL,
        ReasonCode.MAX_MARKET_NOTIONAL,
        ReasonCode.MAX_EVENT_NOTIONAL,
        ReasonCode.MAX_TOTAL_EXPOSURE,
        ReasonCode.INSUFFICIENT_BALANCE,
        ReasonCode.INSUFFICIENT_POSITION,
    ):
        assert codes[str(code)] >= 10, (code, codes)
    assert views["GroupExposure"] > CASES // 2 and views["SnapshotChain"] >= 20, views


def _reference_figures(snap: RefSnapshot, req: OrderRequest, market: MarketInfo) -> list[str]:
    after = snap.with_order(req)
    out = [snap.market_exposure(req.market), after.market_exposure(req.market)]
    if market.neg_risk and market.neg_risk_market_id:
        out += [snap.event_exposure(market.neg_risk_market_id), after.event_exposure(market.neg_risk_market_id)]
    out.append(snap.total_exposure())
    out.append(sum((h.pending_buy for h in snap.holdings.values()), D(0)))
    return [str(x) for x in out]


def test_leg_figures_are_the_old_ones_to_the_exponent() -> None:
    """Every leg's figures (not only the refusing ones): market and event before/after, total, open buys."""
    rng = random.Random(6)
    checked = 0
    for _ in range(600):
        world = World(rng)
        legs = world.legs()
        snap = world.snapshot()
        if not GroupExposure.covers(snap, legs):
            continue
        fast = GroupExposure(snap, [r for r, _ in legs])
        chain = SnapshotChain(replace(snap, group_cache=None))
        ref = as_reference(snap)
        for req, market in legs:
            if req.side is Side.BUY:  # the gate measures exposure for buys only
                want = _reference_figures(ref, req, market)
                got = [str(x) for x in fast.figures(req, market) if x is not None] + [str(fast.committed())]
                chained = [str(x) for x in chain.figures(req, market) if x is not None] + [str(chain.committed())]
                assert got == want == chained, (req, got, want)
            else:
                assert str(fast.committed()) == str(sum((h.pending_buy for h in ref.holdings.values()), D(0)))
            assert fast.holding(req.token_id) == (ref.holdings.get(req.token_id))
            fast.add(req)
            chain.add(req)
            ref = ref.with_order(req)
            checked += 1
    assert checked > 2000
