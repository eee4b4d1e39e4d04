"""Where the market double's frames come from: a recording (JSONL ``{"recv_ns", "frame"}`` lines,
the format ``polybot record-ws`` writes, or a JSON array of frames) or
:class:`core.feed.synth.FrameGenerator`, deterministic for a seed.

Opening a source seeds the server's books: a recording's leading ``book`` snapshots, or the
generator's snapshots, are the state a first subscriber sees.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

from core.feed.replay import iter_frames
from core.feed.synth import FrameGenerator
from core.feed.synth_markets import token_id
from core.sim.mock_ws_books import Event, MarketBooks, parse_frame


def read_recording(path: Path) -> Iterator[str]:
    """Raw frames of a recording, via the replay reader (unreadable lines are logged, skipped)."""
    for _recv_ns, frame in iter_frames(path):
        yield frame


def recording_source(path: Path, books: MarketBooks, *, loop: bool) -> Iterator[str]:
    """The frames of ``path`` after its opening snapshots (applied to ``books``); ``loop``
    replays it for ever."""
    if not path.is_file():
        raise FileNotFoundError(f"recording not found: {path}")
    # PONG lines are heartbeat answers, not market data: the server answers PINGs itself
    frames = [f for f in read_recording(path) if f.strip() != "PONG"]
    if not frames:
        raise ValueError(f"recording {path} holds no frames")
    start = 0
    while start < len(frames) and _is_book_frame(events := parse_frame(frames[start])):
        books.apply(frames[start], events)
        start += 1
    for text in frames[start:]:
        books.register(parse_frame(text))
    body = frames[start:]
    # on each wrap the opening snapshots go out again: the deltas that follow assume them
    return _cycle(body, frames[:start]) if loop else iter(body)


def generated_source(
    books: MarketBooks, *, assets: int, seed: int, levels: int, start_ts_ms: int | None
) -> Iterator[str]:
    """An endless generated stream over ``assets`` tokens, its snapshots applied to ``books``.
    Timestamps are wall-clock ms, or ``start_ts_ms + n`` (byte-identical runs for a seed)."""
    generator = FrameGenerator(_generated_asset_ids(assets, seed), seed, levels)
    ts0 = start_ts_ms if start_ts_ms is not None else _wall_ms()
    for text in generator.snapshot_frames(ts0):
        books.apply(text, parse_frame(text))
    return _generated(generator, ts0, fixed_clock=start_ts_ms is not None)


def _generated(generator: FrameGenerator, ts0: int, *, fixed_clock: bool) -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield generator.next_frame(ts0 + n if fixed_clock else _wall_ms())


def _is_book_frame(events: list[Event] | None) -> bool:
    return bool(events) and all(e.get("event_type") == "book" for e in events or ())


def _cycle(frames: list[str], on_wrap: list[str]) -> Iterator[str]:
    """``frames`` forever, each later pass preceded by ``on_wrap`` (the recording's opening
    ``book`` snapshots): a rewound stream replayed on the books it ended with would contradict
    its own carried best prices, and the venue resets a book the same way, with a ``book``."""
    yield from frames
    while True:
        yield from on_wrap
        yield from frames


def _generated_asset_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(f"mock-ws-assets:{seed}")
    return [token_id(rng) for _ in range(count)]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
