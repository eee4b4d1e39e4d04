"""Tick-to-intent latency of the Dutch book on a 20-outcome neg-risk event.

Each of N updates is one decoded level change on one leg's book (``Book.apply_level``, the real
order book from core.feed.book), followed by ``evaluate_event`` over all 20 books; the timer
covers both. The updates walk the top of the ask books: resize the best level, lift it (the
leg's price rises a tick), or put it back, so the event drifts in and out of an opportunity
and nothing can be cached between updates.

    uv run python bench/strategy.py [--updates 100000] [--legs 20] [--scenario rare|persistent|all]

Target (issues 4 and 15): p99 < 200 us on this machine, in particular in the "persistent"
scenario, where most updates emit a 20-leg group. The wall-clock figures include whatever time
the OS gave to other processes; the thread CPU time does not, and is the verdict's second line
(compare them with the load average printed at the start and the end).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.feed.book import Book
from core.strategies.dutch import DutchConfig, evaluate_event
from core.types import BookStatus, MarketInfo, Side, TokenInfo

TICK = Decimal("0.001")  # most neg-risk events trade on the 0.001 grid
DEPTH = 20


def build_event(n_legs: int, target: Decimal) -> tuple[list[MarketInfo], dict[str, Book], list[Decimal]]:
    """n legs whose best asks add up to ``target``; 20 ask and 20 bid levels each."""
    markets: list[MarketInfo] = []
    books: dict[str, Book] = {}
    tops: list[Decimal] = []
    base = (target / n_legs).quantize(TICK, rounding=ROUND_DOWN)
    extra = int((target - base * n_legs) / TICK)  # legs that get one tick more, to hit the target
    for i in range(n_legs):
        top = base + (TICK if i < extra else 0)
        if top < TICK:
            top = TICK
        tops.append(top)
        token = f"{i:02d}" + "7" * 75  # token ids are ~77-digit integers on the wire
        markets.append(
            MarketInfo(
                condition_id=f"0x{i:064x}",
                question=f"outcome {i}?",
                slug=f"outcome-{i}",
                tokens=(TokenInfo(token, "Yes"), TokenInfo(token + "0", "No")),
                tick_size=TICK,
                neg_risk=True,
                neg_risk_market_id="0x" + "ab" * 32,
                fee_rate=Decimal("0.02"),
            )
        )
        book = Book(token, TICK)
        asks = [(top + TICK * k, Decimal(100 + 37 * k)) for k in range(DEPTH)]
        bids = [(top - TICK * (k + 1), Decimal(150 + 11 * k)) for k in range(DEPTH) if top - TICK * (k + 1) > 0]
        book.apply_snapshot(bids, asks, ts=0)
        assert book.status is BookStatus.OK
        books[token] = book
    return markets, books, tops


def make_updates(n: int, n_legs: int, tops: list[Decimal], seed: int) -> list[tuple[int, Decimal, Decimal]]:
    """(leg, price, new absolute size) ask-side updates; a size of 0 lifts the level."""
    rng = random.Random(seed)
    lifted = [False] * n_legs
    out: list[tuple[int, Decimal, Decimal]] = []
    for _ in range(n):
        leg = rng.randrange(n_legs)
        roll = rng.random()
        if lifted[leg] and roll < 0.5:
            lifted[leg] = False  # the level comes back with a fresh size
            out.append((leg, tops[leg], Decimal(rng.randrange(500, 50_000)) / 100))
        elif not lifted[leg] and roll < 0.15:
            lifted[leg] = True
            out.append((leg, tops[leg], Decimal(0)))
        else:
            # resize whatever is the best level now
            price = tops[leg] + (TICK if lifted[leg] else 0)
            out.append((leg, price, Decimal(rng.randrange(500, 50_000)) / 100))
    return out


def pct(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


SCENARIOS = {
    # best asks add up to 0.955: with 1 tick of slippage, fees and margin the edge is a few ticks
    # wide at best, and one or two legs lifting a tick closes it -> a few % of updates emit
    "rare": Decimal("0.955"),
    # 0.95: the edge survives most updates, so most evaluations walk the depth of all 20 legs and
    # build a 20-leg group: the expensive path, as a stress test
    "persistent": Decimal("0.95"),
}


def run(n_legs: int, target: Decimal, n_updates: int, seed: int, no_gc: bool) -> tuple[float, float]:
    markets, books, tops = build_event(n_legs, target)
    tokens = [m.tokens[0].token_id for m in markets]
    cfg = DutchConfig(safety_margin_usdc=Decimal("0.005"), slippage_ticks=1)
    updates = make_updates(n_updates, n_legs, tops, seed)
    book_list = [books[t] for t in tokens]

    # warm-up: price caches, Decimal contexts, code paths; then fresh books for the timed run
    for leg, price, size in updates[:2000]:
        book_list[leg].apply_level(Side.SELL, price, size, 0)
        evaluate_event(markets, books, cfg)
    markets, books, tops = build_event(n_legs, target)
    book_list = [books[t] for t in tokens]

    lat_hit: list[int] = []
    lat_miss: list[int] = []
    cpu: list[int] = []
    cpu_clock = time.thread_time_ns
    clock = time.perf_counter_ns
    sets_total = Decimal(0)
    edge_total = Decimal(0)
    if no_gc:
        gc.disable()
    t_start = clock()
    for seq, (leg, price, size) in enumerate(updates):
        c0 = cpu_clock()
        t0 = clock()
        book_list[leg].apply_level(Side.SELL, price, size, seq)
        opp = evaluate_event(markets, books, cfg, ts=seq)
        t1 = clock()
        cpu.append(cpu_clock() - c0)
        if opp is None:
            lat_miss.append(t1 - t0)
        else:
            lat_hit.append(t1 - t0)
            sets_total += opp.sets
            edge_total += opp.total_edge
    wall = clock() - t_start
    gc.enable()

    every = sorted(lat_hit + lat_miss)
    print(f"updates: {len(every)}  wall: {wall / 1e9:.2f} s  ({len(every) / (wall / 1e9):,.0f} updates/s)")
    print(
        f"  tick-to-intent (apply_level + evaluate): p50 {pct(every, 0.50):.1f} us  "
        f"p90 {pct(every, 0.90):.1f} us  p99 {pct(every, 0.99):.1f} us  p99.9 {pct(every, 0.999):.1f} us  "
        f"max {every[-1] / 1000:.1f} us  mean {statistics.fmean(every) / 1000:.1f} us"
    )
    for name, lat in (("opportunity emitted", lat_hit), ("nothing emitted", lat_miss)):
        if lat:
            lat.sort()
            print(
                f"    {name:<20} {len(lat):>7} ({100 * len(lat) / len(every):5.1f}%): "
                f"p50 {pct(lat, 0.50):.1f} us  p99 {pct(lat, 0.99):.1f} us"
            )
    cpu.sort()
    print(
        f"  thread CPU time per update (leaves out time the OS gave to other processes): "
        f"p50 {pct(cpu, 0.50):.1f} us  p99 {pct(cpu, 0.99):.1f} us"
    )
    print(f"  expected edge summed over emitted groups: {edge_total} pUSD on {sets_total} sets")
    return pct(every, 0.99), pct(cpu, 0.99)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=100_000)
    ap.add_argument("--legs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--target", type=Decimal, help="sum of the best asks at the start (overrides --scenario)")
    ap.add_argument("--no-gc", action="store_true", help="disable the garbage collector while timing")
    args = ap.parse_args(argv)

    if args.target is not None:
        chosen = {f"target {args.target}": args.target}
    elif args.scenario == "all":
        chosen = SCENARIOS
    else:
        chosen = {args.scenario: SCENARIOS[args.scenario]}
    load = os.getloadavg()
    print(f"bench/strategy.py: Dutch evaluate_event, {args.legs}-outcome neg-risk event, real core.feed.book.Book")
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start, gc {'off' if args.no_gc else 'on'}"
    )
    for name, target in chosen.items():
        print(f"\nscenario {name}: best asks sum to {target}, tick 0.001, fee rate 0.02, slippage 1 tick, margin 0.005")
        p99, cpu_p99 = run(args.legs, target, args.updates, args.seed, args.no_gc)
        for what, value in (("wall clock", p99), ("thread CPU", cpu_p99)):
            print(f"  target p99 < 200 us, {what}: {'meets' if value < 200 else 'MISSES'} ({value:.1f} us)")
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
