"""Every model round-trips through real SQLite and PostgreSQL; money exact, timestamps UTC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.store import repo
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_engine
from core.store.models import (
    Alert,
    BookDelta,
    BookSnapshot,
    ChainTx,
    CommandAudit,
    ControlRequest,
    ExecAudit,
    Fill,
    Market,
    Order,
    Position,
    State,
    Token,
    Trade,
)

T0 = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    await upgrade_engine(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


def _samples() -> list[Any]:
    market = Market(
        condition_id="0x" + "ab" * 32,
        question="Will it rain in Paris on 1 May?",
        slug="rain-paris-may-1",
        event_id="12345",
        neg_risk_market_id="0x" + "cd" * 32,
        neg_risk=True,
        neg_risk_augmented=True,
        tick_size=Decimal("0.001"),
        min_order_size=Decimal("5"),
        fee_rate=Decimal("0.07"),
        fee_schedule={"rate": "0.07", "exponent": 1, "takerOnly": True, "rebateRate": "0.2"},
        end_date=T0 + timedelta(days=30),
        active=True,
        closed=False,
        raw={"outcomes": '["Yes", "No"]', "nested": {"a": [1, 2, 3]}},
        updated_at=T0,
    )
    market.tokens = [
        Token(token_id="1" * 77, condition_id=market.condition_id, outcome="Yes", outcome_index=0),
        Token(token_id="2" * 77, condition_id=market.condition_id, outcome="No", outcome_index=1),
    ]
    return [
        market,
        BookSnapshot(
            asset_id="1" * 77,
            market=market.condition_id,
            bids=[["0.48", "100"], ["0.49", "20.5"]],
            asks=[["0.52", "30"], ["0.51", "10"]],
            tick_size=Decimal("0.01"),
            hash="0xhash",
            exchange_ts=1_746_100_800_123,
            receive_ts=1_746_100_800_123_456_789,
        ),
        BookDelta(
            asset_id="1" * 77,
            market=market.condition_id,
            side="BUY",
            price=Decimal("0.491"),
            size=Decimal("0"),
            best_bid=Decimal("0.49"),
            best_ask=Decimal("0.51"),
            hash="h1",
            exchange_ts=1_746_100_800_124,
            receive_ts=1_746_100_800_124_000_001,
        ),
        Trade(
            asset_id="1" * 77,
            market=market.condition_id,
            price=Decimal("0.51"),
            size=Decimal("219.217767"),
            side="BUY",
            fee_rate_bps=0,
            transaction_hash="0x" + "ef" * 32,
            exchange_ts=1_746_100_800_125,
            receive_ts=1_746_100_800_125_000_000,
        ),
        Order(
            client_order_id="cid-1",
            venue_order_id="0xvenue",
            order_hash="0xorderhash",
            market=market.condition_id,
            token_id="1" * 77,
            side="BUY",
            price=Decimal("0.45"),
            size=Decimal("10.5"),
            order_type="GTC",
            post_only=True,
            status="live",
            mode="dry-run",
            group_id="dutch-1",
            reason="dutch book leg",
            signed_order={"salt": "123", "makerAmount": "4725000", "signature": "0xsig"},
            error=None,
            filled_size=Decimal("2.5"),
            avg_price=Decimal("0.449999"),
            created_at=T0,
            updated_at=T0,
        ),
        Fill(
            client_order_id="cid-1",
            venue_order_id="0xvenue",
            trade_id="trade-1",
            token_id="1" * 77,
            side="BUY",
            price=Decimal("0.45"),
            size=Decimal("2.5"),
            fee=Decimal("0.00012"),
            status="matched",
            ts=T0,
        ),
        Position(
            token_id="1" * 77,
            market=market.condition_id,
            size=Decimal("2.5"),
            avg_cost=Decimal("0.45"),
            realised_pnl=Decimal("-0.000001"),
            updated_at=T0,
        ),
        ExecAudit(
            ts=T0,
            client_order_id="cid-1",
            action="place",
            attempt=2,
            request={"side": "BUY", "price": "0.45", "size": "10.5"},
            outcome="retryable",
            error_class="429",
            error="rate limited",
            latency_ms=12.5,
            mode="dry-run",
        ),
        Alert(ts=T0, kind="feed_stale", severity="warning", key="1" * 77, message="no update 30s", resolved_at=None),
        CommandAudit(
            ts=T0,
            front_end="telegram",
            user_id="123456789",
            command="arm",
            arguments=["--confirm"],
            result="ok",
            detail="armed by owner",
        ),
        State(key="armed", value={"armed": True, "by": "123456789"}, updated_at=T0),
        ControlRequest(
            action="kill",
            requested_by="cli:ops",
            reason="feed looks wrong",
            created=T0,
            expires=T0 + timedelta(seconds=15),
            status="done",
            handled_by="host:4242:abc123",
            handled_at=T0 + timedelta(seconds=1),
            ok=False,
            result="killed: disarmed, 1 order(s) canceled, 1 NOT canceled: cid-2: 404",
        ),
        ChainTx(
            created=T0,
            updated=T0 + timedelta(seconds=9),
            purpose="merge",
            ref="0x" + "ab" * 32,
            sender="0x" + "12" * 20,
            chain_id=137,
            nonce=2**40,  # BigInteger: beyond 32 bits
            tx_hash="0x" + "cd" * 32,
            raw_tx="0x02f8" + "00" * 100,
            to_address="0xAdA100Db00Ca00073811820692005400218FcE1f",
            function="mergePositions(address,bytes32,bytes32,uint256[],uint256)",
            args=[["partition", [1, 2]], ["amount", "10000000"]],
            gas_limit=193_200,
            max_fee_per_gas=500 * 10**9,
            max_priority_fee_per_gas=30 * 10**9,
            status="confirmed",
            replaces="0x" + "ef" * 32,
            error=None,
            gas_used=161_000,
            block_number=2**33,
        ),
    ]


def _columns(obj: Any) -> dict[str, Any]:
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns if c.key != "id"}


async def test_every_model_roundtrips(engine: AsyncEngine) -> None:
    samples = _samples()
    expected = [(type(o), _columns(o)) for o in samples]
    expected_tokens = [_columns(t) for t in samples[0].tokens]
    sessions = session_factory(engine)
    async with sessions() as s:
        s.add_all(samples)
        await s.commit()
    async with sessions() as s:  # a fresh session: values come from the database
        for model, cols in expected:
            got = (await s.execute(select(model))).scalars().one()
            assert _columns(got) == cols, model.__name__
            for key, value in cols.items():
                if isinstance(value, Decimal | datetime):
                    assert type(getattr(got, key)) is type(value), (model.__name__, key)
        market = (await s.execute(select(Market))).scalars().one()
        assert [_columns(t) for t in market.tokens] == expected_tokens
    seen_tables = {m.__tablename__ for m, _ in expected} | {"tokens"}
    assert seen_tables == set(Market.metadata.tables)


@pytest.mark.parametrize("value", ["0.123456", "123456789.000001", "0.000001", "-0.000001", "99999999.999999"])
async def test_decimal_money_is_exact(engine: AsyncEngine, value: str) -> None:
    sessions = session_factory(engine)
    async with sessions() as s:
        s.add(Position(token_id="t", market="m", size=Decimal(value), avg_cost=Decimal(value)))
        await s.commit()
    async with sessions() as s:
        pos = await s.get(Position, "t")
        assert pos is not None
        assert pos.size == Decimal(value) and str(pos.size.normalize()) == str(Decimal(value).normalize())
        # arithmetic in SQL stays exact too (integer units on SQLite, NUMERIC on PostgreSQL)
        total = (await s.execute(select(Position.size + Position.avg_cost))).scalar_one()
        assert total == 2 * Decimal(value)
        stored = (await s.execute(text("SELECT size FROM positions"))).scalar_one()
        if engine.dialect.name == "sqlite":
            assert stored == int(Decimal(value).scaleb(6))  # integer micro-units, never a float
        else:
            assert stored == Decimal(value)


async def test_float_money_is_refused(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s:
        s.add(Position(token_id="t", market="m", size=0.1))  # type: ignore[arg-type]
        with pytest.raises(StatementError, match="float"):
            await s.commit()


async def test_client_order_id_is_unique(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)

    def order(cid: str) -> Order:
        return Order(
            client_order_id=cid,
            market="m",
            token_id="t",
            side="SELL",
            price=Decimal("0.5"),
            size=Decimal("5"),
            status="new",
            mode="paper",
        )

    async with sessions() as s:
        s.add(order("same"))
        await s.commit()
    async with sessions() as s:
        s.add(order("same"))
        with pytest.raises(IntegrityError):
            await s.commit()
    async with sessions() as s:
        s.add(order("other"))
        await s.commit()
        assert len((await s.execute(select(Order))).scalars().all()) == 2


async def test_same_trade_fill_cannot_be_stored_twice(engine: AsyncEngine) -> None:
    row = {
        "client_order_id": "cid",
        "trade_id": "tr-9",
        "token_id": "t",
        "side": "BUY",
        "price": Decimal("0.4"),
        "size": Decimal("3"),
        "status": "matched",
        "ts": T0,
    }
    async with engine.begin() as conn:
        await conn.execute(Fill.__table__.insert(), [row])
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(Fill.__table__.insert(), [row])
    # the idempotent path: upsert moves the fill to confirmed instead of adding a row
    async with engine.begin() as conn:
        await repo.upsert_rows(conn, Fill.__table__, [{**row, "status": "confirmed"}], ["client_order_id", "trade_id"])
        await repo.upsert_rows(conn, Fill.__table__, [{**row, "status": "confirmed"}], ["client_order_id", "trade_id"])
    async with session_factory(engine)() as s:
        fills = (await s.execute(select(Fill))).scalars().all()
        assert [(f.trade_id, f.status) for f in fills] == [("tr-9", "confirmed")]


async def test_timestamps_are_utc_aware(engine: AsyncEngine) -> None:
    tokyo = datetime(2026, 5, 1, 21, 0, tzinfo=timezone(timedelta(hours=9)))
    sessions = session_factory(engine)
    async with sessions() as s:
        s.add(Alert(ts=tokyo, kind="k", key="a", message="m"))
        s.add(Alert(kind="k", key="b", message="defaulted ts"))
        await s.commit()
    async with sessions() as s:
        alerts = {a.key: a for a in (await s.execute(select(Alert))).scalars()}
        assert alerts["a"].ts == tokyo and alerts["a"].ts.tzinfo == UTC and alerts["a"].ts.hour == 12
        assert alerts["b"].ts.tzinfo == UTC
        assert abs(datetime.now(UTC) - alerts["b"].ts) < timedelta(minutes=5)
        # ordering and comparison in SQL work on the stored UTC values
        later = (await s.execute(select(Alert.key).where(Alert.ts > tokyo))).scalars().all()
        assert later == ["b"]


async def test_naive_timestamp_is_refused(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s:
        s.add(Alert(ts=datetime(2026, 1, 1), kind="k", message="m"))
        with pytest.raises(StatementError, match="naive"):
            await s.commit()


async def test_token_needs_its_market(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s:
        s.add(Token(token_id="orphan", condition_id="0xmissing", outcome="Yes"))
        with pytest.raises(IntegrityError):
            await s.commit()


async def test_state_helpers_and_armed_flag(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions() as s:
        assert await repo.is_armed(s) is False
        await repo.set_state(s, "armed", {"armed": True, "by": "cli"})
        await s.commit()
    async with sessions() as s:
        assert await repo.is_armed(s) is True
        await repo.set_state(s, "armed", False)
        await repo.set_state(s, "mode", "paper")
        await s.commit()
    async with sessions() as s:
        assert await repo.is_armed(s) is False
        assert await repo.get_state(s, "mode") == "paper"
        assert await repo.get_state(s, "missing", default=42) == 42
        assert await repo.count_rows(s, State.__table__) == 2


async def test_market_upsert_is_idempotent(engine: AsyncEngine) -> None:
    rows = [
        {
            "condition_id": f"0x{i:02d}",
            "question": f"q{i}",
            "slug": f"s{i}",
            "tick_size": Decimal("0.01"),
            "updated_at": T0,
        }
        for i in range(3)
    ]
    for _ in range(2):
        async with engine.begin() as conn:
            assert await repo.upsert_rows(conn, Market.__table__, rows, ["condition_id"]) == 3
    async with engine.begin() as conn:
        changed = [{**rows[0], "question": "renamed"}]
        await repo.upsert_rows(conn, Market.__table__, changed, ["condition_id"])
        count = (await conn.execute(text("SELECT count(*) FROM markets"))).scalar()
        renamed = (await conn.execute(select(Market.question).where(Market.condition_id == "0x00"))).scalar()
    assert (count, renamed) == (3, "renamed")


@pytest.mark.parametrize(("column", "value"), [("action", "arm"), ("status", "running")])
async def test_control_request_action_and_status_are_checked(engine: AsyncEngine, column: str, value: str) -> None:
    fields: dict[str, Any] = {
        "action": "disarm",
        "requested_by": "cli:ops",
        "reason": "",
        "created": T0,
        "expires": T0,
        "status": "pending",
    }
    fields[column] = value
    async with session_factory(engine)() as s:
        s.add(ControlRequest(**fields))
        with pytest.raises(IntegrityError):
            await s.commit()
