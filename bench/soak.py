"""Soak: the whole feed path at venue size for minutes, with the followed set changing as it runs.

A generated market feed (``polybot mock-ws``, its own process group: a universe of more assets
than are followed, a seed, a frame rate) is consumed by the real ingest path in this process:
``MarketFeed`` (``--assets`` over sockets of ``feed.max_assets_per_connection`` = 200, so 20,000
assets = 100 connections) -> ``FeedProcessor`` -> ``IngestPipeline`` -> ``BatchedWriter`` into a
fresh SQLite file or a fresh PostgreSQL database (created on 127.0.0.1:5432 and dropped after).
Every ``--watch-every`` seconds ``--watch-change`` followed assets leave and as many others join,
on the live sockets (subscribe/unsubscribe operations, no reconnect), as the service's watcher
does it. Printed:

- a sample every ``--sample-s``: RSS, frames/s, rows/s, writer queue, receive->commit p99 of the
  rows committed in that interval, books ok, CPU of this process and of the double, and the
  shares of wall time spent in the frame handler and in the writer's batches;
- receive->commit latency of every row received after the warm-up (p50/p99/p99.9/max, exact),
  event-loop lag (what delays socket reads);
- integrity faults and rejected input by kind, reconnects, subscription operations sent, the
  watch changes (how long until every new book had its snapshot), rows put vs committed.

    uv run python bench/soak.py --assets 20000 --seconds 600 [--db postgresql] [--json]
    uv run python bench/soak.py --assets 2000 --seconds 30          # a quick check

The default rate, 0.25 frames/s per followed asset (5,000 frames/s at 20,000 assets), and why,
are in docs/soak.md. Targets (issue 17): receive->commit p99 < 1 s, no faults, no row lost, RSS
flat after the warm-up, 0 reconnects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.soak_watch import LatencyHistogram, Probes, WatchChanges, load_average, rss_mib, shares
from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.ws import MarketFeed
from core.store.db import create_engine
from core.store.migrate import upgrade_engine
from core.store.writer import BatchedWriter
from core.types import BookStatus

REPO_ROOT = Path(__file__).resolve().parent.parent
PER_CONNECTION = 200  # feed.max_assets_per_connection's default
RATE_PER_ASSET = 0.25  # frames/s per followed asset: docs/soak.md says why
STALENESS_MS = 5_000  # service.staleness_ms's default
TICK_S = 2.0  # the service's staleness job period (core/service.py)
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def start_mock(universe: int, seed: int, rate: float, seconds: float) -> tuple[subprocess.Popen[str], str, list[str]]:
    """The market double in its own process group (stopped as a group, also if this script fails)."""
    from tests.procs import Lines, console_script, spawn

    cmd = [console_script(), "mock-ws", "--port", "0", "--assets", str(universe), "--seed", str(seed)]
    # --duration: it stops by itself even if this process dies
    cmd += ["--rate", f"{rate:.3f}", "--duration", str(int(seconds))]
    proc = spawn(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url, ids = Lines(proc, proc.stdout).wait_lines(2, within_s=300)
    except AssertionError as exc:
        stop_mock(proc)
        raise SystemExit(f"soak: mock-ws did not start ({exc})") from None
    if not url.startswith("ws://") or not ids.startswith("assets:"):
        stop_mock(proc)
        raise SystemExit(f"soak: mock-ws did not start (got {url!r})")
    return proc, url, ids.split()[1:]


def stop_mock(proc: subprocess.Popen[str]) -> None:
    from tests.procs import stop_group

    stop_group(proc)


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@contextlib.asynccontextmanager
async def database(args: argparse.Namespace) -> AsyncIterator[str]:
    """A fresh database for the run: a SQLite file in the temporary directory, or a PostgreSQL
    database created for it and dropped afterwards."""
    if args.db == "sqlite":
        yield f"sqlite:///{args.tmp / 'soak.db'}"
        return
    name = f"polybot_soak_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        engine = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")  # CREATE DATABASE: no transaction
        try:
            async with engine.connect() as conn:
                await conn.exec_driver_sql(sql)
        finally:
            await engine.dispose()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield args.pg_admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def universe_size(args: argparse.Namespace) -> int:
    if args.universe:
        return int(args.universe)
    changes = int(args.seconds // args.watch_every) if args.watch_change else 0
    return int(args.assets + args.watch_change * max(changes, 1))  # every asset that joins is new


async def wait_seeded(processor: FeedProcessor, within_s: float) -> int:
    deadline = time.monotonic() + within_s
    # poll the books the feed tasks fill (bounded by the deadline)
    while time.monotonic() < deadline and not all(b.status is BookStatus.OK for b in processor.books.values()):  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    return sum(1 for b in processor.books.values() if b.status is BookStatus.OK)


class Run:
    """One soak: the feed path wired as the service wires it, plus the probes."""

    def __init__(self, args: argparse.Namespace, url: str, universe: list[str], db_url: str, mock_pid: int) -> None:
        self.args = args
        self.db_url = db_url
        followed, pool = universe[: args.assets], deque(universe[args.assets :])
        self.engine = create_engine(db_url)
        self.processor = FeedProcessor(
            known_assets=set(followed),
            max_frame_bytes=8 * 1024 * 1024,
            staleness_ms=STALENESS_MS,
            burst_quiet_ms=LIVE_BURST_QUIET_MS,
        )
        self.writer = BatchedWriter(self.engine)
        self.pipeline = IngestPipeline(self.processor, self.writer, live=True)  # as the service wires it
        self.probes = Probes(mock_pid)
        self.latency = LatencyHistogram(since_ns=2**62)
        self.writer.watch(self.latency)
        self.probes.wrap_writer(self.writer)
        self.feed = MarketFeed(
            url,
            followed,
            self.probes.wrap_frame(self.pipeline.on_frame),
            max_assets_per_connection=args.per_connection,
            ping_interval_s=10,
            dead_after_s=30,
            on_state=self.pipeline.on_connection_event,
        )
        self.watch = WatchChanges(followed, pool, args.watch_change, random.Random(args.seed))
        self.samples: list[dict[str, Any]] = []

    async def warm_up(self) -> dict[str, Any]:
        await upgrade_engine(self.engine)
        self.writer.start()
        self.probes.start()
        t0 = time.monotonic()
        await self.feed.start()
        seeded = await wait_seeded(self.processor, within_s=max(60.0, self.args.assets / 100))
        seed_s = time.monotonic() - t0
        # the snapshots and the frames that came meanwhile are committed before measuring: a
        # flush that still takes seconds means the writer is catching up, so flush again
        for _ in range(10):
            t1 = time.monotonic()
            await self.writer.flush(timeout_s=300)
            if time.monotonic() - t1 < 1.0:
                break
        if self.args.gc_freeze:
            gc.freeze()  # what lives now (books, modules) is not rescanned by every full collection
        return {
            "seeded": seeded,
            "seed_s": round(seed_s, 1),
            "warm_up_s": round(time.monotonic() - t0, 1),
            "book_status_at_start": {k.value: n for k, n in self.processor.status_counts().items() if n},
        }

    def rows_put(self) -> dict[str, int]:
        ps = self.pipeline.stats
        return {"book_snapshots": ps.snapshots, "book_deltas": ps.deltas, "trades": ps.trades}

    def sample(self, now: float, t0: float, last: dict[str, Any]) -> dict[str, Any]:
        st, reading = self.writer.stats, self.probes.reading()
        wall = now - last["now"]
        frames, written = self.pipeline.stats.frames, st.written
        sample = {
            "t_s": round(now - t0, 1),
            "rss_mib": round(rss_mib(), 1),
            "frames_per_s": round((frames - last["frames"]) / wall),
            "rows_per_s": round((written - last["written"]) / wall),
            "pending_rows": st.pending,
            "commit_lag_p99_ms": self.latency.interval_p99_ms(),  # rows committed in this interval
            "books_ok": sum(1 for b in self.processor.books.values() if b.status is BookStatus.OK),
            "faults": self.processor.faults.total,
            "rejected_input": self.processor.counters.total,
            "reconnects": self.feed.stats().reconnects,
            "load1": round(load_average()[0], 2),
            **shares(last["reading"], reading),
        }
        last.update(now=now, frames=frames, written=written, reading=reading)
        return sample

    async def measure(self) -> dict[str, Any]:
        args = self.args
        t0 = time.monotonic()
        self.latency.since_ns = time.time_ns()
        self.probes.reset_lag()
        if self.pipeline.stalls is not None:  # the warm-up's stalls (20,000 snapshots) are not counted
            self.pipeline.stalls.stalls, self.pipeline.stalls.worst_ms = 0, 0.0
        f0, w0, ops0 = self.pipeline.stats.frames, self.writer.stats.written, self.feed.operations
        put0 = self.rows_put()
        first = self.probes.reading()
        last = {"now": t0, "frames": f0, "written": w0, "reading": first}
        next_sample, next_tick, next_change = t0 + args.sample_s, t0 + TICK_S, t0 + args.watch_every
        end = t0 + args.seconds
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(1.0, end - now))
            now = time.monotonic()
            if now >= next_tick:
                next_tick += TICK_S
                self.pipeline.tick()  # what the service's staleness job does: close quiet bursts
            if args.watch_change and now >= next_change and now < end - 5:
                next_change += args.watch_every
                say("soak: watch " + json.dumps(await self.watch.change(self.feed, self.processor, now - t0)))
            self.watch.check_new_books(self.processor)
            if now >= next_sample or now >= end:
                next_sample += args.sample_s
                self.samples.append(self.sample(time.monotonic(), t0, last))
                say("soak: " + json.dumps(self.samples[-1]))
        elapsed = time.monotonic() - t0
        self.latency.until_ns = time.time_ns()
        busy = shares(first, self.probes.reading())
        frames = self.pipeline.stats.frames - f0
        put = {table: n - put0[table] for table, n in self.rows_put().items()}
        committed = self.writer.stats.written - w0  # before the final flush: what kept pace
        await self.feed.stop()
        await self.writer.flush(timeout_s=300)
        return {
            "seconds": round(elapsed, 1),
            "frames": frames,
            "frames_per_s": round(frames / elapsed),
            "rows_per_s": round(sum(put.values()) / elapsed),  # what the feed produced
            "rows_committed_per_s": round(committed / elapsed),
            "rows_by_table": put,
            "operations_sent": self.feed.operations - ops0,
            **busy,
        }

    def report(self, measured: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
        st, ps, feed, stalls = self.writer.stats, self.pipeline.stats, self.feed.stats(), self.pipeline.stalls
        rows_put = ps.snapshots + ps.deltas + ps.trades
        warm_rss = [s["rss_mib"] for s in self.samples if s["t_s"] >= self.args.warmup_s]
        changes = self.watch.log
        ok_times = [c["new_books_ok_s"] for c in changes if c["new_books_ok_s"] is not None]
        return {
            "assets": self.args.assets,
            "target_frames_per_s": round(self.args.rate),
            "connections": self.feed.connection_count,
            "db": self.db_url.split("://", 1)[0],
            **warm,
            **measured,
            **self.latency.summary(),
            **self.probes.lag_summary(),
            "rss_after_warmup_mib": warm_rss,
            "rss_growth_after_warmup_mib": round(warm_rss[-1] - warm_rss[0], 1) if len(warm_rss) > 1 else None,
            "integrity_faults": self.processor.faults.total,
            "integrity_fault_kinds": self.processor.faults.as_dict(),
            "rejected_input": self.processor.counters.total,
            "rejected_input_kinds": self.processor.counters.as_dict(),
            # not bad input: frames the double had sent before it read the unsubscribe (docs/soak.md)
            "late_after_unsubscribe": self.processor.late_frames.count,
            "late_after_unsubscribe_max_ms": round(self.processor.late_frames.latest_ms, 1),
            "loop_stall_holds": stalls.stalls if stalls is not None else None,
            "loop_stall_worst_ms": round(stalls.worst_ms, 1) if stalls is not None else None,
            "reconnects": feed.reconnects,
            "dead_sockets": feed.dead,
            "dropped_frames": feed.dropped,
            "watch_changes": len(changes),
            "watch_added": sum(c["added"] for c in changes),
            "watch_removed": sum(c["removed"] for c in changes),
            "new_books_ok_s_worst": max(ok_times) if ok_times else None,
            "new_books_never_ok": sum(1 for c in changes if c["new_books_ok_s"] is None),
            "writer_batches": st.batches,
            "writer_max_batch": st.max_batch,
            "rows_put_by_pipeline": rows_put,
            "rows_refused": ps.rows_refused,
            "rows_rejected_by_db": st.rejected,
            "rows_committed": st.written,
            "rows_lost": rows_put - ps.rows_refused - st.written - st.rejected,
            "load_average": [round(x, 2) for x in load_average()],
            "samples": self.samples,
            "changes": changes,
        }

    async def close(self) -> None:
        await self.feed.stop()
        self.pipeline.close()
        await self.probes.stop()
        await self.writer.close(timeout_s=300)
        await self.engine.dispose()


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    universe_n = universe_size(args)
    mock_rate = args.rate * universe_n / args.assets  # the double generates over its whole universe
    lead = 120 + args.assets / 50  # its start, the books, the warm-up
    proc, url, universe = start_mock(universe_n, args.seed, mock_rate, args.seconds + lead + 60)
    say(f"soak: mock-ws with {len(universe)} assets at {mock_rate:.0f} frames/s ({url})")
    try:
        async with database(args) as db_url:
            run = Run(args, url, universe, db_url, proc.pid)
            try:
                warm = await run.warm_up()
                say(
                    f"soak: {warm['seeded']}/{args.assets} books seeded in {warm['seed_s']}s over "
                    f"{run.feed.connection_count} sockets; measuring {args.seconds:g}s at {args.rate:g} frames/s"
                )
                profile = cProfile.Profile() if args.cprofile else None
                if profile is not None:
                    profile.enable()
                measured = await run.measure()
                if profile is not None:
                    profile.disable()
                    profile.dump_stats(args.cprofile)
                return run.report(measured, warm)
            finally:
                await run.close()
    finally:
        stop_mock(proc)


def verdict(result: dict[str, Any]) -> tuple[bool, list[str]]:
    misses = []
    if (result["commit_lag_p99_ms"] or 0) >= 1000:
        misses.append(f"receive->commit p99 {result['commit_lag_p99_ms']} ms >= 1 s")
    if result["frames_per_s"] < 0.95 * result["target_frames_per_s"]:
        misses.append(f"{result['frames_per_s']} frames/s received, below the {result['target_frames_per_s']} asked")
    for key in ("integrity_faults", "rejected_input", "rows_lost", "rows_refused", "rows_rejected_by_db", "reconnects"):
        if result[key]:
            misses.append(f"{key} = {result[key]}")
    if result["new_books_never_ok"]:
        misses.append(f"{result['new_books_never_ok']} watch change(s) left books without a snapshot")
    return not misses, misses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="measured duration (default 600)")
    parser.add_argument("--assets", type=int, default=20_000, help="assets followed (default 20000)")
    parser.add_argument("--universe", type=int, default=0, help="assets the double serves (default: enough new ones)")
    parser.add_argument("--rate", type=float, default=None, help="frames/s received (default 0.25 per asset)")
    parser.add_argument("--per-connection", type=int, default=PER_CONNECTION, help="assets per socket (200)")
    parser.add_argument("--watch-change", type=int, default=500, help="assets swapped per change (0: none)")
    parser.add_argument("--watch-every", type=float, default=60.0, help="seconds between changes (60)")
    parser.add_argument("--warmup-s", type=float, default=120.0, help="RSS counts as flat from here (120)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sample-s", type=float, default=30.0, help="seconds between printed samples (30)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="where the fresh database is created")
    parser.add_argument("--keep-db", action="store_true", help="keep the temporary SQLite file")
    parser.add_argument("--cprofile", default=None, help="write a cProfile of the measured part to this file")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false", help="leave the GC as it is")
    args = parser.parse_args(argv)
    args.rate = args.rate if args.rate is not None else RATE_PER_ASSET * args.assets
    if args.seconds <= 0 or args.rate <= 0 or args.assets < 2 or args.watch_every <= 0:
        parser.error("--seconds, --rate and --watch-every must be positive, --assets at least 2")
    if args.universe and args.universe < args.assets:
        parser.error("--universe must hold at least --assets")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args.tmp = Path(tempfile.mkdtemp(prefix="polybot-soak-"))
    try:
        result = asyncio.run(soak(args))
    finally:
        if not args.keep_db:
            shutil.rmtree(args.tmp, ignore_errors=True)
    ok, misses = verdict(result)
    if args.json:
        sys.stdout.write(json.dumps({**result, "verdict": "PASS" if ok else "FAIL", "misses": misses}, indent=2) + "\n")
    else:
        for key, value in result.items():
            if key not in ("samples", "changes"):
                sys.stdout.write(f"{key:28} {value}\n")
        sys.stdout.write(f"verdict                      {'PASS' if ok else 'FAIL'} {'; '.join(misses)}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
