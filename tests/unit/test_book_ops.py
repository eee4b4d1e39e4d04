"""L2 book operations: snapshot order, level updates, depth, walking the book, exactness."""

from __future__ import annotations

import ast
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

import core.feed.book as book_module
from core.feed import kernel
from core.feed.book import Book
from core.types import BookStatus, BookView, Side


def _book() -> Book:
    book = Book("tok")
    # wire order: bids ascending, asks descending (best LAST)
    book.apply_snapshot(
        bids=[("0.40", "100"), ("0.45", "50"), ("0.47", "10.5")],
        asks=[("0.60", "300"), ("0.55", "20"), ("0.52", "15.25")],
        ts=1,
    )
    return book


def test_implements_bookview() -> None:
    book: BookView = _book()
    assert book.asset_id == "tok"
    assert book.status is BookStatus.OK
    assert book.tick_size == D("0.01")


def test_snapshot_best_is_last_on_the_wire_and_first_in_the_api() -> None:
    book = _book()
    assert book.best_bid() == D("0.47") and book.best_ask() == D("0.52")
    assert book.bids() == [(D("0.47"), D("10.5")), (D("0.45"), D("50")), (D("0.40"), D("100"))]
    assert book.asks() == [(D("0.52"), D("15.25")), (D("0.55"), D("20")), (D("0.60"), D("300"))]
    assert book.spread() == D("0.05") and book.mid() == D("0.495")


def test_snapshot_order_does_not_matter_and_replaces_everything() -> None:
    book = _book()
    book.apply_snapshot(bids=[("0.30", "1"), ("0.20", "2")], asks=[("0.70", "3")], ts=2)
    assert book.bids() == [(D("0.30"), D("1")), (D("0.20"), D("2"))]
    assert book.asks() == [(D("0.70"), D("3"))]
    assert book.last_update_ns == 2


def test_level_updates_are_absolute_and_zero_removes() -> None:
    book = _book()
    assert book.apply_level(Side.BUY, D("0.45"), D("75"), ts=3)  # replace, not add
    assert book.apply_level(Side.BUY, D("0.48"), D("1"), ts=3)  # new best
    assert book.apply_level(Side.SELL, D("0.52"), D("0"), ts=3)  # remove best ask
    assert book.apply_level(Side.SELL, D("0.99"), D("0"), ts=3)  # removing a missing level is harmless
    assert book.best_bid() == D("0.48") and book.best_ask() == D("0.55")
    assert book.size_at(Side.BUY, D("0.45")) == D("75")
    assert book.size_at(Side.SELL, D("0.52")) == 0
    assert book.level_counts() == (4, 2)


def test_depth_limits_levels_per_side() -> None:
    book = _book()
    bids, asks = book.depth(2)
    assert bids == [(D("0.47"), D("10.5")), (D("0.45"), D("50"))]
    assert asks == [(D("0.52"), D("15.25")), (D("0.55"), D("20"))]
    assert book.bids(0) == [] and book.asks(10) == book.asks()


def test_cost_to_buy_walks_the_asks_exactly() -> None:
    book = _book()
    cost, avg, filled = book.cost_to_buy(D("30"))
    # 15.25 @ 0.52 + 14.75 @ 0.55
    assert cost == D("15.25") * D("0.52") + D("14.75") * D("0.55") == D("16.0425")
    assert filled == D("30")
    assert avg == cost / filled
    assert isinstance(cost, D)


def test_proceeds_to_sell_walks_the_bids() -> None:
    book = _book()
    proceeds, avg, filled = book.proceeds_to_sell(D("20"))
    assert proceeds == D("10.5") * D("0.47") + D("9.5") * D("0.45")
    assert filled == D("20") and avg == proceeds / filled


def test_walking_a_thin_book_fills_what_there_is() -> None:
    book = _book()
    cost, _, filled = book.cost_to_buy(D("1000"))
    assert filled == D("335.25")
    assert cost == D("15.25") * D("0.52") + 20 * D("0.55") + 300 * D("0.60")
    empty = Book("e")
    assert empty.cost_to_buy(D("5")) == (D(0), None, D(0))
    with pytest.raises(ValueError):
        book.cost_to_buy(D("0.0000001"))  # not representable in 10^-6 units


def test_no_floats_anywhere() -> None:
    book = _book()
    values = [book.best_bid(), book.best_ask(), *[x for lv in book.bids() + book.asks() for x in lv]]
    values += list(book.cost_to_buy(D("7"))[::2])
    assert all(type(v) is D for v in values)
    # one-tenth is exact: 0.1 + 0.2 style errors cannot happen
    book.apply_level(Side.SELL, D("0.51"), D("0.1"), ts=4)
    book.apply_level(Side.SELL, D("0.50"), D("0.2"), ts=4)
    assert book.cost_to_buy(D("0.3"))[2] == D("0.3")


def test_invalid_levels_are_refused() -> None:
    book = _book()
    with pytest.raises(ValueError, match="off the tick"):
        book.apply_level(Side.BUY, D("0.455"), D("1"), ts=5)
    with pytest.raises(ValueError, match="outside"):
        book.apply_level(Side.BUY, D("1"), D("1"), ts=5)
    with pytest.raises(ValueError, match="negative"):
        book.apply_level(Side.BUY, D("0.4"), D("-1"), ts=5)
    assert book.best_bid() == D("0.47")


def test_delta_before_snapshot_is_not_applied() -> None:
    book = Book("x")
    assert book.status is BookStatus.AWAITING_SNAPSHOT
    assert not book.apply_level(Side.BUY, D("0.4"), D("1"), ts=1)
    assert book.status is BookStatus.INCONSISTENT and book.faults == {"delta_before_snapshot": 1}
    assert book.best_bid() is None
    book.apply_snapshot([("0.4", "1")], [("0.5", "1")], ts=2)
    assert book.status is BookStatus.OK


def test_crossed_book_never_reads_ok() -> None:
    book = _book()
    book.apply_level(Side.BUY, D("0.53"), D("5"), ts=6)  # bid above the best ask
    assert book.is_crossed() and book.status is BookStatus.INCONSISTENT
    assert book.raw_status is BookStatus.OK  # transient: no fault counted
    book.apply_level(Side.SELL, D("0.52"), D("0"), ts=6)
    book.apply_level(Side.SELL, D("0.55"), D("0"), ts=6)
    assert book.status is BookStatus.OK and book.best_ask() == D("0.60")


def test_crossed_snapshot_is_inconsistent() -> None:
    book = Book("x")
    book.apply_snapshot([("0.6", "1")], [("0.5", "1")], ts=1)
    assert book.raw_status is BookStatus.INCONSISTENT and book.faults == {"crossed": 1}


def test_tick_size_and_finer_grids() -> None:
    book = Book("x", D("0.001"))
    book.apply_snapshot([("0.511", "1")], [("0.514", "2")], ts=1)
    assert book.best_bid() == D("0.511") and book.tick_size == D("0.001")
    quarter = Book("q", D("0.0025"))
    quarter.apply_snapshot([("0.0025", "1"), ("0.5075", "3")], [("0.9975", "1")], ts=1)
    assert quarter.best_bid() == D("0.5075")
    with pytest.raises(ValueError):
        quarter.apply_level(Side.BUY, D("0.501"), D("1"), ts=2)


def test_zero_size_levels_in_a_snapshot_are_ignored() -> None:
    book = Book("x")
    book.apply_snapshot([("0.4", "0"), ("0.3", "1")], [("0.6", "0.000")], ts=1)
    assert book.level_counts() == (1, 0)
    assert book.best_ask() is None and book.spread() is None and book.mid() is None


def test_sizes_beyond_64_bits_stay_exact() -> None:
    # sizes are packed in 64-bit arrays; the parser admits up to 10^15 shares (10^21 units)
    huge = "999999999999999.999999"
    book = _book()
    book.apply_level(Side.BUY, "0.46", huge, ts=2)  # a new level beyond 64 bits
    book.apply_level(Side.SELL, "0.52", huge, ts=2)  # an existing level
    book.apply_level(Side.BUY, "0.45", "0", ts=2)
    book.apply_level(Side.BUY, "0.44", "7", ts=2)
    assert book.bids() == [(D("0.47"), D("10.5")), (D("0.46"), D(huge)), (D("0.44"), D("7")), (D("0.40"), D("100"))]
    assert book.asks() == [(D("0.52"), D(huge)), (D("0.55"), D("20")), (D("0.60"), D("300"))]
    assert book.size_at(Side.SELL, D("0.52")) == D(huge) and book.size_at(Side.BUY, D("0.45")) == 0
    assert book.cost_to_buy(D(huge))[2] == D(huge)
    book.apply_snapshot([("0.30", huge)], [("0.70", "1")], ts=3)
    assert book.bids() == [(D("0.30"), D(huge))] and book.asks() == [(D("0.70"), D("1"))]


def test_the_best_prices_follow_every_change() -> None:
    book = _book()
    book.apply_level(Side.BUY, "0.47", "0", ts=2)  # the best bid goes: the next one is best
    book.apply_level(Side.SELL, "0.51", "1", ts=2)  # a better ask
    assert (book.best_bid(), book.best_ask()) == (D("0.45"), D("0.51"))
    for price in ("0.45", "0.40"):
        book.apply_level(Side.BUY, price, "0", ts=2)
    assert book.best_bid() is None and book.best_bid_units() is None and book.mid() is None
    book.apply_level(Side.BUY, "0.51", "1", ts=2)  # crossed: never ok
    assert book.is_crossed() and book.status is BookStatus.INCONSISTENT
    book.clear()
    assert (book.best_bid(), book.best_ask(), book.is_crossed()) == (None, None, False)


def test_a_burst_checks_the_best_prices_its_last_entry_carried() -> None:
    book = _book()  # 0.47 / 0.52
    # both carried prices are kept packed in one int: each kind, on each side, comes back
    book.apply_change(5, True, "0.48", "0.52", 480_000, 1_000_000, 2)
    assert book.close_burst() is None
    book.apply_change(6, True, "0.48", "0.53", 470_000, 1_000_000, 3)  # the ask is 0.52, not 0.53
    assert book.close_burst() == ("mismatch", "local top 0.48/0.52 but feed says 0.48/0.53")
    book.apply_change(7, False, None, None, 520_000, 2_000_000, 4)  # nothing carried: nothing to check
    assert book.close_burst() is None
    # an unusual spelling is kept as text until the burst is checked, then parsed
    book.apply_change(8, False, "0.480", ".52", 520_000, 3_000_000, 5)
    assert (book._odd_bid, book._odd_ask) == (None, ".52")
    assert book.close_burst() is None and book._odd_ask is None
    book.apply_change(9, True, "", "0.5x2", 480_000, 1_000_000, 6)
    assert (book._odd_bid, book._odd_ask) == ("", "0.5x2")
    book.apply_change(9, True, "0.48", "0.52", 480_000, 2_000_000, 6)  # the last entry decides
    assert (book._odd_bid, book._odd_ask) == (None, None)
    assert book.close_burst() is None
    book.apply_change(10, True, "0", "0.5x2", 480_000, 1_000_000, 7)
    assert book.close_burst() == ("wrong_type", "carried best price: not a decimal number: '0.5x2'")
    book.apply_change(11, True, "", "0.52", 480_000, 1_000_000, 8)  # "": an empty bid side
    assert book.close_burst() == ("mismatch", "local top 0.48/0.52 but feed says -/0.52")
    book.apply_change(12, True, "0.4x8", "0.5x2", 480_000, 1_000_000, 9)
    book.drop_burst()  # a snapshot or a reset: the burst goes unchecked, its text with it
    assert (book._odd_bid, book._odd_ask) == (None, None) and not book.burst_open


def test_what_one_entry_touches_comes_first() -> None:
    """Compiled, attributes are laid out in the order ``Book.__init__`` first assigns them: the
    fields an entry reads or writes come first (within the object's first 128 bytes), and the
    object takes a 256-byte block, whose second line starts where the object does (after the
    16-byte GC header): two cache lines per book and entry."""
    source = Path(__file__).resolve().parents[2] / "core" / "feed" / "book.py"
    init = next(
        node
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    targets = [
        n.target if isinstance(n, ast.AnnAssign) else n.targets[0]
        for n in init.body
        if isinstance(n, (ast.Assign, ast.AnnAssign))
    ]
    order = [t.attr for t in targets if isinstance(t, ast.Attribute)]
    words = ["_grid", "_pend_ts", "_want", "last_update_ns", "_best_bid", "_best_ask", "_bid_px", "_ask_px"]
    words += ["_bid_sz", "_ask_sz", "asset_id", "follower"]  # 24 bytes of header + 12 words + 4 flags <= 128
    assert order[:16] == [*words, "_burst", "seeded", "listed", "queued"]
    if kernel.is_compiled(book_module):
        assert 240 < sys.getsizeof(Book("tok")) <= 256  # (getsizeof counts the GC header)
