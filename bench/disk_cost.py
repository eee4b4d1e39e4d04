"""Disk cost of the feed per million frames, SQLite and PostgreSQL.

A known number of frames of the synthetic stream (``core.feed.synth``: binary markets, ~20
levels a side, trade prints on) goes through the real ingest path (FeedProcessor ->
IngestPipeline -> BatchedWriter) into a fresh database at head (so with migration 0005's
receive_ts index, and on PostgreSQL its day partitions). Then, per feed table: rows, bytes on
disk, bytes per row, and the total per million frames.

- SQLite: the file after a WAL checkpoint (TRUNCATE), split per table with the ``dbstat``
  virtual table when the library has it;
- PostgreSQL: ``pg_total_relation_size`` (heap + TOAST + indexes) summed over each table's
  partitions, after ``VACUUM ANALYZE`` (so the visibility map and free-space map are counted as
  they will be on a running database).

    uv run python bench/disk_cost.py [--frames 1000000] [--assets 200] [--db-url URL ...] [--json]

Without ``--db-url``: a temporary SQLite file, and a scratch PostgreSQL database on
127.0.0.1:5432 (user postgres) when one answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.feed.pipeline import IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.synth import FrameGenerator
from core.store.db import create_engine, is_sqlite, mask_url, parse_db_url, sqlite_path
from core.store.migrate import upgrade_engine
from core.store.models import FEED_TABLES
from core.store.writer import BatchedWriter

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _asset_ids(n: int) -> list[str]:
    return [str(10**76 + i * 982_451_653_000_000_007) for i in range(n)]


async def ingest(engine: AsyncEngine, frames: int, assets: int, seed: int) -> dict[str, int]:
    gen = FrameGenerator(_asset_ids(assets), seed, levels=20, trade_prints=True)
    pipeline = IngestPipeline(FeedProcessor(known_assets=set(gen.asset_ids)), writer := BatchedWriter(engine))
    writer.start()
    try:
        for frame in gen.snapshot_frames(ts_ms=1_000):
            pipeline.on_frame(frame, time.time_ns())
        done = 0
        for frame in gen.frames(frames, 2_000, 1):
            pipeline.on_frame(frame, time.time_ns())
            done += 1
            if done % 5_000 == 0:
                await writer.flush(timeout_s=600)
        pipeline.tick()
        await writer.flush(timeout_s=600)
    finally:
        await writer.close()
    return {"frames": done, "rows": writer.stats.written, "rejected": writer.stats.rejected}


async def _rows(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {t: int(await conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in FEED_TABLES}


async def sqlite_sizes(engine: AsyncEngine, per_table_index: dict[str, int]) -> dict[str, int] | None:
    async with engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            res = await conn.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
            by_object = {str(r[0]): int(r[1]) for r in res}
        except Exception:  # a SQLite built without dbstat: the file total only
            by_object = None
    per_table = None
    if by_object is not None:
        for t in FEED_TABLES:
            per_table_index[t] = by_object.get(f"ix_{t}_receive_ts", 0)
        per_table = {t: sum(v for k, v in by_object.items() if k == t or k.startswith(f"ix_{t}_")) for t in FEED_TABLES}
    return per_table


async def pg_sizes(engine: AsyncEngine, per_table_index: dict[str, int]) -> tuple[int, dict[str, int]]:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE")
        per_table = {
            t: int(
                await conn.scalar(
                    text("SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(:t)"), {"t": t}
                )
                or 0
            )
            for t in FEED_TABLES
        }
        for t in FEED_TABLES:
            per_table_index[t] = int(
                await conn.scalar(
                    text("SELECT coalesce(sum(pg_relation_size(relid)), 0) FROM pg_partition_tree(:i)"),
                    {"i": f"ix_{t}_receive_ts"},
                )
                or 0
            )
        total = int(await conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    return total, per_table


async def measure(url: str, frames: int, assets: int, seed: int) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        await upgrade_engine(engine)
        t0 = time.perf_counter()
        stats = await ingest(engine, frames, assets, seed)
        elapsed = time.perf_counter() - t0
        rows = await _rows(engine)
        parsed = parse_db_url(url)
        receive_ts_index: dict[str, int] = {}  # the part of table_bytes that is retention's receive_ts index
        if is_sqlite(parsed):
            path = sqlite_path(parsed)
            assert path is not None, "an in-memory database has no size on disk"
            per_table = await sqlite_sizes(engine, receive_ts_index)
            total = path.stat().st_size
            backend = "sqlite"
        else:
            total, per_table = await pg_sizes(engine, receive_ts_index)
            backend = "postgresql"
    finally:
        await engine.dispose()
    feed_bytes = sum(per_table.values()) if per_table else total
    scale = 1_000_000 / stats["frames"]
    return {
        "backend": backend,
        "url": mask_url(url),
        **stats,
        "seconds": round(elapsed, 1),
        "table_rows": rows,
        "table_bytes": per_table,
        "bytes_per_row": {t: round(per_table[t] / rows[t]) for t in FEED_TABLES if rows[t]} if per_table else None,
        "receive_ts_index_bytes": receive_ts_index,
        "database_bytes": total,
        "feed_bytes": feed_bytes,
        "mb_per_million_frames": round(feed_bytes * scale / 1e6, 1),
        "rows_per_frame": round(sum(rows.values()) / stats["frames"], 3),
    }


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db-url", action="append", default=None, help="measure this database (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = args.db_url or [f"sqlite:///{tmp}/disk_cost.db"]
        scratch = None
        if args.db_url is None:
            scratch = f"polybot_disk_cost_{uuid.uuid4().hex[:8]}"
            try:
                asyncio.run(_admin(f'CREATE DATABASE "{scratch}"'))
                urls.append(f"postgresql://postgres@127.0.0.1:5432/{scratch}")
            except OSError:
                scratch = None
        try:
            for url in urls:
                results.append(asyncio.run(measure(url, args.frames, args.assets, args.seed)))
                if not args.json:
                    print(json.dumps(results[-1], indent=2), flush=True)
        finally:
            if scratch is not None:
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
