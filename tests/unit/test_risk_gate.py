"""Risk gate: start disarmed, every reason code, rate buckets, error breaker, daily loss, kill, worst-case exposure."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.events import Alert, AlertCleared, AlertKind, EventBus, Recorder, StateChanged
from core.execution.exposure import ExposureSnapshot, Holding, yes_no_tokens
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.rules import ReasonCode
from core.execution.store import MemoryExecutionStore
from core.execution.throttle import TokenBucket
from core.execution.types import CancelResult, OrderRequest
from core.store.models import ARMED_KEY
from core.types import BookStatus, MarketInfo, OrderType, Side, TokenInfo

T0 = 1_767_268_800.0  # 2026-01-01T12:00:00Z


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


BINARY = MarketInfo("0xbin", "Q?", "q", (TokenInfo("Y1", "Yes"), TokenInfo("N1", "No")))


def neg_risk_market(i: int, event: str = "EV") -> MarketInfo:
    return MarketInfo(
        f"0xnr{i}",
        f"outcome {i}?",
        f"o{i}",
        (TokenInfo(f"Y{i}x", "Yes"), TokenInfo(f"N{i}x", "No")),
        neg_risk=True,
        neg_risk_market_id=event,
    )


def order(
    token: str = "Y1",
    price: str = "0.50",
    size: str = "10",
    side: Side = Side.BUY,
    market: str = "0xbin",
    order_type: OrderType = OrderType.GTC,
) -> OrderRequest:
    return OrderRequest("c", market, token, side, D(price), D(size), order_type)


async def make(
    limits: RiskLimits | None = None, clock: Clock | None = None
) -> tuple[RiskGate, MemoryExecutionStore, Recorder, Clock]:
    clock = clock or Clock()
    store = MemoryExecutionStore()
    bus = EventBus()
    rec = Recorder(bus)
    gate = RiskGate(limits or RiskLimits.configured(), store, clock, bus)
    await gate.start()
    return gate, store, rec, clock


async def armed(limits: RiskLimits | None = None) -> tuple[RiskGate, MemoryExecutionStore, Recorder, Clock]:
    gate, store, rec, clock = await make(limits)
    assert (await gate.arm("tester")).ok
    return gate, store, rec, clock


# -- arm state ----------------------------------------------------------------------------------


async def test_first_start_is_disarmed_and_persisted() -> None:
    gate, store, rec, _ = await make()
    assert not gate.armed
    assert store.state[ARMED_KEY]["armed"] is False
    assert rec.of(Alert) == []


async def test_start_resets_an_armed_state_and_records_it() -> None:
    clock = Clock()
    store = MemoryExecutionStore()
    store.state[ARMED_KEY] = {"armed": True, "by": "alice", "reason": "armed", "ts": T0 - 100}
    bus = EventBus()
    rec = Recorder(bus)
    gate = RiskGate(RiskLimits.configured(), store, clock, bus)
    assert await gate.start() is True
    assert not gate.armed
    assert store.state[ARMED_KEY]["armed"] is False
    [reset] = [a for a in store.audit if a.action == "reset"]
    assert "alice" in (reset.error or "")
    [changed] = rec.of(StateChanged)
    assert changed.armed is False and changed.by == "system"
    [alert] = rec.of(Alert)
    assert alert.kind == AlertKind.RESET_ON_START


async def test_arm_disarm_are_persisted_audited_and_published() -> None:
    gate, store, rec, _ = await make()
    assert (await gate.arm("alice")).ok
    assert gate.armed and store.state[ARMED_KEY]["by"] == "alice"
    await gate.disarm("bob", "lunch")
    assert not gate.armed and store.state[ARMED_KEY] == {"armed": False, "by": "bob", "reason": "lunch", "ts": T0}
    assert [a.action for a in store.audit] == ["arm", "disarm"]
    assert [(e.armed, e.by) for e in rec.of(StateChanged)] == [(True, "alice"), (False, "bob")]


# -- reason codes -------------------------------------------------------------------------------


async def test_not_armed() -> None:
    gate, *_ = await make()
    d = await gate.check(order(), BINARY, ExposureSnapshot())
    assert (d.ok, d.reason_code) == (False, ReasonCode.NOT_ARMED)
    assert gate.refusals[ReasonCode.NOT_ARMED] == 1


@pytest.mark.parametrize(
    ("req", "market", "book", "code"),
    [
        (order(), replace(BINARY, closed=True), None, ReasonCode.MARKET_CLOSED),
        (order(), BINARY, BookStatus.STALE, ReasonCode.BOOK_NOT_OK),
        (order(), BINARY, BookStatus.AWAITING_SNAPSHOT, ReasonCode.BOOK_NOT_OK),
        (order(price="0.505"), BINARY, BookStatus.OK, ReasonCode.PRICE_OFF_TICK),
        (order(price="1.00"), BINARY, None, ReasonCode.PRICE_OFF_TICK),
        (order(price="0.001"), replace(BINARY, tick_size=D("0.01")), None, ReasonCode.PRICE_OFF_TICK),
        (order(size="5.555"), BINARY, None, ReasonCode.INVALID_SIZE),
        (order(size="0"), BINARY, None, ReasonCode.INVALID_SIZE),
        (order(size="4.99"), BINARY, None, ReasonCode.SIZE_BELOW_MIN),
        (order(price="0.10", size="9", order_type=OrderType.FOK), BINARY, None, ReasonCode.SIZE_BELOW_MIN),
        (order(price="0.50", size="201"), BINARY, None, ReasonCode.MAX_ORDER_NOTIONAL),
        (order(price="0.50", size="201", side=Side.SELL), BINARY, None, ReasonCode.MAX_ORDER_NOTIONAL),
    ],
)
async def test_order_level_reason_codes(
    req: OrderRequest, market: MarketInfo, book: BookStatus | None, code: ReasonCode
) -> None:
    gate, *_ = await armed()
    d = await gate.check(req, market, ExposureSnapshot(), book_status=book)
    assert (d.ok, d.reason_code) == (False, code), d.detail
    assert d.detail


async def test_a_small_fok_and_a_minimum_gtc_pass() -> None:
    gate, *_ = await armed()
    assert (await gate.check(order(price="0.10", size="10", order_type=OrderType.FOK), BINARY, ExposureSnapshot())).ok
    assert (await gate.check(order(size="5"), BINARY, ExposureSnapshot(), book_status=BookStatus.OK)).ok


async def test_market_limit_counts_positions_and_open_buys() -> None:
    gate, *_ = await armed(replace(RiskLimits.configured(), max_market_notional=D("20")))
    snap = ExposureSnapshot(
        holdings={"Y1": Holding("Y1", "0xbin", D("20"), D("10")), "N1": Holding("N1", "0xbin", pending_buy=D("6"))},
        markets={BINARY.condition_id: BINARY},
    )
    # worst case now: NO wins -> lose 10 on YES; YES wins -> 10 - 20 + 6 = -4. So 10.
    assert snap.market_exposure("0xbin") == D("10")
    d = await gate.check(order("Y1", "0.50", "21"), BINARY, snap)
    assert d.reason_code is ReasonCode.MAX_MARKET_NOTIONAL
    assert "20.50" in d.detail
    assert (await gate.check(order("Y1", "0.50", "20"), BINARY, snap)).ok


async def test_hedging_buys_are_allowed_even_above_the_limit() -> None:
    gate, *_ = await armed(replace(RiskLimits.configured(), max_market_notional=D("10")))
    snap = ExposureSnapshot(holdings={"Y1": Holding("Y1", "0xbin", D("40"), D("20"))}, markets={"0xbin": BINARY})
    assert snap.market_exposure("0xbin") == D("20")  # already above the limit
    # buying NO reduces the worst case (NO wins: 20 + 8 - 20 = 8; YES wins: 28 - 40 < 0)
    assert (await gate.check(order("N1", "0.40", "20"), BINARY, snap)).ok
    assert (await gate.check(order("Y1", "0.40", "20"), BINARY, snap)).reason_code is ReasonCode.MAX_MARKET_NOTIONAL


async def test_event_limit_is_the_worst_case_across_outcomes() -> None:
    m1, m2, m3 = neg_risk_market(1), neg_risk_market(2), neg_risk_market(3)
    markets = {m.condition_id: m for m in (m1, m2, m3)}
    gate, *_ = await armed(replace(RiskLimits.configured(), max_event_notional=D("12"), max_market_notional=D("100")))
    held = {
        "Y1x": Holding("Y1x", "0xnr1", D("10"), D("3")),
        "Y2x": Holding("Y2x", "0xnr2", D("10"), D("3")),
    }
    snap = ExposureSnapshot(holdings=held, markets=markets)
    # outcome 3 or "something else" wins: lose 6; outcome 1 wins: 6 - 10 < 0
    assert snap.event_exposure("EV") == D("6")
    d = await gate.check(order("Y3x", "0.35", "20", market="0xnr3"), m3, snap)
    assert d.reason_code is ReasonCode.MAX_EVENT_NOTIONAL, d.detail
    # knowing the event is complete (3 outcomes), buying the last leg locks the set: 9.5 - 10 < 0
    complete = ExposureSnapshot(held, markets, complete_events={"EV": frozenset(markets)})
    after = complete.with_order(order("Y3x", "0.35", "10", market="0xnr3"))
    # pending buys count adversarially: if outcome 3 wins the leg did not fill (lose 6); if 1 or 2
    # wins it filled and lost (6 - 10 + 3.5): the last leg of a complete set adds no worst case
    assert after.event_exposure("EV") == D("6")
    assert (await gate.check(order("Y3x", "0.35", "10", market="0xnr3"), m3, complete)).ok
    filled = ExposureSnapshot(
        {**held, "Y3x": Holding("Y3x", "0xnr3", D("10"), D("3.5"))}, markets, {"EV": frozenset(markets)}
    )
    assert filled.event_exposure("EV") == 0
    # an augmented event never counts as complete
    aug = {k: replace(v, neg_risk_augmented=True) for k, v in markets.items()}
    aug_snap = ExposureSnapshot(filled.holdings, aug, {"EV": frozenset(aug)})
    assert aug_snap.event_exposure("EV") == D("9.5")


async def test_total_exposure_sums_events_and_markets() -> None:
    m1 = neg_risk_market(1)
    snap = ExposureSnapshot(
        holdings={
            "Y1": Holding("Y1", "0xbin", D("10"), D("4")),
            "Y1x": Holding("Y1x", "0xnr1", D("10"), D("2")),
            "ZZ": Holding("ZZ", "", D("1"), D("0.5"), pending_buy=D("1")),
        },
        markets={"0xbin": BINARY, "0xnr1": m1},
    )
    assert snap.total_exposure() == D("4") + D("2") + D("1.5")
    gate, *_ = await armed(replace(RiskLimits.configured(), max_total_exposure=D("10")))
    d = await gate.check(order("Y1", "0.50", "6"), BINARY, snap)
    assert d.reason_code is ReasonCode.MAX_TOTAL_EXPOSURE


async def test_sells_never_count_as_new_exposure() -> None:
    gate, *_ = await armed(replace(RiskLimits.configured(), max_market_notional=D("1"), max_total_exposure=D("1")))
    snap = ExposureSnapshot(holdings={"Y1": Holding("Y1", "0xbin", D("100"), D("50"))}, markets={"0xbin": BINARY})
    assert (await gate.check(order("Y1", "0.50", "100", side=Side.SELL), BINARY, snap)).ok


async def test_order_rate_bucket_refuses_above_burst_and_refills() -> None:
    gate, _, _, clock = await armed(replace(RiskLimits.configured(), orders_per_s=30, order_burst=50))
    for _ in range(50):
        assert (await gate.check(order(), BINARY, ExposureSnapshot())).ok
    d = await gate.check(order(), BINARY, ExposureSnapshot())
    assert d.reason_code is ReasonCode.ORDER_RATE_LIMITED
    clock.advance(1 / 30)
    assert (await gate.check(order(), BINARY, ExposureSnapshot())).ok
    # refusals for other reasons do not spend tokens
    assert (await gate.check(order(size="1"), BINARY, ExposureSnapshot())).reason_code is ReasonCode.SIZE_BELOW_MIN
    clock.advance(1 / 30)
    assert (await gate.check(order(), BINARY, ExposureSnapshot())).ok


async def test_group_check_needs_tokens_for_every_leg() -> None:
    gate, *_ = await armed(replace(RiskLimits.configured(), orders_per_s=1, order_burst=3))
    legs = [(order(t), BINARY, None) for t in ("Y1", "N1")]
    assert (await gate.check_many(legs, ExposureSnapshot())).ok
    d = await gate.check_many(legs, ExposureSnapshot())
    assert d.reason_code is ReasonCode.ORDER_RATE_LIMITED
    assert gate.order_bucket.tokens == pytest.approx(1.0)  # an all-or-nothing take


async def test_cancel_bucket_is_separate_and_reports_the_wait() -> None:
    gate, _, _, clock = await make(replace(RiskLimits.configured(), cancels_per_s=60, cancel_burst=100))
    assert all(gate.take_cancel_token() == 0.0 for _ in range(100))
    wait = gate.take_cancel_token()
    assert wait == pytest.approx(1 / 60, rel=1e-3)
    clock.advance(wait)
    assert gate.take_cancel_token() == 0.0
    assert gate.order_bucket.tokens == 50  # untouched


def test_token_bucket_validation() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, lambda: 0.0)


async def test_error_breaker_trips_alerts_and_clears() -> None:
    gate, _, rec, clock = await armed(
        replace(RiskLimits.configured(), error_breaker_max_errors=3, error_breaker_window_s=10)
    )
    gate.record_order_error()
    clock.advance(1)
    gate.record_order_error()
    assert (await gate.check(order(), BINARY, ExposureSnapshot())).ok
    gate.record_order_error()
    d = await gate.check(order(), BINARY, ExposureSnapshot())
    assert d.reason_code is ReasonCode.ERROR_RATE_BREAKER
    [alert] = [a for a in rec.of(Alert) if a.kind == AlertKind.ERROR_RATE]
    assert alert.severity == "critical"
    clock.advance(9.5)  # the first error ages out
    assert (await gate.check(order(), BINARY, ExposureSnapshot())).ok
    assert [c.kind for c in rec.of(AlertCleared)] == [AlertKind.ERROR_RATE]


async def test_daily_loss_disarms_once_alerts_and_blocks_arming_until_the_next_day() -> None:
    gate, store, rec, clock = await armed(replace(RiskLimits.configured(), daily_loss_limit=D("50")))
    await gate.on_daily_realised(D("-49.99"))
    assert gate.armed
    await gate.on_daily_realised(D("-50"))
    assert not gate.armed
    [alert] = [a for a in rec.of(Alert) if a.kind == AlertKind.DAILY_LOSS]
    assert alert.severity == "critical" and "-50" in alert.message
    refused = await gate.arm("alice")
    assert refused.reason_code is ReasonCode.DAILY_LOSS_LIMIT
    assert [a.outcome for a in store.audit if a.action == "arm"][-1] == "refused"
    await gate.on_daily_realised(D("-60"))
    assert len([a for a in rec.of(Alert) if a.kind == AlertKind.DAILY_LOSS]) == 1  # alerted once per day
    clock.advance(12 * 3600 + 1)  # past midnight UTC: a new day
    assert (await gate.arm("alice")).ok


async def test_daily_loss_in_the_snapshot_refuses_and_disarms() -> None:
    gate, _, rec, _ = await armed(replace(RiskLimits.configured(), daily_loss_limit=D("10")))
    d = await gate.check(order(), BINARY, ExposureSnapshot(daily_realised=D("-10.5")))
    assert d.reason_code is ReasonCode.DAILY_LOSS_LIMIT
    assert not gate.armed
    assert [a.kind for a in rec.of(Alert)] == [AlertKind.DAILY_LOSS]


async def test_kill_disarms_and_cancels_through_the_engine() -> None:
    gate, store, rec, _ = await armed()
    calls: list[str] = []

    async def cancel_all() -> CancelResult:
        calls.append("cancel_all")
        return CancelResult(canceled=("a", "b"), not_canceled={"c": "matched"})

    gate.set_canceller(cancel_all)
    res = await gate.kill("alice")
    assert not gate.armed and calls == ["cancel_all"]
    assert res.canceled == 2 and res.not_canceled == {"c": "matched"}
    assert [a.action for a in store.audit][-2:] == ["disarm", "kill"]
    assert any(a.kind == AlertKind.KILL_SWITCH for a in rec.of(Alert))


async def test_kill_reports_a_failing_canceller_without_raising() -> None:
    gate, *_ = await armed()

    async def broken() -> CancelResult:
        raise ConnectionError("venue down")

    gate.set_canceller(broken)
    res = await gate.kill("alice")
    assert not gate.armed and "venue down" in res.error


def test_limits_sanity_for_preflight() -> None:
    assert RiskLimits.configured().problems() == []
    bad = replace(
        RiskLimits.configured(),
        max_order_notional=D("500"),
        max_market_notional=D("100"),
        orders_per_s=45,
        cancel_burst=200,
    )
    problems = "\n".join(bad.problems())
    assert "max_order_notional (500) exceeds max_market_notional" in problems
    assert "order bucket" in problems and "cancel bucket" in problems
    assert replace(RiskLimits.configured(), daily_loss_limit=D("-1")).problems()


def test_yes_no_tokens_handles_either_order() -> None:
    assert yes_no_tokens(BINARY) == ("Y1", "N1")
    flipped = replace(BINARY, tokens=(TokenInfo("N1", "No"), TokenInfo("Y1", "Yes")))
    assert yes_no_tokens(flipped) == ("Y1", "N1")
