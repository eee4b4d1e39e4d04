"""Record raw market-channel frames with their receive time, one JSON object per line.

Line format (read back by :mod:`core.feed.replay`): ``{"recv_ns": <int>, "frame": "<raw text>"}``
where ``recv_ns`` is the wall-clock receive time in nanoseconds and ``frame`` the text exactly
as the venue sent it. Lines are batched in memory and written with one unbuffered write per
batch, so the file on disk only ever holds whole lines, even when the process is killed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from core.feed.connection import ConnectionEvent, FeedStats
from core.feed.ws import MarketFeed

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


class _Line(msgspec.Struct):
    recv_ns: int
    frame: str


def encode_line(text: str, recv_ns: int) -> bytes:
    """One JSONL record, newline included."""
    return _encoder.encode(_Line(recv_ns, text)) + b"\n"


class JsonlRecorder:
    """Appends ``{"recv_ns", "frame"}`` lines to ``path``; flushes by size and by age."""

    def __init__(
        self,
        path: Path | str,
        *,
        flush_bytes: int = 256 * 1024,
        flush_interval_s: float = 0.5,
        append: bool = False,
    ) -> None:
        self.path = Path(path)
        self._flush_bytes = flush_bytes
        self._flush_interval = flush_interval_s
        # unbuffered: our own batch is the buffer, written whole in one call
        self._file = open(self.path, "ab" if append else "wb", buffering=0)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self.messages = 0
        self.bytes = 0  # bytes of JSONL written (or pending), newlines included
        self.closed = False

    def write(self, text: str, recv_ns: int) -> None:
        line = encode_line(text, recv_ns)
        self._pending.append(line)
        self._pending_bytes += len(line)
        self.messages += 1
        self.bytes += len(line)
        if self._pending_bytes >= self._flush_bytes or time.monotonic() - self._last_flush >= self._flush_interval:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            view = memoryview(data)
            while view:  # a raw write may be partial; finish the batch before returning
                written = self._file.write(view)
                view = view[written or 0 :]
            self._pending.clear()
            self._pending_bytes = 0
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
            self.closed = True

    def __enter__(self) -> JsonlRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class RecordSummary:
    path: Path
    messages: int
    bytes: int
    seconds: float
    reconnects: int
    dropped: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "messages": self.messages,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "reconnects": self.reconnects,
            "dropped": dict(self.dropped),
        }


async def record(
    url: str,
    out: Path | str,
    asset_ids: Sequence[str],
    *,
    max_messages: int | None = None,
    duration_s: float | None = None,
    stop_event: asyncio.Event | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    progress_interval_s: float = 0.5,
    on_state: Callable[[ConnectionEvent], None] | None = None,
    **feed_options: Any,
) -> RecordSummary:
    """Subscribe to ``asset_ids`` at ``url`` and record frames to ``out`` until
    ``max_messages`` were recorded, ``duration_s`` passed or ``stop_event`` is set.

    ``progress(messages, bytes, seconds)`` is called every ``progress_interval_s``.
    ``feed_options`` go to :class:`MarketFeed` (heartbeat, reconnect, caps).
    """
    started = time.monotonic()
    stats: FeedStats | None = None
    with JsonlRecorder(out) as recorder:
        on_frame = recorder.write
        if max_messages is not None:
            # frames keep arriving until the sockets are closed; record exactly max_messages
            def on_frame(text: str, recv_ns: int) -> None:
                if recorder.messages < max_messages:
                    recorder.write(text, recv_ns)

        feed = MarketFeed(url, asset_ids, on_frame, on_state=on_state, **feed_options)
        ticker: asyncio.Task[None] | None = None
        if progress is not None:

            async def tick() -> None:
                while True:
                    await asyncio.sleep(progress_interval_s)
                    progress(recorder.messages, recorder.bytes, time.monotonic() - started)

            ticker = asyncio.create_task(tick())
        try:
            stats = await feed.run_until(max_messages=max_messages, stop_event=stop_event, timeout_s=duration_s)
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            await feed.stop()
        return RecordSummary(
            path=recorder.path,
            messages=recorder.messages,
            bytes=recorder.bytes,
            seconds=time.monotonic() - started,
            reconnects=stats.reconnects,
            dropped=stats.dropped,
        )
