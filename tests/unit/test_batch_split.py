"""Splitting a group into batch requests: the fewest of at most 15, scarcest leg first; and the
in-memory store's one-call write-ahead."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.execution.batches import Posting, available_at_limit, split_batches
from core.execution.memory_store import MemoryExecutionStore
from core.execution.order_table import Tracked
from core.execution.records import OrderRecord
from core.execution.relayers.paper import StaticBook
from core.execution.types import MAX_BATCH_ORDERS, OrderRequest
from core.types import BookStatus, MarketInfo, OrderType, Side, TokenInfo

MARKET = MarketInfo("0xm", "M?", "m", (TokenInfo("1", "Yes"), TokenInfo("2", "No")))


def req(token: str, side: Side = Side.BUY, price: str = "0.40", size: str = "10") -> OrderRequest:
    return OrderRequest(f"c-{token}-{side}", "0xm", token, side, D(price), D(size), OrderType.FOK)


def posting(r: OrderRequest) -> Posting:
    rec = OrderRecord.from_request(r, mode="paper", group_id="g", reason="", ts=0.0)
    return Posting(Tracked(rec, r, MARKET), MARKET)


def test_available_at_limit_counts_the_levels_at_or_better_than_the_limit() -> None:
    book = StaticBook(
        "1",
        bid_levels=[(D("0.38"), D("4")), (D("0.37"), D("6")), (D("0.30"), D("100"))],
        ask_levels=[(D("0.39"), D("3")), (D("0.40"), D("5")), (D("0.41"), D("100"))],
    )
    assert available_at_limit(req("1", Side.BUY, "0.40"), book) == D("8")
    assert available_at_limit(req("1", Side.BUY, "0.38"), book) == 0
    assert available_at_limit(req("1", Side.SELL, "0.37"), book) == D("10")
    assert available_at_limit(req("1"), None) == 0
    stale = StaticBook("1", ask_levels=[(D("0.39"), D("3"))], book_status=BookStatus.STALE)
    assert available_at_limit(req("1"), stale) == 0


@pytest.mark.parametrize(("n", "sizes"), [(1, [1]), (15, [15]), (16, [15, 1]), (20, [15, 5]), (31, [15, 15, 1])])
def test_the_fewest_batches_of_at_most_15(n: int, sizes: list[int]) -> None:
    legs = [posting(req(str(i))) for i in range(n)]
    batches = split_batches(legs, None)
    assert [len(b) for b in batches] == sizes and MAX_BATCH_ORDERS == 15
    assert [p for b in batches for p in b] == legs  # without books: the group's order


def test_scarcest_leg_first_and_equals_keep_their_order() -> None:
    depth = {str(i): D("100") for i in range(20)}
    depth["17"], depth["3"], depth["9"] = D("2"), D("50"), D("50")
    books = {t: StaticBook(t, ask_levels=[(D("0.40"), d)]) for t, d in depth.items()}
    legs = [posting(req(str(i))) for i in range(20)]
    first, second = split_batches(legs, books.get)
    rest = [str(i) for i in range(20) if str(i) not in ("17", "3", "9")]
    assert [p.t.req.token_id for p in first] == ["17", "3", "9", *rest[:12]]
    assert [p.t.req.token_id for p in second] == rest[12:]
    with pytest.raises(ValueError):
        split_batches(legs, None, limit=0)


async def test_memory_store_save_orders_detects_duplicates() -> None:
    store = MemoryExecutionStore()
    recs = [OrderRecord.from_request(req(t), mode="paper", group_id="g", reason="", ts=1.0) for t in "abc"]
    assert await store.save_orders(recs) == [True, True, True]
    d = OrderRecord.from_request(req("d"), mode="paper", group_id="g", reason="", ts=1.0)
    assert await store.save_orders([recs[1], d, d]) == [False, True, False]
    assert sorted(store.orders) == sorted(r.client_order_id for r in [*recs, d])
