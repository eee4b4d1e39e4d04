"""A 10-leg group to the local CLOB double: one ``place_batch`` vs 10 sequential ``place`` calls.

Live-mode :class:`ClobRelayer` against :class:`MockClobServer` over real HTTP on 127.0.0.1 (the
double verifies every signature with eth_account, so its own time is part of the round trip).
Each round places 10 resting BUY orders with fresh client ids (signing included), then cancels
them outside the timer. Reports wall time per group (p50 / p90 / max) and the POSTs per group;
the same two ways in dry-run (signing only, nothing posted) show what the relayer itself spends.

    uv run python bench/clob_batch.py [--rounds 30] [--legs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.execution.relayers.clob import ClobRelayer
from core.execution.types import OrderRequest, Outcome
from core.sim.mock_clob import MockClobServer
from core.types import Side

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def _orders(server: MockClobServer, tag: str, legs: int) -> list[OrderRequest]:
    m = next(m for m in server.markets.values() if not m.neg_risk)
    return [
        OrderRequest(f"{tag}-{i}", m.condition_id, m.tokens[0][0], Side.BUY, Decimal(f"0.{10 + i}"), Decimal("10"))
        for i in range(legs)
    ]


async def _sequential(relayer: ClobRelayer, orders: list[OrderRequest]) -> None:
    for order in orders:
        result = await relayer.place(order)
        assert result.outcome is Outcome.ACCEPTED, result.error


async def _batch(relayer: ClobRelayer, orders: list[OrderRequest]) -> None:
    results = await relayer.place_batch(orders)
    assert all(r.outcome is Outcome.ACCEPTED for r in results), [r.error for r in results]


def _summary(name: str, samples: list[float], posts: float) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"{name:<22} p50 {statistics.median(ms):7.1f} ms  p90 {p90:7.1f} ms  max {ms[-1]:7.1f} ms  POSTs/group {posts:g}"


async def main(rounds: int, legs: int) -> None:
    server = MockClobServer(confirm_delay_s=0.05)
    await server.start()
    relayer = ClobRelayer(server.url, 137, KEY, dry_run=False, derive_api_key=True, heartbeat_interval_s=0)
    dry = ClobRelayer(server.url, 137, KEY, dry_run=True, heartbeat_interval_s=0)
    await relayer.start()
    for market in server.markets.values():
        await relayer.prewarm(market.condition_id)
    ways = (
        ("10 x place", relayer, _sequential),
        ("place_batch", relayer, _batch),
        ("dry-run 10 x place", dry, _sequential),
        ("dry-run place_batch", dry, _batch),
    )
    timings: dict[str, list[float]] = {name: [] for name, _, _ in ways}
    posts = dict.fromkeys(timings, 0)
    try:
        for r in range(rounds + 2):  # the first two rounds warm up (connections, caches)
            for name, rel, run in ways:
                orders = _orders(server, f"{name}-{r}", legs)
                before = len(server.requests)
                started = time.perf_counter()
                await run(rel, orders)
                took = time.perf_counter() - started
                sent = sum(1 for q in server.requests[before:] if q.method == "POST")
                await relayer.cancel_all()
                if r >= 2:
                    timings[name].append(took)
                    posts[name] = sent
    finally:
        await relayer.close()
        await dry.close()
        await server.stop()
    print(f"{legs}-leg group, live ClobRelayer -> CLOB double on 127.0.0.1, {rounds} rounds")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for name, samples in timings.items():
        print(_summary(name, samples, posts[name]))
    ratio = statistics.median(timings["10 x place"]) / statistics.median(timings["place_batch"])
    print(f"place_batch is {ratio:.1f}x faster at the median")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--legs", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.legs))
