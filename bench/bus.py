"""The market-data bus on this machine (issue 20 point 7): 2 feed workers -> NATS JetStream ->
a trader and the recorder, beside the single process.

    uv run python bench/bus.py [--duration 8] [--rate 1500] [--assets 40] [--levels 10]
        [--nats-url nats://127.0.0.1:4222] [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--json]

What runs (every part is the product's code, only the websocket read is replaced by a generator):

- **2 workers**, each its own process: synthetic venue frames (``core.feed.synth``: binary
  markets, ~``--levels`` levels a side, trades) of its own ``--assets`` assets, stamped with
  ``time.time_ns()`` as the socket reader stamps them, through the worker's path: feed processor,
  ingest pipeline, :class:`core.bus.publish.MdPublisher` numbering per asset, ``nc.publish`` into
  the stream; snapshot requests answered and a heartbeat every second, as ``polybot feed-worker``
  does. Two phases: **paced** (``--rate`` frames/s per worker) and **flat out** (as fast as each
  worker can), ``--duration`` seconds each.
- **1 trader**: :class:`core.bus.reader.BusFeed` (``feed.source = "bus"``) on every asset of both
  workers, into its own processor and pipeline. Latency = trader receipt - the worker's publish
  time (``pub_ns``), per message, both clocks being this machine's.
- **the recorder**: :class:`core.bus.recorder.Recorder` with a durable consumer of its own over
  everything the two phases stored, into a fresh PostgreSQL database through the batched writer;
  rows/s from its first fetch until the consumer is idle.
- **single process**, beside them: the same kind of frames through one feed processor and pipeline
  (frames/s, events/s, in CPU time), and that pipeline's rows into PostgreSQL through the batched
  writer (rows/s, and rows per CPU second): what ``run-service`` / ``ingest-ws`` do without a bus.
  The recorder's rows per CPU second sit beside the last: on a shared machine the wall-clock rates
  move with the load, the CPU-time ones much less.

Not measured here: the websocket read itself (bench/ingest.py and bench/soak.py measure the
single process with it), and NATS across hosts (one server on loopback here).
The machine is shared: the load average is printed before and after, and every figure depends on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
from nats.aio.msg import Msg

from core.bus import messages as m
from core.bus.connect import ensure_stream
from core.bus.publish import MdPublisher
from core.bus.reader import BusFeed
from core.bus.recorder import Recorder, RecorderOptions
from core.bus.subjects import heartbeat_subject, snapshot_wildcard
from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.synth import FrameGenerator
from core.settings.bus import BusSettings
from core.store.db import create_engine
from core.store.migrate import upgrade_engine
from core.store.writer import BatchedWriter
from core.types import BookStatus

REPO = Path(__file__).resolve().parent.parent
WORKERS = 2


def asset_ids(worker: int, n: int) -> list[str]:
    """Token-id shaped (77 digits), distinct per worker, deterministic."""
    return [str(10**76 + worker * 10**6 + i) for i in range(n)]


def generator(worker: int, assets: int, levels: int) -> FrameGenerator:
    return FrameGenerator(asset_ids(worker, assets), seed=worker + 1, levels=levels, trade_prints=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- a worker process


async def worker(args: argparse.Namespace) -> dict[str, Any]:
    gen = generator(args.worker, args.assets, args.levels)
    processor = FeedProcessor(known_assets=set(gen.asset_ids), burst_quiet_ms=LIVE_BURST_QUIET_MS)
    pipeline = IngestPipeline(processor, None)
    conditions = {t: mk.condition_id for mk in gen.markets for t in mk.token_ids}
    publisher = MdPublisher(args.prefix, processor.books, conditions)
    pipeline.add_sink(publisher.on_events)
    nc = await nats.connect(args.nats_url, name=f"bench-worker-{args.worker}")
    shard = f"{args.worker}of{WORKERS}"

    async def answer(msg: Msg) -> None:
        request = m.decode_as(msg.data, m.SnapshotRequest)
        snap = publisher.snapshot(request.asset)
        if snap is not None and msg.reply:
            await msg.respond(m.encode(m.SnapshotReply(snapshot=snap)))

    await nc.subscribe(snapshot_wildcard(args.prefix), cb=answer)
    # the venue's frames are made before the clock starts (a socket hands them over ready-made)
    ts_ms = int(time.time() * 1000)
    snapshots = gen.snapshot_frames(ts_ms=ts_ms)
    count = int(args.rate * args.duration) + 100 if args.rate else args.max_frames
    todo = [gen.next_frame(ts_ms + 1 + i) for i in range(count)] + gen.drain()  # one venue timestamp a frame
    publisher.begin_epoch(args.epoch, gen.asset_ids)
    for frame in snapshots:
        pipeline.on_frame(frame, time.time_ns())
    await publisher.flush(nc.publish)
    chunk = 10 if args.rate else 100
    start = time.monotonic()
    next_beat = start
    frames = 0
    while (now := time.monotonic()) - start < args.duration and frames < len(todo):
        for frame in todo[frames : frames + chunk]:
            pipeline.on_frame(frame, time.time_ns())
        frames += len(todo[frames : frames + chunk])
        await publisher.flush(nc.publish)
        if now >= next_beat:
            beat = m.Heartbeat(f"bench-{args.worker}", shard, args.epoch, args.assets, time.time_ns())
            await nc.publish(heartbeat_subject(args.prefix, shard), m.encode(beat))
            next_beat = now + 1.0
        ahead = start + frames / args.rate - time.monotonic() if args.rate else 0.0
        await asyncio.sleep(max(0.0, ahead))
    await publisher.flush(nc.publish)  # (a burst cut by the clock stays open: closing it would fault)
    seconds = time.monotonic() - start
    await nc.flush()
    for _ in range(2):  # a last second: late snapshot requests answered, the epoch still beating
        beat = m.Heartbeat(f"bench-{args.worker}", shard, args.epoch, args.assets, time.time_ns())
        await nc.publish(heartbeat_subject(args.prefix, shard), m.encode(beat))
        await asyncio.sleep(0.5)
    await nc.drain()
    return {"frames": frames, "messages": publisher.stats.sent, "seconds": seconds}


# --------------------------------------------------------------------------- the trader


class Trader:
    def __init__(self, settings: BusSettings, assets: list[str]) -> None:
        self.processor = FeedProcessor(known_assets=set(assets), burst_quiet_ms=LIVE_BURST_QUIET_MS)
        self.pipeline = IngestPipeline(self.processor, None)
        self.feed = BusFeed(settings, assets, self.pipeline.on_frame, self._reset, name="bench-trader")
        self.samples: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def _reset(self, assets: Any, reason: str) -> None:
        self.processor.mark_awaiting_snapshot(list(assets))

    async def start(self) -> None:
        await self.feed.start()
        self._task = asyncio.create_task(self._drain_samples())

    async def _drain_samples(self) -> None:
        # BusFeed keeps the last few thousand latencies: taken every 10 ms, none is lost at these rates
        while True:
            lat = self.feed.latency_ns
            self.samples.extend(lat)
            lat.clear()
            await asyncio.sleep(0.01)

    def take(self) -> tuple[list[int], int]:
        self.samples.extend(self.feed.latency_ns)
        self.feed.latency_ns.clear()
        out, self.samples = self.samples, []
        return out, self.feed.frames

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.feed.stop()


def pct(values: list[int], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1e6


def start_workers(
    args: argparse.Namespace, names: dict[str, str], rate: float, epoch: int
) -> list[subprocess.Popen[str]]:
    """The worker processes of one phase, each in its own process group."""
    procs = []
    for i in range(WORKERS):
        argv = [sys.executable, __file__, "--worker", str(i), "--epoch", str(epoch + i), "--rate", str(rate)]
        argv += ["--duration", str(args.duration), "--assets", str(args.assets), "--levels", str(args.levels)]
        argv += ["--prefix", names["prefix"], "--nats-url", args.nats_url, "--max-frames", str(args.max_frames)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=REPO))
    return procs


async def phase(
    name: str, args: argparse.Namespace, names: dict[str, str], trader: Trader, epoch: int
) -> dict[str, Any]:
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream()
    before = (await js.stream_info(names["stream"])).state.messages
    trader.take()
    frames0 = trader.feed.frames
    faults0 = trader.processor.faults.total
    rate = args.rate if name == "paced" else 0
    procs = start_workers(args, names, rate, epoch)
    outs = [json.loads((await asyncio.to_thread(p.communicate, timeout=args.duration + 120))[0]) for p in procs]
    stored = (await js.stream_info(names["stream"])).state.messages - before
    await nc.close()
    samples, frames = trader.take()
    seconds = max(o["seconds"] for o in outs)
    books_ok = sum(1 for b in trader.processor.books.values() if b.status is BookStatus.OK)
    not_ok: dict[str, int] = {}
    for b in trader.processor.books.values():
        if b.status is not BookStatus.OK:
            not_ok[b.status.value] = not_ok.get(b.status.value, 0) + 1
    return {
        "phase": name,
        "rate_per_worker_fps": rate or "max",
        "worker_frames_per_s": [round(o["frames"] / o["seconds"]) for o in outs],
        "worker_messages_per_s": [round(o["messages"] / o["seconds"]) for o in outs],
        "stream_messages": stored,
        "events_per_s_through_nats": round(stored / seconds),
        "trader_received": frames - frames0,
        "trader_latency_samples": len(samples),
        "latency_p50_ms": pct(samples, 0.50),
        "latency_p99_ms": pct(samples, 0.99),
        "latency_mean_ms": round(statistics.fmean(samples) / 1e6, 3) if samples else None,
        "trader_books_ok": books_ok,
        "trader_books": len(trader.processor.books),
        "trader_books_not_ok": not_ok,
        "trader_integrity_faults": trader.processor.faults.total - faults0,
    }


# --------------------------------------------------------------------------- recorder and single process


async def record(args: argparse.Namespace, names: dict[str, str], db_url: str) -> dict[str, Any]:
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream()
    engine = create_engine(db_url)
    try:
        await upgrade_engine(engine)
        total = (await js.stream_info(names["stream"])).state.messages
        async with BatchedWriter(engine) as writer:
            options = RecorderOptions(stream=names["stream"], prefix=names["prefix"], durable="bench", batch=1000)
            recorder = Recorder(js, writer, options)
            stop = asyncio.Event()
            start = time.monotonic()
            cpu0 = time.process_time()
            task = asyncio.create_task(recorder.run(stop))
            while True:
                await asyncio.sleep(0.05)
                if recorder.counts.stored + recorder.counts.no_rows >= total:
                    break
                if task.done():
                    task.result()
                if time.monotonic() - start > 600:
                    raise RuntimeError("the recorder did not finish within 10 minutes")
            seconds = time.monotonic() - start
            cpu = time.process_time() - cpu0
            stop.set()
            await task
        c = recorder.counts
        return {
            "messages": total,
            "rows": c.rows,
            "seconds": round(seconds, 2),
            "messages_per_s": round(total / seconds),
            "rows_per_s": round(c.rows / seconds),
            "rows_per_cpu_s": round(c.rows / cpu),
        }
    finally:
        await engine.dispose()
        await nc.close()


async def single_process(args: argparse.Namespace, db_url: str) -> dict[str, Any]:
    """Both workers' kind of frames through one process: apply only, then apply + store."""
    gens = [generator(w, args.assets, args.levels) for w in range(WORKERS)]
    frames: list[str] = []
    for g in gens:
        frames += g.snapshot_frames(ts_ms=1)
    n = int(args.duration * 20_000)
    for i in range(n):
        frames.append(gens[i % WORKERS].next_frame(2 + i))
    assets = {a for g in gens for a in g.asset_ids}

    processor = FeedProcessor(known_assets=assets)
    pipeline = IngestPipeline(processor, None)
    t0 = time.process_time()
    for f in frames:
        pipeline.on_frame(f, time.time_ns())
    apply_s = time.process_time() - t0  # CPU time: a shared machine's waits are not the path's cost

    engine = create_engine(db_url)
    try:
        await upgrade_engine(engine)
        async with BatchedWriter(engine) as writer:
            stored = IngestPipeline(FeedProcessor(known_assets=assets), writer)
            t0, cpu0 = time.perf_counter(), time.process_time()
            for i, f in enumerate(frames):
                stored.on_frame(f, time.time_ns())
                if i % 500 == 499:
                    await asyncio.sleep(0)  # the writer commits while frames come, as in the service
            await writer.flush()
            store_s, store_cpu = time.perf_counter() - t0, time.process_time() - cpu0
            rows = writer.stats.written
    finally:
        await engine.dispose()
    return {
        "frames": len(frames),
        "frames_per_s": round(len(frames) / apply_s),
        "events_per_s": round(pipeline.stats.events / apply_s),
        "rows": rows,
        "rows_per_s_into_postgresql": round(rows / store_s),
        "rows_per_cpu_s_into_postgresql": round(rows / store_cpu),
    }


async def fresh_database(pg_url: str) -> tuple[str, str]:
    import asyncpg

    name = f"polybot_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = pg_url.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


async def drop_database(pg_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    names = {"prefix": f"bench{tag}", "stream": f"BENCH{tag}"}
    settings = BusSettings(
        url=args.nats_url, prefix=names["prefix"], stream=names["stream"], max_age_s=3600, max_bytes=8 * 1024**3
    )
    report: dict[str, Any] = {"load_before": load(), "workers": WORKERS, "assets_per_worker": args.assets}
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream()
    await ensure_stream(js, settings)
    trader = Trader(settings, [a for w in range(WORKERS) for a in asset_ids(w, args.assets)])
    dbs: list[str] = []
    try:
        await trader.start()
        report["paced"] = await phase("paced", args, names, trader, 10)
        report["flat_out"] = await phase("flat out", args, names, trader, 20)
        await trader.stop()
        name, db_url = await fresh_database(args.pg_url)
        dbs.append(name)
        report["recorder"] = await record(args, names, db_url)
        name, db_url = await fresh_database(args.pg_url)
        dbs.append(name)
        report["single_process"] = await single_process(args, db_url)
    finally:
        with_errors = [js.delete_stream(names["stream"])] + [drop_database(args.pg_url, d) for d in dbs]
        await asyncio.gather(*with_errors, return_exceptions=True)
        await nc.close()
    report["load_after"] = load()
    return report


def show(r: dict[str, Any]) -> str:
    lines = [f"bus bench: {r['workers']} workers x {r['assets_per_worker']} assets; load before {r['load_before']}"]
    for key in ("paced", "flat_out"):
        p = r[key]
        lines.append(
            f"  {p['phase']:9} ({p['rate_per_worker_fps']} frames/s a worker): "
            f"{p['events_per_s_through_nats']:,} events/s into the stream "
            f"(workers {', '.join(f'{x:,}' for x in p['worker_messages_per_s'])} msg/s); "
            f"worker -> trader p50 {p['latency_p50_ms']} ms, p99 {p['latency_p99_ms']} ms "
            f"({p['trader_latency_samples']:,} samples); trader books ok {p['trader_books_ok']}/{p['trader_books']} "
            f"{p['trader_books_not_ok'] or ''}, "
            f"integrity faults {p['trader_integrity_faults']}"
        )
    rec = r["recorder"]
    lines.append(
        f"  recorder: {rec['messages']:,} messages -> {rec['rows']:,} rows in {rec['seconds']} s: "
        f"{rec['rows_per_s']:,} rows/s ({rec['messages_per_s']:,} messages/s) into PostgreSQL; "
        f"{rec['rows_per_cpu_s']:,} rows per CPU second"
    )
    s = r["single_process"]
    lines.append(
        f"  single process: {s['frames_per_s']:,} frames/s ({s['events_per_s']:,} events/s) applied; "
        f"{s['rows_per_s_into_postgresql']:,} rows/s into PostgreSQL ({s['rows']:,} rows; "
        f"{s['rows_per_cpu_s_into_postgresql']:,} rows per CPU second)"
    )
    lines.append(f"  load after {r['load_after']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of each phase (default 8)")
    ap.add_argument("--rate", type=float, default=1500.0, help="frames/s a worker in the paced phase (default 1500)")
    ap.add_argument("--assets", type=int, default=40, help="assets a worker (default 40)")
    ap.add_argument("--levels", type=int, default=10, help="levels a side (default 10)")
    ap.add_argument(
        "--max-frames",
        type=int,
        default=150_000,
        help="frames a worker has ready for the flat-out phase (default 150000)",
    )
    ap.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    ap.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a database to connect to for CREATE DATABASE",
    )
    ap.add_argument("--json", action="store_true")
    # a worker process (started by the bench itself)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--epoch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(asyncio.run(worker(args))))
        return 0
    report = asyncio.run(bench(args))
    print(json.dumps(report, indent=2) if args.json else show(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
