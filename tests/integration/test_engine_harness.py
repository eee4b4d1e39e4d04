"""The engine's test world (real database via ``db_url``, paper relayer, fake clock and sleep),
and the execution store's round trips on SQLite and PostgreSQL.

The other ``test_engine_*`` files import :class:`World` from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal as D
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.events import Alert, AlertCleared, AlertKind, EventBus, Recorder, Severity
from core.execution.engine import Engine, OneLegPolicy, ReconcileReport
from core.execution.positions import Position
from core.execution.relayers.paper import FaultPlan, PaperRelayer, StaticBook
from core.execution.store import AuditRecord, OrderRecord, SqlExecutionStore, record_alerts
from core.execution.types import Fill, OrderStatus
from core.risk import ExposureSnapshot, Holding, RiskGate, RiskLimits
from core.store import models as m
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_engine
from core.types import Intent, MarketInfo, OrderType, Side, TokenInfo

T0 = 1_767_268_800.0  # 2026-01-01T12:00:00Z
YES, NO = "1010", "2020"
BIN = MarketInfo("0xbin", "Will it?", "will-it", (TokenInfo(YES, "Yes"), TokenInfo(NO, "No")), fee_rate=D("0"))


def neg_risk_market(i: int, event: str = "EV") -> MarketInfo:
    return MarketInfo(
        f"0xnr{i}",
        f"Outcome {i}?",
        f"outcome-{i}",
        (TokenInfo(f"{i}01", "Yes"), TokenInfo(f"{i}02", "No")),
        neg_risk=True,
        neg_risk_market_id=event,
    )


def intent(
    token: str = YES,
    side: Side = Side.BUY,
    price: str = "0.50",
    size: str = "10",
    order_type: OrderType = OrderType.GTC,
    *,
    market: MarketInfo = BIN,
    group_id: str | None = None,
    seq: int | None = None,
) -> Intent:
    meta = {"seq": str(seq)} if seq is not None else {}
    return Intent(market.condition_id, token, side, D(price), D(size), order_type, group_id=group_id, meta=meta)


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class Sleeps:
    """The engine's sleep: records every wait and moves the fake clock instead of waiting."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)


class Books:
    def __init__(self) -> None:
        self.books: dict[str, StaticBook] = {}

    def set(self, token: str, asks: list[tuple[str, str]] = (), bids: list[tuple[str, str]] = ()) -> StaticBook:  # type: ignore[assignment]
        book = StaticBook(token, bid_levels=[(D(p), D(s)) for p, s in bids], ask_levels=[(D(p), D(s)) for p, s in asks])
        self.books[token] = book
        return book

    def __call__(self, token: str) -> StaticBook | None:
        return self.books.get(token)


@dataclass
class World:
    db: AsyncEngine
    store: SqlExecutionStore
    clock: Clock
    sleeps: Sleeps
    books: Books
    relayer: PaperRelayer
    bus: EventBus = field(default_factory=EventBus)
    recorder: Recorder = field(init=False)
    last_report: ReconcileReport | None = None

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.bus)

    @classmethod
    async def create(cls, db_url: str) -> World:
        db = create_engine(db_url)
        await upgrade_engine(db)
        clock = Clock()
        books = Books()
        return cls(
            db=db,
            store=SqlExecutionStore(session_factory(db)),
            clock=clock,
            sleeps=Sleeps(clock),
            books=books,
            relayer=PaperRelayer(books, clock=clock),
        )

    @property
    def inject(self) -> FaultPlan:
        return self.relayer.inject

    async def engine(
        self,
        *,
        limits: RiskLimits | None = None,
        policy: OneLegPolicy | str = OneLegPolicy.ALERT,
        arm: bool = True,
        **knobs: Any,
    ) -> Engine:
        knobs = {
            "relayer_max_retries": 2,
            "relayer_retry_sleep_ms": 100,
            "engine_max_retries": 1,
            "engine_retry_sleep_ms": 1000,
            "sleep": self.sleeps,
            **knobs,
        }
        gate = RiskGate(limits or RiskLimits(), self.store, self.clock, self.bus)
        engine = Engine(
            self.relayer,
            gate,
            self.store,
            self.bus,
            one_leg_policy=policy,
            clock=self.clock,
            book_provider=self.books,
            **knobs,
        )
        self.last_report = await engine.start()
        if arm:
            assert (await gate.arm("tester")).ok
        return engine

    async def rows(self, model: type[Any]) -> list[Any]:
        from sqlalchemy import select

        async with session_factory(self.db)() as s:
            return list(await s.scalars(select(model).order_by(*model.__table__.primary_key.columns)))

    async def close(self) -> None:
        await self.bus.drain()
        await self.db.dispose()


def assert_exposure_consistent(engine: Engine) -> None:
    """The engine's incremental holdings and cached unit exposures equal a from-scratch computation."""
    naive: dict[str, Holding] = {}
    for pos in engine.positions.positions.values():
        if pos.shares or pos.cost:
            naive[pos.token_id] = Holding(pos.token_id, pos.market, pos.shares, pos.cost)
    for rec in engine.open_orders():
        h = naive.get(rec.token_id) or Holding(rec.token_id, rec.market)
        remaining = rec.size - rec.filled_size
        if rec.side is Side.BUY:
            h = replace(h, pending_buy=h.pending_buy + rec.price * remaining)
        else:
            h = replace(h, pending_sell=h.pending_sell + remaining)
        naive[rec.token_id] = replace(h, market=h.market or rec.market)
    snap = engine.exposure()
    assert snap.holdings == naive
    fresh = ExposureSnapshot(naive, snap.markets, snap.complete_events)
    assert snap.total_exposure() == fresh.total_exposure()
    for key in fresh.group_keys():
        cached = engine.holdings.cached_unit_exposure(key)
        assert cached is None or cached == fresh.exposure_of(key), key


# -- the store on both backends ----------------------------------------------------------------


async def test_store_round_trips_orders_audit_fills_positions_state_alerts(db_url: str) -> None:
    world = await World.create(db_url)
    try:
        store = world.store
        rec = OrderRecord(
            "pb-1", "0xbin", YES, Side.BUY, D("0.53"), D("12.5"), group_id="g", created_ts=T0, updated_ts=T0
        )
        assert await store.save_order(rec) is True
        assert await store.save_order(rec) is False  # the unique client order id
        await store.update_order("pb-1", status=OrderStatus.LIVE, venue_order_id="v1", updated_ts=T0 + 1)
        got = await store.get_order("pb-1")
        assert got is not None
        assert (got.status, got.venue_order_id, got.price, got.size, got.group_id) == (
            OrderStatus.LIVE,
            "v1",
            D("0.53"),
            D("12.5"),
            "g",
        )
        assert got.updated_ts == T0 + 1
        assert [r.client_order_id for r in await store.load_open_orders()] == ["pb-1"]
        await store.update_order("pb-1", status=OrderStatus.FILLED, filled_size=D("12.5"), avg_price=D("1") / 3)
        assert await store.load_open_orders() == []
        assert (await store.get_order("pb-1")).avg_price == D("0.333333")  # type: ignore[union-attr]

        await store.add_audit(AuditRecord("refused", "refused", "pb-2", error_class="not_armed", error="x", ts=T0))
        [audit] = await store.list_audit("pb-2")
        assert (audit.action, audit.error_class, audit.ts) == ("refused", "not_armed", T0)

        matched = Fill(
            "pb-1", "v1", YES, Side.BUY, D("0.53"), D("12.5"), D("0.01234"), "t1", confirmed=False, ts_ms=int(T0 * 1000)
        )
        assert await store.add_fill(matched) is False  # recorded, not yet final
        assert await store.add_fill(replace(matched, confirmed=True)) is True
        assert await store.add_fill(replace(matched, confirmed=True)) is False  # the same trade again
        [stored] = await store.load_fills()
        assert stored.market == "0xbin" and stored.fill.fee == D("0.01234") and stored.fill.ts_ms == int(T0 * 1000)
        assert stored.fill.confirmed and stored.fill.trade_id == "t1"

        # an attempt's audit row and the status it caused, together
        await store.record_attempt(AuditRecord("place", "accepted", "pb-1", attempt=2, ts=T0), "pb-1", error="late")
        assert [a.attempt for a in await store.list_audit("pb-1")] == [2]
        assert (await store.get_order("pb-1")).error == "late"  # type: ignore[union-attr]
        # a fill with its position and order update, together; a replay writes nothing
        f2 = Fill("pb-1", "v1", YES, Side.BUY, D("0.50"), D("2"), trade_id="t2")
        assert await store.record_fill(f2, Position(YES, "0xbin", D("2"), D("1")), {"filled_size": D("2")}) is True
        assert await store.record_fill(f2, Position(YES, "0xbin", D("99"), D("1")), {"filled_size": D("99")}) is False
        assert (await store.get_order("pb-1")).filled_size == D("2")  # type: ignore[union-attr]
        [pos] = await world.rows(m.Position)
        assert pos.size == D("2")
        # matched first (user channel), confirmed later: applied once, at confirmation
        f3 = Fill("pb-1", "v1", YES, Side.BUY, D("0.50"), D("1"), trade_id="t3", confirmed=False)
        assert await store.add_fill(f3) is False
        assert await store.record_fill(replace(f3, confirmed=True), Position(YES, "0xbin", D("3"), D("1.5"))) is True
        assert await store.record_fill(replace(f3, confirmed=True), Position(YES, "0xbin", D("3"), D("1.5"))) is False
        assert len(await store.load_fills()) == 3

        await store.save_position(Position(YES, "0xbin", D("3"), D("1"), D("-0.5")))
        [pos] = await world.rows(m.Position)
        assert (pos.size, pos.avg_cost, pos.realised_pnl) == (D("3"), D("0.333333"), D("-0.5"))

        assert await store.get_state("k") is None
        await store.set_state("k", {"armed": True, "by": "a"})
        await store.set_state("k", {"armed": False, "by": "b"})
        assert await store.get_state("k") == {"armed": False, "by": "b"}

        record_alerts(world.bus, store)
        world.bus.publish(Alert(AlertKind.ONE_LEGGED, Severity.CRITICAL, "g1", "one leg", ts=T0))
        await world.bus.drain()
        world.bus.publish(AlertCleared(AlertKind.ONE_LEGGED, "g1", "ok", ts=T0 + 5))
        await world.bus.drain()
        [alert] = await world.rows(m.Alert)
        assert (alert.kind, alert.severity, alert.key) == ("one_legged", "critical", "g1")
        assert alert.resolved_at is not None and alert.resolved_at.timestamp() == T0 + 5
    finally:
        await world.close()
