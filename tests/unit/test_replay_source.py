"""Replay source: JSONL recordings and JSON captures, pacing, determinism."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest

from core.errors import PolybotError
from core.feed.processor import FeedProcessor
from core.feed.replay import iter_frames, replay
from tests.conftest import PROJECT_FIXTURES, SHARED_FIXTURES

DEMO = PROJECT_FIXTURES / "recordings" / "demo_market.jsonl"


def _write_jsonl(path: Path, rows: list[tuple[int, str]]) -> Path:
    path.write_text("".join(json.dumps({"recv_ns": ns, "frame": f}) + "\n" for ns, f in rows))
    return path


def test_jsonl_recording_round_trips(tmp_path: Path) -> None:
    rows = [(5, "PONG"), (7, '{"event_type":"book"}'), (9, '[{"a": "line\\nbreak"}]')]
    assert list(iter_frames(_write_jsonl(tmp_path / "r.jsonl", rows))) == rows


def test_unreadable_lines_are_reported_not_hidden(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "r.jsonl", [(1, "PONG"), (2, "PONG")])
    with path.open("a") as fh:
        fh.write('{"recv_ns": 3, "frame": "PO')  # a recorder killed mid-line
    bad: list[tuple[int, str]] = []
    assert list(iter_frames(path, on_bad_line=lambda n, r: bad.append((n, r)))) == [(1, "PONG"), (2, "PONG")]
    assert [n for n, _ in bad] == [3]


def test_damaged_first_line_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"recv_ns": 1, "fr\n' + json.dumps({"recv_ns": 2, "frame": "PONG"}) + "\n")
    bad: list[int] = []
    assert list(iter_frames(path, on_bad_line=lambda n, r: bad.append(n))) == [(2, "PONG")]
    assert bad == [1]
    (tmp_path / "empty.jsonl").write_text("\n")
    assert list(iter_frames(tmp_path / "empty.jsonl")) == []


def test_json_array_of_frames(tmp_path: Path) -> None:
    path = tmp_path / "frames.json"
    events = [
        {"event_type": "book", "asset_id": "a", "timestamp": "2000", "bids": [], "asks": []},
        "PONG",
        [{"event_type": "last_trade_price", "asset_id": "a", "price": "0.5", "size": "1", "side": "BUY"}],
        {"event_type": "best_bid_ask", "asset_id": "a", "timestamp": "1000"},  # older: time never goes back
    ]
    path.write_text(json.dumps(events, indent=1))
    frames = list(iter_frames(path))
    assert [ns for ns, _ in frames] == [2000 * 10**6, 2001 * 10**6, 2002 * 10**6, 2003 * 10**6]
    assert frames[1][1] == "PONG"
    assert msgspec.json.decode(frames[0][1]) == events[0]
    assert msgspec.json.decode(frames[2][1]) == events[2]


def test_single_event_capture(shared_fixtures: Path) -> None:
    path = shared_fixtures / "ws_market" / "tick_size_change.json"
    ((ns, frame),) = list(iter_frames(path))
    assert ns == 1739068041853 * 10**6
    assert msgspec.json.decode(frame) == json.loads(path.read_text())


def test_pretty_printed_single_object(shared_fixtures: Path) -> None:
    path = shared_fixtures / "clob_rest" / "book_2024.json"
    ((_, frame),) = list(iter_frames(path))
    assert json.loads(frame)["asset_id"] == json.loads(path.read_text())["asset_id"]


def test_missing_or_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(PolybotError, match="not found"):
        list(iter_frames(tmp_path / "nope.jsonl"))
    (tmp_path / "g.json").write_text("this is not json")
    with pytest.raises(PolybotError, match="neither"):
        list(iter_frames(tmp_path / "g.json"))


async def test_replay_full_speed_sync_and_async_callbacks() -> None:
    seen: list[int] = []

    def sync_cb(ns: int, frame: str) -> None:
        seen.append(ns)

    count = await replay(DEMO, sync_cb)
    assert count == len(seen) == len(DEMO.read_text().splitlines())
    assert seen == sorted(seen)

    got: list[str] = []

    async def async_cb(ns: int, frame: str) -> None:
        got.append(frame)

    assert await replay(DEMO, async_cb, speed=0) == count
    assert got == [f for _, f in iter_frames(DEMO)]


async def test_replay_recorded_pace(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "r.jsonl", [(0, "PONG"), (100_000_000, "PONG"), (200_000_000, "PONG")])
    start = time.monotonic()
    assert await replay(path, lambda ns, f: None, speed=1.0) == 3
    assert time.monotonic() - start >= 0.19  # the recording spans 200 ms
    start = time.monotonic()
    await replay(path, lambda ns, f: None, speed=4.0)
    assert time.monotonic() - start >= 0.045
    with pytest.raises(ValueError):
        await replay(path, lambda ns, f: None, speed=-1)


def _run(path: Path) -> bytes:
    processor = FeedProcessor()
    events = []
    for ns, frame in iter_frames(path):
        events.extend(processor.process(frame, ns))
    events.extend(processor.finish(10**20))
    books = {a: (str(b.status), b.bids(), b.asks(), b.epoch, b.faults) for a, b in sorted(processor.books.items())}
    encoded_events = [(type(e).__name__, msgspec.json.encode(e)) for e in events]
    return msgspec.json.encode([encoded_events, repr(books), processor.counters.as_dict(), processor.faults.as_dict()])


def test_replay_is_deterministic() -> None:
    assert _run(DEMO) == _run(DEMO)


def test_replay_of_a_shared_capture_is_deterministic() -> None:
    path = SHARED_FIXTURES / "ws_market" / "book_2024_trump_no.json"
    if not path.is_file():
        pytest.skip("shared captures absent")
    assert _run(path) == _run(path)
