"""A group's order hashes come before its signatures (issue 15): the intent rows are written with the
hashes and the legs signed in one call off the event loop: on SQLite in the write-ahead's own worker
thread just before its transaction (one thread hop for both), on PostgreSQL in a worker thread beside
the write; both are done before the batch is posted, with the garbage collector held off on the way.
SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal as D

import pytest

from core.execution.records import OrderRecord
from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_signing import OrderInvalid, PreparedOrder, SignedClobOrder
from core.execution.types import OrderRequest, OrderStatus, PlaceResult
from core.types import Intent, MarketInfo, OrderType, Side
from tests.integration.engine_world import World


async def test_the_legs_are_signed_off_the_loop_while_their_rows_are_written(
    world: World, clob_venue: tuple[ClobRelayer, MarketInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    relayer, market = clob_venue
    loop_thread = threading.get_ident()
    events: list[str] = []
    signing_started = threading.Event()
    signed_in: list[int] = []
    real_complete = relayer.signer.complete_batch

    def recording_complete(
        prepared: Iterable[PreparedOrder], *, owner: str = ""
    ) -> list[SignedClobOrder | OrderInvalid]:
        signed_in.append(threading.get_ident())
        events.append("signing")
        signing_started.set()
        return real_complete(prepared, owner=owner)

    monkeypatch.setattr(relayer.signer, "complete_batch", recording_complete)
    engine = await world.engine()
    real_save = engine.store.save_orders
    ahead = getattr(engine.store, "_ahead", None)  # SQLite: the write runs in a worker thread of its own
    written_in: list[int] = []
    if ahead is not None:
        real_write = ahead._write

        def overlapping_write(rows: list[tuple[object, ...]]) -> set[str]:
            # the commit waits for the signing to have started: never after it
            assert signing_started.wait(10), "the signing never started while the rows were written"
            written_in.append(threading.get_ident())
            written: set[str] = real_write(rows)
            return written

        monkeypatch.setattr(ahead, "_write", overlapping_write)

    async def recording_save(recs: Sequence[OrderRecord], then: Callable[[], None] | None = None) -> list[bool]:
        events.append("write" if not gc.isenabled() else "write with the collector on")
        assert all(r.order_hash for r in recs)  # the rows carry their hashes before any signature is kept
        saved = await real_save(recs, then=then)
        events.append("committed")
        return saved

    real_place_batch = relayer.place_batch

    async def recording_place_batch(orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        events.append("post")
        return await real_place_batch(orders)

    monkeypatch.setattr(engine.store, "save_orders", recording_save)
    monkeypatch.setattr(relayer, "place_batch", recording_place_batch)
    legs = [
        Intent(market.condition_id, tok.token_id, Side.BUY, D("0.10"), D("10"), OrderType.GTC, group_id="g-hop")
        for tok in market.tokens
    ]
    assert gc.isenabled()
    res = await engine.submit_group(legs, [market])
    monkeypatch.undo()
    assert gc.isenabled()  # held off on the way to the wire only (core/execution/gc_hold.py)

    assert res.ok and [leg.status for leg in res.legs] == [OrderStatus.LIVE, OrderStatus.LIVE]
    assert len(signed_in) == 1 and signed_in[0] != loop_thread  # signed once, off the loop
    if ahead is not None:  # SQLite: in the write's own thread, one hop for both
        assert written_in == signed_in
    assert events == ["write", "signing", "committed", "post"], events  # signed once the write is under way
    rows = [await world.store.get_order(leg.client_order_id) for leg in res.legs]
    signed = [relayer.signed_order(leg.client_order_id) for leg in res.legs]
    assert [r.order_hash for r in rows if r] == [s.order_hash for s in signed if s]  # written with the hashes
