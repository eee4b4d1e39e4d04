"""Dutch groups: legs placed together and watched together, and the one-leg policy.

A group's legs pass the risk gate as a whole (refused together) and are placed at once. A group
that ends with some legs filled and others dead raises a ``one_legged`` alert and follows its
policy: unwind (sell the excess of the filled legs at the best bid), hedge (buy the missing
quantity of the other legs within their limits) or alert only. Until it is balanced, its filled
legs count as exposure (the risk gate's worst case sees them as unhedged inventory). Policy
orders go through the engine like any order (gate, retries, audit).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

from core.events import Alert, AlertCleared, AlertKind, Severity
from core.execution.context import EngineContext
from core.execution.holdings import ExposureTracker
from core.execution.ids import client_order_id, intent_seq
from core.execution.order_table import OrderTable, Tracked
from core.execution.records import OPEN_STATUSES
from core.execution.rules import ReasonCode, RiskDecision
from core.execution.submission import BookProvider, SubmitResult, duplicate, order_request
from core.execution.types import CancelResult, OrderRequest
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
    ) -> None:
        self._ctx = ctx
        self._orders = orders
        self._exposure = exposure
        self._books = books
        self._trader = trader
        self.policy = policy
        self.max_policy_runs = max_policy_runs
        self._groups: dict[str, _Group] = {}

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
        group = self._groups[gid] = _Group(gid, [r.client_order_id for r in reqs], OneLegPolicy(policy or self.policy))
        try:
            decision, placed = await self._trader.place_together(reqs, by_id, gid, [i.reason for i in legs])
        except BaseException:
            del self._groups[gid]
            raise
        if not decision.ok:
            del self._groups[gid]  # nothing was placed: the same group may be tried again
            return GroupResult(gid, False, GroupState.FAILED, tuple(placed), decision.reason_code, decision.detail)
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
        group = self._groups.get(gid) if gid else None
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
                await self._balanced(group, done)
                return
            stuck = [t for t in legs if t.status not in OPEN_STATUSES and filled[t.coid] < t.req.size]
            top, bottom = max(filled.values()), min(filled.values())
            if not stuck:
                group.state = GroupState.PENDING  # every unfilled leg is still working
            elif top == bottom and group.state in (GroupState.ONE_LEGGED, GroupState.SETTLED):
                await self._balanced(group, GroupState.SETTLED)
            elif top == 0:
                await self._nothing_filled(group, legs)
            elif top != bottom:  # equal partial fills with a dead leg leave nothing unhedged
                await self._one_legged(group, legs, filled)

    async def _nothing_filled(self, group: _Group, legs: Sequence[Tracked]) -> None:
        """No leg filled and one is dead: no leg risk yet; stop the others unless alert-only."""
        if group.policy is not OneLegPolicy.ALERT:
            for t in legs:
                if t.status in OPEN_STATUSES:
                    await self._trader.cancel(t.coid)
        live = [t for t in legs if t.status in OPEN_STATUSES]
        group.state = GroupState.PENDING if live else GroupState.FAILED

    async def _one_legged(self, group: _Group, legs: Sequence[Tracked], filled: Mapping[str, Decimal]) -> None:
        group.state = GroupState.ONE_LEGGED
        if not group.alerted:
            group.alerted = True
            detail = ", ".join(f"{t.req.token_id[:12]} {filled[t.coid]}/{t.req.size} ({t.status})" for t in legs)
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
                await self._trader.cancel(t.coid)  # stop adding to the imbalance
        filled = self._filled(group, legs)
        floor = min(filled.values())
        for t in legs:
            excess = filled[t.coid] - floor
            if excess > 0:
                await self._unwind_leg(group, t, excess)

    async def _unwind_leg(self, group: _Group, t: Tracked, excess: Decimal) -> None:
        if t.req.side is not Side.BUY:
            self._alert(AlertKind.POLICY_FAILED, group, f"unwind of {t.coid}: only bought legs can be unwound")
            return
        book = self._books(t.req.token_id) if self._books else None
        bid = book.best_bid() if book is not None and book.status is BookStatus.OK else None
        if bid is None:
            self._alert(AlertKind.POLICY_FAILED, group, f"unwind of {t.coid}: no usable best bid for {t.req.token_id}")
            return
        res = await self._policy_order(group, t, Side.SELL, bid, excess, "unwind")
        if not res.ok or res.filled < excess:
            why = res.reason_code or res.status
            message = f"unwind of {t.coid}: sold {res.filled}/{excess} at {bid} ({why}: {res.detail})"
            self._alert(AlertKind.POLICY_FAILED, group, message)

    async def _hedge(self, group: _Group, legs: Sequence[Tracked]) -> None:
        filled = self._filled(group, legs)
        target = max(filled.values())
        for t in legs:
            deficit = target - filled[t.coid]
            if deficit <= 0:
                continue
            if t.status in OPEN_STATUSES:
                await self._trader.cancel(t.coid)  # replace the resting remainder with a marketable one
                deficit = target - self._net_filled(group, t.coid)
                if deficit <= 0:
                    continue
            res = await self._policy_order(group, t, t.req.side, t.req.price, deficit, "hedge")
            if not res.ok or res.filled < deficit:
                why = res.reason_code or res.status
                message = f"hedge of {t.coid}: got {res.filled}/{deficit} within {t.req.price} ({why}: {res.detail})"
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
        group.adjust.setdefault(leg.coid, []).append(client_order_id(intent, seq))
        return await self._trader.submit(intent, market, seq=seq)
