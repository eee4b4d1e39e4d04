"""Charts drawn as PNG with matplotlib's Agg backend: blocking work, called in a worker thread.

matplotlib is imported here only, when a chart is drawn (a CLI start or the service's start never
loads it). The object API (``Figure`` + ``FigureCanvasAgg``) keeps no global pyplot state, so a
drawing in a worker thread touches nothing the event loop uses. Sized for a phone: 900 x 1000
pixels, large type, labelled axes with units.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.control.chart_data import MarketChartData, OutcomeSeries, PnlChartData

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH_IN, HEIGHT_IN, DPI = 9.0, 10.0, 100
FONT = 15
SECONDS_PER_DAY = 86400.0
SHORT_SPAN_S = 1200.0
MS_SPAN_S = 20.0
MAX_POINTS = 400
MAX_TRADES = 150
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
BID_ALPHA, ASK_ALPHA = 0.35, 0.15


def _figure(rows: int) -> tuple[Any, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    # fixed margins: a constrained layout solves for them on every draw and costs more than the plot
    fig.subplots_adjust(left=0.12, right=0.97, top=0.91 if rows == 1 else 0.93, bottom=0.07, hspace=0.35)
    axes = [fig.add_subplot(rows, 1, i + 1) for i in range(rows)]
    for ax in axes:
        ax.tick_params(labelsize=FONT - 2)
        ax.grid(True, alpha=0.3)
        # five labels an axis: readable on a phone, and every tick is text matplotlib lays out
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_locator(MaxNLocator(5))
    return fig, axes


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # zlib level 1: a third of level 6's encoding time for a file ~30% larger (still far below Telegram's 10 MB)
    fig.canvas.print_png(buf, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _time_axis(ax: Axes, span_s: float) -> None:
    from matplotlib.ticker import FuncFormatter

    # hours apart read as HH:MM; minutes as HH:MM:SS; a replay of seconds (the demo's) to the millisecond
    fmt, cut = (
        ("%H:%M:%S.%f", -3) if span_s < MS_SPAN_S else ("%H:%M:%S", None) if span_s < SHORT_SPAN_S else ("%H:%M", None)
    )
    if span_s >= 2 * SECONDS_PER_DAY:
        fmt = "%d %b"

    def label(x: float, _pos: object) -> str:
        return datetime.fromtimestamp(x * SECONDS_PER_DAY, UTC).strftime(fmt)[:cut]

    ax.xaxis.set_major_formatter(FuncFormatter(label))
    ax.set_xlabel("time (UTC)", fontsize=FONT)


def _dates(epochs: list[float]) -> list[float]:
    """Epoch seconds as matplotlib date numbers (days since its default epoch, 1970-01-01 UTC)."""
    return [t / SECONDS_PER_DAY for t in epochs]


def market_png(data: MarketChartData) -> bytes:
    from matplotlib.ticker import MaxNLocator

    fig, (depth_ax, tops_ax) = _figure(2)
    fig.suptitle(data.title, fontsize=FONT + 2, fontweight="bold")
    for colour, s in zip(COLOURS, data.outcomes, strict=False):
        if s.bids:
            px, size = zip(*s.bids, strict=True)
            depth_ax.step(px, size, where="post", color=colour, linewidth=2, label=f"{s.outcome} bids")
            depth_ax.fill_between(px, size, step="post", color=colour, alpha=BID_ALPHA)
        if s.asks:
            px, size = zip(*s.asks, strict=True)
            depth_ax.step(px, size, where="post", color=colour, linewidth=2, linestyle="--", label=f"{s.outcome} asks")
            depth_ax.fill_between(px, size, step="post", color=colour, alpha=ASK_ALPHA)
    depth_ax.set_title("Depth now: shares available at this price or better", fontsize=FONT)
    depth_ax.set_xlabel("price (pUSD per share)", fontsize=FONT)
    depth_ax.set_ylabel("cumulative size (shares)", fontsize=FONT)
    depth_ax.set_xlim(0, 1)
    plotted = False
    for colour, s in zip(COLOURS, data.outcomes, strict=False):
        if s.times:
            idx = thin(len(s.times), MAX_POINTS)
            when = _dates(_pick(s.times, idx))
            bid, ask = _nan(_pick(s.best_bid, idx)), _nan(_pick(s.best_ask, idx))
            tops_ax.step(when, bid, where="post", color=colour, linewidth=2, label=f"{s.outcome} bid")
            tops_ax.step(when, ask, where="post", color=colour, linewidth=1.5, linestyle="--")
            plotted = True
        if s.trade_times:
            idx = thin(len(s.trade_times), MAX_TRADES)
            sizes = [min(200.0, 20 + sz) for sz in _pick(s.trade_sizes, idx)]
            when = _dates(_pick(s.trade_times, idx))
            tops_ax.scatter(when, _pick(s.trade_prices, idx), s=sizes, color=colour, edgecolors="black", zorder=3)
            plotted = True
    hours = f"{data.hours:g}"
    tops_ax.set_title(f"Best bid (solid), best ask (dashed), trades (dots): last {hours} h", fontsize=FONT)
    tops_ax.set_ylabel("price (pUSD)", fontsize=FONT)
    if plotted:
        stamps = [t for s in data.outcomes for t in (*s.times, *s.trade_times)]
        _time_axis(tops_ax, max(stamps) - min(stamps))
        tops_ax.xaxis.set_major_locator(MaxNLocator(5))
    else:
        tops_ax.text(0.5, 0.5, "no stored book or trade in this window", ha="center", va="center", fontsize=FONT)
    for ax in (depth_ax, tops_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=FONT - 3, loc="upper right")  # "best" searches every point: slow
    return _png(fig)


def pnl_png(data: PnlChartData) -> bytes:
    from matplotlib.ticker import MaxNLocator

    fig, (ax,) = _figure(1)
    fig.suptitle(data.title, fontsize=FONT + 2, fontweight="bold")
    idx = thin(len(data.times), MAX_POINTS)
    when = _dates(_pick(data.times, idx))
    total, realised = _pick(data.total, idx), _pick(data.realised, idx)
    ax.step(when, total, where="post", color=COLOURS[0], linewidth=2.5, label="realised + unrealised")
    ax.step(when, realised, where="post", color=COLOURS[2], linewidth=2, linestyle="--", label="realised")
    ax.axhline(0, color="black", linewidth=1)
    ax.set_ylabel("PnL (pUSD)", fontsize=FONT)
    ax.set_title(
        f"{data.fills} fills; now: realised {data.last_realised:.2f}, total {data.last_total:.2f} pUSD", fontsize=FONT
    )
    _time_axis(ax, data.times[-1] - data.times[0] if data.times else 0.0)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.legend(fontsize=FONT - 2, loc="upper left")  # "best" searches every point: slow
    return _png(fig)


def _nan(values: list[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def thin(n: int, most: int) -> list[int]:
    """At most ``most`` indexes of ``n`` points, evenly spread, the last always kept: a phone shows
    900 pixels, so 20,000 top-of-book changes are drawn as the state at 400 instants."""
    if n <= most:
        return list(range(n))
    step = n / most
    picked = [int(i * step) for i in range(most)]
    return picked if picked[-1] == n - 1 else [*picked, n - 1]


def _pick(values: list[Any], idx: list[int]) -> list[Any]:
    return [values[i] for i in idx]


def warm() -> bytes:
    """Draw a small market chart and throw it away: matplotlib's import, its font set-up and the
    first text layout happen here, at start, instead of in the first /chart a trader asks for
    (1.2-1.3 s cold against ~140 ms warm, bench/charts.py)."""
    now = datetime.now(UTC).timestamp()
    series = OutcomeSeries(
        "Yes",
        bids=[(0.4, 5.0), (0.3, 9.0)],
        asks=[(0.5, 4.0), (0.6, 8.0)],
        times=[now - 60, now],
        best_bid=[0.4, 0.41],
        best_ask=[0.5, 0.49],
        trade_times=[now - 30],
        trade_prices=[0.45],
        trade_sizes=[3.0],
    )
    return market_png(MarketChartData("warm-up", 1.0, now, [series]))
