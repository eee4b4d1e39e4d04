"""Book integrity and status: bursts, mismatch, crossing, snapshots, tick changes, staleness."""

from __future__ import annotations

import json
from decimal import Decimal as D

from core.feed.events import BookStatusChanged, TickSizeChanged
from core.feed.frames import book_frame, change, price_change_frame
from core.feed.processor import FeedProcessor
from core.types import BookStatus

A = "1111"
B = "2222"
MS = 1_000_000  # ns
S = 1_000 * MS


def _seeded(**kw: object) -> tuple[FeedProcessor, list[str]]:
    calls: list[str] = []
    processor = FeedProcessor(known_assets={A, B}, on_inconsistent=calls.append, **kw)  # type: ignore[arg-type]
    for asset in (A, B):
        processor.process(
            book_frame(asset, [("0.47", "10"), ("0.45", "50")], [("0.52", "15"), ("0.55", "20"), ("0.60", "300")]),
            1 * S,
        )
    return processor, calls


def _statuses(events: list[object]) -> list[tuple[str, BookStatus, BookStatus, str]]:
    return [(e.asset_id, e.old, e.new, e.reason) for e in events if isinstance(e, BookStatusChanged)]


def test_snapshot_makes_a_book_ok() -> None:
    processor = FeedProcessor(known_assets={A})
    assert processor.books[A].status is BookStatus.AWAITING_SNAPSHOT
    events = processor.process(book_frame(A, [("0.4", "1")], [("0.6", "1")]), 1)
    assert _statuses(events) == [(A, BookStatus.AWAITING_SNAPSHOT, BookStatus.OK, "snapshot")]


def test_mismatch_is_flagged_once_the_burst_is_complete() -> None:
    processor, calls = _seeded()
    # the feed says the best bid is 0.48, but the only change we saw puts it at 0.49: a lost update
    bad = price_change_frame([change(A, "BUY", "0.49", "5", "0.48", "0.52")], ts_ms=10)
    assert _statuses(processor.process(bad, 2 * S)) == []  # burst still open: nothing said yet
    assert processor.books[A].status is BookStatus.OK
    nxt = price_change_frame([change(A, "BUY", "0.30", "5", "0.49", "0.52")], ts_ms=11)
    events = processor.process(nxt, 2 * S + MS)
    assert _statuses(events) == [(A, BookStatus.OK, BookStatus.INCONSISTENT, "mismatch")]
    assert processor.faults.as_dict() == {"mismatch": 1}
    assert processor.books[A].faults == {"mismatch": 1}
    assert calls == [A]
    # the book keeps applying deltas but stays inconsistent, and the fault is not recounted
    processor.process(price_change_frame([change(A, "BUY", "0.31", "5", "0.1", "0.9")], ts_ms=12), 3 * S)
    processor.flush_bursts(4 * S)
    assert processor.books[A].status is BookStatus.INCONSISTENT
    assert processor.faults.total == 1 and calls == [A]


def test_mid_burst_disagreement_and_crossing_are_not_flagged() -> None:
    processor, calls = _seeded()
    book = processor.books[A]
    # a taker buys up to 0.55 and rests the remainder at 0.55; the venue sends the resting bid
    # first, so the local book is crossed until the two ask removals arrive (same timestamp);
    # every entry carries the top after the whole match: 0.55 / 0.60
    burst = [
        [change(A, "BUY", "0.55", "5", "0.55", "0.6")],
        [change(A, "SELL", "0.52", "0", "0.55", "0.6")],
        [change(A, "SELL", "0.55", "0", "0.55", "0.6")],
    ]
    seen: list[BookStatus] = []
    for i, entries in enumerate(burst):
        events = processor.process(price_change_frame(entries, ts_ms=20), 5 * S + i * MS)
        assert _statuses(events) == []
        seen.append(book.status)
    # mid-burst the crossed book never reads ok (nothing may trade on it), but no fault is counted
    assert seen[0] is BookStatus.INCONSISTENT and book.raw_status is BookStatus.OK
    assert seen[-1] is BookStatus.OK
    assert processor.flush_bursts(5 * S + 2 * MS + 49 * MS) == []  # not quiet long enough: still open
    assert processor.flush_bursts(5 * S + 2 * MS + 50 * MS) == []  # checked now: it agrees
    assert (book.best_bid(), book.best_ask()) == (D("0.55"), D("0.60"))
    assert processor.faults.total == 0 and calls == []
    assert A not in processor._set.pending


def test_crossed_after_a_complete_burst_is_a_fault() -> None:
    processor, calls = _seeded()
    # legacy format (no carried best prices): only the crossing check applies
    legacy = json.dumps(
        {"event_type": "price_change", "asset_id": A, "market": "m", "timestamp": "30",
         "changes": [{"price": "0.53", "side": "BUY", "size": "5"}]}
    )  # fmt: skip
    processor.process(legacy, 6 * S)
    events = processor.flush_bursts(6 * S + 60 * MS)
    assert _statuses(events) == [(A, BookStatus.OK, BookStatus.INCONSISTENT, "crossed")]
    assert processor.faults.as_dict() == {"crossed": 1} and calls == [A]


def test_legacy_bursts_that_do_not_cross_are_not_faults() -> None:
    # the legacy formats carry no best prices: a completed burst that leaves the book uncrossed
    # is fine (an absent best price must not read as "that side is empty")
    processor, calls = _seeded()
    for ts, price in ((30, "0.48"), (31, "0.49"), (32, "0.50")):
        legacy = json.dumps(
            {"event_type": "price_change", "asset_id": A, "market": "m", "timestamp": str(ts),
             "changes": [{"price": price, "side": "BUY", "size": "5"}]}
        )  # fmt: skip
        processor.process(legacy, 6 * S + ts * MS)
    processor.process(
        json.dumps({"event_type": "price_change", "asset_id": A, "market": "m", "timestamp": "33",
                    "price": "0.51", "side": "SELL", "size": "7"}),
        6 * S + 33 * MS,
    )  # fmt: skip
    processor.finish(7 * S)
    assert processor.faults.total == 0 and calls == []
    assert processor.books[A].status is BookStatus.OK
    assert (processor.books[A].best_bid(), processor.books[A].best_ask()) == (D("0.50"), D("0.51"))


def test_quiet_bursts_are_checked_from_process_too() -> None:
    processor, _ = _seeded()
    processor.process(price_change_frame([change(A, "BUY", "0.49", "5", "0.48", "0.52")], ts_ms=10), 2 * S)
    # a frame for another asset, 60 ms later, is enough to close A's quiet burst
    events = processor.process(
        price_change_frame([change(B, "BUY", "0.30", "1", "0.47", "0.52")], ts_ms=11), 2 * S + 60 * MS
    )
    assert _statuses(events) == [(A, BookStatus.OK, BookStatus.INCONSISTENT, "mismatch")]


def test_delta_before_any_snapshot() -> None:
    calls: list[str] = []
    processor = FeedProcessor(on_inconsistent=calls.append)  # no filter: books appear on demand
    events = processor.process(price_change_frame([change(A, "BUY", "0.4", "5", "0.4", "0.6")], ts_ms=1), 1)
    assert _statuses(events) == [(A, BookStatus.AWAITING_SNAPSHOT, BookStatus.INCONSISTENT, "delta_before_snapshot")]
    assert processor.books[A].level_counts() == (0, 0)  # not applied
    assert processor.faults.as_dict() == {"delta_before_snapshot": 1} and calls == [A]


def test_resnapshot_recovers_an_inconsistent_book() -> None:
    processor, _ = _seeded()
    processor.process(price_change_frame([change(A, "BUY", "0.49", "5", "0.48", "0.52")], ts_ms=10), 2 * S)
    processor.flush_bursts(3 * S)
    assert processor.books[A].status is BookStatus.INCONSISTENT
    events = processor.process(book_frame(A, [("0.48", "1")], [("0.52", "1")]), 4 * S)
    assert _statuses(events) == [(A, BookStatus.INCONSISTENT, BookStatus.OK, "snapshot")]
    assert processor.books[A].bids() == [(D("0.48"), D("1"))]
    assert processor.faults.total == 1  # history is kept


def test_rest_book_recovers_an_inconsistent_book() -> None:
    processor, calls = _seeded()
    processor.process(price_change_frame([change(A, "BUY", "0.49", "5", "0.48", "0.52")], ts_ms=10), 2 * S)
    processor.flush_bursts(3 * S)
    assert calls == [A]
    rest = {"market": "m", "asset_id": A, "timestamp": "5", "hash": "h", "tick_size": "0.01",
            "bids": [{"price": "0.48", "size": "3"}], "asks": [{"price": "0.52", "size": "4"}]}  # fmt: skip
    events = processor.apply_rest_book(A, json.dumps(rest), recv_ns=4 * S)
    assert _statuses(events) == [(A, BookStatus.INCONSISTENT, BookStatus.OK, "rest_book")]


def test_tick_size_change_starts_a_new_epoch_until_a_fresh_book() -> None:
    processor, calls = _seeded()
    book = processor.books[A]
    frame = json.dumps({"event_type": "tick_size_change", "asset_id": A, "market": "m",
                        "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": "40"})  # fmt: skip
    events = processor.process(frame, 7 * S)
    assert isinstance(events[0], TickSizeChanged) and events[0].epoch == 1
    assert _statuses(events) == [(A, BookStatus.OK, BookStatus.AWAITING_SNAPSHOT, "tick_size_change")]
    assert book.level_counts() == (0, 0) and book.epoch == 1 and book.tick_size == D("0.001")
    assert book.best_bid() is None
    # a delta before the fresh book cannot be applied: inconsistent (the service re-seeds via REST)
    processor.process(price_change_frame([change(A, "BUY", "0.475", "5", "0.475", "0.52")], ts_ms=41), 7 * S + MS)
    assert book.status is BookStatus.INCONSISTENT and calls == [A]
    # the fresh book on the new grid makes it ok; 0.475 is now on tick
    events = processor.process(book_frame(A, [("0.475", "2")], [("0.52", "1")], tick_size="0.001"), 8 * S)
    assert book.status is BookStatus.OK and book.epoch == 1
    processor.process(price_change_frame([change(A, "BUY", "0.476", "5", "0.476", "0.52")], ts_ms=42), 8 * S + MS)
    assert book.best_bid() == D("0.476") and processor.counters.total == 0


def test_staleness_and_recovery() -> None:
    processor, _ = _seeded(staleness_ms=60_000)
    assert processor.check_staleness(1 * S + 60 * S) == []  # exactly the window: not yet
    events = processor.check_staleness(1 * S + 60 * S + 1)
    assert sorted(_statuses(events)) == [
        (A, BookStatus.OK, BookStatus.STALE, "no update for 60000 ms"),
        (B, BookStatus.OK, BookStatus.STALE, "no update for 60000 ms"),
    ]
    assert processor.books[A].status is BookStatus.STALE
    # an update on a live feed makes it ok again ...
    events = processor.process(price_change_frame([change(A, "BUY", "0.30", "1", "0.47", "0.52")], ts_ms=50), 70 * S)
    assert _statuses(events) == [(A, BookStatus.STALE, BookStatus.OK, "update")]
    # ... and so does a snapshot
    events = processor.process(book_frame(B, [("0.4", "1")], [("0.6", "1")]), 70 * S)
    assert _statuses(events) == [(B, BookStatus.STALE, BookStatus.OK, "snapshot")]
    assert processor.faults.total == 0


def test_stale_check_leaves_other_statuses_alone() -> None:
    processor = FeedProcessor(known_assets={A})
    assert processor.check_staleness(10**18) == []
    assert processor.books[A].status is BookStatus.AWAITING_SNAPSHOT


def test_reconnect_marks_books_awaiting_snapshot() -> None:
    processor, calls = _seeded()
    events = processor.mark_awaiting_snapshot([A, B], now_ns=9 * S)
    assert sorted(_statuses(events)) == [
        (A, BookStatus.OK, BookStatus.AWAITING_SNAPSHOT, "reconnect"),
        (B, BookStatus.OK, BookStatus.AWAITING_SNAPSHOT, "reconnect"),
    ]
    assert processor.books[A].level_counts() == (0, 0) and processor.books[A].epoch == 1
    assert processor.mark_awaiting_snapshot([A], now_ns=9 * S) == []  # already waiting
    processor.process(book_frame(A, [("0.4", "1")], [("0.6", "1")]), 10 * S)
    assert processor.books[A].status is BookStatus.OK and calls == []


def test_empty_side_spelled_by_the_venue_agrees() -> None:
    processor = FeedProcessor(known_assets={A})
    processor.process(book_frame(A, [("0.4", "1")], [("0.6", "1")]), 1)
    processor.process(price_change_frame([change(A, "SELL", "0.6", "0", "0.4", "1")], ts_ms=1), 2)
    processor.process(price_change_frame([change(A, "BUY", "0.4", "0", "0", "1")], ts_ms=2), 3)
    processor.finish(4)
    assert processor.faults.total == 0 and processor.counters.total == 0
    assert processor.books[A].status is BookStatus.OK and processor.books[A].level_counts() == (0, 0)


def test_a_failing_hook_does_not_stop_the_feed() -> None:
    def boom(asset_id: str) -> None:
        raise RuntimeError("clob down")

    processor = FeedProcessor(on_inconsistent=boom)
    processor.process(price_change_frame([change(A, "BUY", "0.4", "5")], ts_ms=1), 1)
    assert processor.hook_failures == 1
    assert processor.books[A].status is BookStatus.INCONSISTENT
    processor.process(book_frame(A, [("0.4", "1")], [("0.6", "1")]), 2)
    assert processor.books[A].status is BookStatus.OK


def test_a_snapshot_on_a_new_grid_starts_a_new_epoch() -> None:
    processor, _ = _seeded()
    book = processor.books[A]
    processor.process(book_frame(A, [("0.475", "1")], [("0.52", "1")], tick_size="0.001"), 2 * S)
    assert book.epoch == 1 and book.tick_size == D("0.001") and book.status is BookStatus.OK


def test_trade_prints_create_no_books() -> None:
    processor = FeedProcessor()
    frame = json.dumps({"event_type": "last_trade_price", "asset_id": "7", "price": "0.5", "size": "3", "side": "BUY"})
    (trade,) = processor.process(frame, 1)
    assert trade.price == D("0.5") and processor.books == {}


def test_a_book_dropped_and_followed_again_is_the_new_one() -> None:
    # a market's tokens come together: the book after A is found through A (no dict lookup);
    # that shortcut must never reach a book the set has dropped
    processor, _ = _seeded()
    pair = price_change_frame(
        [change(A, "BUY", "0.46", "5", "0.47", "0.52"), change(B, "BUY", "0.46", "5", "0.47", "0.52")], ts_ms=2
    )
    processor.process(pair, 2 * S)
    old_b = processor.books[B]
    assert old_b.bids_units()[1] == (460_000, 5_000_000)
    processor.untrack([B])
    processor.process(pair.replace('"2"', '"3"'), 3 * S)  # B is no longer followed: late, not applied
    assert processor.late_frames.count == 1 and processor.counters.total == 0
    processor.track([B])
    new_b = processor.books[B]
    assert new_b is not old_b and new_b.status is BookStatus.AWAITING_SNAPSHOT
    processor.process(pair.replace('"2"', '"4"').replace('"5"', '"7"'), 4 * S)  # reaches the new book
    assert new_b.faults == {"delta_before_snapshot": 1} and old_b.bids_units()[1] == (460_000, 5_000_000)
    assert processor.books[A].bids_units()[1] == (460_000, 7_000_000)


def test_a_burst_is_checked_against_its_last_entry_however_the_earlier_ones_spelled_it() -> None:
    # unusual carried texts are kept apart until the burst is checked: a later usual one replaces
    # them, and a later unusual one is still read exactly
    processor, calls = _seeded()
    burst = [
        change(A, "BUY", "0.48", "5", "", "0.52"),  # says "no bids" (an unusual text), then...
        change(A, "BUY", "0.49", "5", "0.49", "0.52"),  # ...the last entry says 0.49: it counts
    ]
    processor.process(price_change_frame(burst, ts_ms=2), 2 * S)
    processor.process(price_change_frame([change(A, "BUY", "0.50", "1", "0.5000000", "0.52")], ts_ms=3), 3 * S)
    processor.process(price_change_frame([change(A, "BUY", "0.30", "1", "0.50", "0.520")], ts_ms=4), 4 * S)
    processor.finish(5 * S)
    assert processor.faults.as_dict() == {} and calls == [] and processor.books[A].status is BookStatus.OK
    processor.process(price_change_frame([change(A, "BUY", "0.31", "1", "", "0.52")], ts_ms=5), 6 * S)
    processor.finish(7 * S)  # now the last entry says "no bids": a mismatch
    assert processor.faults.as_dict() == {"mismatch": 1} and calls == [A]
