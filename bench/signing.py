"""Benchmark: CLOB V2 order signing in a worker thread while the event loop keeps ticking.

Three phases, each with a 1 ms ticker on the event loop measuring its lag (how late each
``asyncio.sleep(0.001)`` wakes up):

1. idle: the ticker alone (the machine's baseline noise);
2. throughput: one worker thread signs ``--orders`` orders back to back (``OrderSigner.sign``:
   EIP-712 V2 signature + order hash + POST body), reported as orders/s (wall clock and
   per CPU-second of the signing thread);
3. paced: ``--rate`` orders/s through the production path, ``ClobRelayer.place`` in dry-run
   mode (``asyncio.to_thread`` per order), for ``--seconds``.

Targets (issue 5): >= 1,500 signed orders/s; loop lag p99 < 5 ms while signing 100 orders/s.
Run: ``uv run python bench/signing.py`` (``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_signing import OrderSigner
from core.execution.types import OrderRequest
from core.types import Side

# The public Hardhat/Anvil test key #0: never funded on Polygon.
BENCH_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
TARGET_RATE = 1500.0
TARGET_LAG_P99_MS = 5.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def order(i: int) -> OrderRequest:
    price = Decimal(1 + i % 98) / 100
    side = Side.BUY if i % 2 else Side.SELL
    return OrderRequest(f"bench-{i}", "0xbench", TOKEN, side, price, Decimal(5 + i % 500), neg_risk=bool(i % 3 == 0))


async def ticker(stop: asyncio.Event, lags_ms: list[float]) -> None:
    period = 0.001
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(period)
        lags_ms.append((time.perf_counter() - t0 - period) * 1000)


async def phase_idle(seconds: float) -> list[float]:
    stop, lags = asyncio.Event(), []
    task = asyncio.create_task(ticker(stop, lags))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    return lags


async def phase_throughput(n: int) -> dict[str, float]:
    signer = OrderSigner(BENCH_KEY)
    orders = [order(i) for i in range(n)]

    def work() -> tuple[float, float]:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        for o in orders:
            signer.sign(o)
        return time.perf_counter() - t0, time.thread_time() - c0

    stop, lags = asyncio.Event(), []
    task = asyncio.create_task(ticker(stop, lags))
    wall, cpu = await asyncio.to_thread(work)
    stop.set()
    await task
    return {
        "orders": n,
        "wall_s": wall,
        "orders_per_s": n / wall,
        "orders_per_cpu_s": n / cpu if cpu > 0 else float("nan"),
        "lag_p99_ms": pct(lags, 0.99),
        "lag_max_ms": max(lags) if lags else float("nan"),
    }


async def phase_paced(rate: float, seconds: float) -> dict[str, float]:
    relayer = ClobRelayer("http://127.0.0.1:9", 137, BENCH_KEY, dry_run=True)
    await relayer.start()
    latencies: list[float] = []
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        t0 = time.perf_counter()
        result = await relayer.place(order(i))
        latencies.append((time.perf_counter() - t0) * 1000)
        failures += result.signed_order is None

    stop, lags = asyncio.Event(), []
    tick = asyncio.create_task(ticker(stop, lags))
    tasks = []
    start = time.perf_counter()
    i = 0
    while (now := time.perf_counter()) - start < seconds:
        due = start + i / rate
        if now < due:
            await asyncio.sleep(due - now)
            continue
        tasks.append(asyncio.create_task(one(i)))
        i += 1
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    stop.set()
    await tick
    await relayer.close()
    return {
        "rate_target": rate,
        "orders": i,
        "achieved_per_s": i / elapsed,
        "failures": failures,
        "sign_latency_p50_ms": statistics.median(latencies),
        "sign_latency_p99_ms": pct(latencies, 0.99),
        "lag_p50_ms": pct(lags, 0.5),
        "lag_p99_ms": pct(lags, 0.99),
        "lag_max_ms": max(lags) if lags else float("nan"),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    from eth_keys.backends import get_backend

    idle = await phase_idle(min(2.0, args.seconds))
    throughput = await phase_throughput(args.orders)
    paced = await phase_paced(args.rate, args.seconds)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "ecdsa_backend": type(get_backend()).__name__,
        "cpus": os.cpu_count(),
        "loadavg_1m": load[0],
        "gil_switch_interval_ms": sys.getswitchinterval() * 1000,
        "threads": threading.active_count(),
        "idle_lag_p99_ms": pct(idle, 0.99),
        "throughput": throughput,
        "paced": paced,
        "targets": {
            "orders_per_s": TARGET_RATE,
            "lag_p99_ms_at_100_per_s": TARGET_LAG_P99_MS,
            "orders_per_s_met": throughput["orders_per_s"] >= TARGET_RATE,
            "lag_met": paced["lag_p99_ms"] < TARGET_LAG_P99_MS,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000, help="orders for the throughput phase")
    parser.add_argument("--rate", type=float, default=100.0, help="orders/s for the paced phase")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the paced phase")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    t, p, g = result["throughput"], result["paced"], result["targets"]
    assert isinstance(t, dict) and isinstance(p, dict) and isinstance(g, dict)
    mark = {True: "OK", False: "MISSED"}
    print(
        f"ECDSA backend          {result['ecdsa_backend']}  (cpus {result['cpus']}, load 1m {result['loadavg_1m']:.2f})"
    )
    print(f"idle loop lag p99      {result['idle_lag_p99_ms']:.3f} ms")
    print(
        f"signing throughput     {t['orders_per_s']:,.0f} orders/s wall, {t['orders_per_cpu_s']:,.0f} per CPU-second "
        f"({t['orders']} orders in a worker thread)  target >= {TARGET_RATE:,.0f}: {mark[bool(g['orders_per_s_met'])]}"
    )
    print(f"  loop lag meanwhile   p99 {t['lag_p99_ms']:.3f} ms, max {t['lag_max_ms']:.3f} ms")
    print(
        f"paced {p['rate_target']:.0f} orders/s       achieved {p['achieved_per_s']:.1f}/s over {p['orders']} orders, "
        f"{p['failures']} failures; sign+hash latency p50 {p['sign_latency_p50_ms']:.2f} ms, p99 {p['sign_latency_p99_ms']:.2f} ms"
    )
    print(
        f"  loop lag             p50 {p['lag_p50_ms']:.3f} ms, p99 {p['lag_p99_ms']:.3f} ms, max {p['lag_max_ms']:.3f} ms  "
        f"target p99 < {TARGET_LAG_P99_MS} ms: {mark[bool(g['lag_met'])]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
