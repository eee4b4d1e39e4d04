"""Engine on a real database (SQLite and PostgreSQL): retry bounds, Retry-After, and every refusal
reason reaching the caller and exec_audit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal as D

from core.events import Alert, AlertKind, OrderEvent
from core.execution.funds import Funds
from core.execution.risk_gate import RiskLimits
from core.execution.rules import ReasonCode
from core.execution.types import ErrorClass, OrderStatus, Outcome
from core.types import BookStatus, OrderType, Side, TokenInfo
from tests.integration.engine_world import (
    BIN,
    NO,
    YES,
    World,
    assert_exposure_consistent,
    intent,
    neg_risk_market,
)


class Bankroll:
    """Funds the test sets: plenty, except while it checks the balance refusal."""

    PLENTY = D("1000000")

    def __init__(self) -> None:
        self.collateral = self.PLENTY

    def snapshot(self) -> Funds:
        return Funds(self.collateral, None, f"test bankroll {self.collateral} pUSD")

    async def ensure(self, token_ids: Iterable[str]) -> None:
        return None


async def test_retries_stop_exactly_at_the_configured_bounds(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine(
        relayer_max_retries=2, relayer_retry_sleep_ms=150, engine_max_retries=1, engine_retry_sleep_ms=2000
    )
    world.inject.next(Outcome.RETRYABLE, times=100)
    res = await engine.submit(intent(), BIN)
    assert world.relayer.place_calls == (1 + 1) * (2 + 1)
    assert not res.ok and res.status is OrderStatus.FAILED and res.attempts == 6
    assert world.sleeps.calls == [0.15, 0.15, 2.0, 0.15, 0.15]
    audit = await world.store.list_audit(res.client_order_id, action="place")
    assert [a.attempt for a in audit] == [1, 2, 3, 4, 5, 6]
    assert {a.outcome for a in audit} == {"retryable"} and {a.error_class for a in audit} == {"5xx"}
    assert all(a.latency_ms is not None for a in audit)


async def test_no_retries_rejections_are_final_and_a_long_retry_after_gives_up(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine(relayer_max_retries=0, engine_max_retries=0)
    world.inject.next(Outcome.RETRYABLE, times=5)
    assert (await engine.submit(intent(), BIN)).attempts == 1
    world.inject.clear()
    engine2 = await world.engine(relayer_max_retries=3, engine_max_retries=3, max_retry_after_s=30)
    world.inject.next(Outcome.REJECTED, error="not enough balance / allowance")
    res = await engine2.submit(intent(seq=2), BIN)
    assert res.status is OrderStatus.REJECTED and res.detail == "not enough balance / allowance"
    assert world.relayer.place_calls == 2 and world.sleeps.calls == []
    # 425 during the weekly restart with a 90 s Retry-After: beyond the cap, stop at once
    world.inject.next(Outcome.RETRYABLE, retry_after_s=90, error_class=ErrorClass.MAINTENANCE)
    res = await engine2.submit(intent(seq=3), BIN)
    assert res.status is OrderStatus.FAILED and "Retry-After 90s" in res.detail
    assert world.relayer.place_calls == 3 and world.sleeps.calls == []


async def test_429_honours_retry_after(world: World) -> None:
    world.books.set(YES, asks=[("0.50", "100")])
    engine = await world.engine(relayer_retry_sleep_ms=100)
    world.inject.next(Outcome.RETRYABLE, retry_after_s=2.5, error="Too Many Requests")
    res = await engine.submit(intent(order_type=OrderType.FOK), BIN)
    assert res.ok and res.status is OrderStatus.FILLED and res.attempts == 2
    assert world.sleeps.calls == [2.5]
    [first, second] = await world.store.list_audit(res.client_order_id, action="place")
    assert (first.error_class, second.outcome) == ("429", "accepted")


async def test_engine_retry_round_rechecks_the_gate(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])

    async def disarm_while_waiting(seconds: float) -> None:
        world.sleeps.calls.append(seconds)
        await engine.risk.disarm("alice", "stop")

    engine = await world.engine(relayer_max_retries=0, engine_max_retries=3, sleep=disarm_while_waiting)
    world.inject.next(Outcome.RETRYABLE, times=10)
    res = await engine.submit(intent(), BIN)
    assert world.relayer.place_calls == 1 and res.status is OrderStatus.FAILED
    assert "not_armed" in res.detail
    refused = await world.store.list_audit(res.client_order_id, action="refused")
    assert [(a.error_class, a.attempt) for a in refused] == [("not_armed", 2)]


async def test_every_refusal_reason_reaches_the_caller_and_the_audit_table(world: World) -> None:
    limits = replace(
        RiskLimits.configured(),
        max_order_notional=D("100"),
        max_market_notional=D("30"),
        max_event_notional=D("40"),
        max_total_exposure=D("60"),
        daily_loss_limit=D("5"),
        error_breaker_max_errors=3,
        error_breaker_window_s=60,
    )
    for token in (YES, NO, "101", "201", "301", "401"):
        world.books.set(token, asks=[("0.90", "1000")], bids=[("0.10", "1000")])
    world.books.set("STALE").book_status = BookStatus.STALE
    bankroll = Bankroll()
    engine = await world.engine(limits=limits, arm=False, relayer_max_retries=0, engine_max_retries=0, funds=bankroll)
    m1, m2, m3 = neg_risk_market(1), neg_risk_market(2), neg_risk_market(3)
    other = replace(BIN, condition_id="0xother", tokens=(TokenInfo("401", "Yes"), TokenInfo("402", "No")))
    seen: dict[ReasonCode, str] = {}

    async def expect(code: ReasonCode, res_coro: object) -> None:
        res = await res_coro  # type: ignore[misc]
        assert (res.ok, res.reason_code, res.status) == (False, code, None), res.detail
        assert res.detail
        seen[code] = res.client_order_id

    await expect(ReasonCode.NOT_ARMED, engine.submit(intent(), BIN))
    assert (await engine.risk.arm("alice")).ok
    await expect(ReasonCode.MARKET_CLOSED, engine.submit(intent(), replace(BIN, closed=True)))
    await expect(ReasonCode.BOOK_NOT_OK, engine.submit(intent("STALE"), BIN))
    await expect(ReasonCode.PRICE_OFF_TICK, engine.submit(intent(price="0.505"), BIN))
    await expect(ReasonCode.INVALID_SIZE, engine.submit(intent(size="10.001"), BIN))
    await expect(ReasonCode.SIZE_BELOW_MIN, engine.submit(intent(size="4"), BIN))
    await expect(ReasonCode.MAX_ORDER_NOTIONAL, engine.submit(intent(price="0.50", size="201"), BIN))
    # the venue's rules: a GTD needs an expiry at least a minute away; post-only is never marketable
    soon = replace(intent(order_type=OrderType.GTD), expiration=int(world.clock()) + 59)
    await expect(ReasonCode.INVALID_EXPIRATION, engine.submit(soon, BIN))
    await expect(
        ReasonCode.INVALID_ORDER_TYPE, engine.submit(replace(intent(order_type=OrderType.FAK), post_only=True), BIN)
    )
    # a crossing GTC (ask 0.90) is marketable: the $1 minimum applies, not only to FOK/FAK
    world.books.set("CROSS", asks=[("0.10", "1000")], bids=[("0.05", "1000")])
    await expect(ReasonCode.SIZE_BELOW_MIN, engine.submit(intent("CROSS", price="0.10", size="5", seq=1), BIN))
    # nothing held: nothing to sell
    await expect(ReasonCode.INSUFFICIENT_POSITION, engine.submit(intent(NO, Side.SELL, "0.50", "5"), BIN))
    # money: a bankroll smaller than the order
    bankroll.collateral = D("2")
    await expect(ReasonCode.INSUFFICIENT_BALANCE, engine.submit(intent(price="0.50", size="5", seq=2), BIN))
    bankroll.collateral = Bankroll.PLENTY
    # exposure: a resting 25 on the binary market, then 5 more would be 30.5 > 30
    assert (await engine.submit(intent(price="0.50", size="50"), BIN)).ok
    await expect(ReasonCode.MAX_MARKET_NOTIONAL, engine.submit(intent(YES, price="0.50", size="11"), BIN))
    # neg-risk event: 20 resting on outcome 1; 22.5 more on outcome 2 is 42.5 if neither wins
    assert (await engine.submit(intent("101", price="0.50", size="40", market=m1), m1)).ok
    await expect(ReasonCode.MAX_EVENT_NOTIONAL, engine.submit(intent("201", price="0.50", size="45", market=m2), m2))
    # total: 25 (binary) + 25 (event, if neither outcome wins) = 50; 15 more elsewhere is 65 > 60
    assert (await engine.submit(intent("301", price="0.50", size="10", market=m3), m3)).ok
    await expect(
        ReasonCode.MAX_TOTAL_EXPOSURE, engine.submit(intent("401", price="0.50", size="30", market=other), other)
    )
    # three venue errors trip the breaker
    world.inject.next(Outcome.REJECTED, times=3)
    for i in range(3):
        assert (
            await engine.submit(intent(NO, price="0.20", size="5", seq=100 + i), BIN)
        ).status is OrderStatus.REJECTED
    await expect(ReasonCode.ERROR_RATE_BREAKER, engine.submit(intent(NO, price="0.20", size="5"), BIN))
    world.clock.advance(61)
    while engine.risk.order_bucket.try_take():
        pass
    await expect(ReasonCode.ORDER_RATE_LIMITED, engine.submit(intent(NO, price="0.20", size="5"), BIN))
    world.clock.advance(1)
    # a realised loss beyond a (reloaded, lower) daily limit: buy 10 at 0.90, sell them at 0.10
    assert (await engine.submit(intent(NO, price="0.90", size="10", order_type=OrderType.FOK), BIN)).ok
    engine.risk.set_limits(replace(limits, daily_loss_limit=D("100")))
    assert (await engine.submit(intent(NO, Side.SELL, "0.10", "10", OrderType.FOK), BIN)).ok
    assert engine.positions.daily_realised() == D("-8.00") and engine.risk.armed
    engine.risk.set_limits(replace(limits, daily_loss_limit=D("5")))
    await expect(ReasonCode.DAILY_LOSS_LIMIT, engine.submit(intent(NO, price="0.20", size="5"), BIN))
    assert not engine.risk.armed

    assert_exposure_consistent(engine)
    assert set(seen) == set(ReasonCode)
    for code, coid in seen.items():
        rows = [r for r in await world.store.list_audit(coid, action="refused") if r.error_class == str(code)]
        assert rows, f"no refused audit row for {code}"
        assert rows[-1].outcome == "refused" and rows[-1].error
        assert rows[-1].request is not None and rows[-1].request["reason_code"] == str(code)
    refused_events = [e for e in world.recorder.of(OrderEvent) if e.status == "refused"]
    assert {e.reason_code for e in refused_events} == {str(c) for c in ReasonCode}
    assert any(a.kind == AlertKind.ERROR_RATE for a in world.recorder.of(Alert))
