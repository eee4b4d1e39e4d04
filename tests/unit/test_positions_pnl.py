"""Average-cost positions and PnL: exact arithmetic on worked examples, and conservation under random trades."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.execution.positions import Position, PositionBook, utc_day
from core.execution.types import Fill
from core.types import Side


def fill(side: Side, price: str, size: str, fee: str = "0", token: str = "T", ts_ms: int = 0) -> Fill:
    return Fill("c1", "v1", token, side, D(price), D(size), D(fee), trade_id=None, ts_ms=ts_ms)


def test_buys_average_and_a_partial_sell_realises_exactly() -> None:
    pos = Position("T")
    assert pos.apply(Side.BUY, D("0.40"), D("10")) == 0
    assert pos.apply(Side.BUY, D("0.50"), D("30")) == 0
    assert (pos.shares, pos.cost) == (D("40"), D("19.00"))
    assert pos.avg_price == D("0.475")
    # sell 10 at 0.60: released basis 19 x 10 / 40 = 4.75, realised 6.00 - 4.75 = 1.25
    assert pos.apply(Side.SELL, D("0.60"), D("10")) == D("1.25")
    assert (pos.shares, pos.cost, pos.realised) == (D("30"), D("14.25"), D("1.25"))
    # unrealised vs a mark of 0.45: 30 x 0.45 - 14.25 = -0.75
    assert pos.unrealised(D("0.45")) == D("-0.75")


def test_fees_go_into_the_basis_on_buys_and_out_of_proceeds_on_sells() -> None:
    pos = Position("T")
    pos.apply(Side.BUY, D("0.50"), D("100"), fee=D("1.25000"))
    assert pos.cost == D("51.25")
    realised = pos.apply(Side.SELL, D("0.70"), D("100"), fee=D("1.05000"))
    # 70 - 51.25 - 1.05
    assert realised == D("17.70")
    assert pos.shares == 0 and pos.cost == 0 and pos.fees == D("2.30")


def test_released_basis_is_rounded_to_micro_units_and_nothing_drifts() -> None:
    pos = Position("T")
    pos.apply(Side.BUY, D("0.33"), D("3"))  # cost 0.99
    pos.apply(Side.BUY, D("0.34"), D("1"))  # cost 1.33 for 4 shares
    # 1 of 4 shares: 1.33 / 4 = 0.3325 exactly
    assert pos.apply(Side.SELL, D("0.40"), D("1")) == D("0.0675")
    # 1 of 3 remaining: 0.9975 / 3 = 0.3325 exactly; then 1 of 2: 0.665 / 2 = 0.3325
    pos2 = Position("U")
    pos2.apply(Side.BUY, D("0.10"), D("3"))
    pos2.apply(Side.BUY, D("0.11"), D("3"))  # cost 0.63 for 6
    pos2.apply(Side.BUY, D("0.01"), D("1"))  # cost 0.64 for 7 -> 0.0914285714...
    realised = pos2.apply(Side.SELL, D("0.20"), D("1"))
    released = D("0.091429")  # 0.64 / 7 half-even at 6 decimals
    assert realised == D("0.20") - released
    assert pos2.cost == D("0.64") - released
    # closing the rest releases exactly what is left: total realised + 0 basis == proceeds - paid
    realised += pos2.apply(Side.SELL, D("0.20"), D("6"))
    assert pos2.cost == 0
    assert realised == D("1.40") - D("0.64")


def test_flip_closes_then_opens_at_the_trade_price() -> None:
    pos = Position("T")
    pos.apply(Side.BUY, D("0.40"), D("10"))
    realised = pos.apply(Side.SELL, D("0.50"), D("15"))
    assert realised == D("1.00")
    assert pos.shares == D("-5") and pos.cost == D("-2.50")
    # buy back the short at 0.30: realised 2.50 - 1.50 = 1.00
    assert pos.apply(Side.BUY, D("0.30"), D("5")) == D("1.00")
    assert pos.shares == 0 and pos.cost == 0 and pos.realised == D("2.00")


def test_bad_fills_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Position("T").apply(Side.BUY, D("0.5"), D("0"))
    with pytest.raises(ValueError, match="negative"):
        Position("T").apply(Side.BUY, D("-0.5"), D("1"))


def test_book_buckets_realised_by_utc_day_and_marks_unrealised() -> None:
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    book = PositionBook(clock=lambda: now)
    book.apply_fill(fill(Side.BUY, "0.50", "10", ts_ms=int((now - 3600) * 1000)), market="M")
    out = book.apply_fill(fill(Side.SELL, "0.40", "4", ts_ms=int((now + 60) * 1000)))
    assert out.realised == D("-0.40")
    assert book.daily_realised() == D("-0.40")
    assert book.daily_realised(utc_day(now - 3600)) == 0
    assert book.get("T").market == "M"  # type: ignore[union-attr]
    assert book.unrealised(lambda t: D("0.55")) == D("6") * D("0.55") - D("3.00")
    assert book.unmarked(lambda t: None) == ["T"]
    assert book.unrealised(lambda t: None) == 0


trade = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(min_value=1, max_value=99).map(lambda c: D(c) / 100),
    st.integers(min_value=1, max_value=50_000).map(lambda c: D(c) / 100),
    st.integers(min_value=0, max_value=5_000).map(lambda c: D(c) / 100_000),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(trade, min_size=1, max_size=40))
def test_cash_is_conserved_exactly(trades: list[tuple[Side, D, D, D]]) -> None:
    """realised + (mark-to-basis of what is held) == cash flows, to the last micro-unit."""
    pos = Position("T")
    cash = D(0)
    realised = D(0)
    for side, price, size, fee in trades:
        realised += pos.apply(side, price, size, fee)
        cash += (-price * size if side is Side.BUY else price * size) - fee
    assert realised == pos.realised
    # what was paid net, minus what is still carried as basis, is exactly what was realised
    assert cash + pos.cost == realised
    # every value stays on the micro-unit grid: storable without rounding
    for value in (pos.cost, pos.realised):
        assert value == value.quantize(D("0.000001"))
