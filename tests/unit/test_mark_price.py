"""One mark rule for the engine's PnL and the faces' position views (core.types.mark_price)."""

from __future__ import annotations

from decimal import Decimal

from core.types import BookStatus, mark_price
from tests.unit.strategy_books import StaticBook, levels


def test_the_mark_is_the_mid_of_a_usable_book_else_its_one_side() -> None:
    both = StaticBook("t", bid_levels=levels(("0.40", "5")), ask_levels=levels(("0.45", "5")))
    assert mark_price(both) == Decimal("0.425")
    assert mark_price(StaticBook("t", bid_levels=levels(("0.40", "5")))) == Decimal("0.40")
    assert mark_price(StaticBook("t", ask_levels=levels(("0.45", "5")))) == Decimal("0.45")
    assert mark_price(StaticBook("t")) is None and mark_price(None) is None


def test_a_book_that_is_not_ok_gives_no_mark() -> None:
    for status in (BookStatus.STALE, BookStatus.INCONSISTENT, BookStatus.AWAITING_SNAPSHOT):
        book = StaticBook("t", bid_levels=levels(("0.40", "5")), ask_levels=levels(("0.45", "5")), status=status)
        assert mark_price(book) is None, status
