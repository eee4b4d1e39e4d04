"""Engine on a real database (SQLite and PostgreSQL): idempotency, unknown outcomes reconciled
instead of re-posted, fills from book updates, cancels."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from core.events import Alert, AlertCleared, FillEvent
from core.execution.events import SettlementFailure, TradeStatus, TradeUpdate
from core.execution.relayers.paper import PaperRelayer
from core.execution.types import Fill, OrderRequest, OrderStatus, Outcome, PlaceResult
from core.store import models as m
from core.types import OrderType, Side
from tests.integration.engine_world import BIN, NO, YES, World, intent


async def test_same_intent_twice_places_once(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    first = await engine.submit(intent(), BIN)
    assert first.ok and first.status is OrderStatus.LIVE and first.attempts == 1
    again = await engine.submit(intent(), BIN)
    assert again.duplicate and not again.ok and again.client_order_id == first.client_order_id
    assert world.relayer.place_calls == 1
    # a new sequence number is a new order
    other = await engine.submit(intent(seq=1), BIN)
    assert other.ok and other.client_order_id != first.client_order_id
    assert world.relayer.place_calls == 2
    assert len(await world.rows(m.Order)) == 2


async def test_duplicate_after_restart_is_caught_by_the_unique_key(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    assert (await engine.submit(intent(), BIN)).ok
    restarted = await world.engine()  # new process: empty memory, same database and venue
    again = await restarted.submit(intent(), BIN)
    assert again.duplicate and again.status is OrderStatus.LIVE
    assert world.relayer.place_calls == 1


async def test_unknown_after_accepting_is_never_reposted(world: World) -> None:
    world.books.set(YES, asks=[("0.50", "10"), ("0.51", "100")])
    engine = await world.engine()
    world.inject.next(Outcome.UNKNOWN)  # the venue takes the order, the answer is lost
    res = await engine.submit(intent(price="0.51", size="20", order_type=OrderType.FOK), BIN)
    assert world.relayer.place_calls == 1
    assert res.outcome is Outcome.UNKNOWN
    # its fills came over the "user channel" before the answer was lost: the outcome is known, so
    # nothing is looked up and the trader is not told it is unknown (an answer lost with the venue
    # silent is looked up: tests/integration/test_engine_batch.py, test_engine_batch_clob.py)
    assert res.status is OrderStatus.FILLED
    assert engine.positions.get(YES).shares == D("20")  # type: ignore[union-attr]
    again = await engine.submit(intent(price="0.51", size="20", order_type=OrderType.FOK), BIN)
    assert again.duplicate and world.relayer.place_calls == 1
    audit = await world.store.list_audit(res.client_order_id)
    assert [(a.action, a.outcome) for a in audit] == [("place", "unknown")]
    assert [e for e in world.recorder.events if isinstance(e, Alert | AlertCleared)] == []
    [order_row] = await world.rows(m.Order)
    assert order_row.status == "filled" and order_row.filled_size == D("20")


async def test_unknown_and_not_found_stays_unknown_then_fails_after_grace(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine(unknown_grace_s=30)
    world.inject.next(Outcome.UNKNOWN, accept=False)  # it never reached the venue
    res = await engine.submit(intent(), BIN)
    assert res.status is OrderStatus.SUBMITTED_UNKNOWN
    # while unknown, the order counts as exposure and the same intent only triggers a lookup
    assert engine.exposure().market_exposure(BIN.condition_id) == D("5.00")
    again = await engine.submit(intent(), BIN)
    assert again.duplicate and again.status is OrderStatus.SUBMITTED_UNKNOWN
    assert (world.relayer.place_calls, world.relayer.lookup_calls) == (1, 2)
    world.clock.advance(31)
    report = await engine.reconcile()
    assert report.changed == {res.client_order_id: "submitted_unknown -> failed"}
    assert world.relayer.place_calls == 1
    assert engine.exposure().market_exposure(BIN.condition_id) == 0


async def test_resting_order_filled_by_book_updates_updates_order_and_position(world: World) -> None:
    book = world.books.set(YES, asks=[("0.60", "100")], bids=[("0.40", "100")])
    engine = await world.engine(mark_provider=lambda token: D("0.55") if token == YES else None)
    res = await engine.submit(intent(price="0.50", size="20"), BIN)
    assert res.status is OrderStatus.LIVE
    book.ask_levels = [(D("0.48"), D("8"))]
    await world.relayer.on_book_update(YES)
    assert engine.order(res.client_order_id).status is OrderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]
    book.ask_levels = [(D("0.50"), D("30"))]
    await world.relayer.on_book_update(YES)
    rec = engine.order(res.client_order_id)
    assert rec is not None and rec.status is OrderStatus.FILLED and rec.filled_size == D("20")
    pos = engine.positions.get(YES)
    assert pos is not None and (pos.shares, pos.cost) == (D("20"), D("10.00"))
    assert engine.unrealised_pnl() == D("1.00")  # 20 x 0.55 - 10
    [row] = await world.rows(m.Position)
    assert (row.size, row.avg_cost) == (D("20"), D("0.5"))
    assert len(await world.rows(m.Fill)) == 2
    assert [e.position_shares for e in world.recorder.of(FillEvent)] == [D("8"), D("20")]


async def test_cancel_one_order(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    res = await engine.submit(intent(), BIN)
    out = await engine.cancel(res.client_order_id)
    assert out.canceled == (res.client_order_id,)
    assert engine.order(res.client_order_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    again = await engine.cancel(res.client_order_id)
    assert "already canceled" in again.not_canceled[res.client_order_id]
    assert "unknown order" in (await engine.cancel("pb-nope")).not_canceled["pb-nope"]
    [audit] = await world.store.list_audit(res.client_order_id, action="cancel")
    assert audit.outcome == "accepted"
    assert await world.relayer.open_orders() == []


class HashingRelayer(PaperRelayer):
    """Like the CLOB relayer: reports the signed order's hash (its venue id), even when the outcome is UNKNOWN."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.remembered: dict[str, str] = {}

    async def place(self, order: OrderRequest) -> PlaceResult:
        res = await super().place(order)
        return replace(res, order_hash=f"0xhash-{order.client_order_id}")

    def remember_order(self, client_order_id: str, order_hash: str) -> None:
        self.remembered[client_order_id] = order_hash


async def test_the_order_hash_is_stored_and_handed_back_to_the_relayer_after_a_restart(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    world.relayer = HashingRelayer(world.books, clock=world.clock)
    engine = await world.engine()
    world.inject.next(Outcome.UNKNOWN, accept=False)
    res = await engine.submit(intent(), BIN)
    assert res.status is OrderStatus.SUBMITTED_UNKNOWN
    [row] = await world.rows(m.Order)
    assert row.order_hash == f"0xhash-{res.client_order_id}"
    await world.engine(arm=False)  # restart: open orders are loaded and the relayer is told their hashes
    assert world.relayer.remembered == {res.client_order_id: f"0xhash-{res.client_order_id}"}


async def test_venue_pushed_status_updates_apply_without_reopening_final_orders(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    res = await engine.submit(intent(), BIN)
    assert res.venue_order_id
    # the user channel says the venue canceled it (e.g. a missed heartbeat)
    assert await engine.on_order_status(res.venue_order_id, None, OrderStatus.CANCELED) is True
    assert engine.order(res.client_order_id).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert await engine.on_order_status(res.venue_order_id, None, OrderStatus.LIVE) is False
    [row] = await world.rows(m.Order)
    assert row.status == "canceled"
    assert await engine.on_order_status("unknown-venue-id", None, OrderStatus.LIVE) is False


def test_client_order_id_is_deterministic_and_canonical() -> None:
    from core.execution.ids import PREFIX, client_order_id, intent_seq

    base = intent(price="0.5", size="10")
    assert client_order_id(base) == client_order_id(intent(price="0.50", size="10.00"))
    assert client_order_id(base).startswith(PREFIX) and len(client_order_id(base)) == len(PREFIX) + 32
    others = {
        client_order_id(base, seq=1),
        client_order_id(intent(price="0.51")),
        client_order_id(intent(size="11")),
        client_order_id(intent(side=Side.SELL)),
        client_order_id(intent(NO)),
        client_order_id(intent(order_type=OrderType.FOK)),
        client_order_id(intent(group_id="g")),
        client_order_id(replace(base, post_only=True)),
    }
    assert client_order_id(base) not in others and len(others) == 8
    # the seq may come from the intent's meta (a strategy's own counter)
    with_meta = intent(seq=3)
    assert client_order_id(with_meta, intent_seq(with_meta, None)) == client_order_id(base, seq="3")
    assert intent_seq(with_meta, 7) == 7 and intent_seq(base, None) == 0


async def test_venue_trade_updates_are_recorded_once_and_applied_at_confirmation(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    res = await engine.submit(intent(price="0.50", size="10"), BIN)
    assert res.venue_order_id
    fill = Fill("", res.venue_order_id, YES, Side.BUY, D("0.50"), D("4"), trade_id="t-1", confirmed=False)
    # the user channel reports the trade at every step; only its first sight and its confirmation count
    for status in (TradeStatus.MATCHED, TradeStatus.MINED, TradeStatus.RETRYING):
        await world.relayer.events.trade(TradeUpdate(fill, status))
    assert [(r.status, r.size) for r in await world.rows(m.Fill)] == [("matched", D("4"))]
    assert len(world.recorder.of(FillEvent)) == 1 and engine.positions.get(YES) is None
    await world.relayer.events.trade(TradeUpdate(replace(fill, confirmed=True), TradeStatus.CONFIRMED))
    assert [(r.status, r.client_order_id) for r in await world.rows(m.Fill)] == [("confirmed", res.client_order_id)]
    assert engine.positions.get(YES).shares == D("4")  # type: ignore[union-attr]
    assert engine.order(res.client_order_id).status is OrderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]
    assert world.relayer.events.stats == {}


async def test_a_failed_settlement_marks_the_fill_failed_and_the_order_or_alerts(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    engine = await world.engine()
    res = await engine.submit(intent(price="0.50", size="10"), BIN)
    assert res.venue_order_id
    fill = Fill("", res.venue_order_id, YES, Side.BUY, D("0.50"), D("10"), trade_id="t-9", confirmed=False)
    await world.relayer.events.trade(TradeUpdate(fill, TradeStatus.MATCHED))
    await world.relayer.events.settlement_failed(SettlementFailure("t-9", None, fill))
    assert [r.status for r in await world.rows(m.Fill)] == ["failed"]
    assert engine.positions.get(YES) is None and engine.order(res.client_order_id).status is OrderStatus.LIVE  # type: ignore[union-attr]
    [alert] = [a for a in world.recorder.of(Alert) if a.kind == "settlement_failed"]
    assert alert.key == "t-9" and res.client_order_id in alert.message
    # a filled order whose trade then fails: the order itself fails (its event carries the reason)
    await engine.on_order_status(res.venue_order_id, None, OrderStatus.FILLED)
    await world.relayer.events.settlement_failed(SettlementFailure("t-10", res.client_order_id, fill))
    rec = engine.order(res.client_order_id)
    assert rec is not None and rec.status is OrderStatus.FAILED and "t-10" in (rec.error or "")
    assert len([a for a in world.recorder.of(Alert) if a.kind == "settlement_failed"]) == 1


class UnreadableTradesRelayer(PaperRelayer):
    """A venue whose trades cannot be read right now (the CLOB relayer's resync failing)."""

    async def resync(self) -> None:
        raise ConnectionError("GET /data/trades: connection reset")


async def test_an_unknown_outcome_stays_unknown_while_the_venue_trades_cannot_be_read(world: World) -> None:
    world.books.set(YES, asks=[("0.60", "100")])
    world.relayer = UnreadableTradesRelayer(world.books, clock=world.clock)
    engine = await world.engine(unknown_grace_s=30)
    world.inject.next(Outcome.UNKNOWN, accept=False)
    res = await engine.submit(intent(), BIN)  # not found, and its trades unreadable: nothing is decided
    assert res.status is OrderStatus.SUBMITTED_UNKNOWN and res.outcome is Outcome.UNKNOWN
    world.clock.advance(31)  # even past the grace period: failing it needs the venue's word
    report = await engine.reconcile()
    assert report.still_unknown == (res.client_order_id,) and report.changed == {}
    assert world.relayer.place_calls == 1
