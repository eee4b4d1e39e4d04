"""Result objects of the control facade, rendered alike by the CLI and the Telegram bot."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypedDict

from core.errors import PolybotError
from core.execution.group_stats import GroupFigures as GroupReport
from core.store.status_types import StateEntry, StoredAsset, StoredStatus
from core.types import MarketInfo, Mode, OrderType, Side

__all__ = [
    "ActionResult",
    "CompleteSetRow",
    "ConfigSummary",
    "ControlError",
    "DryRunRequest",
    "DryRunResult",
    "FeedConnection",
    "Followed",
    "GroupReport",
    "HealthReport",
    "ListedMarket",
    "MarketListing",
    "MarketRow",
    "OrderOutcome",
    "OrderRow",
    "OrderTicket",
    "PnlReport",
    "PositionRow",
    "PositionsAtVenue",
    "PreflightCheck",
    "PreflightCheckDict",
    "PreflightReport",
    "PreflightReportDict",
    "PreflightStatus",
    "QuoteRow",
    "SmokeResult",
    "StateEntry",
    "StatusReport",
    "StoredAsset",
    "StoredStatus",
    "VenuePositionDiff",
    "to_jsonable",
]


class ControlError(PolybotError):
    """A refused or failed request; ``reason_code`` is machine-readable (risk codes, usage ...)."""

    def __init__(self, message: str, reason_code: str = "error") -> None:
        super().__init__(message)
        self.reason_code = reason_code


def to_jsonable(obj: object) -> object:
    """Dataclasses/Decimals/enums -> JSON-ready values (Decimals as strings: exact)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, enum.Enum) and isinstance(obj.value, str):
        return obj.value
    return obj


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str
    reason_code: str = ""


@dataclass(frozen=True)
class FeedConnection:
    name: str
    state: str
    assets: int
    seconds_since_frame: float | None
    reconnects: int


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass(frozen=True, slots=True)
class Followed:
    """What the service follows on the market feed (:func:`core.control.views.followed`): the same
    count in the start notice and in /status."""

    markets: int
    """Open markets followed: named in the configuration, watched, selected by a rule, or held."""
    assets: int
    """Their outcome tokens, plus any raw [feed] assets."""
    stored: int
    """Markets the database knows (refresh-markets stored them)."""

    def text(self) -> str:
        """``6 markets followed (12 outcomes) of 9 stored``."""
        return f"{_plural(self.markets, 'market')} followed ({_plural(self.assets, 'outcome')}) of {self.stored} stored"


@dataclass(frozen=True)
class StatusReport:
    mode: str
    armed: bool
    followed: Followed
    books: dict[str, int]
    connections: list[FeedConnection]
    open_orders: int
    positions: int
    pnl_today: Decimal
    last_alert: str | None
    frames: int = 0
    uptime_s: float = 0.0
    venue: str = ""  # REST state, user-channel state, last heartbeat age ("" when there is no venue: paper)
    funds: str = ""  # collateral, what open buys hold of it, and where the numbers come from


@dataclass(frozen=True)
class QuoteRow:
    market: str  # slug or condition id
    outcome: str
    token_id: str
    bid: Decimal | None
    ask: Decimal | None
    spread: Decimal | None
    status: str
    dutch_edge: Decimal | None = None  # per set, for the market (or event) this row belongs to


@dataclass(frozen=True)
class MarketRow:
    condition_id: str
    slug: str
    question: str
    outcomes: list[str]
    tick_size: Decimal
    neg_risk: bool
    fee_rate: Decimal
    active: bool


@dataclass(frozen=True)
class ListedMarket:
    """A market as stored by refresh-markets: the domain view plus the bookkeeping columns."""

    info: MarketInfo
    end_date: datetime | None = None
    event_id: str | None = None
    fee_schedule: Mapping[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        i = self.info
        return {
            "condition_id": i.condition_id,
            "slug": i.slug,
            "question": i.question,
            "outcomes": [t.outcome for t in i.tokens],
            "token_ids": [t.token_id for t in i.tokens],
            "tick_size": str(i.tick_size),
            "min_order_size": str(i.min_order_size),
            "neg_risk": i.neg_risk,
            "neg_risk_market_id": i.neg_risk_market_id,
            "neg_risk_augmented": i.neg_risk_augmented,
            "fee_rate": str(i.fee_rate),
            "fee_schedule": None if self.fee_schedule is None else dict(self.fee_schedule),
            "active": i.active,
            "closed": i.closed,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "event_id": self.event_id,
        }


@dataclass(frozen=True)
class MarketListing:
    markets: list[ListedMarket]
    any_stored: bool
    """Whether the database holds any market at all (an empty listing then means "no match")."""


PreflightStatus = Literal["PASS", "FAIL", "SKIP"]


class PreflightCheckDict(TypedDict):
    name: str
    status: PreflightStatus
    ok: bool
    skipped: bool
    detail: str


class PreflightReportDict(TypedDict):
    ok: bool
    failed: list[str]
    checks: list[PreflightCheckDict]


@dataclass(frozen=True)
class PreflightCheck:
    """One preflight row. A skipped check has ``ok=False, skipped=True``: a renderer that tests
    ``ok`` first shows it as SKIP, while :attr:`PreflightReport.ok` still counts it as passing."""

    name: str
    ok: bool
    detail: str = ""
    skipped: bool = False

    @property
    def status(self) -> PreflightStatus:
        """``PASS``, ``FAIL`` or ``SKIP``."""
        if self.skipped:
            return "SKIP"
        return "PASS" if self.ok else "FAIL"


@dataclass(frozen=True)
class PreflightReport:
    checks: list[PreflightCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok or c.skipped for c in self.checks)

    @property
    def failed(self) -> list[str]:
        """The names of the checks that failed (a skipped check did not)."""
        return [c.name for c in self.checks if not c.ok and not c.skipped]

    def as_dict(self) -> PreflightReportDict:
        """The JSON form (``polybot preflight --json``)."""
        return {
            "ok": self.ok,
            "failed": self.failed,
            "checks": [
                {"name": c.name, "status": c.status, "ok": c.ok, "skipped": c.skipped, "detail": c.detail}
                for c in self.checks
            ],
        }

    def lines(self) -> list[str]:
        """The PASS/FAIL/SKIP table and a verdict line, for a terminal."""
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"{c.status:<4}  {c.name:<{width}}  {c.detail}" for c in self.checks]
        failed = self.failed
        skipped = sum(1 for c in self.checks if c.skipped)
        if failed:
            lines.append(f"preflight FAILED: {len(failed)} of {len(self.checks)} checks failed ({', '.join(failed)})")
        else:
            lines.append(f"preflight passed ({len(self.checks) - skipped} passed, {skipped} skipped)")
        return lines


@dataclass(frozen=True)
class DryRunRequest:
    """One order to sign exactly as live mode would, and never post."""

    market: str
    """Token id, condition id or stored slug."""
    outcome: str
    side: Side
    price: Decimal
    size: Decimal
    order_type: OrderType = OrderType.GTC
    tick_size: Decimal | None = None
    neg_risk: bool | None = None
    client_order_id: str | None = None


@dataclass(frozen=True)
class DryRunResult:
    """A signed, never-posted order: its labelled fields for a terminal and its JSON record."""

    rows: list[tuple[str, str]]
    record: dict[str, object]


@dataclass(frozen=True)
class ConfigSummary:
    """Which configuration a process outside the service loaded."""

    mode: str
    config_path: str | None


@dataclass(frozen=True)
class SmokeResult:
    """A preflight and, only when it passed, the dry-run order it allowed."""

    mode: str
    config_path: str | None
    preflight: PreflightReport
    order: DryRunResult | None


@dataclass(frozen=True)
class OrderTicket:
    """A validated order request waiting to be executed (and, in live mode, confirmed)."""

    market: MarketInfo
    token_id: str
    outcome: str
    side: Side
    price: Decimal
    size: Decimal
    mode: Mode
    order_type: OrderType = OrderType.GTC
    est_fee: Decimal = Decimal(0)
    requested_by: str = ""
    needs_confirmation: bool = False
    post_only: bool = False
    expiration: int = 0
    """GTD only: unix seconds, the venue's one-minute safety margin included."""
    note: str = ""
    """Why the ticket exists when it is not a typed /order (e.g. "/close: all 10 Yes shares held")."""
    ticket_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    """The idempotency seed: executing the same ticket twice places one order."""

    @property
    def notional(self) -> Decimal:
        return self.price * self.size


@dataclass(frozen=True)
class OrderOutcome:
    client_order_id: str
    status: str
    mode: str
    filled: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    message: str = ""
    signed_order: dict[str, object] | None = None
    ticket: OrderTicket | None = None
    """The order as asked for (market, outcome, side, size, price, type): every reply states it."""

    @property
    def summary(self) -> str:
        return f"{self.status} {self.client_order_id} filled {self.filled}"


@dataclass(frozen=True)
class OrderRow:
    client_order_id: str
    market: str
    outcome: str
    side: str
    price: Decimal
    size: Decimal
    filled: Decimal
    status: str
    mode: str
    order_type: str = "GTC"
    post_only: bool = False


@dataclass(frozen=True)
class PositionRow:
    market: str
    outcome: str
    token_id: str
    size: Decimal
    avg_cost: Decimal
    mark: Decimal | None
    unrealised: Decimal  # the shares outside complete sets, against the mark
    realised: Decimal
    in_sets: Decimal = Decimal(0)  # shares of this position held in complete sets (worth 1 per set)
    venue: Decimal | None = None  # the venue's shares at the last venue sync, when they differ from ours


@dataclass(frozen=True)
class VenuePositionDiff:
    """A token whose shares at the venue differ from ours by more than one size tick."""

    token_id: str
    market: str  # slug (or question) as we or the venue name it
    outcome: str
    ours: Decimal
    venue: Decimal


@dataclass(frozen=True)
class PositionsAtVenue:
    """The last venue sync: the Data API's positions of ``address`` against Polybot's ledger.

    ``ok`` False: the venue could not be read (``error``); the differences are those of the last
    read that worked, kept as they were."""

    at: float
    address: str
    ok: bool
    venue_positions: int = 0  # positions the venue listed
    differences: tuple[VenuePositionDiff, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class CompleteSetRow:
    """Sets held in full (a binary market's YES + NO, or YES of every member of a neg-risk event)."""

    unit: str  # the market's slug, or the event's name (its members' common slug prefix)
    kind: str  # "binary" | "neg_risk"
    sets: Decimal
    cost: Decimal  # what was paid for the shares in these sets, fees included
    value: Decimal  # 1 pUSD per set
    locked_edge: Decimal  # value - cost


@dataclass(frozen=True)
class PnlReport:
    realised_today: Decimal
    realised_total: Decimal
    unrealised: Decimal  # the remainder outside complete sets, at marks
    complete_sets: Decimal = Decimal(0)
    locked_edge: Decimal = Decimal(0)  # complete sets x 1 - what they cost (fees included)


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
