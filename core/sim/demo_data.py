"""The demo's bundled data: a feed recording whose token ids match the project's Gamma fixture.

``fixtures/gamma/markets.json`` is what the mock Gamma serves; ``fixtures/recordings/demo_feed.jsonl``
is what the mock websocket replays. Both describe the same markets, so the demo's service can
discover markets, subscribe to their tokens and find Dutch-book dislocations in the neg-risk event.
Regenerate with ``uv run python -m core.sim.demo_data``; the output is deterministic.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec

from core.feed.synth import FrameGenerator, write_recording
from core.feed.synth_markets import SynthMarket
from core.markets import parse_markets
from core.sim.mock_gamma import load_markets_file

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
GAMMA_FIXTURE = REPO_ROOT / "fixtures" / "gamma" / "markets.json"
DEMO_RECORDING = REPO_ROOT / "fixtures" / "recordings" / "demo_feed.jsonl"
DEMO_SEED = 11
START_NS = 1_793_000_000_000_000_000  # 2026-10-26T...Z: a fixed, plausible receive time


def demo_synth_markets(path: Path = GAMMA_FIXTURE) -> list[SynthMarket]:
    """Open markets of the Gamma fixture as generator markets (ids, ticks and neg-risk groups kept)."""
    parsed, _ = parse_markets(load_markets_file(path))
    out = []
    for gm in parsed:
        m = gm.info
        if m.closed or len(m.tokens) != 2:
            continue
        yes = m.token("Yes").token_id
        no = m.token("No").token_id
        out.append(
            SynthMarket(
                condition_id=m.condition_id,
                question=m.question,
                slug=m.slug,
                token_ids=(yes, no),
                neg_risk=m.neg_risk,
                neg_risk_market_id=m.neg_risk_market_id,
                tick_size=m.tick_size,
            )
        )
    return out


def demo_recording_lines(frames: int = 1500, step_ms: int = 20, seed: int = DEMO_SEED) -> list[str]:
    markets = demo_synth_markets()
    gen = FrameGenerator([], seed, levels=10, markets=markets, dislocation_prob=0.02)
    lines: list[str] = []
    recv_ns = START_NS
    enc = msgspec.json.encode

    def add(frame: str) -> None:
        lines.append(enc({"recv_ns": recv_ns, "frame": frame}).decode())

    add(gen.snapshot_array_frame(ts_ms=recv_ns // 1_000_000 - 30))
    for i in range(frames):
        recv_ns += step_ms * 1_000_000
        if i and i % 250 == 0:
            add("PONG")
            continue
        add(gen.next_frame(recv_ns // 1_000_000 - 30))
    for frame in gen.drain():
        recv_ns += step_ms * 1_000_000
        add(frame)
    return lines


def token_ids() -> list[str]:
    return [t for m in demo_synth_markets() for t in m.token_ids]


def tick_of(markets: Sequence[SynthMarket], token: str) -> Decimal:
    for m in markets:
        if token in m.token_ids:
            return m.tick_size
    raise KeyError(token)


def main() -> int:
    write_recording(DEMO_RECORDING, demo_recording_lines())
    sys.stdout.write(f"wrote {DEMO_RECORDING}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
