"""How ingest scales with the number of books: the asset-count table of ``bench/ingest.py``.

For each asset count (10 / 100 / 1,000 / 10,000 by default) the same kind of stream as the main
bench (``core.feed.synth``, ~20 levels a side, current-format ``price_change`` frames) is
generated, the books are seeded from snapshots, and chunks of the stream are timed alternately as
in the main bench: msgspec decode only (the floor) and the full ``FeedProcessor.process`` (the
feed path in use: compiled when built), best-of-N, in CPU time. Frames/s and the ratio to the
floor measured in the same run are reported, with the books checked exactly against the
generator's at the end.

Memory per book is measured apart, with ``tracemalloc`` (Python allocations, requested sizes:
allocator slack and fragmentation are not in it): a fresh processor for the same assets (their
asset-id strings allocated inside the measurement), seeded from the snapshots, then fed stream
frames under one receive time so that no burst is closed by time and every book that received
data keeps its open burst (the most a book holds). KB per book = traced bytes / books.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

from core.feed.processor import FeedProcessor
from core.feed.synth import FrameGenerator
from core.feed.wire import PRICE_CHANGE_DECODER
from core.types import BookStatus

DEFAULT_COUNTS = (10, 100, 1_000, 10_000)
MEMORY_FRAMES = 100_000  # frames fed for the memory figure (enough to touch every book many times)


def scaling_row(asset_ids: Sequence[str], frames_count: int, levels: int, seed: int, chunks: int) -> dict[str, Any]:
    """One row of the table: frames/s, ratio to the floor, KB per book, correctness."""
    t0 = time.perf_counter()
    gen = FrameGenerator(asset_ids, seed, levels=levels, trade_prints=False)
    snapshots = gen.snapshot_frames(ts_ms=1_000)
    frames = list(gen.frames(frames_count, 2_000, 1))
    frames += gen.drain()
    gen_s = time.perf_counter() - t0

    processor = FeedProcessor(known_assets=set(gen.asset_ids))
    for frame in snapshots:
        processor.process(frame, time.time_ns())
    decode = PRICE_CHANGE_DECODER.decode
    process = processor.process
    now = time.time_ns
    clock = time.process_time
    size = len(frames) // chunks
    floor: list[float] = []
    full: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for i in range(chunks):
            chunk = frames[i * size : (i + 1) * size]
            start = clock()
            for frame in chunk:
                decode(frame)
            floor.append(len(chunk) / (clock() - start))
            start = clock()
            for frame in chunk:
                process(frame, now())
            full.append(len(chunk) / (clock() - start))
    finally:
        gc.enable()
    for frame in frames[chunks * size :]:
        process(frame, now())
    processor.finish(now())
    correct = (
        processor.counters.total == 0
        and processor.faults.total == 0
        and all(
            b.status is BookStatus.OK and gen.top(a) == (b.best_bid(), b.best_ask()) for a, b in processor.books.items()
        )
    )
    memory = bytes_per_book(gen.asset_ids, snapshots, frames[:MEMORY_FRAMES])
    return {
        "assets": len(asset_ids),
        "frames": len(frames),
        "decode_only_fps": round(max(floor)),
        "decode_validate_apply_fps": round(max(full)),
        "ratio_to_floor": round(max(full) / max(floor), 3),
        "kb_per_book": round(memory / 1000, 2),
        "correct": correct,
        "generate_s": round(gen_s, 1),
    }


def bytes_per_book(asset_ids: Sequence[str], snapshots: Sequence[str], frames: Sequence[str]) -> float:
    """Traced bytes of a processor holding these books (seeded, every burst left open) / books."""
    warm = FeedProcessor(known_assets={asset_ids[0]})  # module-level caches and tables, once
    warm.process(snapshots[0], 1)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        ids = {a.encode().decode() for a in asset_ids}  # the books' own copies of their ids
        processor = FeedProcessor(known_assets=ids)
        for frame in snapshots:
            processor.process(frame, 1)
        for frame in frames:
            processor.process(frame, 2)  # one receive time: no burst is closed for being quiet
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        books = len(processor.books)
    finally:
        tracemalloc.stop()
    return used / books


def scaling_table(
    counts: Sequence[int],
    frames_count: int,
    levels: int,
    seed: int,
    chunks: int,
    asset_ids: Callable[[int], list[str]],
) -> list[dict[str, Any]]:
    return [scaling_row(asset_ids(n), frames_count, levels, seed, chunks) for n in counts]


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    print("scaling with the number of books (feed path in use; x floor = / msgspec decode-only, same run):")
    print(f"  {'assets':>7} {'frames/s':>10} {'x floor':>8} {'KB/book':>8}  correct")
    for row in rows:
        print(
            f"  {row['assets']:>7,} {row['decode_validate_apply_fps']:>10,} {row['ratio_to_floor']:>8.3f} "
            f"{row['kb_per_book']:>8.2f}  {row['correct']}"
        )
    print("  (KB/book: tracemalloc, 20 levels a side, every book with an open burst; targets: >= 0.4x at 1,000,")
    print("   >= 0.35x at 10,000, <= 5 KB per book at 10,000)")
