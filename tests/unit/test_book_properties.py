"""Property tests (hypothesis) for the book and the integrity rules."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from core.feed.book import Book
from core.feed.frames import book_frame, change, price_change_frame
from core.feed.processor import FeedProcessor
from core.types import BookStatus, Side

TICKS = st.integers(min_value=1, max_value=99)  # prices 0.01 .. 0.99
SIZES = st.one_of(st.just(0), st.integers(min_value=1, max_value=10**9))  # in 10^-2 shares
SIDES = st.sampled_from([Side.BUY, Side.SELL])
UPDATES = st.lists(st.tuples(SIDES, TICKS, SIZES), max_size=60)
LEVELS = st.dictionaries(TICKS, st.integers(min_value=1, max_value=10**9), max_size=25)


def _px(tick: int) -> D:
    return D(tick) / 100


def _sz(size: int) -> D:
    return D(size) / 100


def _split(levels: dict[int, int]) -> tuple[list[tuple[D, D]], list[tuple[D, D]]]:
    """Random levels -> a non-crossed snapshot: the lower half bids, the upper half asks."""
    prices = sorted(levels)
    cut = len(prices) // 2
    bids = [(_px(p), _sz(levels[p])) for p in prices[:cut]]
    asks = [(_px(p), _sz(levels[p])) for p in prices[cut:]]
    return bids, asks


@settings(max_examples=200, deadline=None)
@given(seed=LEVELS, updates=UPDATES, snap=LEVELS)
def test_any_updates_then_a_snapshot_equal_the_snapshot(
    seed: dict[int, int], updates: list[tuple[Side, int, int]], snap: dict[int, int]
) -> None:
    book = Book("x")
    book.apply_snapshot(*_split(seed), ts=1)
    for side, tick, size in updates:
        book.apply_level(side, _px(tick), _sz(size), ts=2)
    bids, asks = _split(snap)
    book.apply_snapshot(bids, asks, ts=3)
    assert book.bids() == sorted(bids, reverse=True)
    assert book.asks() == sorted(asks)


@settings(max_examples=150, deadline=None)
@given(updates=UPDATES, snap=LEVELS)
def test_the_same_holds_through_the_wire_pipeline(updates: list[tuple[Side, int, int]], snap: dict[int, int]) -> None:
    processor = FeedProcessor(known_assets={"a"})
    processor.process(book_frame("a", [("0.5", "1")], [("0.6", "1")]), 1)
    for i, (side, tick, size) in enumerate(updates):
        processor.process(price_change_frame([change("a", side.value, str(_px(tick)), str(_sz(size)))], ts_ms=i), 2 + i)
    bids, asks = _split(snap)
    as_text = [(str(p), str(s)) for p, s in sorted(bids, reverse=True)], [(str(p), str(s)) for p, s in sorted(asks)]
    processor.process(book_frame("a", *as_text), 10**6)
    book = processor.books["a"]
    assert book.bids() == sorted(bids, reverse=True) and book.asks() == sorted(asks)
    assert book.status is BookStatus.OK
    assert processor.counters.total == 0


@settings(max_examples=200, deadline=None)
@given(seed=LEVELS, updates=UPDATES)
def test_book_matches_a_plain_dict_model(seed: dict[int, int], updates: list[tuple[Side, int, int]]) -> None:
    book = Book("x")
    bids, asks = _split(seed)
    book.apply_snapshot(bids, asks, ts=1)
    model = {Side.BUY: dict(bids), Side.SELL: dict(asks)}
    for side, tick, size in updates:
        book.apply_level(side, _px(tick), _sz(size), ts=2)
        if size:
            model[side][_px(tick)] = _sz(size)
        else:
            model[side].pop(_px(tick), None)
    assert book.bids() == sorted(model[Side.BUY].items(), reverse=True)
    assert book.asks() == sorted(model[Side.SELL].items())
    # walking the asks agrees with a brute-force walk of the model
    want = D("123.45")
    left, cost = want, D(0)
    for price, size in sorted(model[Side.SELL].items()):
        take = min(left, size)
        cost += take * price
        left -= take
    assert book.cost_to_buy(want)[::2] == (cost, want - left)


# a burst: (timestamp step 0 = same burst, side, tick, size, carry the true top?)
FRAMES = st.lists(
    st.tuples(st.integers(min_value=0, max_value=2), SIDES, TICKS, SIZES, st.booleans(), st.booleans()),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(seed=LEVELS, frames=FRAMES)
def test_an_ok_book_is_never_crossed(
    seed: dict[int, int], frames: list[tuple[int, Side, int, int, bool, bool]]
) -> None:
    """Whatever arrives (lies about the top, crossing orders, bursts, quiet gaps), a book whose
    status reads ok is not crossed — mid-burst included — and once every burst is checked the
    stored status is never ok on a crossed book."""
    processor = FeedProcessor(known_assets={"a"}, burst_quiet_ms=50)
    bids, asks = _split(seed)
    as_text = [(str(p), str(s)) for p, s in sorted(bids, reverse=True)], [(str(p), str(s)) for p, s in sorted(asks)]
    processor.process(book_frame("a", *as_text), 0)
    book = processor.books["a"]
    ts, now = 0, 0
    for step, side, tick, size, honest, pause in frames:
        ts += step
        now += 60_000_000 if pause else 1_000_000
        carried = ("0.01", "0.99")
        if honest:  # what the top will be after this change (as the venue would carry it)
            probe = Book("p")
            probe.apply_snapshot(book.bids(), book.asks(), ts=0)
            probe.apply_level(side, _px(tick), _sz(size), ts=0)
            carried = (str(probe.best_bid() or "0"), str(probe.best_ask() or "1"))
        frame = price_change_frame([change("a", side.value, str(_px(tick)), str(_sz(size)), *carried)], ts_ms=ts)
        processor.process(frame, now)
        if book.status is BookStatus.OK:
            assert not book.is_crossed()
    processor.finish(now + 1)
    if book.raw_status is BookStatus.OK:
        assert not book.is_crossed()
    assert processor.counters.total == 0
