"""Recording the market channel from the mock over real sockets, and reading it back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from core.feed.processor import FeedProcessor
from core.feed.recorder import JsonlRecorder, encode_line, record
from core.feed.replay import iter_frames
from core.feed.ws import MarketFeed
from core.sim.mock_ws import MockMarketServer


def test_line_format_is_recv_ns_then_raw_frame() -> None:
    raw = '{"event_type":"book","asset_id":"1"}'
    line = encode_line(raw, 123)
    assert line == b'{"recv_ns":123,"frame":"{\\"event_type\\":\\"book\\",\\"asset_id\\":\\"1\\"}"}\n'
    assert json.loads(line) == {"recv_ns": 123, "frame": raw}
    odd = 'PONG \u00e9 "quoted"\n'
    assert json.loads(encode_line(odd, 1))["frame"] == odd


def test_recorder_only_ever_leaves_whole_lines_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = JsonlRecorder(path, flush_bytes=1000, flush_interval_s=3600)
    for i in range(100):
        rec.write(json.dumps({"i": i, "pad": "x" * 37}), i)
        on_disk = path.read_bytes()
        assert on_disk == b"" or on_disk.endswith(b"\n")  # never a torn line
    assert 0 < len(path.read_bytes().splitlines()) < 100  # flushed by size, some still pending
    rec.close()
    lines = path.read_bytes().splitlines()
    assert [json.loads(json.loads(x)["frame"])["i"] for x in lines] == list(range(100))
    assert rec.bytes == path.stat().st_size and rec.messages == 100


async def test_record_from_mock_writes_what_the_feed_delivered(tmp_path: Path) -> None:
    out = tmp_path / "mock.jsonl"
    async with MockMarketServer(assets=4, seed=12, rate_hz=400, start_ts_ms=1_700_000_000_000) as server:
        assets = server.asset_ids
        summary = await record(server.url, out, assets, max_messages=60, duration_s=10)
    assert summary.messages == 60 and summary.reconnects == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 60
    frames = [r["frame"] for r in records]
    assert list(iter_frames(out)) == [(r["recv_ns"], r["frame"]) for r in records]
    assert {json.loads(f)["asset_id"] for f in frames[:4]} == set(assets)
    stamps = [r["recv_ns"] for r in records]
    assert stamps == sorted(stamps) and stamps[0] > 1_600_000_000 * 10**9


async def test_record_stops_on_event_and_reports_progress(tmp_path: Path) -> None:
    out = tmp_path / "ev.jsonl"
    ticks: list[tuple[int, int, float]] = []
    stop = asyncio.Event()
    async with MockMarketServer(assets=2, seed=13, rate_hz=200) as server:
        task = asyncio.create_task(
            record(
                server.url,
                out,
                server.asset_ids,
                stop_event=stop,
                progress=lambda m, b, s: ticks.append((m, b, s)),
                progress_interval_s=0.05,
            )
        )
        for _ in range(250):  # at most 5 s
            if len(ticks) >= 3 and ticks[-1][0] >= 10:
                break
            await asyncio.sleep(0.02)
        stop.set()
        summary = await asyncio.wait_for(task, 5)
    assert summary.messages >= 10
    assert summary.bytes == out.stat().st_size
    assert len(out.read_text().splitlines()) == summary.messages
    assert [m for m, _, _ in ticks] == sorted(m for m, _, _ in ticks)


async def test_recording_replays_through_the_same_pipeline(tmp_path: Path) -> None:
    """record-ws output -> replay.iter_frames -> processor: same frames, same books."""
    out = tmp_path / "roundtrip.jsonl"
    live = FeedProcessor()
    seen: list[tuple[int, str]] = []

    async with MockMarketServer(assets=4, seed=14, rate_hz=500) as server:
        with JsonlRecorder(out) as rec:

            def both(text: str, ns: int) -> None:
                rec.write(text, ns)
                seen.append((ns, text))
                live.process(text, ns)

            feed = MarketFeed(server.url, server.asset_ids, both)
            await feed.run_until(max_messages=200, timeout_s=10)
    replayed = list(iter_frames(out))
    assert replayed == seen
    again = FeedProcessor()
    for ns, text in replayed:
        again.process(text, ns)
    assert set(again.books) == set(live.books) == set(server.asset_ids)
    for asset, book in live.books.items():
        other = again.books[asset]
        assert (other.status, other.best_bid(), other.best_ask()) == (book.status, book.best_bid(), book.best_ask())
        assert other.bids(20) == book.bids(20) and other.asks(20) == book.asks(20)
    assert again.faults.total == live.faults.total == 0
