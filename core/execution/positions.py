"""Positions and PnL by average cost, exact in Decimal.

Per token we hold a signed share count ``shares`` and a signed cost basis ``cost`` (money paid
for the shares still held, buy fees included; negative for a short). A trade that grows the
position adds to the basis; a trade that reduces it releases the proportional part of the basis
and realises ``proceeds - released basis - fee``; a trade that flips the position closes it
first and opens the remainder at the trade price. The released basis is rounded to 10^-6
(pUSD's unit) half-even, and the remaining basis is what is left after subtracting it, so
realised + remaining basis always add up exactly to what was paid: no drift, ever.

Unrealised PnL is ``shares x mark - cost`` against a mark price provider (mid, best bid ...), on
the shares outside complete sets when the book knows the set units (:mod:`.complete_sets`: a set
is worth 1 pUSD, not its marks). Realised PnL is also bucketed by UTC day for the daily loss limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from core.execution.complete_sets import SetUnit, Valuation, value_positions
from core.execution.types import Fill
from core.types import Side

ZERO = Decimal(0)
BASIS_QUANTUM = Decimal("0.000001")

MarkProvider = Callable[[str], Decimal | None]


_DAY_S = 86400
_day_cache: tuple[float, float, str] = (0.0, -1.0, "")  # [from, to) -> the day's text


def utc_day(ts: float) -> str:
    """The UTC calendar day of ``ts`` ("2026-12-05"). The last day is kept: away from midnight
    (a second's margin each side) the same text without formatting it again (the risk gate asks
    for it on every order)."""
    global _day_cache
    lo, hi, text = _day_cache
    if lo <= ts < hi:
        return text
    text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
    start = math.floor(ts / _DAY_S) * _DAY_S
    if start + 1.0 <= ts < start + _DAY_S - 1.0:
        _day_cache = (start + 1.0, start + _DAY_S - 1.0, text)
    return text


@dataclass(slots=True)
class Position:
    token_id: str
    market: str = ""
    shares: Decimal = ZERO
    cost: Decimal = ZERO
    realised: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal | None:
        """Average cost per share (fees included); None when flat. Display only: may not terminate."""
        if self.shares == 0:
            return None
        return self.cost / self.shares

    def unrealised(self, mark: Decimal) -> Decimal:
        return self.shares * mark - self.cost

    def apply(self, side: Side, price: Decimal, size: Decimal, fee: Decimal = ZERO) -> Decimal:
        """Apply one fill; returns the PnL it realised."""
        if size <= 0:
            raise ValueError(f"fill size must be positive, got {size}")
        if price < 0:
            raise ValueError(f"fill price must not be negative, got {price}")
        delta = size if side is Side.BUY else -size
        self.fees += fee
        if self.shares == 0 or (self.shares > 0) == (delta > 0):
            self.shares += delta
            self.cost += delta * price + fee
            return ZERO
        close_abs = min(abs(delta), abs(self.shares))
        closing = close_abs if delta > 0 else -close_abs
        if close_abs == abs(self.shares):
            released = self.cost
        else:
            released = (self.cost * close_abs / abs(self.shares)).quantize(BASIS_QUANTUM, rounding=ROUND_HALF_EVEN)
        realised = -closing * price - released - fee
        self.shares += closing
        self.cost -= released
        remainder = delta - closing
        if remainder != 0:
            self.shares += remainder
            self.cost += remainder * price
        self.realised += realised
        return realised


@dataclass(frozen=True, slots=True)
class FillPnl:
    position: Position
    realised: Decimal


@dataclass(slots=True)
class PositionBook:
    """All positions, plus realised PnL by UTC day."""

    clock: Callable[[], float] = time.time
    positions: dict[str, Position] = field(default_factory=dict)
    realised_by_day: dict[str, Decimal] = field(default_factory=dict)
    units: Callable[[], Sequence[SetUnit]] | None = None
    """The complete-set units of the known markets (the exposure tracker installs its own)."""

    def get(self, token_id: str) -> Position | None:
        return self.positions.get(token_id)

    def preview(self, fill: Fill, market: str = "") -> FillPnl:
        """What ``fill`` would do, on a copy: nothing changes until :meth:`commit`."""
        cur = self.positions.get(fill.token_id)
        pos = replace(cur) if cur is not None else Position(token_id=fill.token_id, market=market)
        if market and not pos.market:
            pos.market = market
        realised = pos.apply(fill.side, fill.price, fill.size, fill.fee)
        return FillPnl(position=pos, realised=realised)

    def commit(self, fill: Fill, outcome: FillPnl) -> None:
        self.positions[fill.token_id] = outcome.position
        if outcome.realised != 0:
            day = utc_day(fill.ts_ms / 1000 if fill.ts_ms else self.clock())
            self.realised_by_day[day] = self.realised_by_day.get(day, ZERO) + outcome.realised

    def apply_fill(self, fill: Fill, market: str = "") -> FillPnl:
        outcome = self.preview(fill, market)
        self.commit(fill, outcome)
        return outcome

    def daily_realised(self, day: str | None = None) -> Decimal:
        return self.realised_by_day.get(day or utc_day(self.clock()), ZERO)

    def cash_spent(self) -> Decimal:
        """Net money paid out for trades: buys and fees minus sale proceeds. Per position that is
        ``cost - realised`` (the basis still held plus the basis released, minus what releasing it
        realised), so it stays exact however many partial sales there were."""
        return sum((p.cost - p.realised for p in self.positions.values()), ZERO)

    def realised_total(self) -> Decimal:
        return sum((p.realised for p in self.positions.values()), ZERO)

    def valuation(self) -> Valuation:
        """The positions split into complete sets (worth 1 each) and the remainder (at marks)."""
        return value_positions(self.positions.values(), self.units() if self.units is not None else ())

    def unrealised(self, marks: MarkProvider) -> Decimal:
        """Unrealised PnL against the marks of every open position outside complete sets;
        unmarked positions are skipped. Complete sets are valued by :meth:`valuation` (locked edge)."""
        if self.units is not None:
            return self.valuation().unrealised(marks)
        total = ZERO
        for pos in self.positions.values():
            if pos.shares == 0:
                continue
            mark = marks(pos.token_id)
            if mark is not None:
                total += pos.unrealised(mark)
        return total

    def unmarked(self, marks: MarkProvider) -> list[str]:
        if self.units is not None:
            return self.valuation().unmarked(marks)
        return [p.token_id for p in self.positions.values() if p.shares != 0 and marks(p.token_id) is None]

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.shares != 0]

    def load(self, positions: Iterable[Position], realised_by_day: dict[str, Decimal] | None = None) -> None:
        for pos in positions:
            self.positions[pos.token_id] = pos
        if realised_by_day:
            self.realised_by_day.update(realised_by_day)
