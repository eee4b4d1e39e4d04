"""What can be merged: min(YES, NO) in 10^-6 units rounded down, bounded by the venue's balances;
how a merge and a redeem are booked (prices that pay exactly 1 per set / per winning share)."""

from __future__ import annotations

from decimal import Decimal as D

from core.app import settlement_plan as plan
from core.execution.positions import Position, PositionBook
from core.types import MarketInfo, TokenInfo

M = MarketInfo("0x" + "aa" * 32, "Q?", "q", (TokenInfo("y", "Yes"), TokenInfo("n", "No")))


def book(yes: str, no: str, cost_yes: str = "1", cost_no: str = "1") -> PositionBook:
    b = PositionBook()
    b.load([Position("y", M.condition_id, D(yes), D(cost_yes)), Position("n", M.condition_id, D(no), D(cost_no))])
    return b


def test_units_round_down_and_the_venue_bounds_what_is_held() -> None:
    assert plan.to_units(D("3.1234567")) == 3_123_456
    assert plan.to_units(D("-1")) == 0
    found = plan.mergeable(book("3.1234567", "5"), M)
    assert found is not None and found.units == 3_123_456 and found.sets == D("3.123456")
    bounded = plan.mergeable(book("5", "5"), M, {"y": D("2.5")})
    assert bounded is not None and bounded.units == 2_500_000


def test_merge_legs_pay_exactly_one_per_set() -> None:
    b = book("10", "10", "4.5", "5")
    legs = plan.merge_legs(b, M, 4_000_000)
    assert legs == [("y", D("0.450000"), D(4)), ("n", D("0.550000"), D(4))]
    assert sum(p * s for _, p, s in legs) == D(4)


def test_redeem_legs_pay_the_winner_only() -> None:
    r = plan.redeemable(book("10", "4"), M, "", "Yes")
    assert r.winning_token == "y" and r.payout == D(10)
    assert plan.redeem_legs(book("10", "4"), r) == [("y", D(1), D(10)), ("n", D(0), D(4))]
