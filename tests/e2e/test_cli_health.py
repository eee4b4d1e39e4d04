"""``polybot health`` and ``polybot status-top`` on real SQLite databases."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core.feed.pipeline import IngestPipeline
from core.feed.processor import FeedProcessor
from core.feed.synth import FrameGenerator
from core.store.db import create_engine
from core.store.migrate import upgrade_engine
from core.store.writer import BatchedWriter
from polybot.cli.main import main


async def _ingest(url: str, frames: int = 60) -> None:
    engine = create_engine(url)
    try:
        await upgrade_engine(engine)
        gen = FrameGenerator(["11", "22", "33", "44"], seed=2, levels=5)
        processor = FeedProcessor(known_assets=set(gen.asset_ids))
        async with BatchedWriter(engine) as writer:
            pipeline = IngestPipeline(processor, writer)
            import time

            now = time.time_ns()
            for frame in gen.snapshot_frames(ts_ms=now // 1_000_000):
                pipeline.on_frame(frame, now)
            for n in range(frames):
                pipeline.on_frame(gen.next_frame(now // 1_000_000 + n), now + n * 1000)
            await writer.flush()
    finally:
        await engine.dispose()


def test_health_on_an_empty_then_a_fresh_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert main(["health", "--db-url", url]) == 1
    assert "no schema" in capsys.readouterr().out
    asyncio.run(_ingest(url))
    assert main(["health", "--db-url", url, "--staleness-ms", "600000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"healthy": True, "reasons": []}
    assert main(["status-top", "--db-url", url, "--limit", "2", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert len(top) == 2 and all(row["best_bid"] and row["best_ask"] for row in top)


def test_health_flags_stale_assets_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    asyncio.run(_ingest(url))
    import time

    time.sleep(0.05)
    assert main(["health", "--db-url", url, "--staleness-ms", "1"]) == 1
    assert "not updated within 1 ms" in capsys.readouterr().out
    assert main(["health", "--db-url", url, "--staleness-ms", "0"]) == 2
    assert main(["status-top", "--db-url", url, "--limit", "0"]) == 2
