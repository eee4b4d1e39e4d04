"""``polybot replay-book FILE``: replay a recording through the feed pipeline and report the books."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import PolybotError
from polybot.cli import common
from polybot.cli.main import add_command

if TYPE_CHECKING:  # the feed modules load only when a replay runs
    from core.feed.processor import FeedProcessor
    from polybot.cli.main import Subcommands

_SPEED = common.float_arg(0, 1_000_000)  # times the recorded pace; 0 = at once


def register(sub: Subcommands) -> None:
    p = add_command(
        sub,
        "replay-book",
        help="replay a recorded feed through the decoder and books; print each book's final state",
        example="polybot replay-book fixtures/recordings/demo_market.jsonl --json",
        description=(
            "Replay FILE (a JSONL recording from record-ws, or a JSON array of frames / a single event) "
            "through the same decoder, validation, book and integrity code as the live feed, then print per "
            "asset the final top of book, depth (levels per side), status and integrity fault count, plus "
            "the rejected-input counts by reason. Deterministic: the same file gives the same output. "
            "A paced replay (--speed) shows the frames replayed and the rate on a terminal; Ctrl-C or "
            "SIGTERM stops it and prints the books as they stood (exit 1)."
        ),
    )
    p.add_argument("file", metavar="FILE", type=Path, help="recording (.jsonl) or JSON capture")
    p.add_argument("--asset", action="append", metavar="ID", help="only report this asset (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--speed",
        type=_SPEED,
        default=None,
        help="replay pace: omitted or 0 = as fast as possible, 1 = as recorded, 2 = twice as fast",
    )
    p.add_argument(
        "--staleness-ms",
        type=common.staleness_ms,
        default=60_000,
        help="books without an update this long before the last frame end up stale (default 60000)",
    )
    p.set_defaults(func=_replay_book)


@dataclass
class ReplayResult:
    frames: int = 0
    bad_lines: list[str] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    last_recv_ns: int = 0
    stopped_by: str | None = None
    """The signal (SIGINT, SIGTERM) that stopped the replay before the recording's end."""


def run_replay(path: Path, speed: float | None, staleness_ms: int) -> tuple[FeedProcessor, ReplayResult]:
    from core.feed.processor import FeedProcessor
    from core.feed.replay import replay

    processor = FeedProcessor(staleness_ms=staleness_ms)
    result = ReplayResult()

    def on_frame(recv_ns: int, frame: str) -> None:
        for event in processor.process(frame, recv_ns):
            result.events[type(event).__name__] += 1
        result.last_recv_ns = max(result.last_recv_ns, recv_ns)

    def on_bad_line(line_no: int, reason: str) -> None:
        result.bad_lines.append(f"line {line_no}: {reason}")

    def on_counted_frame(recv_ns: int, frame: str) -> None:
        on_frame(recv_ns, frame)
        result.frames += 1

    asyncio.run(_until_stopped(replay(path, on_counted_frame, speed, on_bad_line=on_bad_line), result))
    # the recording is over (or the replay was stopped there): every open burst is complete, and time stops at the last frame
    for event in processor.finish(result.last_recv_ns):
        result.events[type(event).__name__] += 1
    for event in processor.check_staleness(result.last_recv_ns):
        result.events[type(event).__name__] += 1
    return processor, result


async def _until_stopped(replaying: Coroutine[Any, Any, int], result: ReplayResult) -> None:
    """Run the replay; Ctrl-C / SIGTERM stop it where it is (noted in ``result``). On a terminal a
    line shows the frames replayed and the rate (a paced replay can take as long as the recording)."""
    from polybot.cli.common import Progress, stop_on_signals
    from polybot.cli.tools.run_progress import keep_showing, per_second, took

    stop = asyncio.Event()
    signals: list[str] = []
    started = time.monotonic()
    progress = Progress()

    def text() -> str:
        seconds = time.monotonic() - started
        events = sum(result.events.values())
        return (
            f"replayed {result.frames} frames ({per_second(result.frames, seconds)}), {events} events, {took(seconds)}"
        )

    with stop_on_signals(stop, signals.append):
        task = asyncio.create_task(replaying)
        shown = asyncio.create_task(keep_showing(progress, text, stop))
        try:
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                result.stopped_by = signals[0] if signals else "a signal"
            else:
                task.result()  # a replay error goes on
        finally:
            stop.set()
            shown.cancel()
            await asyncio.gather(shown, return_exceptions=True)
            progress.done()


def _book_row(processor: FeedProcessor, asset_id: str) -> dict[str, Any]:
    book = processor.books[asset_id]
    bids, asks = book.level_counts()
    best_bid, best_ask = book.best_bid(), book.best_ask()
    return {
        "asset_id": asset_id,
        "market": book.market,
        "status": str(book.status),
        "best_bid": None if best_bid is None else str(best_bid),
        "best_ask": None if best_ask is None else str(best_ask),
        "bid_levels": bids,
        "ask_levels": asks,
        "tick_size": str(book.tick_size),
        "epoch": book.epoch,
        "fault_count": sum(book.faults.values()),
        "faults": dict(sorted(book.faults.items())),
        "last_update_ns": book.last_update_ns,
    }


def _replay_book(args: argparse.Namespace) -> int:
    common.replay_file(args.file)
    processor, result = run_replay(args.file, args.speed, args.staleness_ms)
    asset_ids = sorted(processor.books)
    if args.asset:
        missing = [a for a in args.asset if a not in processor.books]
        if missing:
            raise PolybotError(f"asset not in {args.file}: {', '.join(missing)}")
        asset_ids = list(dict.fromkeys(args.asset))
    rows = [_book_row(processor, a) for a in asset_ids]
    report = {
        "file": str(args.file),
        "frames": result.frames,
        "pongs": processor.pongs,
        "bad_lines": len(result.bad_lines),
        "events": dict(sorted(result.events.items())),
        "decode_errors": processor.counters.as_dict(),
        "decode_error_count": processor.counters.total,
        "integrity_faults": processor.faults.as_dict(),
        "integrity_fault_count": processor.faults.total,
        "assets": rows,
    }
    if result.stopped_by is not None:  # only then: a whole replay's output stays byte for byte the same
        report["stopped_by"] = result.stopped_by
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(report, result.bad_lines)
    return 0 if result.stopped_by is None else 1


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items()) if counts else "none"


def _print_text(report: dict[str, Any], bad_lines: list[str]) -> None:
    out = sys.stdout
    out.write(
        f"{report['file']}: {report['frames']} frames ({report['pongs']} PONG), "
        f"{report['bad_lines']} unreadable lines, {sum(report['events'].values())} events"
        + (
            f"; stopped by {report['stopped_by']} before the end: the books as they stood"
            if "stopped_by" in report
            else ""
        )
        + "\n"
    )
    for line in bad_lines[:5]:
        out.write(f"  skipped {line}\n")
    header = ("asset", "status", "bid", "ask", "levels b/a", "tick", "epoch", "faults")
    table = [
        (
            _abbrev(r["asset_id"]),
            r["status"],
            r["best_bid"] or "-",
            r["best_ask"] or "-",
            f"{r['bid_levels']}/{r['ask_levels']}",
            r["tick_size"],
            str(r["epoch"]),
            str(r["fault_count"]),
        )
        for r in report["assets"]
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(header)]
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    for row in table:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(f"decode errors: {_counts(report['decode_errors'])}\n")
    out.write(f"integrity faults: {_counts(report['integrity_faults'])}\n")


def _abbrev(asset_id: str) -> str:
    return asset_id if len(asset_id) <= 20 else f"{asset_id[:10]}…{asset_id[-8:]}"
