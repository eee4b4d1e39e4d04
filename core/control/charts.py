"""/chart: a market's depth and recent top of book and trades, or the PnL curve, as a PNG.

The data is read on the loop (books, database); the drawing runs in a worker thread
(:func:`asyncio.to_thread`), never on the event loop, so trading and other commands go on while
matplotlib works.
"""

from __future__ import annotations

import asyncio
import gc
import re
from dataclasses import dataclass

from core.control import chart_data
from core.control.facade import Control
from core.control.types import ControlError
from core.errors import UsageError

DEFAULT_HOURS = 6.0
PNL_DAYS = {"7d": 7, "30d": 30}


@dataclass(frozen=True)
class ChartImage:
    png: bytes
    caption: str
    filename: str


async def warm_up() -> None:
    """Get the drawing ready off the loop (a worker thread), so the first /chart is as quick as the
    next; then freeze what that loaded (matplotlib's modules, fonts and caches, which live as long
    as the process) out of the collector, as the service froze its start-up heap: a full collection
    that lands in a chart then does not rescan them (slowest of 30 charts 291 -> 255 ms)."""
    from core.control.chart_draw import warm  # matplotlib only when a chart is drawn

    await asyncio.to_thread(warm)
    gc.collect()
    gc.freeze()


async def market_chart(control: Control, ref: str, *, hours: float = DEFAULT_HOURS) -> ChartImage:
    rt = control.rt
    try:
        market = rt.registry.resolve(ref)
    except UsageError as exc:
        raise ControlError(str(exc), "unknown_market") from None
    data = await chart_data.market_data(market, rt.books, rt.sessions, hours=hours)
    from core.control.chart_draw import market_png  # matplotlib only when a chart is drawn

    png = await asyncio.to_thread(market_png, data)
    trades = sum(len(s.trade_times) for s in data.outcomes)
    caption = f"{data.title}: depth now and the last {hours:g} h of best bid/ask ({trades} trades)"
    return ChartImage(png, caption, f"chart-{_safe(data.title)}.png")


async def pnl_chart(control: Control, period: str = "7d") -> ChartImage:
    days = PNL_DAYS.get(period.lower())
    if days is None:
        raise ControlError(f"period must be 7d or 30d, got {period!r}", "invalid_period")
    rt = control.rt
    data = await chart_data.pnl_data(rt.sessions, control.mark, days=days)
    from core.control.chart_draw import pnl_png  # matplotlib only when a chart is drawn

    png = await asyncio.to_thread(pnl_png, data)
    caption = (
        f"PnL over {days} days from {data.fills} fills: realised {data.last_realised:.2f} pUSD, "
        f"with unrealised {data.last_total:.2f} pUSD"
    )
    return ChartImage(png, caption, f"chart-pnl-{days}d.png")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:60] or "market"
