"""Frames for an asset just unsubscribed are expected (the venue had sent them before it read the
``unsubscribe``): counted in ``processor.late_frames``, not as rejected input. After the window,
or for an asset never followed, they are ``unknown_asset`` as before; re-subscribing ends it."""

from __future__ import annotations

import asyncio
import json
import time

from core.feed.counters import LateFrames
from core.feed.processor import FeedProcessor
from core.feed.stalls import LoopStalls

A, B, NEVER = "1" * 77, "2" * 77, "3" * 77


def change(asset: str, ts: int = 2) -> str:
    entry = {"asset_id": asset, "price": "0.5", "size": "10", "side": "BUY", "best_bid": "0.5", "best_ask": "0.6"}
    return json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(ts), "price_changes": [entry]})


def trade(asset: str) -> str:
    return json.dumps(
        {
            "event_type": "last_trade_price",
            "asset_id": asset,
            "market": "0xm",
            "price": "0.5",
            "size": "1",
            "side": "BUY",
        }
    )


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def processor_with_clock() -> tuple[FeedProcessor, Clock]:
    processor = FeedProcessor(known_assets={A, B})
    clock = Clock()
    processor.late_frames = LateFrames(window_s=30.0, clock_ns=clock)
    return processor, clock


def test_frames_after_an_unsubscribe_are_late_not_rejected() -> None:
    processor, clock = processor_with_clock()
    processor.untrack([A])
    clock.ns += 2_300_000_000  # 2.3 s later: still on its way
    processor.process(change(A), clock.ns)
    processor.process(trade(A), clock.ns)
    assert processor.late_frames.count == 2
    assert processor.late_frames.latest_ms == 2300.0
    assert processor.counters.as_dict() == {}
    processor.process(change(NEVER), clock.ns)  # never followed: bad input as before
    assert processor.counters.as_dict() == {"unknown_asset": 1}


def test_after_the_window_or_once_followed_again_they_are_not_late() -> None:
    processor, clock = processor_with_clock()
    processor.untrack([A, B])
    clock.ns += 31 * 10**9  # past the 30 s window: the venue should have stopped long ago
    processor.process(change(A), clock.ns)
    assert (processor.late_frames.count, processor.counters.as_dict()) == (0, {"unknown_asset": 1})
    processor.track([B])  # followed again: its frames are the feed's own
    processor.process(change(B), clock.ns)
    assert processor.late_frames.count == 0
    assert processor.counters.as_dict() == {"unknown_asset": 1}
    assert processor.faults.as_dict() == {"delta_before_snapshot": 1}  # a new book waits for its snapshot


def test_the_memory_of_unsubscribed_assets_is_bounded() -> None:
    late = LateFrames(window_s=1.0, clock_ns=(clock := Clock()))
    for i in range(10_000):
        clock.ns += 10_000_000  # 10 ms apart: only the last 100 are within the window
        late.unsubscribed(str(i))
    assert len(late._since) < 1_200


def test_a_stall_guard_without_a_loop_has_no_opinion_and_holds_after_a_stall() -> None:
    guard = LoopStalls(hold_ms=250)
    assert guard.resume_ns(time.time_ns()) == 0 and not guard.start()  # no running loop

    async def blocked() -> tuple[int, int]:
        assert guard.start()
        await asyncio.sleep(0.1)  # beats on time: no hold
        before = guard.resume_ns(time.time_ns())
        time.sleep(0.3)  # noqa: ASYNC251  # the stall
        now = time.time_ns()
        return before, guard.resume_ns(now) - now

    before, held_for = asyncio.run(blocked())
    guard.stop()
    assert before <= time.time_ns()
    assert 200_000_000 <= held_for <= 250_000_000 and guard.stalls == 1
