"""Result objects of the control facade, rendered alike by the CLI and the Telegram bot."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from core.errors import PolybotError
from core.types import MarketInfo, Mode, OrderType, Side


class ControlError(PolybotError):
    """A refused or failed request; ``reason_code`` is machine-readable (risk codes, usage ...)."""

    def __init__(self, message: str, reason_code: str = "error") -> None:
        super().__init__(message)
        self.reason_code = reason_code


def to_jsonable(obj: Any) -> Any:
    """Dataclasses/Decimals/enums -> JSON-ready values (Decimals as strings: exact)."""
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Decimal):
        return str(obj)
    if hasattr(obj, "value") and isinstance(getattr(obj, "value", None), str):
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


@dataclass(frozen=True)
class StatusReport:
    mode: str
    armed: bool
    markets: int
    assets: int
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
class PreflightCheck:
    name: str
    ok: bool
    detail: str = ""
    skipped: bool = False


@dataclass(frozen=True)
class PreflightReport:
    checks: list[PreflightCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok or c.skipped for c in self.checks)


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
    signed_order: dict[str, Any] | None = None

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


@dataclass(frozen=True)
class PositionRow:
    market: str
    outcome: str
    token_id: str
    size: Decimal
    avg_cost: Decimal
    mark: Decimal | None
    unrealised: Decimal
    realised: Decimal


@dataclass(frozen=True)
class PnlReport:
    realised_today: Decimal
    realised_total: Decimal
    unrealised: Decimal


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
