"""Merge complete sets and redeem resolved shares into pUSD, by mode.

- **paper**: the paper ledger only — the shares burned are booked as confirmed SELLs at their
  payout (a merge: two prices that add up to 1; a redeem: the winner at 1, the others at 0), so
  cash (bankroll − cash spent) rises by exactly the pUSD returned and the realised PnL is the sets'
  locked edge, as /pnl and the complete-set valuation already counted it.
- **dry-run**: the exact transaction (adapter, function, arguments, calldata) is described; nothing
  is sent and nothing is booked.
- **live**: the call goes to the :class:`~core.chain.types.TxSender`; only a CONFIRMED transaction
  is booked (the same way as paper). Reverted, stuck, refused or failed: nothing booked, one alert.

A wallet of signature type 1–3 holds its shares in a contract (proxy, Safe, deposit wallet) that
a transaction from the signing key cannot move: refused in dry-run and live, with the calldata to
send by hand. Each market is settled under its own lock and the amount is measured again inside
it, from the position book (bounded by the venue's balances when known), so an automatic and a
manual merge never burn the same shares twice. A market whose transaction is stuck is not settled
again until the service restarts (the chain may still mine it).

Every attempt writes one exec_audit row (action ``merge`` / ``redeem``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from decimal import Decimal
from typing import Protocol

from core.app import settlement_plan as plan
from core.app.execution_stack import ExecutionStack
from core.app.resolution import MarketResolutions, Resolution
from core.app.settlement_plan import WALLETS, Action, Outcome, Policy, Status, Totals, Wallet
from core.chain.calls import merge_call, redeem_call
from core.chain.types import ChainCall, TxResult, TxSender, TxStatus
from core.errors import UsageError
from core.events import Alert, EventBus, FillEvent, Severity
from core.execution.funds import VenueFunds
from core.execution.positions import PositionBook
from core.execution.records import AuditRecord, OrderRecord
from core.execution.store import ExecutionStore
from core.execution.types import Fill, OrderStatus
from core.registry import MarketRegistry
from core.settings import Settings
from core.types import MarketInfo, Mode, OrderType, Side

log = logging.getLogger(__name__)

ALERT_KIND = "settlement"
COID_PREFIXES = ("merge-", "redeem-")
NEG_RISK_EVENT_NOTE = (
    "a neg-risk event's sets (YES of every member) cannot be merged: held to resolution, "
    "redeem pays 1 pUSD per set (the NegRisk Adapter's conversions pay USDC.e, not pUSD: not used)"
)


class SettlementEngine(Protocol):
    """The engine's part settlement needs."""

    @property
    def positions(self) -> PositionBook: ...

    @property
    def store(self) -> ExecutionStore: ...

    def open_orders(self) -> list[OrderRecord]: ...

    def settling_shares(self, token_id: str) -> Decimal: ...

    async def book_settlement(self, fill: Fill, market: str) -> bool: ...


Spawn = Callable[[Coroutine[object, object, None], str], None]


class Settlement:
    def __init__(
        self,
        *,
        mode: Mode,
        engine: SettlementEngine,
        registry: MarketRegistry,
        bus: EventBus,
        resolved: Mapping[str, Resolution],
        spawn: Spawn,
        sender: TxSender | None = None,
        wallet: Wallet | None = None,
        policy: Policy | None = None,
        venue_shares: Callable[[], Mapping[str, Decimal] | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mode = mode
        self._engine = engine
        self._registry = registry
        self._bus = bus
        self._resolved = resolved
        self._spawn = spawn
        self.sender = sender
        self.wallet = wallet or Wallet()
        self.policy = policy or Policy()
        self._venue_shares = venue_shares
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._stuck: dict[str, str] = {}  # condition id -> hash of a transaction not confirmed
        self._seq = itertools.count(1)
        self.totals = Totals()

    # -- what can be settled --------------------------------------------------------------------

    def _venue(self) -> Mapping[str, Decimal] | None:
        return self._venue_shares() if self._venue_shares is not None else None

    def markets_of(self, ref: str) -> tuple[list[MarketInfo], str | None]:
        """The markets a reference names, and the neg-risk event id when it names an event."""
        members = self._registry.event_members(ref.strip())
        if members:
            return members, ref.strip()
        try:
            return [self._registry.resolve(ref)], None
        except UsageError:
            raise UsageError(
                f"unknown market or event {ref!r} (a condition id, a slug or a neg-risk event id)"
            ) from None

    def mergeable(self, ref: str | None = None) -> list[plan.Mergeable]:
        markets = self.markets_of(ref)[0] if ref else self._held_markets()
        venue = self._venue()
        found = [self._mergeable(m, venue) for m in markets]
        return [m for m in found if m is not None and m.units > 0]

    def _mergeable(self, market: MarketInfo, venue: Mapping[str, Decimal] | None) -> plan.Mergeable | None:
        """The market's sets held, less the shares sold whose trades have not settled (still ours
        until they do, but spoken for: merging them would fail the sale on chain)."""
        return plan.mergeable(self._engine.positions, market, venue, self._sold)

    def _sold(self, token_id: str) -> Decimal:
        return max(plan.ZERO, -self._engine.settling_shares(token_id))

    def redeemable(self, ref: str | None = None) -> list[plan.Redeemable]:
        markets = self.markets_of(ref)[0] if ref else self._held_markets()
        out: list[plan.Redeemable] = []
        for market in markets:
            res = self._resolved.get(market.condition_id)
            if res is None:
                continue
            r = plan.redeemable(self._engine.positions, market, res.winning_token, res.winning_outcome)
            if r.held:
                out.append(r)
        return out

    def event_sets(self) -> dict[str, Decimal]:
        """Neg-risk event sets held (event id -> sets): held to resolution."""
        out: dict[str, Decimal] = {}
        for s in self._engine.positions.valuation().sets:
            if s.unit.kind == "neg_risk":
                out[s.unit.key] = out.get(s.unit.key, Decimal(0)) + s.sets
        return out

    def _held_markets(self) -> list[MarketInfo]:
        seen: dict[str, MarketInfo] = {}
        for pos in self._engine.positions.open_positions():
            market = self._registry.for_token(pos.token_id)
            if market is not None:
                seen.setdefault(market.condition_id, market)
        return sorted(seen.values(), key=lambda m: m.slug or m.condition_id)

    # -- merge and redeem -----------------------------------------------------------------------

    async def merge(self, ref: str, sets: Decimal | None = None) -> list[Outcome]:
        """Merge the complete YES+NO pairs of a market, or of every question of a neg-risk event
        (``sets``: at most that many per market; None: all held)."""
        if sets is not None and sets <= 0:
            raise UsageError(f"sets must be positive, got {sets}")
        markets, _event = self.markets_of(ref)
        return [await self._merge_one(m, sets) for m in markets]

    async def redeem(self, ref: str | None = None) -> list[Outcome]:
        """Redeem every resolved market held (or the one named)."""
        if ref is None:
            return [await self._redeem_one(r.market) for r in self.redeemable()]
        return [await self._redeem_one(m) for m in self.markets_of(ref)[0]]

    def _lock(self, condition_id: str) -> asyncio.Lock:
        return self._locks.setdefault(condition_id, asyncio.Lock())

    async def _merge_one(self, market: MarketInfo, sets: Decimal | None) -> Outcome:
        action, label = Action.MERGE, market.slug or market.condition_id
        async with self._lock(market.condition_id):
            found = self._mergeable(market, self._venue())
            held = found.units if found is not None else 0
            wanted = held if sets is None else plan.to_units(sets)
            if refusal := self._not_now(action, market, held, wanted, sets):
                return refusal
            call = merge_call(market.condition_id, wanted, neg_risk=market.neg_risk)
            amount = plan.from_units(wanted)
            legs = plan.merge_legs(self._engine.positions, market, wanted)
            return await self._settle(
                action, market, call, amount, amount, legs, f"{plan.plain(amount)} sets of {label}"
            )

    def _not_now(
        self, action: Action, market: MarketInfo, held: int, wanted: int, sets: Decimal | None
    ) -> Outcome | None:
        label = market.slug or market.condition_id
        if market.condition_id in self._stuck:
            why = f"a {action} of this market is still unconfirmed ({self._stuck[market.condition_id]}); check it on chain"
            return self._outcome(action, market, Status.REFUSED, Decimal(0), why)
        if held == 0:
            return self._outcome(action, market, Status.NOTHING, Decimal(0), f"no complete set of {label} held")
        if wanted > held:
            why = (
                f"{plan.plain(sets or Decimal(0))} sets asked, only {plan.plain(plan.from_units(held))} held in {label}"
            )
            return self._outcome(action, market, Status.REFUSED, Decimal(0), why)
        if wanted == 0:
            why = f"{plan.plain(sets or Decimal(0))} sets is less than one unit (10^-6)"
            return self._outcome(action, market, Status.REFUSED, Decimal(0), why)
        return None

    async def _redeem_one(self, market: MarketInfo) -> Outcome:
        action, label = Action.REDEEM, market.slug or market.condition_id
        async with self._lock(market.condition_id):
            res = self._resolved.get(market.condition_id)
            if market.condition_id in self._stuck and (stuck := self._not_now(action, market, 1, 1, None)):
                return stuck
            if res is None:
                return self._outcome(action, market, Status.REFUSED, Decimal(0), f"{label} has not resolved")
            r = plan.redeemable(self._engine.positions, market, res.winning_token, res.winning_outcome)
            if not r.held:
                return self._outcome(action, market, Status.NOTHING, Decimal(0), f"no share of {label} held")
            if not r.winning_token:
                why = f"{label} resolved but its winner is not known yet: redeem later"
                return self._outcome(action, market, Status.REFUSED, Decimal(0), why)
            call = redeem_call(market.condition_id, neg_risk=market.neg_risk)
            what = f"{plan.plain(r.winning_shares)} winning shares ({r.winning_outcome}) of {label}"
            legs = plan.redeem_legs(self._engine.positions, r)
            return await self._settle(action, market, call, r.winning_shares, r.payout, legs, what)

    async def _settle(
        self,
        action: Action,
        market: MarketInfo,
        call: ChainCall,
        amount: Decimal,
        pusd: Decimal,
        legs: list[tuple[str, Decimal, Decimal]],
        what: str,
    ) -> Outcome:
        if self.mode is Mode.PAPER:
            await self._book(action, market, legs, f"paper-{uuid.uuid4().hex[:16]}", None)
            msg = f"{_DONE[action]} {what}: {plan.plain(pusd)} pUSD returned (paper ledger)"
            return await self._done(action, market, Status.BOOKED, amount, pusd, msg, call, None)
        if self.wallet.signature_type in WALLETS:
            return await self._done(
                action, market, Status.REFUSED, amount, Decimal(0), self._by_hand(action, call), call, None
            )
        if self.mode is Mode.DRY_RUN:
            result = await self.sender.send(call, purpose=str(action), ref=market.condition_id) if self.sender else None
            msg = f"dry-run: would {action} {what} for {plan.plain(pusd)} pUSD: {call.describe()}; nothing sent"
            if result is not None and result.status is not TxStatus.DRY_RUN:
                return await self._failed(action, market, amount, what, result)
            return await self._done(action, market, Status.DRY_RUN, amount, Decimal(0), msg, call, None)
        if self.sender is None:
            why = f"{action} refused: no transaction sender ([chain] rpc_url is not set); nothing sent"
            return await self._done(action, market, Status.REFUSED, amount, Decimal(0), why, call, None)
        result = await self.sender.send(call, purpose=str(action), ref=market.condition_id)
        if result.status is not TxStatus.CONFIRMED or not result.tx_hash:
            return await self._failed(action, market, amount, what, result)
        await self._book(action, market, legs, result.tx_hash, result.tx_hash)
        self.totals.transactions.append(result.tx_hash)
        msg = f"{_DONE[action]} {what}: {plan.plain(pusd)} pUSD returned (transaction {result.tx_hash} confirmed)"
        return await self._done(action, market, Status.CONFIRMED, amount, pusd, msg, call, result.tx_hash)

    async def _failed(
        self, action: Action, market: MarketInfo, amount: Decimal, what: str, result: TxResult
    ) -> Outcome:
        status = _STATUS_OF.get(result.status, Status.FAILED)
        reason = {
            Status.REVERTED: "transaction reverted",
            Status.STUCK: "transaction not confirmed in time (it may still be mined; not settled again until checked)",
        }.get(status, result.error or str(result.status))
        if result.error and status in (Status.REVERTED, Status.STUCK):
            reason += f": {result.error}"
        if result.tx_hash:
            reason += f" ({result.tx_hash})"
        if status is Status.STUCK and result.tx_hash:
            self._stuck[market.condition_id] = result.tx_hash
        msg = f"{action} failed: {what}: {reason}; nothing booked"
        self._bus.publish(
            Alert(ALERT_KIND, Severity.CRITICAL, f"{action}:{market.condition_id}", msg, ts=self._clock())
        )
        return await self._done(action, market, status, amount, Decimal(0), msg, result.call, result.tx_hash)

    def _by_hand(self, action: Action, call: ChainCall) -> str:
        wallet = WALLETS[self.wallet.signature_type]
        holder = f" at {self.wallet.funder}" if self.wallet.funder else ""
        return (
            f"{action} refused: the shares are held by your {wallet}{holder}, a contract a transaction from the "
            f"signing key cannot move (only signature type 0, an EOA, is supported). Do it by hand: "
            f"polymarket.com (Portfolio: merge / claim), or a transaction from the wallet itself to {call.contract} "
            f"{call.to} with data 0x{call.data.hex()}"
        )

    async def _book(
        self,
        action: Action,
        market: MarketInfo,
        legs: list[tuple[str, Decimal, Decimal]],
        settle_id: str,
        tx: str | None,
    ) -> None:
        """Write one order row per token (so the fills stay with this mode) and apply the SELLs."""
        now = self._clock()
        seq = next(self._seq)
        fills: list[Fill] = []
        rows: list[OrderRecord] = []
        for i, (token, price, size) in enumerate(legs):
            if size <= 0:
                continue
            coid = f"{action}-{settle_id}-{seq}-{i}"
            rows.append(
                OrderRecord(
                    client_order_id=coid,
                    market=market.condition_id,
                    token_id=token,
                    side=Side.SELL,
                    price=price,
                    size=size,
                    order_type=OrderType.FOK,
                    status=OrderStatus.FILLED,
                    mode=self.mode.value,
                    reason=f"{action} ({tx or 'paper'})",
                    venue_order_id=tx,
                    filled_size=size,
                    avg_price=price,
                    created_ts=now,
                    updated_ts=now,
                )
            )
            fills.append(
                Fill(
                    client_order_id=coid,
                    venue_order_id=tx,
                    token_id=token,
                    side=Side.SELL,
                    price=price,
                    size=size,
                    trade_id=f"{action}-{settle_id}-{i}",
                    confirmed=True,
                    ts_ms=int(now * 1000),
                )
            )
        await self._engine.store.save_orders(rows)
        for fill in fills:
            await self._engine.book_settlement(fill, market.condition_id)

    def _outcome(self, action: Action, market: MarketInfo, status: Status, amount: Decimal, msg: str) -> Outcome:
        return Outcome(
            action, market.condition_id, market.slug or market.condition_id, self.mode, status, amount, Decimal(0), msg
        )

    async def _done(
        self,
        action: Action,
        market: MarketInfo,
        status: Status,
        amount: Decimal,
        pusd: Decimal,
        msg: str,
        call: ChainCall | None,
        tx_hash: str | None,
    ) -> Outcome:
        if status in (Status.BOOKED, Status.CONFIRMED):
            if action is Action.MERGE:
                self.totals.merged_sets += amount
                self.totals.merged_pusd += pusd
            else:
                self.totals.redeemed_shares += amount
                self.totals.redeemed_pusd += pusd
        request: dict[str, object] = {"market": market.condition_id, "amount": str(amount), "pusd": str(pusd)}
        if call is not None:
            request |= {"to": call.to, "call": call.describe(), "data": "0x" + call.data.hex()}
        if tx_hash:
            request["tx_hash"] = tx_hash
        audit = AuditRecord(
            action=str(action),
            outcome=str(status),
            request=request,
            error=None if status in (Status.BOOKED, Status.CONFIRMED, Status.DRY_RUN) else msg,
            mode=self.mode.value,
            ts=self._clock(),
        )
        try:
            await self._engine.store.add_audit(audit)
        except Exception:  # the outcome stands; its audit row is best effort
            log.exception("could not write the exec_audit row of a %s", action)
        log.info("%s %s: %s", action, status, msg)
        return Outcome(
            action,
            market.condition_id,
            market.slug or market.condition_id,
            self.mode,
            status,
            amount,
            pusd,
            msg,
            call,
            tx_hash,
        )

    # -- policies -------------------------------------------------------------------------------

    def on_fill(self, ev: FillEvent) -> None:
        """merge = "auto": once a market's orders of ours are all final (every leg of its group
        CONFIRMED: only confirmed trades move positions and finish an order), merge its sets."""
        fill = ev.fill
        if self.policy.merge != "auto" or not fill.confirmed or fill.client_order_id.startswith(COID_PREFIXES):
            return
        market = self._registry.for_token(fill.token_id)
        if market is None or len(market.tokens) != 2 or market.condition_id in self._resolved:
            return
        if any(o.market == market.condition_id for o in self._engine.open_orders()):
            return  # a leg is still working: its group is not done
        found = self._mergeable(market, self._venue())
        if found is not None and found.units > 0:
            self._spawn(self._auto(self._merge_one(market, None)), f"auto-merge:{market.condition_id[:10]}")

    def on_resolved(self, res: Resolution) -> None:
        """redeem = "auto": redeem a market's shares once it resolved (and its winner is known)."""
        if self.policy.redeem != "auto":
            return
        market = self._registry.get(res.condition_id)
        if market is not None and plan.redeemable(self._engine.positions, market, res.winning_token, "").held:
            self._spawn(self._auto(self._redeem_one(market)), f"auto-redeem:{res.condition_id[:10]}")

    @staticmethod
    async def _auto(work: Coroutine[object, object, Outcome]) -> None:
        try:
            await work
        except Exception:  # an automatic settlement must never take a task group down
            log.exception("automatic settlement failed")


_DONE = {Action.MERGE: "merged", Action.REDEEM: "redeemed"}
_STATUS_OF = {
    TxStatus.REVERTED: Status.REVERTED,
    TxStatus.STUCK: Status.STUCK,
    TxStatus.REFUSED: Status.REFUSED,
    TxStatus.FAILED: Status.FAILED,
}


def build_settlement(
    settings: Settings,
    bus: EventBus,
    registry: MarketRegistry,
    execution: ExecutionStack,
    resolutions: MarketResolutions,
    spawn: Spawn,
    sender: TxSender | None = None,
) -> Settlement:
    """Merge and redeem for this service; the policies listen to confirmed fills and resolutions."""
    funds = execution.funds
    dutch = settings.strategies.dutch
    settlement = Settlement(
        mode=settings.mode,
        engine=execution.engine,
        registry=registry,
        bus=bus,
        resolved=resolutions.resolved,
        spawn=spawn,
        sender=sender,
        wallet=Wallet(settings.relayer.signature_type, settings.relayer.funder),
        policy=Policy(merge=dutch.merge, redeem=dutch.redeem),
        venue_shares=(lambda: funds.shares) if isinstance(funds, VenueFunds) else None,
    )
    bus.subscribe(FillEvent, settlement.on_fill)
    resolutions.listeners.append(settlement.on_resolved)
    return settlement
