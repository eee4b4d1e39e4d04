"""Figures for every Dutch group, kept in one place: fed by the group manager, read by the faces.

Per group: sent (with its sets and the strategy's expected edge at decision time), the fills of
its legs and of its policy orders (unwind sells, hedge buys), and how it ended: completed, one-
legged (by cause), failed (no leg filled, nothing at risk), then balanced by an unwind or a hedge.

**Why a group went wrong** is decided from each failed leg (a leg that ended, by itself, short of
its size; legs the policy canceled are not causes):

1. the leg's outcome was unknown or it timed out (``timeout`` / ``unknown-outcome``) ->
   ``latency_budget_exceeded``;
2. a FOK/FAK that found no liquidity at its limit (killed, or canceled short by the venue; the
   venue's "couldn't be fully filled" / "no orders found to match" answers, whatever the order
   type) -> ``book_moved``, unless its answer came later than the latency budget after the group
   was sent: then the book moved during our latency -> ``latency_budget_exceeded``;
3. anything else the venue answered (a 4xx/5xx refusal, a 429, a retry the gate refused) ->
   ``venue_rejected``.

A group's cause is its failed legs' first in the order venue_rejected, latency_budget_exceeded,
book_moved (the most actionable first).

**Edges.** Expected: the strategy's edge at decision time (sets x 1 - expected cost and fees),
summed over the groups sent. Realised: what the fills booked: the complete sets formed (1 pUSD
each) plus unwind proceeds, minus everything paid (fees included); shares still unmatched are
left out at their cost (not booked yet). Exact Decimal; only a partly unmatched leg's cost is
split, at 10^-6 half-even.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from core.execution.types import ErrorClass
from core.types import OrderStatus, OrderType, Side

ZERO = Decimal(0)
QUANTUM = Decimal("0.000001")
NO_LIQUIDITY = ("couldn't be fully filled", "could not be fully filled", "no orders found to match", "no match")


class Cause(enum.StrEnum):
    VENUE_REJECTED = "venue_rejected"
    BOOK_MOVED = "book_moved"
    LATENCY = "latency_budget_exceeded"


PRECEDENCE = (Cause.VENUE_REJECTED, Cause.LATENCY, Cause.BOOK_MOVED)


@dataclass(frozen=True, slots=True)
class FailedLeg:
    order_type: OrderType
    status: OrderStatus
    error: str = ""
    error_class: str = ""
    answered_after_s: float | None = None  # from the group's send to the leg's last answer


def leg_cause(leg: FailedLeg, latency_budget_s: float | None = None) -> Cause:
    """Why one leg failed (the rule in the module docstring)."""
    if leg.error_class in (ErrorClass.TIMEOUT, ErrorClass.UNKNOWN_OUTCOME):
        return Cause.LATENCY
    text = leg.error.lower()
    killed = leg.order_type in (OrderType.FOK, OrderType.FAK) and leg.status is OrderStatus.CANCELED
    if killed or any(phrase in text for phrase in NO_LIQUIDITY):
        late = (
            latency_budget_s is not None
            and leg.answered_after_s is not None
            and leg.answered_after_s > latency_budget_s
        )
        return Cause.LATENCY if late else Cause.BOOK_MOVED
    return Cause.VENUE_REJECTED


def group_cause(legs: Iterable[FailedLeg], latency_budget_s: float | None = None) -> Cause:
    causes = {leg_cause(leg, latency_budget_s) for leg in legs}
    return next((c for c in PRECEDENCE if c in causes), Cause.VENUE_REJECTED)


class Outcome(enum.StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    ONE_LEGGED = "one_legged"
    FAILED = "failed"


@dataclass(slots=True)
class _Flow:
    bought: Decimal = ZERO
    paid: Decimal = ZERO  # buys: notional + fees
    sold: Decimal = ZERO
    received: Decimal = ZERO  # sells: notional - fees


@dataclass(slots=True)
class _Group:
    legs: tuple[str, ...]
    sets: Decimal
    expected: Decimal
    flows: dict[str, _Flow] = field(default_factory=dict)
    outcome: Outcome = Outcome.PENDING
    cause: Cause | None = None
    balanced_by: str = ""

    def realised(self) -> Decimal:
        flows = [self.flows.get(leg) or _Flow() for leg in self.legs]
        held = [f.bought - f.sold for f in flows]
        sets = max(ZERO, min(held)) if held else ZERO
        total = sets
        for f, net in zip(flows, held, strict=True):
            total += f.received - f.paid
            extra = net - sets
            if extra > 0 and f.bought > 0:  # unmatched shares: not booked, their cost set aside
                total += f.paid if extra == f.bought else (f.paid * extra / f.bought).quantize(QUANTUM, ROUND_HALF_EVEN)
        return total


@dataclass(frozen=True, slots=True)
class GroupFigures:
    sent: int = 0
    completed: int = 0
    one_legged: int = 0
    one_legged_by_cause: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    failed_by_cause: dict[str, int] = field(default_factory=dict)
    unwound: int = 0
    hedged: int = 0
    unbalanced: int = 0  # one-legged and not balanced (yet)
    pending: int = 0
    sets_sent: Decimal = ZERO
    sets_completed: Decimal = ZERO
    expected_edge: Decimal = ZERO
    realised_edge: Decimal = ZERO

    def line(self) -> str:
        """One line for a terminal or a chat."""
        causes = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in self.one_legged_by_cause.items())
        return (
            f"groups sent {self.sent}, completed {self.completed}, one-legged {self.one_legged}"
            f"{f' ({causes})' if causes else ''}, unwound {self.unwound}, hedged {self.hedged}, "
            f"still one-legged {self.unbalanced}, "
            f"failed {self.failed}, pending {self.pending}; expected edge {_plain(self.expected_edge)} pUSD, "
            f"realised edge {_plain(self.realised_edge)} pUSD"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "completed": self.completed,
            "one_legged": self.one_legged,
            "one_legged_by_cause": dict(self.one_legged_by_cause),
            "failed": self.failed,
            "failed_by_cause": dict(self.failed_by_cause),
            "unwound": self.unwound,
            "hedged": self.hedged,
            "unbalanced": self.unbalanced,
            "pending": self.pending,
            "sets_sent": _plain(self.sets_sent),
            "sets_completed": _plain(self.sets_completed),
            "expected_edge": _plain(self.expected_edge),
            "realised_edge": _plain(self.realised_edge),
        }


class GroupStats:
    """The group manager reports here; :meth:`figures` is what every face shows."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}
        self._orders: dict[str, tuple[str, str]] = {}  # order id -> (group, leg it belongs to)

    def sent(self, group_id: str, legs: Sequence[str], sets: Decimal, expected_edge: Decimal) -> None:
        if group_id in self._groups:
            return
        self._groups[group_id] = _Group(tuple(legs), sets, expected_edge)
        for leg in legs:
            self._orders[leg] = (group_id, leg)

    def expect(self, group_id: str, expected_edge: Decimal) -> None:
        """The group's expected edge, once its legs are out (it costs the wire nothing then)."""
        group = self._groups.get(group_id)
        if group is not None:
            group.expected = expected_edge

    def forget(self, group_id: str) -> None:
        """A group the gate refused as a whole: nothing was sent."""
        group = self._groups.pop(group_id, None)
        if group is not None:
            for leg in group.legs:
                self._orders.pop(leg, None)

    def policy_order(self, group_id: str, leg: str, order_id: str) -> None:
        """An unwind or hedge order made for ``leg``: its fills count on that leg."""
        if group_id in self._groups:
            self._orders[order_id] = (group_id, leg)

    def knows(self, order_id: str) -> bool:
        return order_id in self._orders

    def fill(self, order_id: str, side: Side, size: Decimal, notional: Decimal, fee: Decimal) -> None:
        """A confirmed fill of a leg or of a policy order (anything else is ignored)."""
        where = self._orders.get(order_id)
        if where is None:
            return
        group = self._groups[where[0]]
        flow = group.flows.setdefault(where[1], _Flow())
        if side is Side.BUY:
            flow.bought += size
            flow.paid += notional + fee
        else:
            flow.sold += size
            flow.received += notional - fee

    def completed(self, group_id: str) -> None:
        self._end(group_id, Outcome.COMPLETED, None)

    def one_legged(self, group_id: str, cause: Cause) -> None:
        self._end(group_id, Outcome.ONE_LEGGED, cause)

    def failed(self, group_id: str, cause: Cause) -> None:
        self._end(group_id, Outcome.FAILED, cause)

    def balanced(self, group_id: str, how: str) -> None:
        """A one-legged group balanced again by its policy (``unwind`` or ``hedge``)."""
        group = self._groups.get(group_id)
        if group is not None and group.outcome is Outcome.ONE_LEGGED and not group.balanced_by:
            group.balanced_by = how

    def _end(self, group_id: str, outcome: Outcome, cause: Cause | None) -> None:
        group = self._groups.get(group_id)
        if group is not None and group.outcome is Outcome.PENDING:  # counted once, at its first ending
            group.outcome = outcome
            group.cause = cause

    def figures(self) -> GroupFigures:
        by_outcome = dict.fromkeys(Outcome, 0)
        one_legged = dict.fromkeys((c.value for c in Cause), 0)
        failed = dict.fromkeys((c.value for c in Cause), 0)
        unwound = hedged = unbalanced = 0
        sets_sent = sets_completed = expected = realised = ZERO
        for g in self._groups.values():
            by_outcome[g.outcome] += 1
            sets_sent += g.sets
            expected += g.expected
            realised += g.realised()
            if g.outcome is Outcome.COMPLETED:
                sets_completed += g.sets
            if g.cause is not None:
                (one_legged if g.outcome is Outcome.ONE_LEGGED else failed)[g.cause.value] += 1
            if g.outcome is Outcome.ONE_LEGGED:
                unwound += g.balanced_by == "unwind"
                hedged += g.balanced_by == "hedge"
                unbalanced += not g.balanced_by
        return GroupFigures(
            sent=len(self._groups),
            completed=by_outcome[Outcome.COMPLETED],
            one_legged=by_outcome[Outcome.ONE_LEGGED],
            one_legged_by_cause=one_legged,
            failed=by_outcome[Outcome.FAILED],
            failed_by_cause=failed,
            unwound=unwound,
            hedged=hedged,
            unbalanced=unbalanced,
            pending=by_outcome[Outcome.PENDING],
            sets_sent=sets_sent,
            sets_completed=sets_completed,
            expected_edge=expected,
            realised_edge=realised,
        )


def _plain(amount: Decimal) -> str:
    """Exact, without exponent: 0E-6 -> "0", 1.500000 -> "1.5"."""
    if amount == 0:
        return "0"
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
