"""Merge, redeem and the balance, as every face asks for them.

A merge or redeem is prepared first (what would be settled, and the exact transaction); paper and
dry-run execute it at once, live mode returns a ticket that the asking user must confirm (the
Telegram card: nonce, same user, expiry; the CLI: ``--yes``). At execution the mode is checked
again and the amounts are measured again by the settlement itself (inside its per-market lock),
so a card confirmed late settles what is held then, never more.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from core.control.types import ControlError
from core.errors import UsageError
from core.types import Mode

if TYPE_CHECKING:
    from core.app.settlement import Settlement
    from core.app.settlement_plan import Outcome
    from core.execution.funds import Funds
    from core.execution.positions import PositionBook
    from core.registry import MarketRegistry

MERGE, REDEEM = "merge", "redeem"
EVENT_NOTE = (
    "the event's sets (YES of every member) are held to resolution: redeem pays 1 pUSD per set "
    "(NegRisk Adapter conversions pay USDC.e, not pUSD, and are not used)"
)


@dataclass(frozen=True)
class SettleTicket:
    """A prepared merge or redeem; live mode's needs the asking user's confirmation."""

    action: str  # merge | redeem
    ref: str | None
    sets: Decimal | None
    mode: Mode
    lines: tuple[str, ...]  # what will be settled and the transaction, one line per market
    requested_by: str = ""
    needs_confirmation: bool = False
    ticket_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass(frozen=True)
class SettleRow:
    market: str
    status: str
    amount: Decimal
    pusd: Decimal
    message: str
    tx_hash: str | None = None
    calldata: str | None = None
    to: str | None = None


@dataclass(frozen=True)
class SettleReport:
    action: str
    mode: str
    ok: bool
    rows: tuple[SettleRow, ...]
    note: str = ""

    @property
    def amount(self) -> Decimal:
        return sum((r.amount for r in self.rows if r.status in ("booked", "confirmed")), Decimal(0))

    @property
    def pusd(self) -> Decimal:
        return sum((r.pusd for r in self.rows), Decimal(0))

    def summary(self) -> str:
        lines = [r.message for r in self.rows] or [f"nothing to {self.action}"]
        return "\n".join(lines + ([self.note] if self.note else []))

    def as_dict(self) -> dict[str, object]:
        return _plain_dict(asdict(self)) | {"amount": str(self.amount), "pusd": str(self.pusd)}


@dataclass(frozen=True)
class HeldRow:
    label: str
    shares: Decimal
    mark: Decimal | None
    value: Decimal | None  # shares x mark (None: no mark)


@dataclass(frozen=True)
class BalanceReport:
    mode: str
    collateral: Decimal | None  # pUSD
    allowance: str  # what is known of the exchanges' pUSD allowance
    source: str
    positions: tuple[HeldRow, ...]
    mergeable: tuple[tuple[str, Decimal], ...]  # (market, sets)
    event_sets: tuple[tuple[str, Decimal], ...]  # (event id, sets held to resolution)
    redeemable: tuple[tuple[str, str, Decimal], ...]  # (market, winning outcome, pUSD)
    merged_sets: Decimal = Decimal(0)
    returned_pusd: Decimal = Decimal(0)

    def as_dict(self) -> dict[str, object]:
        return _plain_dict(asdict(self))


def _plain_dict(value: object) -> dict[str, object]:
    def conv(v: object) -> object:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, Mode):
            return v.value
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        return v

    out = conv(value)
    assert isinstance(out, dict)  # asdict gave a dict
    return out


UNLIMITED_PUSD = Decimal(2**255) / 1_000_000  # approve(spender, 2**256 - 1) reads back as this much or more


def balance(
    settlement: Settlement,
    positions: PositionBook,
    registry: MarketRegistry,
    funds: Funds | None,
    mark: Callable[[str], Decimal | None],
) -> BalanceReport:
    if settlement.mode is Mode.PAPER:
        allowance = "not needed (paper: no chain)"
    elif funds is None or funds.allowance is None:
        allowance = "not reported by the venue yet (`polybot preflight` checks the pUSD and CTF approvals on chain)"
    elif funds.allowance >= UNLIMITED_PUSD:
        allowance = "unlimited"
    else:
        allowance = f"{_plain(funds.allowance)} pUSD" + (
            " (below the balance: approve pUSD for the exchanges)"
            if funds.collateral is not None and funds.allowance < funds.collateral
            else ""
        )
    held = []
    for pos in positions.open_positions():
        m = mark(pos.token_id)
        held.append(HeldRow(registry.label(pos.token_id), pos.shares, m, pos.shares * m if m is not None else None))
    t = settlement.totals
    return BalanceReport(
        mode=settlement.mode.value,
        collateral=funds.collateral if funds is not None else None,
        allowance=allowance,
        source=funds.source if funds is not None else "no funds source",
        positions=tuple(held),
        mergeable=tuple((m.market.slug or m.market.condition_id, m.sets) for m in settlement.mergeable()),
        event_sets=tuple(sorted(settlement.event_sets().items())),
        redeemable=tuple(
            (r.market.slug or r.market.condition_id, r.winning_outcome or "winner unknown", r.payout)
            for r in settlement.redeemable()
        ),
        merged_sets=t.merged_sets,
        returned_pusd=t.merged_pusd + t.redeemed_pusd,
    )


def prepare(
    settlement: Settlement, action: str, ref: str | None, sets: Decimal | None, *, mode: Mode, user: str
) -> SettleTicket:
    """What a merge / redeem would settle now, with its transactions; nothing held: an error."""
    try:
        lines = _merge_lines(settlement, ref, sets) if action == MERGE else _redeem_lines(settlement, ref)
    except UsageError as exc:
        raise ControlError(str(exc), "unknown_market") from None
    return SettleTicket(action, ref, sets, mode, tuple(lines), user, needs_confirmation=mode is Mode.LIVE)


def _merge_lines(settlement: Settlement, ref: str | None, sets: Decimal | None) -> list[str]:
    if not ref:
        raise ControlError("name a market or a neg-risk event: /merge MARKET|EVENT [SETS]", "usage")
    if sets is not None and sets <= 0:
        raise ControlError(f"sets must be positive, got {sets}", "invalid_size")
    found = settlement.mergeable(ref)
    if not found:
        note = f"; {EVENT_NOTE}" if settlement.markets_of(ref)[1] else ""
        raise ControlError(f"no complete YES+NO set held in {ref}{note}", "nothing_to_merge")
    wanted = None if sets is None else int(sets * 1_000_000)  # whole 10^-6 units, rounded down
    short = [m for m in found if wanted is not None and wanted > m.units]
    if short:
        held = ", ".join(f"{_plain(m.sets)} in {m.market.slug or m.market.condition_id}" for m in short)
        raise ControlError(f"{_plain(sets or Decimal(0))} sets asked, only {held}", "more_than_held")
    from core.chain.calls import merge_call  # eth-abi loads pydantic: not at CLI start-up

    lines = []
    for m in found:
        units = m.units if wanted is None else wanted
        call = merge_call(m.market.condition_id, units, neg_risk=m.market.neg_risk)
        n = Decimal(units) / 1_000_000
        lines.append(
            f"merge {_plain(n)} sets of {m.market.slug or m.market.condition_id} -> {_plain(n)} pUSD: {call.describe()}"
        )
    return lines


def _redeem_lines(settlement: Settlement, ref: str | None) -> list[str]:
    found = settlement.redeemable(ref)
    if not found:
        raise ControlError(
            f"nothing to redeem{' in ' + ref if ref else ''} (no resolved market held)", "nothing_to_redeem"
        )
    from core.chain.calls import redeem_call  # eth-abi loads pydantic: not at CLI start-up

    lines = []
    for r in found:
        call = redeem_call(r.market.condition_id, neg_risk=r.market.neg_risk)
        what = (
            f"{_plain(r.winning_shares)} {r.winning_outcome or '?'} shares of {r.market.slug or r.market.condition_id}"
        )
        lines.append(f"redeem {what} -> {_plain(r.payout)} pUSD: {call.describe()}")
    return lines


async def execute(settlement: Settlement, ticket: SettleTicket, *, mode: Mode, confirmed: bool) -> SettleReport:
    if ticket.needs_confirmation and not confirmed:
        raise ControlError(f"a live {ticket.action} needs an explicit confirmation", "needs_confirmation")
    if ticket.mode is not mode:
        raise ControlError(f"the mode changed to {mode.value} since this {ticket.action} was prepared", "mode_changed")
    try:
        if ticket.action == MERGE:
            assert ticket.ref is not None  # prepare refuses a merge without a reference
            outcomes = await settlement.merge(ticket.ref, ticket.sets)
            event = settlement.markets_of(ticket.ref)[1] is not None
        else:
            outcomes = await settlement.redeem(ticket.ref)
            event = False
    except UsageError as exc:
        raise ControlError(str(exc), "unknown_market") from None
    rows = tuple(_row(o) for o in outcomes)
    ok = all(o.ok for o in outcomes)
    return SettleReport(ticket.action, mode.value, ok, rows, EVENT_NOTE if event else "")


def _row(o: Outcome) -> SettleRow:
    return SettleRow(
        market=o.label,
        status=str(o.status),
        amount=o.amount,
        pusd=o.pusd,
        message=o.message,
        tx_hash=o.tx_hash,
        calldata="0x" + o.call.data.hex() if o.call is not None else None,
        to=o.call.to if o.call is not None else None,
    )


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# ---- the CLI's way in: a control request the running service runs (core.control.requests) ----

REQUEST_ACTIONS = (MERGE, REDEEM, "balance")


@runtime_checkable
class SettlementActions(Protocol):
    """The part of :class:`core.control.Control` a settlement request needs."""

    async def balance(self) -> BalanceReport: ...

    async def prepare_merge(self, ref: str, sets: Decimal | None, *, user: str) -> SettleTicket: ...

    async def prepare_redeem(self, ref: str | None, *, user: str) -> SettleTicket: ...

    async def execute_merge(self, ticket: SettleTicket, *, user: str, confirmed: bool) -> SettleReport: ...


def request_args(
    ref: str | None = None, sets: Decimal | None = None, *, dry_run: bool = False, yes: bool = False
) -> str:
    """What a CLI request carries in its ``reason`` column (JSON)."""
    return json.dumps({"ref": ref, "sets": None if sets is None else str(sets), "dry_run": dry_run, "yes": yes})


async def run_request(control: SettlementActions, action: str, by: str, args_text: str) -> tuple[bool, str]:
    """Run a CLI's merge / redeem / balance in the service; the answer is one JSON document.

    ``dry_run``: prepared only (what would be settled and the exact transactions), in any mode.
    A live merge or redeem runs only with ``yes`` (the CLI's explicit confirmation)."""
    try:
        args = json.loads(args_text)
        ref, dry_run, yes = args.get("ref"), bool(args.get("dry_run")), bool(args.get("yes"))
        sets = None if args.get("sets") is None else Decimal(str(args["sets"]))
    except (ValueError, TypeError, AttributeError, ArithmeticError):
        return False, json.dumps({"ok": False, "error": "unreadable request arguments"})
    try:
        if action == "balance":
            return True, json.dumps(_plain_dict(asdict(await control.balance())))
        if action == MERGE:
            ticket = await control.prepare_merge(ref or "", sets, user=by)
        else:
            ticket = await control.prepare_redeem(ref, user=by)
        if dry_run:
            plan = {
                "ok": True,
                "action": action,
                "mode": ticket.mode.value,
                "dry_run": True,
                "lines": list(ticket.lines),
            }
            return True, json.dumps(plan)
        if ticket.needs_confirmation and not yes:
            why = f"a live {action} needs --yes (see the transaction first with --dry-run)"
            return False, json.dumps({"ok": False, "error": why, "lines": list(ticket.lines)})
        report = await control.execute_merge(ticket, user=by, confirmed=yes)
    except ControlError as exc:
        return False, json.dumps({"ok": False, "error": str(exc), "reason_code": exc.reason_code})
    return report.ok, json.dumps(report.as_dict())


def read_answer(message: str) -> dict[str, object]:
    """The JSON document a service recorded (the request's result may carry a trailing note)."""
    try:
        value, _ = json.JSONDecoder().raw_decode(message)
    except ValueError:
        return {"ok": False, "error": message}
    return value if isinstance(value, dict) else {"ok": False, "error": message}
