"""The project's deterministic demo recording (fixtures/recordings/demo_market.jsonl), written
from :mod:`core.feed.synth`'s demo markets:

    uv run python -m core.feed.demo_recording fixtures/recordings/demo_market.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import msgspec

from core.feed.synth import FrameGenerator, write_recording
from core.feed.synth_markets import demo_markets

_encode = msgspec.json.encode


DEMO_SEED = 7
DEMO_START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def demo_recording_lines(
    seed: int = DEMO_SEED, frames: int = 400, start_ns: int = DEMO_START_NS, step_ms: int = 25
) -> list[str]:
    """JSONL lines (``{"recv_ns": ..., "frame": ...}``) of the demo recording."""
    markets = demo_markets(seed)
    gen = FrameGenerator([], seed, levels=12, markets=markets, dislocation_prob=0.01)
    lines: list[str] = []
    recv_ns = start_ns

    def add(frame: str) -> None:
        lines.append(_encode({"recv_ns": recv_ns, "frame": frame}).decode())

    add(gen.snapshot_array_frame(ts_ms=recv_ns // 1_000_000 - 40))
    for i in range(frames):
        recv_ns += step_ms * 1_000_000
        if i and i % 100 == 0:
            add("PONG")
            continue
        add(gen.next_frame(recv_ns // 1_000_000 - 40))
    for frame in gen.drain():  # finish a burst in progress
        recv_ns += step_ms * 1_000_000
        add(frame)
    # the venue re-sends books now and then; end with fresh snapshots of the binary market
    recv_ns += step_ms * 1_000_000
    for token in markets[0].token_ids:
        add(gen.snapshot_frame(token, recv_ns // 1_000_000 - 40))
    return lines


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the deterministic demo recording.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--frames", type=int, default=400)
    args = parser.parse_args(argv)
    write_recording(args.out, demo_recording_lines(args.seed, args.frames))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
