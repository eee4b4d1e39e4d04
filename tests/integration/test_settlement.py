"""Merge and redeem on a real database (SQLite and PostgreSQL): the paper ledger moves cash and
positions exactly, never more than is held, never twice; dry-run sends nothing; live books only a
CONFIRMED transaction (a fake sender here); wallet types 1-3 are refused with the calldata; the
automatic policies (merge once every leg is confirmed, redeem on resolution)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from decimal import Decimal as D
from typing import Any

import pytest

from core.app.resolution import Resolution
from core.app.settlement import ALERT_KIND, Settlement
from core.app.settlement_plan import Policy, Status, Wallet
from core.chain.types import ChainCall, TxResult, TxStatus
from core.events import Alert, FillEvent
from core.execution.engine import Engine
from core.execution.events import TradeStatus, TradeUpdate
from core.execution.funds import PaperFunds
from core.registry import MarketRegistry
from core.store import models as m
from core.types import Intent, MarketInfo, Mode, OrderType, Side
from tests.integration import engine_world
from tests.integration.engine_world import NO, YES, World

HASH = "0x" + "ab" * 32
# condition ids are 32 bytes on chain: the calldata is built from them
BIN = replace(engine_world.BIN, condition_id="0x" + "b1" * 32)


def neg_risk_market(i: int) -> MarketInfo:
    return replace(engine_world.neg_risk_market(i), condition_id="0x" + f"{i:02d}" * 32)


def intent(*args: Any, market: MarketInfo = BIN, **kw: Any) -> Intent:
    return engine_world.intent(*args, market=market, **kw)


@pytest.fixture
def world(world: World) -> World:
    world.books.set(YES, asks=[("0.45", "100")], bids=[("0.43", "100")])
    world.books.set(NO, asks=[("0.50", "100")], bids=[("0.48", "100")])
    return world


class FakeSender:
    def __init__(self, status: TxStatus = TxStatus.CONFIRMED, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.sent: list[tuple[ChainCall, str, str]] = []
        self.gate: asyncio.Event | None = None

    async def send(self, call: ChainCall, *, purpose: str, ref: str) -> TxResult:
        self.sent.append((call, purpose, ref))
        if self.gate is not None:
            await self.gate.wait()
        tx = None if self.status in (TxStatus.DRY_RUN, TxStatus.REFUSED) else HASH
        return TxResult(call, self.status, tx_hash=tx, error=self.error)


class Tasks:
    def __init__(self) -> None:
        self.running: list[asyncio.Task[None]] = []

    def __call__(self, work: Coroutine[object, object, None], name: str) -> None:
        self.running.append(asyncio.get_running_loop().create_task(work, name=name))

    async def drain(self) -> None:
        while self.running:
            await self.running.pop()


def settlement(
    world: World,
    engine: Engine,
    mode: Mode = Mode.PAPER,
    *,
    sender: FakeSender | None = None,
    wallet: Wallet | None = None,
    policy: Policy | None = None,
    resolved: dict[str, Resolution] | None = None,
    tasks: Tasks | None = None,
) -> Settlement:
    s = Settlement(
        mode=mode,
        engine=engine,
        registry=MarketRegistry([BIN, neg_risk_market(1), neg_risk_market(2)]),
        bus=world.bus,
        resolved=resolved if resolved is not None else {},
        spawn=tasks or Tasks(),
        sender=sender,
        wallet=wallet,
        policy=policy,
        clock=world.clock,
    )
    world.bus.subscribe(FillEvent, s.on_fill)
    return s


async def filled_sets(engine: Engine, size: str = "10") -> None:
    legs = [
        intent(YES, Side.BUY, "0.45", size, OrderType.FOK, group_id="g1"),
        intent(NO, Side.BUY, "0.50", size, OrderType.FOK, group_id="g1"),
    ]
    res = await engine.submit_group(legs, [BIN])
    assert res.ok


async def test_paper_merge_moves_cash_and_positions_exactly(world: World) -> None:
    engine = await world.engine()
    await filled_sets(engine)
    funds = PaperFunds(D(1000), engine.positions)
    cash_before = funds.snapshot().collateral
    assert cash_before == D(1000) - D("9.5")  # 10 x 0.45 + 10 x 0.50, no fee on this market
    assert engine.positions.valuation().locked_edge == D("0.5")
    s = settlement(world, engine)
    [out] = await s.merge(BIN.slug, D(4))
    assert out.status is Status.BOOKED and out.amount == D(4) and out.pusd == D(4)
    assert funds.snapshot().collateral == cash_before + D(4)
    assert engine.positions.get(YES).shares == D(6) and engine.positions.get(NO).shares == D(6)  # type: ignore[union-attr]
    assert engine.positions.realised_total() == D("0.2")  # 4 sets' share of the locked edge
    [out] = await s.merge(BIN.condition_id)  # the rest
    assert out.amount == D(6) and funds.snapshot().collateral == D(1000) + D("0.5")
    assert engine.positions.realised_total() == D("0.5") and engine.positions.open_positions() == []
    assert s.totals.merged_sets == D(10) and s.totals.merged_pusd == D(10)
    audits = await world.store.list_audit(action="merge")
    assert [a.outcome for a in audits] == ["booked", "booked"] and audits[0].mode == "paper"
    # a restart rebuilds the same positions from the stored fills (and their order rows' mode)
    again = await world.engine()
    assert again.positions.open_positions() == [] and again.positions.realised_total() == D("0.5")
    assert {r.mode for r in await world.rows(m.Order)} == {"paper"}


async def test_never_more_than_held_and_never_twice(world: World) -> None:
    engine = await world.engine()
    await filled_sets(engine, "3.12")
    s = settlement(world, engine)
    [mergeable] = s.mergeable()
    assert mergeable.units == 3_120_000  # 10^-6 units
    [over] = await s.merge(BIN.slug, D(4))
    assert over.status is Status.REFUSED and "only 3.12 held" in over.message
    both = await asyncio.gather(s.merge(BIN.slug), s.merge(BIN.slug))
    assert sorted(o.status for o in (both[0][0], both[1][0])) == [Status.BOOKED, Status.NOTHING]
    assert s.totals.merged_sets == D("3.12") and engine.positions.open_positions() == []
    [none] = await s.merge(BIN.slug)
    assert none.status is Status.NOTHING


async def test_auto_merge_once_every_leg_is_confirmed(world: World) -> None:
    engine = await world.engine()
    tasks = Tasks()
    s = settlement(world, engine, policy=Policy(merge="auto"), tasks=tasks)
    # one leg rests (GTC below the ask): its group is not done, nothing is merged
    await engine.submit(intent(YES, Side.BUY, "0.45", "5", OrderType.FOK), BIN)
    await engine.submit(intent(NO, Side.BUY, "0.40", "5", OrderType.GTC), BIN)
    await world.bus.drain()
    await tasks.drain()
    assert s.totals.merged_sets == 0
    # the resting leg fills: every order on the market is final, the 5 sets are merged
    world.books.set(NO, asks=[("0.40", "100")])
    await world.relayer.on_book_update(NO)
    await world.bus.drain()
    await tasks.drain()
    assert s.totals.merged_sets == D(5)
    assert engine.positions.open_positions() == []


async def test_a_merge_leaves_a_sale_still_settling_its_shares(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sale of YES the venue matched, its trade not settled: the YES it sells are spoken for. A
    confirmed fill in the market meanwhile merged every set held, burning shares the sale still
    needed (its trade would then fail on chain); the merge now leaves them to the sale."""
    engine = await world.engine()
    await filled_sets(engine)  # 10 sets held
    tasks = Tasks()
    s = settlement(world, engine, policy=Policy(merge="auto"), tasks=tasks)
    posted = engine_world.venue_answers_matched(monkeypatch, world)
    sale = await engine.submit(intent(YES, Side.SELL, "0.43", "4", OrderType.FOK), BIN)
    assert sale.ok and engine.settling_shares(YES) == D(-4)
    other = engine_world.venue_fill(posted[0], "t-other", confirmed=True)
    s.on_fill(FillEvent(replace(other, client_order_id="pb-other", size=D(1))))  # another trade of the market settles
    await tasks.drain()
    assert s.totals.merged_sets == D(6), "merged the shares a sale still settling had sold"
    assert [m.units for m in s.mergeable(BIN.slug)] == []  # 4 YES for the sale, 4 NO: no set free
    await engine.trade(TradeUpdate(engine_world.venue_fill(posted[0], "t-sale", confirmed=True), TradeStatus.CONFIRMED))
    await world.bus.drain()
    await tasks.drain()
    assert s.totals.merged_sets == D(6)
    assert [(p.token_id, p.shares) for p in engine.positions.open_positions()] == [(NO, D(4))]


async def test_dry_run_describes_the_transaction_and_sends_nothing(world: World) -> None:
    engine = await world.engine()
    await filled_sets(engine)
    sender = FakeSender(TxStatus.DRY_RUN)
    s = settlement(world, engine, Mode.DRY_RUN, sender=sender)
    [out] = await s.merge(BIN.slug)
    assert out.status is Status.DRY_RUN and out.pusd == 0 and out.call is not None
    assert "CtfCollateralAdapter" in out.message and "mergePositions(" in out.message and "nothing sent" in out.message
    assert engine.positions.get(YES).shares == D(10)  # type: ignore[union-attr]
    # without any sender (no RPC) dry-run still describes it
    [out] = await settlement(world, engine, Mode.DRY_RUN).merge(BIN.slug)
    assert out.status is Status.DRY_RUN and out.call is not None and out.call.args[-1] == ("amount", 10_000_000)


async def test_live_confirmed_books_reverted_books_nothing_and_alerts_once(world: World) -> None:
    engine = await world.engine()
    await filled_sets(engine)
    bad = FakeSender(TxStatus.REVERTED, error="execution reverted")
    s = settlement(world, engine, Mode.LIVE, sender=bad)
    [out] = await s.merge(BIN.slug, D(2))
    assert out.status is Status.REVERTED and out.pusd == 0
    assert engine.positions.get(YES).shares == D(10)  # type: ignore[union-attr]
    alerts = [a for a in world.recorder.of(Alert) if a.kind == ALERT_KIND]
    assert len(alerts) == 1
    assert alerts[0].message.startswith(f"merge failed: 2 sets of {BIN.slug}: transaction reverted")
    assert HASH in alerts[0].message
    s.sender = good = FakeSender()
    [out] = await s.merge(BIN.slug, D(2))
    assert out.status is Status.CONFIRMED and out.tx_hash == HASH and out.pusd == D(2)
    assert engine.positions.get(YES).shares == D(8)  # type: ignore[union-attr]
    [(call, purpose, ref)] = good.sent
    assert purpose == "merge" and ref == BIN.condition_id and call.args[-1] == ("amount", 2_000_000)
    assert [a.outcome for a in await world.store.list_audit(action="merge")] == ["reverted", "confirmed"]
    assert len([a for a in world.recorder.of(Alert) if a.kind == ALERT_KIND]) == 1


async def test_stuck_transaction_blocks_a_second_merge_of_the_market(world: World) -> None:
    engine = await world.engine()
    await filled_sets(engine)
    s = settlement(world, engine, Mode.LIVE, sender=FakeSender(TxStatus.STUCK))
    [out] = await s.merge(BIN.slug)
    assert out.status is Status.STUCK
    s.sender = FakeSender()
    [again] = await s.merge(BIN.slug)
    assert again.status is Status.REFUSED and HASH in again.message


@pytest.mark.parametrize("signature_type", [1, 2, 3])
async def test_proxy_safe_and_deposit_wallets_are_refused_with_the_calldata(world: World, signature_type: int) -> None:
    engine = await world.engine()
    await filled_sets(engine)
    sender = FakeSender()
    funder = "0x" + "12" * 20
    s = settlement(world, engine, Mode.LIVE, sender=sender, wallet=Wallet(signature_type, funder))
    [out] = await s.merge(BIN.slug)
    assert out.status is Status.REFUSED and sender.sent == []
    assert f"signature type {signature_type}" in out.message and funder in out.message
    assert out.call is not None and "0x" + out.call.data.hex() in out.message
    assert engine.positions.get(YES).shares == D(10)  # type: ignore[union-attr]


async def test_live_without_a_sender_is_refused(world: World) -> None:
    engine = await world.engine()
    await filled_sets(engine)
    [out] = await settlement(world, engine, Mode.LIVE).merge(BIN.slug)
    assert out.status is Status.REFUSED and "rpc_url" in out.message


async def test_redeem_pays_the_winner_and_closes_the_losers(world: World) -> None:
    engine = await world.engine()
    await engine.submit(intent(YES, Side.BUY, "0.45", "10", OrderType.FOK), BIN)
    await engine.submit(intent(NO, Side.BUY, "0.50", "4", OrderType.FOK), BIN)
    funds = PaperFunds(D(1000), engine.positions)
    resolved: dict[str, Resolution] = {}
    tasks = Tasks()
    s = settlement(world, engine, resolved=resolved, policy=Policy(redeem="auto"), tasks=tasks)
    [early] = await s.redeem(BIN.slug)
    assert early.status is Status.REFUSED and "has not resolved" in early.message
    res = Resolution(BIN.condition_id, YES, "Yes", "feed")
    resolved[res.condition_id] = res
    [r] = s.redeemable()
    assert r.winning_shares == D(10) and r.payout == D(10)
    s.on_resolved(res)
    await tasks.drain()
    assert funds.snapshot().collateral == D(1000) - D("6.5") + D(10)
    assert engine.positions.open_positions() == []
    assert engine.positions.realised_total() == D("3.5")  # 10 - 4.5 on YES, -2 on NO
    assert s.totals.redeemed_shares == D(10) and s.totals.redeemed_pusd == D(10)
    assert await s.redeem() == [] and s.redeemable() == []


async def test_neg_risk_event_merges_its_questions_pairs_only(world: World) -> None:
    engine = await world.engine()
    q1, q2 = neg_risk_market(1), neg_risk_market(2)
    engine.register_markets([q1, q2])
    engine.set_event_markets("EV", [q1.condition_id, q2.condition_id])
    for token in ("101", "102", "201"):
        world.books.set(token, asks=[("0.40", "100")])
    for token, market in (("101", q1), ("102", q1), ("201", q2)):
        await engine.submit(intent(token, Side.BUY, "0.40", "3", OrderType.FOK, market=market), market)
    s = settlement(world, engine)
    assert s.event_sets() == {"EV": D(3)}
    outs = await s.merge("EV")
    assert [(o.condition_id, o.status) for o in outs] == [
        (q1.condition_id, Status.BOOKED),
        (q2.condition_id, Status.NOTHING),
    ]
    assert outs[0].call is not None and outs[0].call.contract == "NegRiskCtfCollateralAdapter"
    assert s.event_sets() == {}
