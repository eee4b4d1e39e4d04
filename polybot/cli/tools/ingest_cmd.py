"""``polybot ingest-ws``: connect, subscribe, apply, persist through the batched writer."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from core.defaults import DEFAULT_WS_URL
from core.errors import PolybotError, UsageError
from polybot.cli import common
from polybot.cli.main import add_command
from polybot.cli.tools.from_config import add_config, feed_assets, need_url, settings_of

if TYPE_CHECKING:
    from core.feed.pipeline import PipelineStats
    from core.store.writer import WriterStats
    from polybot.cli.main import Subcommands

_FRAME_BYTES = common.int_arg(1, 64 * 1024 * 1024, unit="bytes")


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "ingest-ws",
        help="ingest the market websocket into the database (snapshots, deltas, trades)",
        example=(
            "polybot ingest-ws --config var/sandbox/service.toml --db-url sqlite:///var/ingest.db --migrate "
            "--max-messages 200  # while polybot sandbox runs"
        ),
        description=(
            "Connect to the market channel, subscribe to ASSET ids, keep L2 books with integrity checks,\n"
            "and persist snapshots, deltas and trades through a batched writer. Stops after\n"
            "--max-messages frames or --duration seconds (or Ctrl-C / SIGTERM), flushes, and prints a\n"
            "summary. On a terminal a line shows frames, rows and the rate while it runs.\n"
            "Rows the writer could not queue (database far slower than the feed) are counted and reported."
        ),
    )
    p.add_argument("url", nargs="?", type=common.ws_url, help=f"market channel URL, e.g. {DEFAULT_WS_URL}")
    p.add_argument("assets", nargs="*", metavar="ASSET", help="token ids to subscribe")
    p.add_argument("--db-url", type=common.db_url, default=None, help=common.DB_URL_HELP)
    add_config(p, "the URL (feed.ws_url), the assets its feed follows and the database (db.url)")
    p.add_argument("--max-messages", type=common.count, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--duration", type=common.duration_s, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--migrate", action="store_true", help="apply pending migrations first")
    p.add_argument("--max-assets-per-connection", type=common.count, default=200, metavar="N")
    p.add_argument(
        "--staleness-ms",
        type=common.staleness_ms,
        default=60_000,
        help="book is stale after this long without updates",
    )
    p.add_argument("--max-frame-bytes", type=_FRAME_BYTES, default=1_000_000, metavar="N")
    common.add_first_frame_timeout(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    config = settings_of(args)
    if config is not None:
        args.url = args.url or config.feed.ws_url
        args.assets = args.assets or feed_assets(config)
        args.db_url = args.db_url or config.db.url
    args.url = need_url(args.url, "market channel URL")
    if not args.assets:
        raise UsageError("give the ASSET ids to subscribe after the URL, or --config FILE")
    summary = asyncio.run(ingest(args))
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    else:
        _print_summary(summary)
    return 0 if summary["frames"] > 0 else 1


async def ingest(args: argparse.Namespace) -> dict[str, Any]:
    from polybot.cli.common import db_url_arg, stop_on_signals

    url = db_url_arg(args)
    stop = asyncio.Event()
    signals: list[str] = []
    with stop_on_signals(stop, signals.append):  # Ctrl-C / SIGTERM: stop, flush, print the summary
        return await _ingest(args, url, stop, signals)


async def _ingest(args: argparse.Namespace, url: str, stop: asyncio.Event, signals: list[str]) -> dict[str, Any]:
    from core.feed.connection import ConnectionEvent, ConnectionState
    from core.feed.pipeline import LIVE_BURST_QUIET_MS, IngestPipeline
    from core.feed.processor import FeedProcessor
    from core.feed.ws import MarketFeed
    from core.store.db import create_engine
    from core.store.migrate import ensure_schema
    from core.store.writer import BatchedWriter
    from polybot.cli.common import FirstFrames, Progress, warn
    from polybot.cli.tools.run_progress import keep_showing

    engine = create_engine(url)
    try:
        await ensure_schema(engine, url, migrate=args.migrate)
        processor = FeedProcessor(
            known_assets=set(args.assets),
            max_frame_bytes=args.max_frame_bytes,
            staleness_ms=args.staleness_ms,
            burst_quiet_ms=LIVE_BURST_QUIET_MS,
        )
        progress = Progress()
        first = FirstFrames(args.assets, args.first_frame_timeout)
        dead_reasons: list[str] = []
        started = time.monotonic()
        async with BatchedWriter(engine) as writer:
            pipeline = IngestPipeline(processor, writer, live=True)

            def on_frame(text: str, recv_ns: int) -> None:
                first.note_events(pipeline.on_frame(text, recv_ns))

            def progress_text() -> str | None:
                if not pipeline.stats.frames:
                    return None  # FirstFrames says what it waits for
                return _progress_text(pipeline.stats, writer.stats, time.monotonic() - started)

            def on_state(event: ConnectionEvent) -> None:
                pipeline.on_connection_event(event)
                if event.state is ConnectionState.DEAD:
                    dead_reasons.append(event.reason)

            feed = MarketFeed(
                args.url,
                list(args.assets),
                on_frame,
                max_assets_per_connection=args.max_assets_per_connection,
                max_frame_bytes=args.max_frame_bytes,
                on_state=on_state,
                quiet_before_data=True,  # a feed never heard from is this command's last line
            )
            watch = asyncio.create_task(first.watch(stop, warn, progress if progress.enabled else None))
            shown = asyncio.create_task(keep_showing(progress, progress_text, stop))
            try:
                feed_stats = await feed.run_until(
                    max_messages=args.max_messages, stop_event=stop, timeout_s=args.duration
                )
            finally:
                watch.cancel()
                shown.cancel()
                await asyncio.gather(watch, shown, return_exceptions=True)
                progress.done()
                pipeline.tick()
            await writer.flush()
            wstats = writer.stats
    finally:
        await engine.dispose()
    elapsed = time.monotonic() - started
    if first.timed_out:
        if pipeline.stats.frames:
            why = f" ({pipeline.stats.frames} frames received, none usable for these assets)"
        else:
            why = f" (last connection error: {dead_reasons[-1]})" if dead_reasons else ""
        raise PolybotError(f"{first.message()} from {args.url}{why}")
    if pipeline.stats.frames == 0:
        last = dead_reasons[-1] if dead_reasons else "no frame received"
        if signals:
            last = f"stopped by {signals[0]} before the first frame"
        raise PolybotError(f"nothing ingested from {args.url}: {last}")
    books = {
        asset: {
            "status": book.status.value,
            "best_bid": str(book.best_bid()) if book.best_bid() is not None else None,
            "best_ask": str(book.best_ask()) if book.best_ask() is not None else None,
        }
        for asset, book in processor.books.items()
    }
    return {
        "frames": pipeline.stats.frames,
        "stopped_by": signals[0] if signals else None,
        "seconds": round(elapsed, 3),
        "rate_per_s": round(pipeline.stats.frames / max(elapsed, 1e-9), 1),
        "rows": {
            "book_snapshots": pipeline.stats.snapshots,
            "book_deltas": pipeline.stats.deltas,
            "trades": pipeline.stats.trades,
        },
        "rows_refused_queue_full": pipeline.stats.rows_refused,
        "writer": wstats.as_dict(),
        "decode_errors": dict(processor.counters),
        "integrity_faults": dict(processor.faults),
        "reconnects": feed_stats.reconnects,
        "books": books,
        # before the deadline a missing asset may just not have arrived yet
        "assets_without_frames": first.missing() if elapsed >= first.timeout_s else [],
    }


def _progress_text(stats: PipelineStats, written: WriterStats, seconds: float) -> str:
    """``37 frames (2.4/s), rows 12 snapshots + 340 deltas + 5 trades, written 350, lag p99 12ms, 15.2s``."""
    from polybot.cli.tools.run_progress import per_second, took

    lag = f"{written.latency_p99_ms:.0f}ms" if written.latency_p99_ms is not None else "-"
    return (
        f"{stats.frames} frames ({per_second(stats.frames, seconds)}), rows {stats.snapshots} snapshots + "
        f"{stats.deltas} deltas + {stats.trades} trades, written {written.written}, lag p99 {lag}, {took(seconds)}"
    )


def _print_summary(s: dict[str, Any]) -> None:
    rows = s["rows"]
    w = s["writer"]
    stopped = f"; stopped by {s['stopped_by']}" if s.get("stopped_by") else ""
    print(
        f"ingested {s['frames']} frames in {s['seconds']}s ({s['rate_per_s']}/s), reconnects {s['reconnects']}"
        + stopped
    )
    print(
        f"rows: {rows['book_snapshots']} snapshots, {rows['book_deltas']} deltas, {rows['trades']} trades; "
        f"written {w['written']}, refused (queue full) {s['rows_refused_queue_full']}, rejected by db {w['rejected']}"
    )
    lag = w.get("latency_p99_ms")
    print(
        f"writer: {w['batches']} batches, max batch {w['max_batch']}, receive->commit p99 "
        f"{'-' if lag is None else f'{lag:.1f} ms'}"
    )
    if s["decode_errors"]:
        print("decode errors: " + ", ".join(f"{k} {v}" for k, v in sorted(s["decode_errors"].items())))
    if s["integrity_faults"]:
        print("integrity faults: " + ", ".join(f"{k} {v}" for k, v in sorted(s["integrity_faults"].items())))
    if s["assets_without_frames"]:
        print("no frames for: " + ", ".join(s["assets_without_frames"]))
    for asset, b in sorted(s["books"].items()):
        print(f"  {asset[:20]:20}  {b['status']:18} bid {b['best_bid'] or '-':>8}  ask {b['best_ask'] or '-':>8}")
