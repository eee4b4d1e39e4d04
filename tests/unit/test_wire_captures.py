"""Every real market-channel capture decodes into typed domain events; GET /book responses re-seed."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from core.feed.events import (
    BestBidAsk,
    BookSnapshot,
    BookStatusChanged,
    MarketResolved,
    NewMarket,
    PriceChange,
    TickSizeChanged,
    TradePrint,
)
from core.feed.frames import book_frame
from core.feed.processor import FeedProcessor
from core.types import BookStatus, Side
from tests.conftest import load_shared

WS = "ws_market"


def _frame(rel: str) -> str:
    return json.dumps(load_shared(rel))


def _kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_every_ws_market_capture_decodes_without_rejection(shared_fixtures: Path) -> None:
    files = sorted((shared_fixtures / WS).glob("*.json"))
    assert len(files) >= 13
    for path in files:
        processor = FeedProcessor()
        events = processor.process(path.read_text(), 1)
        assert processor.counters.total == processor.counters["no_snapshot"], (path.name, processor.counters)
        assert events or processor.faults.total, path.name


def test_book_capture_2026_best_level_is_last() -> None:
    raw = load_shared(f"{WS}/ws_book_snapshot_captured.json")
    processor = FeedProcessor()
    events = processor.process(json.dumps(raw), 5)
    assert _kinds(events) == ["BookStatusChanged", "BookSnapshot"]
    snap = events[1]
    assert isinstance(snap, BookSnapshot)
    book = processor.books[raw["asset_id"]]
    assert book.status is BookStatus.OK
    assert book.tick_size == Decimal("0.01") and book.tick_confirmed
    # bids arrive ascending, asks descending: the best is the LAST element of each
    assert book.best_bid() == Decimal(raw["bids"][-1]["price"]) == Decimal("0.07")
    assert book.best_ask() == Decimal(raw["asks"][-1]["price"])
    assert book.level_counts() == (7, 57)
    assert book.bids(1) == [(Decimal("0.07"), Decimal("182528.55"))]
    assert snap.bid_levels()[0] == (Decimal("0.07"), Decimal("182528.55"))
    assert snap.market == raw["market"] and snap.hash == raw["hash"] and snap.source == "ws"


def test_book_2024_without_tick_field_infers_its_finer_tick() -> None:
    raw = load_shared(f"{WS}/book_2024_trump_no.json")
    processor = FeedProcessor()
    processor.process(json.dumps(raw), 1)
    book = processor.books[raw["asset_id"]]
    assert book.status is BookStatus.OK
    assert book.level_counts() == (76, 86)
    assert book.tick_size == Decimal("0.001") and not book.tick_confirmed
    assert (book.best_bid(), book.best_ask()) == (Decimal("0.511"), Decimal("0.514"))
    total = sum((s for _, s in book.bids()), Decimal(0))
    assert total == sum(Decimal(lv["size"]) for lv in raw["bids"])


def test_per_level_2024_price_change_applies_to_its_book() -> None:
    book_raw = load_shared(f"{WS}/book_2024_trump_no.json")
    change_raw = load_shared(f"{WS}/price_change_2024_per_level.json")
    assert change_raw["asset_id"] == book_raw["asset_id"]
    processor = FeedProcessor()
    processor.process(json.dumps(book_raw), 1)
    events = processor.process(json.dumps(change_raw), 2)
    (pc,) = [e for e in events if isinstance(e, PriceChange)]
    (lvl,) = pc.changes
    assert (lvl.side, lvl.price, lvl.size) == (Side.SELL, Decimal("0.514"), Decimal("21574.08"))
    assert processor.books[book_raw["asset_id"]].asks(1) == [(Decimal("0.514"), Decimal("21574.08"))]


def test_current_format_price_changes_decode() -> None:
    raw = load_shared(f"{WS}/price_change_current_format.json")
    asset = raw["price_changes"][0]["asset_id"]
    processor = FeedProcessor()
    processor.process(book_frame(asset, [("0.4", "10")], [("0.8", "10")], market=raw["market"]), 1)
    events = processor.process(json.dumps(raw), 2)
    (pc,) = [e for e in events if isinstance(e, PriceChange)]
    assert pc.market == raw["market"] and pc.ts_ms == int(raw["timestamp"])
    assert [(c.side, c.price, c.size) for c in pc.changes] == [
        (Side.BUY, Decimal("0.6"), Decimal("3300")),
        (Side.BUY, Decimal("0.5"), Decimal("3400")),
        (Side.BUY, Decimal("0.7"), Decimal("3400")),
    ]
    assert pc.asset_ids == (asset,)


def test_legacy_changes_format_decodes() -> None:
    raw = load_shared(f"{WS}/price_change_legacy_changes_format.json")
    processor = FeedProcessor()
    processor.process(book_frame(raw["asset_id"], [("0.4", "10")], [("0.8", "10")]), 1)
    events = processor.process(json.dumps(raw), 2)
    (pc,) = [e for e in events if isinstance(e, PriceChange)]
    assert [(c.asset_id, c.price) for c in pc.changes] == [(raw["asset_id"], Decimal(p)) for p in ("0.6", "0.5", "0.7")]
    assert processor.books[raw["asset_id"]].best_bid() == Decimal("0.7")


def test_tick_size_change_capture_starts_new_epoch() -> None:
    raw = load_shared(f"{WS}/tick_size_change.json")
    processor = FeedProcessor()
    events = processor.process(json.dumps(raw), 1)
    tsc = events[0]
    assert isinstance(tsc, TickSizeChanged)
    assert (tsc.old_tick, tsc.new_tick, tsc.epoch) == (Decimal("0.01"), Decimal("0.001"), 1)
    assert processor.books[raw["asset_id"]].tick_size == Decimal("0.001")


def test_last_trade_price_capture() -> None:
    raw = load_shared(f"{WS}/last_trade_price.json")
    (trade,) = FeedProcessor().process(json.dumps(raw), 1)
    assert isinstance(trade, TradePrint)
    assert (trade.side, trade.price, trade.size, trade.fee_rate_bps) == (
        Side.SELL,
        Decimal("0.491"),
        Decimal("85.36"),
        0,
    )
    assert trade.ts_ms == 1724564136087


def test_best_bid_ask_new_market_and_resolved_captures() -> None:
    (bba,) = FeedProcessor().process(_frame(f"{WS}/ws_market_best_bid_ask_msg.json"), 1)
    assert isinstance(bba, BestBidAsk) and (bba.best_bid, bba.best_ask) == (Decimal("0.73"), Decimal("0.77"))

    raw_nm = load_shared(f"{WS}/ws_market_new_market_msg.json")
    (nm,) = FeedProcessor().process(json.dumps(raw_nm), 1)
    assert isinstance(nm, NewMarket)
    assert nm.asset_ids == tuple(raw_nm["assets_ids"]) and nm.outcomes == ("Yes", "No")
    assert (
        nm.tick_size == Decimal("0.01") and nm.slug == raw_nm["slug"] and nm.event_slug == "nvda-above-in-january-2026"
    )

    raw_mr = load_shared(f"{WS}/ws_market_resolved_msg.json")
    (mr,) = FeedProcessor().process(json.dumps(raw_mr), 1)
    assert isinstance(mr, MarketResolved)
    assert (mr.winning_asset_id, mr.winning_outcome) == (raw_mr["winning_asset_id"], "Yes")


def test_synthetic_captures_in_one_array_frame() -> None:
    frame = (
        "["
        + ",".join(_frame(f"{WS}/{n}") for n in ("ws_market_book_msg.json", "ws_market_price_change_msg.json"))
        + "]"
    )
    processor = FeedProcessor()
    events = processor.process(frame, 1)
    assert [k for k in _kinds(events) if k != "BookStatusChanged"] == ["BookSnapshot", "PriceChange"]
    assert processor.counters.total == 0


@pytest.mark.parametrize("name", ["clob_book_response_empty_ask.json", "book_2024.json"])
def test_rest_book_responses_reseed(name: str) -> None:
    raw = load_shared(f"clob_rest/{name}")
    processor = FeedProcessor()
    asset = raw["asset_id"]
    events = processor.apply_rest_book(asset, json.dumps(raw), recv_ns=7)
    snap = next(e for e in events if isinstance(e, BookSnapshot))
    assert snap.source == "rest"
    status = next(e for e in events if isinstance(e, BookStatusChanged))
    assert (status.old, status.new, status.reason) == (BookStatus.AWAITING_SNAPSHOT, BookStatus.OK, "rest_book")
    book = processor.books[asset]
    assert book.level_counts() == (len(raw["bids"]), len(raw["asks"]))
    assert book.best_bid() == max(Decimal(lv["price"]) for lv in raw["bids"])
    if raw["asks"]:
        assert book.best_ask() == min(Decimal(lv["price"]) for lv in raw["asks"])
    else:
        assert book.best_ask() is None
    assert processor.counters.total == 0


def test_rest_book_with_tick_field_sets_tick() -> None:
    raw = load_shared("clob_rest/clob_book_response_empty_ask.json")
    processor = FeedProcessor()
    processor.apply_rest_book(raw["asset_id"], raw, recv_ns=1)  # parsed JSON works too
    book = processor.books[raw["asset_id"]]
    assert book.tick_size == Decimal("0.001") and book.tick_confirmed
    assert book.bids() == [(Decimal("0.002"), Decimal("6.99")), (Decimal("0.001"), Decimal("667.12"))]


def test_rest_book_for_another_asset_is_rejected() -> None:
    raw = load_shared("clob_rest/book_2024.json")
    processor = FeedProcessor()
    assert processor.apply_rest_book("123", json.dumps(raw)) == []
    assert processor.counters["wrong_type"] == 1
    assert "123" not in processor.books
