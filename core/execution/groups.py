"""Dutch groups: legs placed together and watched together, and the one-leg policy.

A group's legs pass the risk gate as a whole (refused together) and are placed at once. A group
that ends with some legs filled and others dead raises a ``one_legged`` alert and follows its
policy: unwind (sell the excess of the filled legs at the best bid), hedge (buy the missing
quantity of the other legs within their limits) or alert only. Until it is balanced, its filled
legs count as exposure (the risk gate's worst case sees them as unhedged inventory). Policy
orders go through the engine like any order (gate, retries, audit).

Legs are named in alerts by market slug and outcome (from the markets the group was submitted
with), with filled/requested size. Every group's figures (sent, completed, one-legged by cause,
unwound, expected vs realised edge) go to a :class:`~core.execution.group_stats.GroupStats`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from typing import Protocol

from core.events import Alert, AlertCleared, AlertKind, FillEvent, Severity
from core.execution.context import EngineContext
from core.execution.group_stats import Cause, FailedLeg, GroupStats, group_cause
from core.execution.holdings import ExposureTracker
from core.execution.ids import client_order_id, intent_seq
from core.execution.order_table import OrderTable, Tracked
from core.execution.records import OPEN_STATUSES
from core.execution.rules import ReasonCode, RiskDecision
from core.execution.submission import BookProvider, SubmitResult, duplicate, order_request
from core.execution.types import CancelResult, OrderRequest, OrderStatus
from core.fees import taker_fee
from core.types import BookStatus, Intent, MarketInfo, OrderType, Side

ZERO = Decimal(0)


class OneLegPolicy(enum.StrEnum):
    UNWIND = "unwind"  # sell the excess of the filled legs back at the best bid (marketable)
    HEDGE = "hedge"  # buy the missing quantity of the other legs, within their limit prices
    ALERT = "alert"  # alert only; a human decides


class GroupState(enum.StrEnum):
    PLACING = "placing"
    PENDING = "pending"  # legs still working
    COMPLETE = "complete"  # every leg filled
    ONE_LEGGED = "one_legged"  # unbalanced and some leg can no longer fill
    SETTLED = "settled"  # was one-legged, balanced again by the policy
    FAILED = "failed"  # no leg filled and some leg died: nothing at risk


@dataclass(frozen=True, slots=True)
class GroupResult:
    group_id: str
    ok: bool  # every leg accepted
    state: GroupState
    legs: tuple[SubmitResult, ...] = ()
    reason_code: ReasonCode | None = None
    detail: str = ""
    duplicate: bool = False


@dataclass(slots=True)
class _Group:
    group_id: str
    legs: list[str]
    policy: OneLegPolicy
    state: GroupState = GroupState.PLACING
    alerted: bool = False
    policy_runs: int = 0
    adjust: dict[str, list[str]] = field(default_factory=dict)  # leg id -> policy order ids
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sent_at: float = 0.0
    placed: dict[str, SubmitResult] = field(default_factory=dict)  # leg id -> the venue's first answer
    canceled: set[str] = field(default_factory=set)  # legs the policy canceled (not causes)


class GroupTrader(Protocol):
    """How the group manager trades: through the engine, like any order."""

    async def submit(self, intent: Intent, market: MarketInfo, *, seq: int | str | None = None) -> SubmitResult: ...

    async def cancel(self, client_order_id: str) -> CancelResult: ...

    async def place_together(
        self,
        reqs: Sequence[OrderRequest],
        markets: Mapping[str, MarketInfo],
        group_id: str,
        reasons: Sequence[str],
    ) -> tuple[RiskDecision, list[SubmitResult]]: ...


def derive_group_id(intents: Sequence[Intent], seq: int | str | None) -> str:
    raw = "|".join(f"{i.market}:{i.token_id}:{i.side}:{i.price}:{i.size}" for i in intents) + f"|{seq}"
    return "grp-" + hashlib.sha256(raw.encode()).hexdigest()[:16]


class GroupManager:
    def __init__(
        self,
        ctx: EngineContext,
        orders: OrderTable,
        exposure: ExposureTracker,
        books: BookProvider | None,
        trader: GroupTrader,
        *,
        policy: OneLegPolicy,
        max_policy_runs: int,
        stats: GroupStats | None = None,
        latency_budget_s: float | None = None,
        label: Callable[[str], str] | None = None,
    ) -> None:
        """``stats``: where every group's figures go (a new one when not given); ``latency_budget_s``:
        a failed leg answered later than this after its group was sent counts as latency, not a
        moved book; ``label``: token id -> "slug outcome" for alerts (default: from the markets the
        group was submitted with)."""
        self._ctx = ctx
        self._orders = orders
        self._exposure = exposure
        self._books = books
        self._trader = trader
        self.policy = policy
        self.max_policy_runs = max_policy_runs
        self.stats = stats if stats is not None else GroupStats()
        self.latency_budget_s = latency_budget_s
        self._label = label
        self._groups: dict[str, _Group] = {}
        ctx.bus.subscribe(FillEvent, self._on_fill)

    def state(self, group_id: str) -> GroupState | None:
        g = self._groups.get(group_id)
        return g.state if g else None

    def unsettled(self) -> list[str]:
        return [g.group_id for g in self._groups.values() if g.state is GroupState.ONE_LEGGED]

    async def submit_group(
        self,
        intents: Sequence[Intent],
        markets: Mapping[str, MarketInfo] | Sequence[MarketInfo],
        *,
        group_id: str | None = None,
        seq: int | str | None = None,
        policy: OneLegPolicy | str | None = None,
    ) -> GroupResult:
        """Place the legs of a Dutch group together; refused as a whole if any leg is refused."""
        if not intents:
            raise ValueError("a group needs at least one leg")
        by_id = dict(markets) if isinstance(markets, Mapping) else {m.condition_id: m for m in markets}
        gid = group_id or intents[0].group_id or derive_group_id(intents, seq)
        legs = [i if i.group_id == gid else replace(i, group_id=gid) for i in intents]
        missing = sorted({i.market for i in legs} - set(by_id))
        if missing:
            raise ValueError(f"no market info for {', '.join(missing)}")
        existing = self._groups.get(gid)
        if existing is not None:
            return self._duplicate(existing)
        self._exposure.register_markets(by_id.values())
        reqs = [order_request(i, by_id[i.market], client_order_id(i, intent_seq(i, seq))) for i in legs]
        if len({r.client_order_id for r in reqs}) != len(reqs):
            raise ValueError("two legs of the group are identical")
        # known from now on (PLACING): a second submission is a duplicate, fills wait for every leg
        coids = [r.client_order_id for r in reqs]
        group = self._groups[gid] = _Group(gid, coids, OneLegPolicy(policy or self.policy), sent_at=self._ctx.clock())
        # the edge at decision time: the books' asks kept now, the arithmetic done once the legs are out
        expected_edge = self._expected_edge(legs, by_id)
        # counted from now on: fills may come back with the venue's answers, inside place_together
        self.stats.sent(gid, coids, min(i.size for i in legs), ZERO)
        try:
            decision, placed = await self._trader.place_together(reqs, by_id, gid, [i.reason for i in legs])
        except BaseException:
            del self._groups[gid]
            self.stats.forget(gid)
            raise
        if not decision.ok:
            del self._groups[gid]  # nothing was placed: the same group may be tried again
            self.stats.forget(gid)
            return GroupResult(gid, False, GroupState.FAILED, tuple(placed), decision.reason_code, decision.detail)
        self.stats.expect(gid, expected_edge())
        group.placed = {p.client_order_id: p for p in placed}
        group.state = GroupState.PENDING
        await self._evaluate(group)
        # report the legs as they are now (the policy may have canceled some since placement)
        now = [
            replace(p, status=t.status, filled=t.rec.filled_size) if (t := self._orders.get(p.client_order_id)) else p
            for p in placed
        ]
        return GroupResult(gid, all(p.ok for p in placed), group.state, tuple(now))

    def _duplicate(self, group: _Group) -> GroupResult:
        legs = [t for c in group.legs if (t := self._orders.get(c)) is not None]
        return GroupResult(
            group.group_id,
            False,
            group.state,
            tuple(duplicate(t) for t in legs),
            detail=f"duplicate: group {group.group_id} already exists ({group.state}); nothing placed",
            duplicate=True,
        )

    async def order_changed(self, t: Tracked) -> None:
        """An order changed: if it is a leg of a placed group, look at the group again."""
        gid = t.rec.group_id
        # a policy order (unwind, hedge) belongs to the group it balances: "<group>/<kind>"
        group = self._groups.get(gid) or self._groups.get(gid.rsplit("/", 1)[0]) if gid else None
        if group is not None and group.state is not GroupState.PLACING and not group.lock.locked():
            await self._evaluate(group)

    # -- evaluation --------------------------------------------------------------------------

    def _net_filled(self, group: _Group, leg: str) -> Decimal:
        """A leg's filled quantity net of the policy orders made for it (unwinds sell, hedges buy)."""
        t = self._orders.get(leg)
        total = t.rec.filled_size if t is not None else ZERO
        for adj in group.adjust.get(leg, []):
            a = self._orders.get(adj)
            if a is not None:
                total += a.rec.filled_size if a.req.side is Side.BUY else -a.rec.filled_size
        return total

    def _filled(self, group: _Group, legs: Sequence[Tracked]) -> dict[str, Decimal]:
        return {t.coid: self._net_filled(group, t.coid) for t in legs}

    async def _evaluate(self, group: _Group) -> None:
        async with group.lock:
            legs = [t for c in group.legs if (t := self._orders.get(c)) is not None]
            if len(legs) != len(group.legs) or group.state in (GroupState.COMPLETE, GroupState.FAILED):
                return
            filled = self._filled(group, legs)
            if all(filled[t.coid] >= t.req.size for t in legs):
                done = GroupState.SETTLED if group.state is GroupState.SETTLED else GroupState.COMPLETE
                if done is GroupState.COMPLETE:
                    self.stats.completed(group.group_id)
                await self._balanced(group, done)
                return
            stuck = [t for t in legs if t.status not in OPEN_STATUSES and filled[t.coid] < t.req.size]
            top, bottom = max(filled.values()), min(filled.values())
            if not stuck:
                group.state = GroupState.PENDING  # every unfilled leg is still working
            elif self._unsettled(group, legs):
                pass  # matched shares (a leg's, a policy order's) not settled: judged once they are
            elif top == bottom and group.state in (GroupState.ONE_LEGGED, GroupState.SETTLED):
                await self._balanced(group, GroupState.SETTLED)
            elif top == 0:
                await self._nothing_filled(group, legs)
            elif top != bottom:  # equal partial fills with a dead leg leave nothing unhedged
                await self._one_legged(group, legs, filled)

    def _unsettled(self, group: _Group, legs: Sequence[Tracked]) -> bool:
        """Whether a leg or a policy order of the group has shares the venue matched (its answer,
        its order updates, a trade) whose trades have not all settled (only a confirmed trade moves
        a filled size, seconds later, leg by leg: until then the group is not judged)."""
        policy = [t for coids in group.adjust.values() for c in coids if (t := self._orders.get(c)) is not None]
        return any(t.unsettled > 0 for t in (*legs, *policy))

    async def _nothing_filled(self, group: _Group, legs: Sequence[Tracked]) -> None:
        """No leg filled and one is dead: no leg risk yet; stop the others unless alert-only."""
        if group.policy is not OneLegPolicy.ALERT:
            for t in legs:
                if t.status in OPEN_STATUSES:
                    await self._cancel_leg(group, t)
        live = [t for t in legs if t.status in OPEN_STATUSES]
        group.state = GroupState.PENDING if live else GroupState.FAILED
        if not live:
            self.stats.failed(group.group_id, self._cause(group, legs))

    async def _one_legged(self, group: _Group, legs: Sequence[Tracked], filled: Mapping[str, Decimal]) -> None:
        group.state = GroupState.ONE_LEGGED
        self.stats.one_legged(group.group_id, self._cause(group, legs))
        if not group.alerted:
            group.alerted = True
            detail = ", ".join(
                f"{self._leg_label(t)} {_plain(filled[t.coid])}/{_plain(t.req.size)} ({t.status})" for t in legs
            )
            self._alert(
                AlertKind.ONE_LEGGED,
                group,
                f"Dutch group {group.group_id} is one-legged: {detail}; policy {group.policy}",
            )
        if group.policy is OneLegPolicy.ALERT or group.policy_runs >= self.max_policy_runs:
            return
        group.policy_runs += 1
        if group.policy is OneLegPolicy.UNWIND:
            await self._unwind(group, legs)
        else:
            await self._hedge(group, legs)
        after = self._filled(group, legs)
        if max(after.values()) == min(after.values()):
            await self._balanced(group, GroupState.SETTLED)

    async def _balanced(self, group: _Group, state: GroupState) -> None:
        if state is GroupState.SETTLED and group.state is not GroupState.SETTLED:
            how = str(group.policy) if group.policy_runs else "itself"
            self.stats.balanced(group.group_id, how)
        group.state = state
        if group.alerted:
            group.alerted = False
            self._ctx.bus.publish(
                AlertCleared(
                    AlertKind.ONE_LEGGED, group.group_id, f"Dutch group {group.group_id} is balanced ({state})"
                )
            )

    def _alert(self, kind: AlertKind, group: _Group, message: str) -> None:
        self._ctx.bus.publish(Alert(kind, Severity.CRITICAL, group.group_id, message, ts=self._ctx.clock()))

    # -- policies ----------------------------------------------------------------------------

    async def _unwind(self, group: _Group, legs: Sequence[Tracked]) -> None:
        for t in legs:
            if t.status in OPEN_STATUSES:
                await self._cancel_leg(group, t)  # stop adding to the imbalance
        filled = self._filled(group, legs)
        floor = min(filled.values())
        for t in legs:
            excess = filled[t.coid] - floor
            if excess > 0:
                await self._unwind_leg(group, t, excess)

    async def _unwind_leg(self, group: _Group, t: Tracked, excess: Decimal) -> None:
        if t.req.side is not Side.BUY:
            self._alert(
                AlertKind.POLICY_FAILED, group, f"unwind of {self._leg_label(t)}: only bought legs can be unwound"
            )
            return
        book = self._books(t.req.token_id) if self._books else None
        bid = book.best_bid() if book is not None and book.status is BookStatus.OK else None
        if bid is None:
            self._alert(AlertKind.POLICY_FAILED, group, f"unwind of {self._leg_label(t)}: no usable best bid")
            return
        res = await self._policy_order(group, t, Side.SELL, bid, excess, "unwind")
        if _short(res, excess):
            why = res.reason_code or res.status
            message = (
                f"unwind of {self._leg_label(t)}: sold {_plain(res.filled)}/{_plain(excess)} at {bid} "
                f"({why}: {res.detail})"
            )
            self._alert(AlertKind.POLICY_FAILED, group, message)

    async def _hedge(self, group: _Group, legs: Sequence[Tracked]) -> None:
        filled = self._filled(group, legs)
        target = max(filled.values())
        for t in legs:
            deficit = target - filled[t.coid]
            if deficit <= 0:
                continue
            if t.status in OPEN_STATUSES:
                await self._cancel_leg(group, t)  # replace the resting remainder with a marketable one
                deficit = target - self._net_filled(group, t.coid)
                if deficit <= 0:
                    continue
            res = await self._policy_order(group, t, t.req.side, t.req.price, deficit, "hedge")
            if _short(res, deficit):
                why = res.reason_code or res.status
                message = (
                    f"hedge of {self._leg_label(t)}: got {_plain(res.filled)}/{_plain(deficit)} within {t.req.price} "
                    f"({why}: {res.detail})"
                )
                self._alert(AlertKind.POLICY_FAILED, group, message)

    async def _policy_order(
        self, group: _Group, leg: Tracked, side: Side, price: Decimal, size: Decimal, kind: str
    ) -> SubmitResult:
        market = leg.market or self._exposure.market(leg.req.market)
        if market is None:
            return SubmitResult("", False, None, detail=f"no market info for {leg.req.market}")
        intent = Intent(
            market=leg.req.market,
            token_id=leg.req.token_id,
            side=side,
            price=price,
            size=size,
            order_type=OrderType.FAK,
            group_id=f"{group.group_id}/{kind}",
            reason=f"{kind} of one-legged group {group.group_id}",
        )
        seq = f"{leg.coid}:{group.policy_runs}"
        coid = client_order_id(intent, seq)
        group.adjust.setdefault(leg.coid, []).append(coid)
        self.stats.policy_order(group.group_id, leg.coid, coid)
        return await self._trader.submit(intent, market, seq=seq)

    async def _cancel_leg(self, group: _Group, t: Tracked) -> None:
        group.canceled.add(t.coid)
        await self._trader.cancel(t.coid)

    # -- figures and names -------------------------------------------------------------------

    def _on_fill(self, event: FillEvent) -> None:
        fill = event.fill
        if fill.confirmed and self.stats.knows(fill.client_order_id):
            self.stats.fill(fill.client_order_id, fill.side, fill.size, fill.price * fill.size, fill.fee)

    def _cause(self, group: _Group, legs: Sequence[Tracked]) -> Cause:
        """Why the group failed, from its legs that died short by themselves (see group_stats)."""
        short = [t for t in legs if t.status not in OPEN_STATUSES and t.rec.filled_size < t.req.size]
        failed = [t for t in short if t.coid not in group.canceled] or short
        return group_cause((self._failed_leg(group, t) for t in failed), self.latency_budget_s)

    def _failed_leg(self, group: _Group, t: Tracked) -> FailedLeg:
        placed = group.placed.get(t.coid)
        return FailedLeg(
            order_type=t.req.order_type,
            status=t.status,
            error=t.rec.error or (placed.detail if placed is not None else ""),
            error_class=str(placed.error_class) if placed is not None else "",
            answered_after_s=max(0.0, t.rec.updated_ts - group.sent_at) if t.rec.updated_ts else None,
        )

    def _leg_label(self, t: Tracked) -> str:
        """ "slug outcome" of a leg (its token id shortened only when its market is unknown)."""
        if self._label is not None:
            return self._label(t.req.token_id)
        market = t.market or self._exposure.market(t.req.market)
        token = next((k for k in market.tokens if k.token_id == t.req.token_id), None) if market else None
        if market is None or token is None:
            return t.req.token_id[:12] + "…"
        return f"{market.slug or market.condition_id[:10]} {token.outcome}"

    def _expected_edge(self, legs: Sequence[Intent], markets: Mapping[str, MarketInfo]) -> Callable[[], Decimal]:
        """The strategy's edge at decision time: its own figure when a leg carries it (meta
        ``expected_edge``), else buying the sets from the books as they are now (what the strategy
        computed from the same levels), any share the books lack counted at its limit; 0 unless every
        leg buys. The levels are taken now, the sum made when called (after the post: off the wire's path)."""
        given = next((i.meta["expected_edge"] for i in legs if "expected_edge" in i.meta), None)
        if given is not None:
            edge = Decimal(given)
            return lambda: edge
        if any(i.side is not Side.BUY for i in legs):
            return lambda: ZERO
        books = [self._books(i.token_id) if self._books else None for i in legs]
        asks = [b.asks() if b is not None and b.status is BookStatus.OK else [] for b in books]
        return partial(_buying_edge, legs, asks, [markets[i.market].fee_rate for i in legs])


def _buying_edge(
    legs: Sequence[Intent], asks: Sequence[Sequence[tuple[Decimal, Decimal]]], rates: Sequence[Decimal]
) -> Decimal:
    """The edge of buying ``min(size)`` sets: each leg walks its ask levels up to its limit."""
    cost = ZERO
    for i, levels, rate in zip(legs, asks, rates, strict=True):
        left = i.size
        for price, size in levels:
            if price > i.price or left <= 0:
                break
            take = min(size, left)
            cost += take * price + taker_fee(take, price, rate)
            left -= take
        if left > 0:
            cost += left * i.price + taker_fee(left, i.price, rate)
    return min(i.size for i in legs) - cost


def _plain(amount: Decimal) -> str:
    """10.000000 -> "10", 2.50 -> "2.5": sizes as a trader reads them."""
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _short(res: SubmitResult, wanted: Decimal) -> bool:
    """A policy order that did not get its size: refused, or answered short of it (a venue match
    in full, FILLED, is got: its trades settle later)."""
    return not res.ok or (res.filled < wanted and res.status is not OrderStatus.FILLED)
