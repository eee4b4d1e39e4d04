"""Writer capacity: how many book_deltas rows/s the BatchedWriter commits.

    uv run python bench/writer.py [--rows 300000] [--repeat 3] [--assets 50] [--max-batch 50000]
    uv run python bench/writer.py --db postgresql             # a fresh database per run on 127.0.0.1:5432
    uv run python bench/writer.py --rows 2000000 --assets 20000 --repeat 1   # the soak's cardinality

Default: a fresh SQLite file per run in a temporary directory (``--db postgresql``: a fresh
PostgreSQL database per run, dropped after; ``--db-url``: an empty database of yours, one run).
Rows are realistic price_change levels (77-digit asset ids, Decimal price/size/best bid/ask, hash,
ms and ns timestamps) spread at random over ``--assets`` assets: with few assets every commit
touches a few index pages, with the venue's 20,000 nearly one page of the ``(asset_id, id)``
index per row, which is what limits SQLite there. ``--pragma name=value`` (SQLite, repeatable)
tries a setting on top of the engine's own. Printed, best of --repeat runs:

- capacity: rows queued first, then drained (wall time from start to the last commit);
- streaming: a producer puts rows in bursts while the writer drains (first put to last commit);
- sqlite3 floor (SQLite only): the same rows, already converted, through the stdlib driver's
  executemany in the same batches (into book_deltas alone: on SQLite since migration 0007 it
  indexes nothing per asset, so it is no floor of the writer there any more).

``--rate R --seconds S``: instead, one paced run, the feed's way: R rows/s put for S seconds (every
5 ms, stamped then), CPU of the whole process per row (the producer included) and receive->commit
p50/p99/max, e.g. ``--rate 10000 --seconds 120 --assets 20000`` (the soak's rate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event

from core.store.db import create_engine, mask_url, parse_db_url, sqlite_path
from core.store.insert_plan import InsertPlan
from core.store.migrate import upgrade_engine
from core.store.models import Base
from core.store.writer import BatchedWriter


def make_rows(n: int, seed: int = 7, assets_n: int = 50) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    assets = [str(rnd.randrange(10**76, 10**77)) for _ in range(assets_n)]
    markets = ["0x" + rnd.randbytes(32).hex() for _ in range((assets_n + 1) // 2)]
    base_ns = time.time_ns()
    rows = []
    for i in range(n):
        a = rnd.randrange(assets_n)
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


PRAGMAS: list[str] = []  # --pragma: extra SQLite settings, applied to every connection
CPU_S: list[float] = []  # CPU seconds of this process (all threads) per capacity run
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def engine_for(url: str) -> Any:
    engine = create_engine(url)
    if PRAGMAS and url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            for pragma in PRAGMAS:
                dbapi_connection.execute(f"PRAGMA {pragma}")

    return engine


async def capacity(url: str, rows: list[dict[str, Any]], max_batch: int) -> tuple[float, BatchedWriter]:
    engine = engine_for(url)
    await upgrade_engine(engine)
    writer = BatchedWriter(engine, max_queue=len(rows) + 1, max_batch=max_batch)
    now = time.time_ns()
    for r in rows:
        writer.put("book_deltas", {**r, "receive_ts": now})
    t0, cpu0 = time.perf_counter(), time.process_time()
    writer.start()
    await writer.close()
    elapsed = time.perf_counter() - t0
    CPU_S.append(time.process_time() - cpu0)
    await engine.dispose()
    assert writer.stats.written == len(rows), writer.stats
    return len(rows) / elapsed, writer


async def streaming(url: str, rows: list[dict[str, Any]], max_batch: int, burst: int) -> tuple[float, BatchedWriter]:
    engine = engine_for(url)
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
    plan = InsertPlan.build(Base.metadata.tables["book_deltas"], tuple(rows[0]), engine.dialect)
    await engine.dispose()
    assert plan is not None
    params = plan.params(rows)
    conn = sqlite3.connect(str(sqlite_path(parse_db_url(url))), isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    for pragma in PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    t0 = time.perf_counter()
    for i in range(0, len(params), max_batch):
        conn.execute("BEGIN")
        conn.executemany(plan.sql, params[i : i + max_batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(rows) / elapsed


async def pg_admin(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")  # CREATE DATABASE: no transaction
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


def best_of(repeat: int, db: str, db_url: str | None, fn: Callable[[str], Any]) -> list[Any]:
    results = []
    for _ in range(repeat):
        if db_url is not None:
            results.append(asyncio.run(fn(db_url)))
        elif db == "postgresql":
            name = f"polybot_writer_bench_{uuid.uuid4().hex[:10]}"
            asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
            try:
                results.append(asyncio.run(fn(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)))
            finally:
                asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(asyncio.run(fn(f"sqlite:///{Path(tmp) / 'bench.db'}")))
    return results


async def paced(url: str, rows: list[dict[str, Any]], rate: int, seconds: float) -> None:
    engine = engine_for(url)
    await upgrade_engine(engine)
    writer = BatchedWriter(engine)
    writer.start()
    t0, cpu0, sent = time.perf_counter(), time.process_time(), 0
    while (now := time.perf_counter() - t0) < seconds:
        stamp = time.time_ns()
        for _ in range(int(now * rate) - sent):
            writer.put("book_deltas", {**rows[sent % len(rows)], "receive_ts": stamp})
            sent += 1
        await asyncio.sleep(0.005)
    await writer.close()
    cpu = time.process_time() - cpu0
    await engine.dispose()
    st = writer.stats
    print(
        f"paced               {sent:,} rows at {rate:,} rows/s: {sent / cpu:,.0f} rows per CPU-second (whole process)"
    )
    print(
        f"  receive->commit   p50 {st.latency_p50_ms:.0f} ms, p99 {st.latency_p99_ms:.0f} ms, max {st.latency_max_ms:.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db-url", default=None, help="an EMPTY database (default: fresh SQLite files)")
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite", help="fresh database per run")
    ap.add_argument("--max-batch", type=int, default=50_000, help="the writer's max_batch (its default: 50000)")
    ap.add_argument("--pragma", action="append", default=[], help="SQLite: extra PRAGMA name=value (repeatable)")
    ap.add_argument("--assets", type=int, default=50, help="distinct asset ids the rows spread over (20000: the soak)")
    ap.add_argument("--burst", type=int, default=1_000, help="rows put between yields to the loop (streaming)")
    ap.add_argument("--rate", type=int, default=0, help="a paced run: rows/s put for --seconds (one run)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of a paced run")
    args = ap.parse_args()
    if args.db_url and args.repeat > 1:
        ap.error("--db-url runs once (--repeat 1): the rows of one run stay in the database")
    PRAGMAS.extend(args.pragma)
    rows = make_rows(args.rows, assets_n=args.assets)
    fresh = "fresh PostgreSQL database per run" if args.db == "postgresql" else "fresh SQLite file per run (WAL)"
    shown = mask_url(parse_db_url(args.db_url)) if args.db_url else fresh
    print(f"database            {shown}{'; PRAGMA ' + ', '.join(PRAGMAS) if PRAGMAS else ''}")
    print(
        f"rows per run        {args.rows:,} book_deltas over {args.assets:,} assets (max batch {args.max_batch:,}),"
        f" best of {args.repeat}"
    )
    print(f"load average        {', '.join(f'{x:.2f}' for x in os.getloadavg())} (at the start)")
    if args.rate:
        best_of(1, args.db, args.db_url, lambda url: paced(url, rows, args.rate, args.seconds))
        print(f"load average        {', '.join(f'{x:.2f}' for x in os.getloadavg())} (at the end)")
        return

    cap = best_of(args.repeat, args.db, args.db_url, lambda url: capacity(url, rows, args.max_batch))
    rate, writer = max(cap, key=lambda x: x[0])
    st = writer.stats
    print(f"capacity            {rate:,.0f} rows/s  (runs: {', '.join(f'{r:,.0f}' for r, _ in cap)})")
    server = (
        "; the server's not counted" if args.db == "postgresql" or (args.db_url or "").startswith("postgres") else ""
    )
    print(
        f"  CPU of this process {min(CPU_S) / args.rows * 1e6:.1f} us/row (threads included{server}):"
        f" {args.rows / min(CPU_S):,.0f} rows per CPU-second"
    )
    print(
        f"  batches           {st.batches} (max {st.max_batch:,} rows, last commit {st.last_commit_latency_s * 1e3:.0f} ms)"
    )

    if args.db_url is None:
        stream = best_of(args.repeat, args.db, None, lambda url: streaming(url, rows, args.max_batch, args.burst))
        rate, writer = max(stream, key=lambda x: x[0])
        st = writer.stats
        print(f"streaming           {rate:,.0f} rows/s  (runs: {', '.join(f'{r:,.0f}' for r, _ in stream)})")
        print(
            f"  receive->commit   p50 {st.latency_p50_ms:.0f} ms, p99 {st.latency_p99_ms:.0f} ms"
            " (a backlog of the whole run: not the feed's steady-state lag)"
        )
    if args.db_url is None and args.db == "sqlite":
        floor = best_of(args.repeat, "sqlite", None, lambda url: sqlite_floor(url, rows, args.max_batch))
        print(f"sqlite3 floor       {max(floor):,.0f} rows/s  (stdlib executemany of pre-converted tuples)")
    print(f"load average        {', '.join(f'{x:.2f}' for x in os.getloadavg())} (at the end)")


if __name__ == "__main__":
    main()
