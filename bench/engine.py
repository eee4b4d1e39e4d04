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

Groups (issue 15): a 10-leg neg-risk Dutch group through ``Engine.place_together`` (gate as a
whole, one write-ahead transaction, one batch request, each leg's result applied), timed to the
wire (the relayer's ``place_batch`` called: gate + write-ahead) and in full minus the relayer; and
the bare commit cost of the write-ahead: one intent row per commit (``save_order``) against ten
rows in one commit (``save_orders``). Each on the in-memory store and on SQLite in WAL mode with
``synchronous`` NORMAL and FULL (:data:`core.store.db.SQLITE_SYNCHRONOUS` says which is used).

    uv run python bench/engine.py [--intents 3000] [--open 200] [--tokens 50] [--groups 300] [--only groups]
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
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.events import EventBus
from core.execution.engine import Engine
from core.execution.ids import client_order_id
from core.execution.relayers.paper import PaperRelayer, StaticBook
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.store import ExecutionStore, MemoryExecutionStore, OrderRecord, SqlExecutionStore
from core.execution.submission import order_request
from core.execution.types import OrderRequest, PlaceResult
from core.store.db import SQLITE_SYNCHRONOUS, SqliteSynchronous, create_engine, session_factory
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
        self.batch_called_at = 0.0  # perf_counter when place_batch was entered: the engine's part is done

    async def place(self, order: OrderRequest) -> PlaceResult:
        t0, c0 = time.perf_counter(), time.thread_time()
        res = await super().place(order)
        self.last_place_s = time.perf_counter() - t0
        self.last_place_cpu_s = time.thread_time() - c0
        return res

    async def place_batch(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        t0, c0 = time.perf_counter(), time.thread_time()
        self.batch_called_at = t0
        res = await super().place_batch(orders)
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


def sqlite_store_factory(tmp: Path, synchronous: SqliteSynchronous = SQLITE_SYNCHRONOUS) -> Callable[[], object]:
    counter = iter(range(100))

    async def make() -> tuple[ExecutionStore, Callable[[], object]]:
        db = create_engine(
            f"sqlite:///{tmp / f'bench-{synchronous}-{next(counter)}.db'}", sqlite_synchronous=synchronous
        )
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


LEGS = 10


def group_markets(legs: int = LEGS) -> list[MarketInfo]:
    return [
        MarketInfo(
            f"0xg{i:02d}",
            f"outcome {i}",
            f"outcome-{i}",
            (TokenInfo(f"g{i}1", "Yes"), TokenInfo(f"g{i}2", "No")),
            neg_risk=True,
            neg_risk_market_id="EV",
            fee_rate=Decimal("0.05"),
        )
        for i in range(legs)
    ]


class GroupSamples:
    def __init__(self) -> None:
        self.to_wire: list[float] = []  # place_together entered -> relayer.place_batch entered
        self.wall: list[float] = []  # place_together minus the relayer's time
        self.cpu: list[float] = []


async def run_groups(store_factory: Callable[[], object], n: int) -> GroupSamples:
    """``n`` 10-leg groups (FOK buys of every outcome, each filling) through Engine.place_together."""
    store, closer = await store_factory()  # type: ignore[misc]
    mkts = group_markets()
    by_id = {m.condition_id: m for m in mkts}
    huge = Decimal("1000000000")
    books = {m.tokens[0].token_id: StaticBook(m.tokens[0].token_id, ask_levels=[(Decimal("0.08"), huge)]) for m in mkts}
    relayer = TimedRelayer(books.get)
    bus = EventBus()
    gate = RiskGate(LIMITS, store, time.time, bus)
    engine = Engine(relayer, gate, store, bus, book_provider=books.get)
    engine.register_markets(mkts)
    await engine.start()
    await gate.arm("bench")
    out = GroupSamples()
    gc.collect()
    gc.disable()
    try:
        for g in range(n):
            gid = f"grp-{g:06d}"
            intents = [
                Intent(
                    m.condition_id,
                    m.tokens[0].token_id,
                    Side.BUY,
                    Decimal("0.08"),
                    Decimal("13"),  # $1.04: a marketable order must be worth $1 at the venue
                    OrderType.FOK,
                    group_id=gid,
                )
                for m in mkts
            ]
            reqs = [order_request(i, by_id[i.market], client_order_id(i, g)) for i in intents]
            t0, c0 = time.perf_counter(), time.thread_time()
            decision, placed = await engine.place_together(reqs, by_id, gid, ["bench"] * len(reqs))
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            if not decision.ok or not all(p.ok for p in placed):
                raise SystemExit(f"bench group {g} was not placed: {decision} {placed}")
            out.to_wire.append(relayer.batch_called_at - t0)
            out.wall.append(wall - relayer.last_place_s)
            out.cpu.append(cpu - relayer.last_place_cpu_s)
    finally:
        gc.enable()
        await closer()
    return out


async def commit_costs(store_factory: Callable[[], object], n: int) -> tuple[list[float], list[float]]:
    """The write-ahead alone: ``n`` single-row commits (save_order), ``n`` ten-row commits (save_orders)."""
    store, closer = await store_factory()  # type: ignore[misc]

    def rec(coid: str) -> OrderRecord:
        return OrderRecord(coid, "0xg00", "g01", Side.BUY, Decimal("0.08"), Decimal("5"), OrderType.FOK, group_id="g")

    single: list[float] = []
    group: list[float] = []
    try:
        for i in range(n):
            r = rec(f"one-{i}")
            t0 = time.perf_counter()
            await store.save_order(r)
            single.append(time.perf_counter() - t0)
        for i in range(n):
            recs = [rec(f"grp-{i}-{k}") for k in range(LEGS)]
            t0 = time.perf_counter()
            await store.save_orders(recs)
            group.append(time.perf_counter() - t0)
    finally:
        await closer()
    return single, group


def report_ms(label: str, name: str, values: list[float]) -> None:
    ms = 1e3
    print(
        f"{label:<34} {name:<24} n={len(values):>5}  p50 {pct(values, 0.50) * ms:8.3f} ms  p99 {pct(values, 0.99) * ms:8.3f} ms"
    )


async def groups_bench(tmp: Path, n_groups: int, n_commits: int) -> None:
    print(f"10-leg group through Engine.place_together; SQLite default synchronous = {SQLITE_SYNCHRONOUS}")
    stores: list[tuple[str, Callable[[], object]]] = [
        ("memory store", memory_store),
        ("sqlite WAL synchronous=NORMAL", sqlite_store_factory(tmp, "NORMAL")),
        ("sqlite WAL synchronous=FULL", sqlite_store_factory(tmp, "FULL")),
    ]
    await run_groups(memory_store, 50)  # warm-up, not reported
    for label, factory in stores:
        single, group = await commit_costs(factory, n_commits)
        report_ms(label, "commit 1 intent row", single)
        report_ms(label, f"commit {LEGS} rows at once", group)
        s = await run_groups(factory, n_groups)
        report_ms(label, "group: to the wire", s.to_wire)
        report_ms(label, "group: all minus relayer", s.wall)
        report_ms(label, "group: cpu minus relayer", s.cpu)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--intents", type=int, default=3000)
    ap.add_argument("--sqlite-intents", type=int, default=1000)
    ap.add_argument("--open", type=int, default=200, help="resting orders working at once before a cancel-all")
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--groups", type=int, default=300, help="10-leg groups per store")
    ap.add_argument("--commits", type=int, default=300, help="write-ahead commits per store and shape")
    ap.add_argument("--only", choices=("intents", "groups"), default=None)
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s)")
    print("engine overhead per intent = Engine.submit minus the paper relayer's place(); no signing")
    print(f"load average {os.getloadavg()[0]:.2f} (wall percentiles include preemption by other processes; cpu do not)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "intents":
            await groups_bench(Path(tmp), args.groups, args.commits)
        if args.only == "groups":
            return
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
