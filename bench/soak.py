"""Soak: the feed path under sustained load for minutes, memory and lag sampled as it goes.

A generated market feed (``polybot mock-ws``, its own process so it gets its own core: 1,000
assets, a seed, 5,000 frames/s) is consumed by the real ingest path in this process:
``MarketFeed`` (5 sockets of 200 assets) -> ``FeedProcessor`` -> ``IngestPipeline`` ->
``BatchedWriter`` into a fresh SQLite file. Printed:

- RSS of this process at start (after the books are seeded), every ``--sample-s`` seconds, at the end;
- frames/s received, rows/s committed, writer queue (pending rows);
- lag: the writer's receive->commit latency p99, sampled every second over its sliding window
  (the worst and the median of those samples, and the last);
- integrity faults and rejected input (must be 0 on this consistent feed), reconnects, rows
  queued vs committed at the end (every row the pipeline produced must be in the database).

    uv run python bench/soak.py [--seconds 600] [--assets 1000] [--rate 5000] [--seed 7] [--json]

Issue 9 targets: RSS flat, lag p99 < 1 s, 0 integrity faults, for 10 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.ws import MarketFeed
from core.store.db import create_engine
from core.store.migrate import upgrade_engine
from core.store.writer import BatchedWriter
from core.types import BookStatus

REPO_ROOT = Path(__file__).resolve().parent.parent


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_mock(assets: int, seed: int, rate: float, seconds: float) -> tuple[subprocess.Popen[str], str, list[str]]:
    """The market double in its own process group (stopped as a group, also if this script fails)."""
    from tests.procs import Lines, console_script, spawn

    cmd = [
        console_script(),
        "mock-ws",
        "--port",
        "0",
        "--assets",
        str(assets),
        "--seed",
        str(seed),
        "--rate",
        str(rate),
        "--duration",
        str(seconds + 120),  # it stops by itself even if this process dies
    ]
    proc = spawn(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url, ids = Lines(proc, proc.stdout).wait_lines(2, within_s=60)
    except AssertionError as exc:
        stop_mock(proc)
        raise SystemExit(f"soak: mock-ws did not start ({exc})") from None
    if not url.startswith("ws://") or not ids.startswith("assets:"):
        stop_mock(proc)
        raise SystemExit(f"soak: mock-ws did not start (got {url!r})")
    return proc, url, ids.split()[1:]


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    proc, url, assets = start_mock(args.assets, args.seed, args.rate, args.seconds)
    db_url = args.db_url or f"sqlite:///{args.tmp / 'soak.db'}"
    engine = create_engine(db_url)
    await upgrade_engine(engine)
    processor = FeedProcessor(
        known_assets=set(assets),
        max_frame_bytes=8 * 1024 * 1024,
        staleness_ms=60_000,
        burst_quiet_ms=LIVE_BURST_QUIET_MS,
    )
    writer = BatchedWriter(engine)
    writer.start()
    pipeline = IngestPipeline(processor, writer)
    feed = MarketFeed(
        url,
        assets,
        pipeline.on_frame,
        max_assets_per_connection=200,
        ping_interval_s=10,
        dead_after_s=30,
        on_state=pipeline.on_connection_event,
    )
    samples: list[dict[str, Any]] = []
    p99s: list[float] = []
    try:
        await feed.start()
        deadline = time.monotonic() + 30
        # poll the books the feed tasks fill (bounded by the deadline)
        while time.monotonic() < deadline and not all(b.status is BookStatus.OK for b in processor.books.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        seeded = sum(1 for b in processor.books.values() if b.status is BookStatus.OK)
        await writer.flush(timeout_s=60)
        t0 = time.monotonic()
        f0, w0 = pipeline.stats.frames, writer.stats.written
        rss0 = rss_mib()
        say(
            f"soak: {len(assets)} assets ({seeded} books seeded) from {url}, {args.rate:g} frames/s for {args.seconds:g}s"
        )
        say(f"soak: RSS at start {rss0:.1f} MiB")
        next_sample = t0 + args.sample_s
        last = (t0, f0, w0)
        end = t0 + args.seconds
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(1.0, end - now))
            pipeline.tick()  # what the service's staleness job does: close quiet bursts
            st = writer.stats
            if st.latency_p99_ms is not None:
                p99s.append(st.latency_p99_ms)
            now = time.monotonic()
            if now >= next_sample or now >= end:
                next_sample += args.sample_s
                t_prev, f_prev, w_prev = last
                frames, written = pipeline.stats.frames, st.written
                sample = {
                    "t_s": round(now - t0, 1),
                    "rss_mib": round(rss_mib(), 1),
                    "frames_per_s": round((frames - f_prev) / (now - t_prev)),
                    "rows_per_s": round((written - w_prev) / (now - t_prev)),
                    "pending_rows": st.pending,
                    "lag_p99_ms": None if st.latency_p99_ms is None else round(st.latency_p99_ms, 1),
                    "integrity_faults": processor.faults.total,
                    "rejected_input": processor.counters.total,
                    "reconnects": feed.stats().reconnects,
                }
                samples.append(sample)
                last = (now, frames, written)
                say("soak: " + json.dumps(sample))
        elapsed = time.monotonic() - t0
        frames = pipeline.stats.frames - f0
        await feed.stop()
        queued = writer.stats.enqueued
        await writer.flush(timeout_s=120)
        st = writer.stats
        stats = feed.stats()
        rss1 = rss_mib()
        rows_put = pipeline.stats.snapshots + pipeline.stats.deltas + pipeline.stats.trades
        return {
            "assets": len(assets),
            "target_frames_per_s": args.rate,
            "seconds": round(elapsed, 1),
            "frames": frames,
            "frames_per_s": round(frames / elapsed),
            "rows_committed": st.written,
            "rows_per_s": round((st.written - w0) / elapsed),
            "rss_start_mib": round(rss0, 1),
            "rss_end_mib": round(rss1, 1),
            "rss_growth_mib": round(rss1 - rss0, 1),
            "lag_p99_ms_worst": round(max(p99s), 1) if p99s else None,
            "lag_p99_ms_median": round(statistics.median(p99s), 1) if p99s else None,
            "lag_p99_ms_last": None if st.latency_p99_ms is None else round(st.latency_p99_ms, 1),
            "lag_max_ms_window": None if st.latency_max_ms is None else round(st.latency_max_ms, 1),
            "integrity_faults": processor.faults.total,
            "integrity_fault_kinds": processor.faults.as_dict(),
            "rejected_input": processor.counters.total,
            "reconnects": stats.reconnects,
            "dropped_frames": stats.dropped,
            "rows_queued": queued,
            "rows_put_by_pipeline": rows_put,
            "rows_refused": pipeline.stats.rows_refused,
            "rows_rejected_by_db": st.rejected,
            "rows_lost": rows_put - pipeline.stats.rows_refused - st.written - st.rejected,
            "samples": samples,
            "db": db_url,
        }
    finally:
        await feed.stop()
        await writer.close(timeout_s=120)
        await engine.dispose()
        stop_mock(proc)


def stop_mock(proc: subprocess.Popen[str]) -> None:
    from tests.procs import stop_group

    stop_group(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="measured duration (default 600)")
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5000.0, help="frames/s the mock feed sends (default 5000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between printed samples (default 60)")
    parser.add_argument("--db-url", default=None, help="database (default: a fresh SQLite file, deleted after)")
    parser.add_argument("--keep-db", action="store_true", help="keep the temporary SQLite file")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.assets < 2:
        parser.error("--seconds and --rate must be positive, --assets at least 2")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args.tmp = Path(tempfile.mkdtemp(prefix="polybot-soak-"))
    try:
        result = asyncio.run(soak(args))
    finally:
        if not args.keep_db:
            shutil.rmtree(args.tmp, ignore_errors=True)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        for key, value in result.items():
            if key != "samples":
                sys.stdout.write(f"{key:24} {value}\n")
    ok = (
        result["integrity_faults"] == 0
        and result["rows_lost"] == 0
        and (result["lag_p99_ms_worst"] or 0) < 1000
        and result["rejected_input"] == 0
    )
    sys.stdout.write(f"verdict                  {'PASS' if ok else 'FAIL'} (0 faults, 0 rows lost, lag p99 < 1 s)\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
