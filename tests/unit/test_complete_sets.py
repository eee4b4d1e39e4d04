"""Complete sets are worth 1 pUSD each: a binary YES+NO and YES of every member of a neg-risk event;
marks apply only to the unmatched remainder; the set cost carries the fees; all exact."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D

from core.execution.complete_sets import SetUnit, units_of, value_positions
from core.execution.positions import PositionBook
from core.execution.types import Fill
from core.types import MarketInfo, Side, TokenInfo

BIN = MarketInfo("0xbin", "Will it?", "will-it", (TokenInfo("Y", "Yes"), TokenInfo("N", "No")))


def member(i: int, *, augmented: bool = False) -> MarketInfo:
    return MarketInfo(
        f"0xm{i}",
        f"Team {i}?",
        f"cup-team-{i}",
        (TokenInfo(f"{i}y", "Yes"), TokenInfo(f"{i}n", "No")),
        neg_risk=True,
        neg_risk_market_id="EV",
        neg_risk_augmented=augmented,
    )


def buy(book: PositionBook, token: str, price: str, size: str, fee: str = "0") -> None:
    book.apply_fill(Fill(f"c-{token}", None, token, Side.BUY, D(price), D(size), D(fee)))


def marks(table: dict[str, str]) -> Callable[[str], D | None]:
    return lambda token: D(table[token]) if token in table else None


def test_binary_set_is_worth_one_and_the_remainder_is_marked() -> None:
    book = PositionBook(units=lambda: units_of([BIN], {}))
    buy(book, "Y", "0.45", "10", fee="0.03150")  # a taker fee goes into the basis
    buy(book, "Y", "0.40", "5")  # 15 YES held at a cost of 6.5315
    buy(book, "N", "0.50", "10", fee="0.03500")
    v = book.valuation()
    [s] = v.sets
    assert s.unit.key == "0xbin" and s.sets == D("10")
    # YES: 10 of 15 shares in the set, basis 6.5315 x 10/15 = 4.354333.. -> 4.354333; NO: all of 5.035
    assert s.cost == D("4.354333") + D("5.035")
    assert s.locked_edge == D("10") - D("9.389333")
    assert v.total_sets == D("10") and v.locked_edge == D("0.610667")
    assert v.in_sets == {"Y": D("10"), "N": D("10")}
    # the remainder keeps the rest of the basis: set cost + remainder cost = what was paid, exactly
    assert v.remainder_of("Y") == (D("5"), D("6.5315") - D("4.354333"))
    assert v.remainder_of("N") == (D("0"), D("0"))
    # marks only on the 5 YES outside the set: 5 x 0.44 - 2.177167
    assert book.unrealised(marks({"Y": "0.44", "N": "0.10"})) == D("2.20") - D("2.177167")
    assert book.unmarked(marks({"N": "0.10"})) == ["Y"]
    # without units the book marks everything, as before
    plain = PositionBook(positions=book.positions)
    assert plain.unrealised(marks({"Y": "0.44", "N": "0.10"})) == (
        D("15") * D("0.44") - D("6.5315") + D("10") * D("0.10") - D("5.035")
    )


def test_neg_risk_event_set_is_yes_of_every_member() -> None:
    members = [member(1), member(2), member(3)]
    units = units_of(members, {"EV": members})
    assert units[0] == SetUnit("EV", ("1y", "2y", "3y"), "neg_risk")
    book = PositionBook(units=lambda: units)
    buy(book, "1y", "0.30", "8", fee="0.01")
    buy(book, "2y", "0.25", "8", fee="0.01")
    buy(book, "3y", "0.20", "12", fee="0.02")  # 4 more than the set
    v = book.valuation()
    [s] = v.sets
    assert (s.unit.kind, s.sets) == ("neg_risk", D("8"))
    # 2.41 + 2.01 + (2.42 x 8/12 = 1.613333..) ; locked edge 8 - 6.033333
    assert s.cost == D("2.41") + D("2.01") + D("1.613333")
    assert v.locked_edge == D("8") - D("6.033333")
    assert v.remainder_of("3y") == (D("4"), D("2.42") - D("1.613333"))
    assert v.unrealised(marks({"3y": "0.25"})) == D("1.00") - D("0.806667")


def test_no_set_without_every_member_or_on_an_augmented_event() -> None:
    members = [member(1), member(2), member(3)]
    held = PositionBook(units=lambda: units_of(members, {"EV": members[:2]}))  # the event's list is short
    for t in ("1y", "2y", "3y"):
        buy(held, t, "0.30", "5")
    # a 2-member "event" is still formed from what is declared, so the caller must pass every member:
    # the engine only passes events whose full list was declared (ExposureTracker.event_members)
    assert held.valuation().sets[0].unit.tokens == ("1y", "2y")
    augmented = [member(1, augmented=True), member(2)]
    assert [u.kind for u in units_of(augmented, {"EV": augmented})] == ["binary", "binary"]
    book = PositionBook(units=lambda: units_of([member(1), member(2)], {"EV": [member(1), member(2)]}))
    buy(book, "1y", "0.30", "5")
    assert book.valuation().sets == () and book.valuation().remainder_of("1y") == (D("5"), D("1.50"))


def test_a_share_counts_in_one_set_only_and_shorts_form_none() -> None:
    members = [member(1), member(2)]
    units = units_of(members, {"EV": members})
    book = PositionBook(units=lambda: units)
    buy(book, "1y", "0.40", "10")
    buy(book, "2y", "0.50", "6")
    buy(book, "1n", "0.55", "10")
    v = book.valuation()
    # the event first: 6 sets of 1y+2y; then member 1's YES+NO with the 4 YES left
    assert [(s.unit.key, s.sets) for s in v.sets] == [("EV", D("6")), ("0xm1", D("4"))]
    assert v.in_sets["1y"] == D("10") and v.remainder_of("1n") == (D("6"), D("3.30"))
    short = value_positions([], units)
    assert short.sets == () and short.locked_edge == 0
