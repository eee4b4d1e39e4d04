"""The queue of open bursts (core.feed.integrity.BookSet.queue): each book once, checked when
quiet in the order queued, and never checked once a snapshot, a reset or an unsubscribe dropped
its burst."""

from __future__ import annotations

from core.feed.events import BookStatusChanged
from core.feed.frames import book_frame, change, price_change_frame
from core.feed.processor import FeedProcessor
from core.types import BookStatus

A, B, C = "1111", "2222", "3333"
MS = 1_000_000  # ns
S = 1_000 * MS


def _seeded() -> FeedProcessor:
    processor = FeedProcessor(known_assets={A, B, C})
    for asset in (A, B, C):
        processor.process(book_frame(asset, [("0.47", "10")], [("0.52", "15")]), 1 * S)
    return processor


def _faults(events: list[object]) -> list[tuple[str, str]]:
    return [(e.asset_id, e.reason) for e in events if isinstance(e, BookStatusChanged)]


def _wrong(asset: str, ts_ms: int) -> str:
    """A change whose carried top disagrees with the book: a mismatch once its burst is checked."""
    return price_change_frame([change(asset, "BUY", "0.40", "5", "0.46", "0.52")], ts_ms=ts_ms)


def test_a_busy_book_is_queued_once_and_checked_when_quiet() -> None:
    processor = _seeded()
    for i in range(100):  # a new burst every ms, each closing the one before: never quiet
        processor.process(
            price_change_frame([change(A, "BUY", "0.40", str(i + 1), "0.47", "0.52")], ts_ms=10 + i), 2 * S + i * MS
        )
    assert [book.asset_id for book in processor._set.queue] == [A] and list(processor._set.pending) == [A]
    processor.process(book_frame(A, [("0.47", "10")], [("0.52", "15")]), 2 * S + 98 * MS)  # drops the burst
    processor.process(price_change_frame([change(A, "BUY", "0.40", "1", "0.47", "0.52")], ts_ms=200), 2 * S + 99 * MS)
    assert [book.asset_id for book in processor._set.queue] == [A]  # still queued, once
    assert processor.flush_bursts(2 * S + 99 * MS + 49 * MS) == [] and processor._set.queue == [processor.books[A]]
    assert processor.flush_bursts(2 * S + 99 * MS + 50 * MS) == []  # quiet now: checked, agrees
    assert processor._set.queue == [] and not processor.books[A].queued and processor.faults.total == 0


def test_quiet_bursts_are_checked_in_the_order_queued() -> None:
    processor = _seeded()
    processor.process(_wrong(B, 10), 2 * S)
    processor.process(_wrong(A, 10), 2 * S + MS)
    processor.process(_wrong(C, 10), 2 * S + 2 * MS)
    assert _faults(processor.flush_bursts(3 * S)) == [(B, "mismatch"), (A, "mismatch"), (C, "mismatch")]
    assert processor._set.queue == []


def test_a_dropped_burst_is_not_checked() -> None:
    processor = _seeded()
    for asset in (A, B, C):
        processor.process(_wrong(asset, 10), 2 * S)
    # A re-seeded, B reset by a tick change, C unsubscribed: their bursts go unchecked
    processor.process(book_frame(A, [("0.47", "10")], [("0.52", "15")]), 2 * S + MS)
    processor.process(
        '{"event_type": "tick_size_change", "asset_id": "2222", "old_tick_size": "0.01", "new_tick_size": "0.001"}',
        2 * S + MS,
    )
    processor.untrack([C])
    assert processor._set.pending == {}
    assert _faults(processor.flush_bursts(3 * S)) == []
    assert processor.faults.total == 0 and processor._set.queue == []
    # a re-seeded book queues its next burst again, and that one is checked
    processor.process(_wrong(A, 20), 4 * S)
    assert _faults(processor.flush_bursts(5 * S)) == [(A, "mismatch")]
    assert processor.books[A].status is BookStatus.INCONSISTENT
