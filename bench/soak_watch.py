"""The soak's moving parts besides the feed: the followed set that changes every minute, the
probes that say where the time goes, and process readings (RSS, CPU) for ``bench/soak.py``."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.feed.processor import FeedProcessor
from core.feed.subscriptions import SubscriptionChange
from core.store.writer import BatchedWriter
from core.types import BookStatus

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


class _Feed(Protocol):
    @property
    def operations(self) -> int: ...

    async def set_assets(self, asset_ids: Sequence[str]) -> SubscriptionChange: ...


@dataclass
class WatchChanges:
    """Every ``every_s``: ``size`` followed assets (drawn at random) leave, ``size`` others join,
    in the order the service's watcher does it: books tracked, sockets changed on the live
    connections (``MarketFeed.set_assets``: subscribe/unsubscribe operations), books of the
    removed assets dropped. Assets never followed join first, then those dropped longest ago."""

    followed: list[str]
    pool: deque[str]
    size: int
    rng: random.Random
    log: list[dict[str, Any]] = field(default_factory=list)
    _waiting: list[tuple[dict[str, Any], float, set[str]]] = field(default_factory=list)

    def _next(self) -> tuple[list[str], list[str]]:
        drop = self.rng.sample(self.followed, min(self.size, len(self.followed)))
        add = [self.pool.popleft() for _ in range(min(self.size, len(self.pool)))]
        gone = set(drop)
        self.followed = [a for a in self.followed if a not in gone] + add
        self.pool.extend(drop)
        return drop, add

    async def change(self, feed: _Feed, processor: FeedProcessor, t_s: float) -> dict[str, Any]:
        _drop, add = self._next()
        ops0, t0 = feed.operations, time.perf_counter()
        processor.track(add)
        change = await feed.set_assets(self.followed)
        processor.untrack(change.removed)  # frames still on their way count as late_frames there
        entry: dict[str, Any] = {
            "t_s": round(t_s, 1),
            "added": len(change.added),
            "removed": len(change.removed),
            "operations": feed.operations - ops0,
            "sockets_opened": change.opened,
            "sockets_closed": change.closed,
            "set_assets_ms": round((time.perf_counter() - t0) * 1000, 1),
            "new_books_ok_s": None,
        }
        self.log.append(entry)
        self._waiting.append((entry, time.perf_counter(), set(change.added)))
        return entry

    def check_new_books(self, processor: FeedProcessor) -> None:
        """Note when every book a change added got its snapshot (status ok)."""
        books = processor.books
        still = []
        for entry, t0, assets in self._waiting:
            assets = {a for a in assets if (b := books.get(a)) is None or b.status is not BookStatus.OK}
            if assets:
                still.append((entry, t0, assets))
            else:
                entry["new_books_ok_s"] = round(time.perf_counter() - t0, 2)
        self._waiting = still


@dataclass
class Probes:
    """Where the time goes, measured cheaply enough to stay on for the whole run: time inside the
    frame handler (decode, validate, apply, rows queued), time inside the writer's batches
    (insert + commit; on SQLite the driver's thread, on PostgreSQL partly the server), event-loop
    lag (a 50 ms timer's overshoot: what delays socket reads), time in the cyclic garbage collector,
    CPU of this process and the double."""

    mock_pid: int
    on_frame_ns: int = 0
    write_ns: int = 0
    batches: int = 0
    lags_ms: list[float] = field(default_factory=list)
    gc_ns: int = 0  # time inside the cyclic garbage collector (all generations)
    gc_full: int = 0  # full (generation 2) collections
    gc_worst_ms: float = 0.0  # the longest single collection
    _task: asyncio.Task[None] | None = None
    _gc_t0: int = 0

    def wrap_frame(self, handler: Callable[[str, int], object]) -> Callable[[str, int], None]:
        clock = time.perf_counter_ns

        def timed(text: str, recv_ns: int) -> None:
            t0 = clock()
            handler(text, recv_ns)
            self.on_frame_ns += clock() - t0

        return timed

    def wrap_writer(self, writer: BatchedWriter) -> None:
        inner = writer._write_batch  # the batch: inserts and commit, retries included

        async def timed(batch: list[Any]) -> None:
            t0 = time.perf_counter_ns()
            await inner(batch)
            self.write_ns += time.perf_counter_ns() - t0
            self.batches += 1

        setattr(writer, "_write_batch", timed)  # noqa: B010  # an instance attribute shadows the method

    def start(self) -> None:
        self._task = asyncio.create_task(self._lag(), name="soak-loop-lag")
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self._gc_t0 = now
            return
        took = now - self._gc_t0
        self.gc_ns += took
        self.gc_worst_ms = max(self.gc_worst_ms, took / 1e6)
        if info.get("generation") == 2:
            self.gc_full += 1

    async def stop(self) -> None:
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(0.05)
            self.lags_ms.append((loop.time() - t0 - 0.05) * 1000)

    def reset_lag(self) -> None:
        self.lags_ms = []
        self.gc_full, self.gc_worst_ms = 0, 0.0

    def reading(self) -> dict[str, float]:
        return {
            "cpu_s": cpu_s(),
            "mock_cpu_s": cpu_s(self.mock_pid),
            "on_frame_s": self.on_frame_ns / 1e9,
            "write_s": self.write_ns / 1e9,
            "gc_s": self.gc_ns / 1e9,
            "wall_s": time.monotonic(),
        }

    def lag_summary(self) -> dict[str, float | None]:
        lags = sorted(self.lags_ms)
        gc_figures = {"gc_full_collections": self.gc_full, "gc_worst_ms": round(self.gc_worst_ms, 1)}
        if not lags:
            return {"loop_lag_p50_ms": None, "loop_lag_p99_ms": None, "loop_lag_max_ms": None, **gc_figures}
        return {
            "loop_lag_p50_ms": round(statistics.median(lags), 1),
            "loop_lag_p99_ms": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 1),
            "loop_lag_max_ms": round(lags[-1], 1),
            **gc_figures,
        }


def shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU and busy shares between two readings (1.0 = one core or the whole wall time)."""
    wall = after["wall_s"] - before["wall_s"]
    if wall <= 0:
        return {}

    def part(key: str) -> float:
        return round((after[key] - before[key]) / wall, 3)

    return {
        "soak_cpu_cores": part("cpu_s"),
        "mock_cpu_cores": part("mock_cpu_s"),
        "frame_handler_share": part("on_frame_s"),
        "writer_busy_share": part("write_s"),
        "gc_share": part("gc_s"),
    }


@dataclass
class LatencyHistogram:
    """Receive-to-commit latency of every committed feed row received between ``since_ns`` and
    ``until_ns`` (1 ms buckets): exact percentiles over the whole run, unlike the writer's
    sliding window."""

    since_ns: int = 0
    until_ns: int = 2**63  # set when the measured part ends (the sockets close one by one after)
    rows: int = 0
    buckets: dict[int, int] = field(default_factory=dict)
    recent: dict[int, int] = field(default_factory=dict)  # since the last sample (interval_p99_ms)

    def __call__(self, parts: Sequence[tuple[object, Sequence[Any]]], now_ns: int) -> None:
        since, until, buckets, recent = self.since_ns, self.until_ns, self.buckets, self.recent
        for _table, rows in parts:
            for row in rows:
                ts = row.get("receive_ts")
                if isinstance(ts, int) and since <= ts <= until:
                    ms = (now_ns - ts) // 1_000_000
                    buckets[ms] = buckets.get(ms, 0) + 1
                    recent[ms] = recent.get(ms, 0) + 1
                    self.rows += 1

    def interval_p99_ms(self) -> int | None:
        """p99 of the rows committed since the last call (then forgotten)."""
        recent, self.recent = self.recent, {}
        return _percentile(recent, sum(recent.values()), 0.99)

    def percentile_ms(self, q: float) -> int | None:
        return _percentile(self.buckets, self.rows, q)

    def summary(self) -> dict[str, int | None]:
        return {
            "rows_timed": self.rows,
            "commit_lag_p50_ms": self.percentile_ms(0.50),
            "commit_lag_p99_ms": self.percentile_ms(0.99),
            "commit_lag_p999_ms": self.percentile_ms(0.999),
            "commit_lag_max_ms": max(self.buckets) if self.buckets else None,
            "rows_over_1s": sum(n for ms, n in self.buckets.items() if ms >= 1000),
        }


def _percentile(buckets: dict[int, int], total: int, q: float) -> int | None:
    if not total:
        return None
    rank, seen = q * total, 0
    for ms in sorted(buckets):
        seen += buckets[ms]
        if seen >= rank:
            return ms
    return max(buckets)
