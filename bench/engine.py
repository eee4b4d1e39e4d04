"""Engine overhead per intent, excluding signing: paper relayer with zero latency.

Each timed step is one ``Engine.submit(intent, market)``: client order id, duplicate check,
exposure snapshot, risk gate (limits, buckets), order row, relayer call, audit row, status
update, and for marketable orders the fills -> positions -> PnL path. The paper relayer's own
matching time is measured separately (its ``place`` is wrapped) and subtracted, so
"engine overhead" is what the engine adds around a relayer that answers instantly. Signing is
not involved (the paper relayer does not sign; see bench/signing.py for that).

Scenarios: resting GTC orders (up to ``--open`` working at once, then cancel-all outside the
timer) and marketable FOK orders that fill on two levels; each with an in-memory store and with
a SQLite file store (WAL, synchronous=NORMAL).

    uv run python bench/engine.py [--intents 3000] [--open 200] [--tokens 50]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.events import EventBus
from core.execution.engine import Engine
from core.execution.relayers.paper import PaperRelayer, StaticBook
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.store import ExecutionStore, MemoryExecutionStore, SqlExecutionStore
from core.execution.types import OrderRequest, PlaceResult
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_engine
from core.types import Intent, MarketInfo, OrderType, Side, TokenInfo

# Generous limits so nothing is refused: we measure the full path, not a refusal shortcut.
LIMITS = replace(
    RiskLimits.configured(),
    max_order_notional=Decimal("1000000"),
    max_market_notional=Decimal("100000000"),
    max_event_notional=Decimal("100000000"),
    max_total_exposure=Decimal("1000000000"),
    daily_loss_limit=Decimal("1000000000"),
    orders_per_s=1e9,
    order_burst=10**9,
)


class TimedRelayer(PaperRelayer):
    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.last_place_s = 0.0
        self.last_place_cpu_s = 0.0

    async def place(self, order: OrderRequest) -> PlaceResult:
        t0, c0 = time.perf_counter(), time.thread_time()
        res = await super().place(order)
        self.last_place_s = time.perf_counter() - t0
        self.last_place_cpu_s = time.thread_time() - c0
        return res


def markets(n_tokens: int) -> list[MarketInfo]:
    out = []
    for i in range(n_tokens // 2):
        out.append(
            MarketInfo(
                f"0xm{i:04d}",
                f"market {i}",
                f"m-{i}",
                (TokenInfo(f"{i}1", "Yes"), TokenInfo(f"{i}2", "No")),
                fee_rate=Decimal("0.05"),
            )
        )
    return out


def books_for(mkts: list[MarketInfo]) -> dict[str, StaticBook]:
    books = {}
    for m in mkts:
        for tok in m.tokens:
            books[tok.token_id] = StaticBook(
                tok.token_id,
                bid_levels=[(Decimal("0.40"), Decimal("1000000")), (Decimal("0.39"), Decimal("1000000"))],
                ask_levels=[(Decimal("0.45"), Decimal("7")), (Decimal("0.46"), Decimal("1000000"))],
            )
    return books


class Samples:
    def __init__(self) -> None:
        self.wall: list[float] = []  # submit wall time minus the relayer's
        self.cpu: list[float] = []  # the same in this thread's CPU time (immune to preemption)
        self.relayer: list[float] = []


async def run(scenario: str, store_factory: Callable[[], object], n: int, max_open: int, n_tokens: int) -> Samples:
    store, closer = await store_factory()  # type: ignore[misc]
    mkts = markets(n_tokens)
    books = books_for(mkts)
    relayer = TimedRelayer(books.get)
    bus = EventBus()
    gate = RiskGate(LIMITS, store, time.time, bus)
    engine = Engine(relayer, gate, store, bus, book_provider=books.get)
    await engine.start()
    await gate.arm("bench")
    out = Samples()
    gc.collect()
    gc.disable()
    try:
        for i in range(n):
            m = mkts[i % len(mkts)]
            tok = m.tokens[(i // len(mkts)) % 2].token_id
            if scenario == "resting":
                price = Decimal("0.30") + Decimal(i % 10) / 100
                intent = Intent(m.condition_id, tok, Side.BUY, price, Decimal("10"), OrderType.GTC)
            else:
                side = Side.BUY if (i // len(mkts)) % 4 < 2 else Side.SELL
                price = Decimal("0.46") if side is Side.BUY else Decimal("0.39")
                intent = Intent(m.condition_id, tok, side, price, Decimal("10"), OrderType.FOK)
            t0, c0 = time.perf_counter(), time.thread_time()
            res = await engine.submit(intent, m, seq=i)
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            out.wall.append(wall - relayer.last_place_s)
            out.cpu.append(cpu - relayer.last_place_cpu_s)
            out.relayer.append(relayer.last_place_s)
            if not res.ok:
                raise SystemExit(f"bench intent {i} was not accepted: {res}")
            if scenario == "resting" and len(engine.open_orders()) >= max_open:
                gc.enable()
                await engine.cancel_all()
                gc.collect()
                gc.disable()
    finally:
        gc.enable()
        await closer()
    return out


async def memory_store() -> tuple[ExecutionStore, Callable[[], object]]:
    async def close() -> None:
        return None

    return MemoryExecutionStore(), close


def sqlite_store_factory(tmp: Path) -> Callable[[], object]:
    counter = iter(range(100))

    async def make() -> tuple[ExecutionStore, Callable[[], object]]:
        db = create_engine(f"sqlite:///{tmp / f'bench-{next(counter)}.db'}")
        await upgrade_engine(db)

        async def close() -> None:
            await db.dispose()

        return SqlExecutionStore(session_factory(db)), close

    return make


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(label: str, s: Samples) -> None:
    us = 1e6
    print(
        f"{label:<26} n={len(s.wall):>5}  wall p50 {pct(s.wall, 0.50) * us:7.1f} us  p99 {pct(s.wall, 0.99) * us:8.1f} us"
        f"  | cpu p50 {pct(s.cpu, 0.50) * us:7.1f} us  p99 {pct(s.cpu, 0.99) * us:7.1f} us"
        f"  | paper relayer p50 {pct(s.relayer, 0.50) * us:5.1f} us"
    )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--intents", type=int, default=3000)
    ap.add_argument("--sqlite-intents", type=int, default=1000)
    ap.add_argument("--open", type=int, default=200, help="resting orders working at once before a cancel-all")
    ap.add_argument("--tokens", type=int, default=50)
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s)")
    print("engine overhead per intent = Engine.submit minus the paper relayer's place(); no signing")
    print(f"load average {os.getloadavg()[0]:.2f} (wall percentiles include preemption by other processes; cpu do not)")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = sqlite_store_factory(Path(tmp))
        for scenario in ("resting", "marketable"):
            # warm-up (imports, caches) on a small run, not reported
            await run(scenario, memory_store, 200, args.open, args.tokens)
            report(
                f"{scenario} / memory store", await run(scenario, memory_store, args.intents, args.open, args.tokens)
            )
            report(
                f"{scenario} / sqlite store", await run(scenario, sqlite, args.sqlite_intents, args.open, args.tokens)
            )


if __name__ == "__main__":
    asyncio.run(main())
