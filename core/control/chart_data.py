"""What a chart shows, read from the running service: plain numbers, no drawing.

- a market: each outcome's depth now (cumulative size by price, bids and asks) from the live
  books, and the last hours of best bid / best ask (the stored book deltas) and the market's
  trades (the stored ``last_trade_price`` events);
- PnL: realised and realised + unrealised over time, replayed from our fills (average cost per
  token, fees against PnL; open shares valued at our latest fill price for that token, the last
  point at the book's mark now). Merges and redemptions are not fills: the curve leaves them out.

The drawing is :mod:`core.control.chart_draw`, in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select

from core.store import models as m
from core.store.delta_index import asset_deltas
from core.types import BookView, MarketInfo

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ZERO = Decimal(0)
MAX_ROWS = 20_000
"""Rows read per series: a chart of a busy market stays one quick query (the newest rows)."""


@dataclass
class OutcomeSeries:
    outcome: str
    bids: list[tuple[float, float]] = field(default_factory=list)  # (price, cumulative size), best first
    asks: list[tuple[float, float]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # epoch seconds of top-of-book changes
    best_bid: list[float | None] = field(default_factory=list)
    best_ask: list[float | None] = field(default_factory=list)
    trade_times: list[float] = field(default_factory=list)
    trade_prices: list[float] = field(default_factory=list)
    trade_sizes: list[float] = field(default_factory=list)


@dataclass
class MarketChartData:
    title: str
    hours: float
    now: float
    outcomes: list[OutcomeSeries]


@dataclass
class PnlChartData:
    title: str
    times: list[float]
    realised: list[float]
    total: list[float]  # realised + unrealised
    fills: int
    last_realised: Decimal = ZERO
    last_total: Decimal = ZERO


def depth(levels: Sequence[tuple[Decimal, Decimal]]) -> list[tuple[float, float]]:
    """Levels best first -> (price, size available at this price or better)."""
    out, total = [], ZERO
    for price, size in levels:
        total += size
        out.append((float(price), float(total)))
    return out


async def market_data(
    market: MarketInfo,
    books: Mapping[str, BookView],
    sessions: async_sessionmaker[AsyncSession] | None,
    *,
    hours: float,
    now: float | None = None,
) -> MarketChartData:
    now = time.time() if now is None else now
    since_ns = int((now - hours * 3600) * 1e9)
    series = []
    for token in market.tokens:
        s = OutcomeSeries(token.outcome)
        book = books.get(token.token_id)
        if book is not None:
            s.bids, s.asks = depth(book.bids()), depth(book.asks())
        if sessions is not None:
            await _history(sessions, token.token_id, since_ns, s)
        series.append(s)
    return MarketChartData(market.slug or market.question or market.condition_id, hours, now, series)


async def _history(sessions: async_sessionmaker[AsyncSession], token_id: str, since_ns: int, s: OutcomeSeries) -> None:
    d, t = m.BookDelta, m.Trade
    async with sessions() as session:
        columns = (d.receive_ts, d.best_bid, d.best_ask)
        dialect = session.get_bind().dialect.name  # SQLite: its per-asset index and the newest rows
        tops = (
            await session.execute(asset_deltas(dialect, columns, token_id, since_ns=since_ns, limit=MAX_ROWS))
        ).all()
        trades = (
            await session.execute(
                select(t.receive_ts, t.price, t.size)
                .where(t.asset_id == token_id, t.receive_ts >= since_ns)
                .order_by(t.id.desc())
                .limit(MAX_ROWS)
            )
        ).all()
    for ts, bid, ask in reversed(tops):
        s.times.append(ts / 1e9)
        s.best_bid.append(float(bid) if bid is not None else None)
        s.best_ask.append(float(ask) if ask is not None else None)
    for ts, price, size in reversed(trades):
        s.trade_times.append(ts / 1e9)
        s.trade_prices.append(float(price))
        s.trade_sizes.append(float(size))


@dataclass
class _Holding:
    shares: Decimal = ZERO
    cost: Decimal = ZERO  # pUSD paid for the shares held (average cost)
    last: Decimal | None = None  # latest price seen for the token


async def pnl_data(
    sessions: async_sessionmaker[AsyncSession] | None,
    mark: Callable[[str], Decimal | None],
    *,
    days: int,
    now: datetime | None = None,
) -> PnlChartData:
    """The curve over the last ``days``: every fill ever is replayed (realised PnL is cumulative),
    the points before the window are folded into its first one."""
    now = datetime.now(UTC) if now is None else now
    start = now - timedelta(days=days)
    fills: list[m.Fill] = []
    if sessions is not None:
        async with sessions() as session:
            rows = await session.execute(select(m.Fill).where(m.Fill.status != "failed").order_by(m.Fill.ts, m.Fill.id))
            fills = list(rows.scalars())
    holdings: dict[str, _Holding] = {}
    realised = ZERO
    data = PnlChartData(f"PnL, last {days} days", [], [], [], len(fills))
    for f in fills:
        h = holdings.setdefault(f.token_id, _Holding())
        realised += _apply(h, f)
        ts = f.ts if f.ts.tzinfo else f.ts.replace(tzinfo=UTC)
        if ts < start:
            continue
        _point(data, ts.timestamp(), realised, holdings)
    for token, h in holdings.items():  # the last point: open shares at the book's mark now
        h.last = mark(token) or h.last
    _point(data, now.timestamp(), realised, holdings)
    data.last_realised, data.last_total = realised, realised + _unrealised(holdings)
    return data


def _apply(h: _Holding, f: m.Fill) -> Decimal:
    """Book one fill (fees count against PnL); returns the PnL it realised."""
    h.last = f.price
    if f.side == "BUY":
        h.shares += f.size
        h.cost += f.price * f.size + f.fee
        return ZERO
    sold = min(f.size, h.shares)
    avg = h.cost / h.shares if h.shares else ZERO
    h.shares -= sold
    h.cost -= avg * sold
    return (f.price - avg) * sold - f.fee


def _unrealised(holdings: Mapping[str, _Holding]) -> Decimal:
    return sum((h.shares * h.last - h.cost for h in holdings.values() if h.shares and h.last is not None), ZERO)


def _point(data: PnlChartData, at: float, realised: Decimal, holdings: Mapping[str, _Holding]) -> None:
    data.times.append(at)
    data.realised.append(float(realised))
    data.total.append(float(realised + _unrealised(holdings)))
