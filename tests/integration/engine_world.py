"""The engine's test world: a real database (``db_url``), the paper relayer on static books, a fake
clock and a sleep that moves it. The ``world`` fixture (tests/integration/conftest.py) builds one;
the ``test_engine_*`` modules drive it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.events import EventBus, Recorder
from core.execution.engine import Engine, OneLegPolicy, ReconcileReport
from core.execution.exposure import ExposureSnapshot, Holding
from core.execution.relayers.paper import FaultPlan, PaperRelayer, StaticBook
from core.execution.risk_gate import RiskGate, RiskLimits
from core.execution.store import SqlExecutionStore
from core.execution.types import Fill, OrderRequest, OrderStatus, Outcome, PlaceResult
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
        gate = RiskGate(limits or RiskLimits.configured(), self.store, self.clock, self.bus)
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


def venue_answers_matched(
    monkeypatch: pytest.MonkeyPatch, world: World, *, killed: frozenset[str] = frozenset()
) -> list[OrderRequest]:
    """The relayer answers every order as the CLOB does a marketable one: matched (our FILLED) at
    once, its trades to follow over the user channel (:func:`venue_fill`); a FOK on a token of
    ``killed`` is not filled (rejected, canceled). The orders posted are appended to the list
    returned. Venue ids are ``0x`` + the client order id."""
    posted: list[OrderRequest] = []

    def matched(req: OrderRequest) -> PlaceResult:
        posted.append(req)
        if req.token_id in killed:
            error = "order couldn't be fully filled. FOK orders are fully filled or killed."
            return PlaceResult(Outcome.REJECTED, status=OrderStatus.CANCELED, error=error)
        return PlaceResult(Outcome.ACCEPTED, venue_order_id=f"0x{req.client_order_id}", status=OrderStatus.FILLED)

    async def place(req: OrderRequest) -> PlaceResult:
        return matched(req)

    async def place_batch(orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        return [matched(o) for o in orders]

    monkeypatch.setattr(world.relayer, "place", place)
    monkeypatch.setattr(world.relayer, "place_batch", place_batch)
    return posted


def venue_fill(req: OrderRequest, trade_id: str, *, confirmed: bool) -> Fill:
    """A trade filling all of ``req``, as the user channel reports it (see :func:`venue_answers_matched`)."""
    return Fill(
        req.client_order_id,
        f"0x{req.client_order_id}",
        req.token_id,
        req.side,
        req.price,
        req.size,
        trade_id=trade_id,
        confirmed=confirmed,
    )
