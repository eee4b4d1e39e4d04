"""Group figures: the cause rule for a failed leg, counting once per group, expected vs realised edge."""

from __future__ import annotations

from decimal import Decimal as D

from core.execution.group_stats import Cause, FailedLeg, GroupStats, group_cause, leg_cause
from core.execution.types import ErrorClass
from core.types import OrderStatus, OrderType, Side
from polybot.cli.tools.replay_groups import replay_groups

FOK, FAK, GTC = OrderType.FOK, OrderType.FAK, OrderType.GTC
KILLED = "order couldn't be fully filled. FOK orders are fully filled or killed."


def test_the_cause_of_a_failed_leg() -> None:
    rejected = FailedLeg(FOK, OrderStatus.REJECTED, "not enough balance / allowance", ErrorClass.BAD_REQUEST)
    assert leg_cause(rejected) is Cause.VENUE_REJECTED
    assert leg_cause(FailedLeg(FOK, OrderStatus.FAILED, "server error", ErrorClass.SERVER)) is Cause.VENUE_REJECTED
    # a kill: the paper relayer's (canceled, no error class) and the venue's (rejected 400 with its text)
    assert leg_cause(FailedLeg(FOK, OrderStatus.CANCELED, KILLED)) is Cause.BOOK_MOVED
    assert leg_cause(FailedLeg(FOK, OrderStatus.REJECTED, KILLED, ErrorClass.BAD_REQUEST)) is Cause.BOOK_MOVED
    fak = FailedLeg(FAK, OrderStatus.CANCELED, "no orders found to match with FAK order.")
    assert leg_cause(fak) is Cause.BOOK_MOVED
    # a FAK that filled part and was canceled short by the venue
    assert leg_cause(FailedLeg(FAK, OrderStatus.CANCELED)) is Cause.BOOK_MOVED
    # a GTC canceled (not a kill) is not a moved book
    assert leg_cause(FailedLeg(GTC, OrderStatus.CANCELED, "canceled by the venue")) is Cause.VENUE_REJECTED
    # timed out / unknown outcome
    assert leg_cause(FailedLeg(FOK, OrderStatus.FAILED, "x", ErrorClass.TIMEOUT)) is Cause.LATENCY
    assert leg_cause(FailedLeg(FOK, OrderStatus.FAILED, "x", ErrorClass.UNKNOWN_OUTCOME)) is Cause.LATENCY
    # a kill answered after the budget: the book moved during our latency
    late = FailedLeg(FOK, OrderStatus.CANCELED, KILLED, answered_after_s=0.25)
    assert leg_cause(late, latency_budget_s=0.1) is Cause.LATENCY
    assert leg_cause(late, latency_budget_s=0.5) is Cause.BOOK_MOVED
    assert leg_cause(late) is Cause.BOOK_MOVED  # no budget configured
    # one cause per group: venue rejection first, then latency, then a moved book
    assert group_cause([late, rejected], 0.1) is Cause.VENUE_REJECTED
    assert group_cause([FailedLeg(FOK, OrderStatus.CANCELED, KILLED), late], 0.1) is Cause.LATENCY


def test_figures_count_each_group_once_and_book_the_realised_edge() -> None:
    s = GroupStats()
    # completed: 10 sets bought for 9.5 + 0.05 fees
    s.sent("g1", ["a1", "b1"], D("10"), D("0.45"))
    s.fill("a1", Side.BUY, D("10"), D("4.50"), D("0.02"))
    s.fill("b1", Side.BUY, D("10"), D("5.00"), D("0.03"))
    s.completed("g1")
    s.completed("g1")
    # one-legged, unwound: bought 10 x 0.45, sold back at 0.43
    s.sent("g2", ["a2", "b2"], D("10"), D("0.50"))
    s.fill("a2", Side.BUY, D("10"), D("4.50"), D("0"))
    s.one_legged("g2", Cause.VENUE_REJECTED)
    s.policy_order("g2", "a2", "u2")
    s.fill("u2", Side.SELL, D("10"), D("4.30"), D("0.01"))
    s.balanced("g2", "unwind")
    s.completed("g2")  # already ended one-legged: not counted again
    # one-legged, alert only: the 10 unmatched shares are not booked (left at their cost)
    s.sent("g3", ["a3", "b3"], D("10"), D("0.40"))
    s.fill("a3", Side.BUY, D("10"), D("4.50"), D("0"))
    s.one_legged("g3", Cause.BOOK_MOVED)
    # nothing filled
    s.sent("g4", ["a4", "b4"], D("5"), D("0.20"))
    s.failed("g4", Cause.LATENCY)
    # refused by the gate: forgotten
    s.sent("g5", ["a5"], D("5"), D("1"))
    s.forget("g5")
    s.fill("x", Side.BUY, D("1"), D("1"), D("0"))  # not a group's order: ignored
    f = s.figures()
    assert (f.sent, f.completed, f.one_legged, f.failed, f.pending) == (4, 1, 2, 1, 0)
    assert f.one_legged_by_cause == {"venue_rejected": 1, "book_moved": 1, "latency_budget_exceeded": 0}
    assert f.failed_by_cause == {"venue_rejected": 0, "book_moved": 0, "latency_budget_exceeded": 1}
    assert (f.unwound, f.hedged, f.unbalanced) == (1, 0, 1)
    assert f.expected_edge == D("1.55")
    # g1: 10 - 9.55 = 0.45 ; g2: 4.29 - 4.50 = -0.21 ; g3: 0 ; g4: 0
    assert f.realised_edge == D("0.24")
    assert f.sets_sent == D("35") and f.sets_completed == D("10")
    assert f.as_dict()["realised_edge"] == "0.24" and f.as_dict()["one_legged"] == 2


def test_a_partly_unwound_leg_books_only_what_was_sold() -> None:
    s = GroupStats()
    s.sent("g", ["a", "b"], D("10"), D("0.5"))
    s.fill("a", Side.BUY, D("10"), D("4.50"), D("0.03"))
    s.policy_order("g", "a", "u")
    s.fill("u", Side.SELL, D("6"), D("2.58"), D("0"))
    s.one_legged("g", Cause.BOOK_MOVED)
    # sold 6 of 10: -4.53 + 2.58 + the 4 unmatched at their cost 4.53 x 4/10 = 1.812
    assert s.figures().realised_edge == D("-0.138")
    assert s.figures().unbalanced == 1


def test_replay_records_are_counted_as_groups() -> None:
    def rec(n: int, fills: list[str], size: str = "10") -> dict[str, object]:
        legs = [
            {"size": size, "simulated_filled": f, "simulated_cost": str(D(f) * D("0.45")), "simulated_fee": "0"}
            for f in fills
        ]
        return {"n": n, "group_id": "dutch-x", "sets": size, "expected_edge": "1", "legs": legs}

    f = replay_groups([rec(1, ["10", "10"]), rec(2, ["10", "4"]), rec(3, ["0", "0"])])
    assert (f.sent, f.completed, f.one_legged, f.failed) == (3, 1, 1, 1)
    assert f.one_legged_by_cause["book_moved"] == 1 and f.failed_by_cause["book_moved"] == 1
    # #1: 10 - 9 ; #2: 4 complete sets for 4 x 0.90, the 6 unmatched shares not booked ; #3: nothing
    assert f.expected_edge == D("3") and f.realised_edge == D("1") + D("0.4")
