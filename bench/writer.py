"""Writer capacity: how many book_deltas rows/s the BatchedWriter commits.

    uv run python bench/writer.py [--rows 300000] [--repeat 3] [--db-url URL] [--max-batch 20000]

Default: a fresh SQLite file per run in a temporary directory. Rows are realistic
price_change levels (77-digit asset ids, Decimal price/size/best bid/ask, hash, ms and ns
timestamps). Printed, best of --repeat runs:

- capacity: rows queued first, then drained (wall time from start to the last commit);
- streaming: a producer puts rows in bursts while the writer drains (first put to last commit);
- sqlite3 floor (SQLite only): the same rows, already converted, through the stdlib driver's
  executemany in the same batches: what no Python writer on this machine can beat.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.store.db import create_engine, mask_url, parse_db_url, sqlite_path
from core.store.migrate import upgrade_engine
from core.store.models import Base
from core.store.writer import BatchedWriter, _InsertPlan


def make_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    assets = [str(rnd.randrange(10**76, 10**77)) for _ in range(50)]
    markets = ["0x" + rnd.randbytes(32).hex() for _ in range(25)]
    base_ns = time.time_ns()
    rows = []
    for i in range(n):
        a = i % 50
        rows.append(
            {
                "asset_id": assets[a],
                "market": markets[a // 2],
                "side": "BUY" if i & 1 else "SELL",
                "price": Decimal(rnd.randrange(1, 1000)).scaleb(-3),
                "size": Decimal(rnd.randrange(0, 10**8)).scaleb(-2),
                "best_bid": Decimal("0.480"),
                "best_ask": Decimal("0.520"),
                "hash": f"{rnd.getrandbits(160):040x}",
                "exchange_ts": base_ns // 1_000_000,
                "receive_ts": base_ns,
            }
        )
    return rows


async def capacity(url: str, rows: list[dict[str, Any]], max_batch: int) -> tuple[float, BatchedWriter]:
    engine = create_engine(url)
    await upgrade_engine(engine)
    writer = BatchedWriter(engine, max_queue=len(rows) + 1, max_batch=max_batch)
    now = time.time_ns()
    for r in rows:
        writer.put("book_deltas", {**r, "receive_ts": now})
    t0 = time.perf_counter()
    writer.start()
    await writer.close()
    elapsed = time.perf_counter() - t0
    await engine.dispose()
    assert writer.stats.written == len(rows), writer.stats
    return len(rows) / elapsed, writer


async def streaming(url: str, rows: list[dict[str, Any]], max_batch: int, burst: int) -> tuple[float, BatchedWriter]:
    engine = create_engine(url)
    await upgrade_engine(engine)
    writer = BatchedWriter(engine, max_queue=len(rows) + 1, max_batch=max_batch)
    writer.start()
    t0 = time.perf_counter()
    for i in range(0, len(rows), burst):
        now = time.time_ns()
        for r in rows[i : i + burst]:
            writer.put("book_deltas", {**r, "receive_ts": now})
        await asyncio.sleep(0)
    await writer.close()
    elapsed = time.perf_counter() - t0
    await engine.dispose()
    assert writer.stats.written == len(rows), writer.stats
    return len(rows) / elapsed, writer


async def sqlite_floor(url: str, rows: list[dict[str, Any]], max_batch: int) -> float:
    engine = create_engine(url)
    await upgrade_engine(engine)
    plan = _InsertPlan.build(Base.metadata.tables["book_deltas"], tuple(rows[0]), engine.dialect)
    await engine.dispose()
    assert plan is not None
    params = plan.params(rows)
    conn = sqlite3.connect(str(sqlite_path(parse_db_url(url))), isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    t0 = time.perf_counter()
    for i in range(0, len(params), max_batch):
        conn.execute("BEGIN")
        conn.executemany(plan.sql, params[i : i + max_batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(rows) / elapsed


def best_of(repeat: int, db_url: str | None, fn: Callable[[str], Any]) -> list[Any]:
    results = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            url = db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            results.append(asyncio.run(fn(url)))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db-url", default=None, help="an EMPTY database (default: fresh SQLite files)")
    ap.add_argument("--max-batch", type=int, default=20_000)
    ap.add_argument("--burst", type=int, default=1_000, help="rows put between yields to the loop (streaming)")
    args = ap.parse_args()
    if args.db_url and args.repeat > 1:
        ap.error("--db-url runs once (--repeat 1): the rows of one run stay in the database")
    rows = make_rows(args.rows)
    shown = mask_url(parse_db_url(args.db_url)) if args.db_url else "fresh SQLite file per run (WAL)"
    print(f"database            {shown}")
    print(f"rows per run        {args.rows:,} book_deltas (max batch {args.max_batch:,}), best of {args.repeat}")

    cap = best_of(args.repeat, args.db_url, lambda url: capacity(url, rows, args.max_batch))
    rate, writer = max(cap, key=lambda x: x[0])
    st = writer.stats
    print(f"capacity            {rate:,.0f} rows/s  (runs: {', '.join(f'{r:,.0f}' for r, _ in cap)})")
    print(
        f"  batches           {st.batches} (max {st.max_batch:,} rows, last commit {st.last_commit_latency_s * 1e3:.0f} ms)"
    )

    if args.db_url is None:
        stream = best_of(args.repeat, None, lambda url: streaming(url, rows, args.max_batch, args.burst))
        rate, writer = max(stream, key=lambda x: x[0])
        st = writer.stats
        print(f"streaming           {rate:,.0f} rows/s  (runs: {', '.join(f'{r:,.0f}' for r, _ in stream)})")
        print(
            f"  receive->commit   p50 {st.latency_p50_ms:.0f} ms, p99 {st.latency_p99_ms:.0f} ms"
            " (a backlog of the whole run: not the feed's steady-state lag)"
        )
        floor = best_of(args.repeat, None, lambda url: sqlite_floor(url, rows, args.max_batch))
        print(f"sqlite3 floor       {max(floor):,.0f} rows/s  (stdlib executemany of pre-converted tuples)")


if __name__ == "__main__":
    main()
