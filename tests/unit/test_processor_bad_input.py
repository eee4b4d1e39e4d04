"""Bad input never crashes or silently vanishes: one test per kind (counted, logged, skipped)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

import core.feed.processor as processor_module
from core.feed.counters import Counters
from core.feed.events import Pong, PriceChange
from core.feed.frames import book_frame, change, price_change_frame
from core.feed.processor import FeedProcessor

A = "1111"
B = "2222"


def _seeded(**kw: object) -> FeedProcessor:
    processor = FeedProcessor(known_assets={A, B}, **kw)  # type: ignore[arg-type]
    processor.process(book_frame(A, [("0.40", "100")], [("0.60", "100")]), 1)
    processor.process(book_frame(B, [("0.40", "100")], [("0.60", "100")]), 1)
    return processor


def _only(processor: FeedProcessor, reason: str, count: int = 1) -> None:
    assert processor.counters.as_dict() == {reason: count}


def _good_change(ts: int = 10) -> str:
    return price_change_frame([change(A, "BUY", "0.41", "5", "0.41", "0.6")], ts_ms=ts)


def test_malformed_json(caplog: pytest.LogCaptureFixture) -> None:
    processor = _seeded()
    with caplog.at_level(logging.WARNING, logger="core.feed.processor"):
        assert processor.process('{"event_type": "book", "asset_id": ', 2) == []
    _only(processor, "malformed_json")
    assert "malformed_json" in caplog.text
    # the feed goes on
    assert processor.process(_good_change(), 3)
    assert processor.books[A].best_bid() == Decimal("0.41")


def test_wrong_type_number_where_a_price_string_belongs() -> None:
    processor = _seeded()
    frame = json.dumps(
        {"event_type": "price_change", "market": "m", "timestamp": "5",
         "price_changes": [{"asset_id": A, "price": 0.41, "size": "5", "side": "BUY"}]}
    )  # fmt: skip
    assert processor.process(frame, 2) == []
    _only(processor, "wrong_type")
    assert processor.books[A].best_bid() == Decimal("0.40")


def test_wrong_type_bad_side_and_non_object_event() -> None:
    processor = _seeded()
    processor.process(price_change_frame([change(A, "HOLD", "0.41", "5")]), 2)
    processor.process("[1, 2]", 3)
    _only(processor, "wrong_type", 3)


def test_wrong_type_garbage_number() -> None:
    processor = _seeded()
    processor.process(price_change_frame([change(A, "BUY", "0.41", "5_000")]), 2)
    processor.process(price_change_frame([change(A, "BUY", "zero.4", "5")]), 3)
    _only(processor, "wrong_type", 2)


def test_unknown_event_type_and_missing_tag() -> None:
    processor = _seeded()
    assert processor.process('{"event_type": "order_book_v9", "asset_id": "1111"}', 2) == []
    assert processor.process('{"asset_id": "1111"}', 3) == []
    _only(processor, "unknown_event", 2)


def test_negative_size() -> None:
    processor = _seeded()
    assert processor.process(price_change_frame([change(A, "BUY", "0.41", "-5")]), 2) == []
    _only(processor, "negative_size")
    assert processor.books[A].bids() == [(Decimal("0.40"), Decimal("100"))]


@pytest.mark.parametrize("price", ["0", "1", "1.5", "-0.2", "0.0"])
def test_price_out_of_range(price: str) -> None:
    processor = _seeded()
    processor.process(price_change_frame([change(A, "SELL", price, "5")]), 2)
    _only(processor, "price_out_of_range")


@pytest.mark.parametrize("price", ["0.415", "0.4101", "0.0000001"])
def test_off_tick(price: str) -> None:
    processor = _seeded()
    processor.process(price_change_frame([change(A, "BUY", price, "5")]), 2)
    _only(processor, "off_tick")


def test_unusual_spelling_on_tick_is_accepted() -> None:
    processor = _seeded()
    processor.process(price_change_frame([change(A, "BUY", "0.410000", "5.000000")]), 2)
    assert processor.counters.total == 0
    assert processor.books[A].best_bid() == Decimal("0.41")


def test_unknown_asset() -> None:
    processor = _seeded()
    processor.process(price_change_frame([change("9999", "BUY", "0.41", "5")]), 2)
    processor.process(book_frame("9999", [("0.4", "1")], [("0.6", "1")]), 3)
    _only(processor, "unknown_asset", 2)
    assert "9999" not in processor.books


def test_oversized_frame() -> None:
    processor = _seeded(max_frame_bytes=400)
    big = price_change_frame([change(A, "BUY", "0.41", "5")] * 10)
    assert len(big) > 400
    assert processor.process(big, 2) == []
    _only(processor, "oversized_frame")
    assert processor.frames == 2  # the two snapshots; the oversized frame was never decoded


def test_delta_for_book_without_snapshot_is_counted() -> None:
    processor = FeedProcessor(known_assets={A})
    processor.process(_good_change(1), 1)  # first: integrity fault, book inconsistent
    processor.process(_good_change(2), 2)  # later ones: counted as no_snapshot
    assert processor.faults.as_dict() == {"delta_before_snapshot": 1}
    _only(processor, "no_snapshot")


def test_one_bad_entry_does_not_drop_the_good_ones() -> None:
    processor = _seeded()
    events = processor.process(
        price_change_frame([change(A, "BUY", "0.41", "-1"), change(B, "BUY", "0.42", "7", "0.42", "0.6")]), 2
    )
    (pc,) = [e for e in events if isinstance(e, PriceChange)]
    assert [c.asset_id for c in pc.changes] == [B]
    assert processor.books[B].best_bid() == Decimal("0.42")
    _only(processor, "negative_size")


def test_one_bad_event_in_an_array_does_not_drop_the_others() -> None:
    processor = _seeded()
    good = json.loads(_good_change())
    frame = json.dumps([{"event_type": "nope"}, good, {"event_type": "book", "asset_id": 5}])
    events = processor.process(frame, 2)
    assert any(isinstance(e, PriceChange) for e in events)
    assert processor.counters.as_dict() == {"unknown_event": 1, "wrong_type": 1}


def test_pong_is_an_event_not_an_error() -> None:
    processor = _seeded()
    assert processor.process("PONG", 9) == [Pong(9)]
    assert processor.process(b"PONG", 10) == [Pong(10)]
    assert processor.counters.total == 0 and processor.pongs == 2


def test_bytes_frames_decode() -> None:
    processor = _seeded()
    assert processor.process(_good_change().encode(), 2)
    assert processor.books[A].best_bid() == Decimal("0.41")


def test_bad_tick_size_change_is_rejected() -> None:
    processor = _seeded()
    frame = json.dumps({"event_type": "tick_size_change", "asset_id": A, "old_tick_size": "0.01", "new_tick_size": "2"})
    assert processor.process(frame, 2) == []
    _only(processor, "wrong_type")
    assert processor.books[A].tick_size == Decimal("0.01")


def test_log_lines_are_rate_bounded() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("test.bounded")
    logger.addHandler(Keep())
    logger.propagate = False
    now = [0.0]
    counters = Counters(logger, "rejected", burst=3, interval_s=10.0, clock=lambda: now[0])
    for _ in range(1000):
        counters.record("malformed_json", "x")
    assert counters["malformed_json"] == 1000
    assert len(records) == 3
    now[0] = 11.0
    counters.record("malformed_json", "x")
    assert len(records) == 4
    assert "997 similar suppressed" in records[-1].getMessage()
    counters.record("off_tick", "y")  # each reason has its own budget
    assert len(records) == 5
    assert counters["never_seen"] == 0 and "never_seen" not in counters


def test_an_internal_error_is_counted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    processor = _seeded()

    def broken(*args: object) -> None:
        raise ZeroDivisionError("bug")

    # a bug in a step the processor calls (the module's name for it: it may be compiled)
    monkeypatch.setattr(processor_module, "trade_print", broken)
    trade = {"event_type": "last_trade_price", "asset_id": A, "price": "0.5", "size": "1", "side": "BUY"}
    assert processor.process(json.dumps(trade), 2) == []
    _only(processor, "internal_error")
    assert processor.process(_good_change(), 3)  # and the feed goes on


def test_an_absurd_size_or_tick_is_bad_input_not_a_crash() -> None:
    # Decimal overflows on 1e1000000 * 10^6: counted as a wrong type, never an internal error
    processor = _seeded()
    assert (
        processor.process(price_change_frame([change(A, "BUY", "0.41", "1e1000000", "0.41", "0.6")], ts_ms=5), 2) == []
    )
    _only(processor, "wrong_type")
    tick = {"event_type": "tick_size_change", "asset_id": A, "old_tick_size": "0.01", "new_tick_size": "1e1000000"}
    processor.process(json.dumps(tick), 3)
    _only(processor, "wrong_type", 2)
    assert processor.books[A].best_bid() == Decimal("0.40")  # nothing applied
