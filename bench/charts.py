"""Benchmark: how long /chart takes to draw (matplotlib Agg, the object API, as the bot runs it).

Draws the market chart (two outcomes, ``--levels`` price levels a side, ``--tops`` top-of-book
changes and ``--trades`` trades over six hours) and the PnL chart (``--fills`` fills over 30 days)
``--runs`` times each after one warm-up, and reports the cold first draw and the warm draws'
median and maximum, with the PNG sizes. The service makes the drawing ready at start
(``chart_draw.warm`` in a worker thread), so "cold" is the first /chart a trader asks for;
``--no-warm-up`` shows matplotlib's first use instead (its import and font set-up included).

Target (issue 18): < 300 ms per chart on this machine. The service draws in a worker thread
(``asyncio.to_thread``), so the time is a chart's latency, never the event loop's.
Run: ``uv run python bench/charts.py`` (``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.control.chart_data import MarketChartData, OutcomeSeries, PnlChartData

TARGET_MS = 300.0
NOW = 1_780_000_000.0


def market(levels: int, tops: int, trades: int, rng: random.Random) -> MarketChartData:
    outcomes = []
    for name, mid in (("Yes", 0.42), ("No", 0.58)):
        s = OutcomeSeries(name)
        size = 0.0
        for i in range(levels):
            size += rng.uniform(50, 900)
            s.bids.append((round(mid - 0.01 * (i + 1), 2), size))
        size = 0.0
        for i in range(levels):
            size += rng.uniform(50, 900)
            s.asks.append((round(mid + 0.01 * (i + 1), 2), size))
        price = mid
        for i in range(tops):
            price = min(0.98, max(0.02, price + rng.choice((-0.01, 0.0, 0.01))))
            s.times.append(NOW - 6 * 3600 + i * 6 * 3600 / tops)
            s.best_bid.append(round(price - 0.01, 2))
            s.best_ask.append(round(price + 0.01, 2))
        for i in range(trades):
            s.trade_times.append(NOW - 6 * 3600 + i * 6 * 3600 / trades)
            s.trade_prices.append(round(mid + rng.uniform(-0.05, 0.05), 2))
            s.trade_sizes.append(rng.uniform(5, 300))
        outcomes.append(s)
    return MarketChartData("bench-market-with-a-long-slug-2026", 6.0, NOW, outcomes)


def pnl(fills: int, rng: random.Random) -> PnlChartData:
    data = PnlChartData("PnL, last 30 days", [], [], [], fills)
    realised = total = 0.0
    for i in range(fills):
        realised += rng.uniform(-0.5, 0.8)
        total = realised + rng.uniform(-3, 3)
        data.times.append(NOW - 30 * 86400 + i * 30 * 86400 / fills)
        data.realised.append(realised)
        data.total.append(total)
    return data


def timed(draw: Callable[[], bytes], runs: int) -> dict[str, float]:
    """Wall time (what the trader waits) and the thread's CPU time (the work itself: on a loaded
    machine the wall time also counts waiting for a core)."""
    start = time.perf_counter()
    png = draw()
    cold = (time.perf_counter() - start) * 1000
    warm, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.thread_time()
        png = draw()
        warm.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return {
        "cold_ms": round(cold, 1),
        "median_ms": round(statistics.median(warm), 1),
        "max_ms": round(max(warm), 1),
        "cpu_median_ms": round(statistics.median(cpu), 1),
        "png_bytes": len(png),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", type=int, default=60)
    p.add_argument("--tops", type=int, default=20_000)
    p.add_argument("--trades", type=int, default=2_000)
    p.add_argument("--fills", type=int, default=5_000)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--no-warm-up",
        action="store_true",
        help="skip the service's start-up warm-up: 'cold' is then matplotlib's first use",
    )
    args = p.parse_args(argv)
    rng = random.Random(18)
    start = time.perf_counter()
    from core.control import chart_draw

    import_ms = (time.perf_counter() - start) * 1000
    warm_ms = None
    if not args.no_warm_up:  # what the service does at start: drawn in a worker thread, then frozen (bot.app)
        from core.control.charts import warm_up

        start = time.perf_counter()
        asyncio.run(warm_up())
        warm_ms = round((time.perf_counter() - start) * 1000, 1)
    m, f = market(args.levels, args.tops, args.trades, rng), pnl(args.fills, rng)
    out = {
        "market": timed(lambda: chart_draw.market_png(m), args.runs),
        "pnl": timed(lambda: chart_draw.pnl_png(f), args.runs),
        "target_ms": TARGET_MS,
        "module_import_ms": round(import_ms, 1),
        "start_warm_up_ms": warm_ms,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count() or 0,
    }
    ok = all(out[k]["max_ms"] < TARGET_MS for k in ("market", "pnl"))  # type: ignore[index]  # the two chart rows
    out["ok"] = ok
    if args.json:
        print(json.dumps(out))
    else:
        if warm_ms is not None:
            print(f"start-up warm-up (the service, in a worker thread, before any /chart): {warm_ms} ms")
        for k in ("market", "pnl"):
            r = out[k]
            print(  # a chart row
                f"{k}: cold {r['cold_ms']} ms, warm median {r['median_ms']} ms (CPU {r['cpu_median_ms']} ms), "  # type: ignore[index]  # a chart row
                f"max {r['max_ms']} ms, {r['png_bytes']} bytes"  # type: ignore[index]  # a chart row
            )
        print(f"load average {out['load_average_1m']} on {out['cpus']} CPUs")
        print(f"target < {TARGET_MS:g} ms per chart (warm): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
