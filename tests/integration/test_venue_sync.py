"""Venue sync against the doubles over real sockets (SQLite and PostgreSQL): the engine trades at the
CLOB double, the Data API double lists what the CLOB double's ledger holds, and the sync compares
that with the engine's positions. A position set at the venue only raises ONE ``position_mismatch``;
the next cycle does not repeat it; when the two agree again ONE clear follows. Faults: a 429 with
Retry-After is waited out; a malformed answer is a clear error, counted, and changes no alert."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal as D

import pytest

from core.app.venue_sync import KIND, VenueSync
from core.events import Alert, AlertCleared
from core.execution.relayers.clob import ClobRelayer
from core.markets.data_api import DataApiClient
from core.registry import MarketRegistry
from core.sim.mock_clob import MockClobServer
from core.sim.mock_data_api import MockDataApiServer
from core.types import Intent, MarketInfo, Mode, OrderType, Side
from tests.integration.engine_world import World


async def wait_until(pred: Callable[[], bool], limit_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def data_api(clob_server: MockClobServer) -> AsyncIterator[MockDataApiServer]:
    async with MockDataApiServer.over(clob_server) as srv:
        yield srv


def mismatch_alerts(world: World) -> list[Alert]:
    return [e for e in world.recorder.of(Alert) if e.kind == KIND]


def mismatch_clears(world: World) -> list[AlertCleared]:
    return [e for e in world.recorder.of(AlertCleared) if e.kind == KIND]


async def test_a_venue_only_position_alerts_once_and_clears_once(
    world: World,
    clob_server: MockClobServer,
    clob_venue: tuple[ClobRelayer, MarketInfo],
    data_api: MockDataApiServer,
) -> None:
    relayer, market = clob_venue
    yes = market.tokens[0].token_id
    engine = await world.engine()
    client = DataApiClient(data_api.url, timeout_s=2)
    sync = VenueSync(client, relayer.maker, engine.positions, MarketRegistry([market]), world.bus)
    try:
        # a trade at the CLOB double: the engine buys 10 YES crossing the venue's ask
        buy = Intent(market.condition_id, yes, Side.BUY, D("0.52"), D("10"), OrderType.FAK)
        assert (await engine.submit(buy, market)).ok
        await wait_until(lambda: any(t.status == "CONFIRMED" for t in clob_server.trades.values()), what="settled")
        await relayer.resync()  # no user channel here: the fill comes from the venue's trades over REST
        position = engine.positions.get(yes)
        assert position is not None and position.shares == 10
        first = await sync.run()
        assert first.ok and first.venue_positions == 1 and first.differences == ()  # the trade shows at the venue
        assert mismatch_alerts(world) == []

        data_api.set_position(relayer.maker, yes, D("25"))  # 15 more bought on the website
        second = await sync.run()
        assert [(d.ours, d.venue) for d in second.differences] == [(D("10"), D("25"))]
        (alert,) = mismatch_alerts(world)
        assert "mock-binary Yes" in alert.message and "10" in alert.message and "25" in alert.message

        await sync.run()  # unchanged: not alerted again
        assert len(mismatch_alerts(world)) == 1 and mismatch_clears(world) == []

        data_api.set_position(relayer.maker, yes, D("10.01"))  # sold on the website; one size tick off
        agreed = await sync.run()
        assert agreed.ok and agreed.differences == ()
        (cleared,) = mismatch_clears(world)
        assert cleared.key == alert.key
        await sync.run()
        assert len(mismatch_alerts(world)) == 1 and len(mismatch_clears(world)) == 1
    finally:
        await client.aclose()


async def test_faults_are_waited_out_or_reported_never_raised(
    world: World,
    clob_server: MockClobServer,
    clob_venue: tuple[ClobRelayer, MarketInfo],
    data_api: MockDataApiServer,
) -> None:
    relayer, market = clob_venue
    no = market.tokens[1].token_id
    engine = await world.engine()
    client = DataApiClient(data_api.url, timeout_s=2, max_retries=2, backoff_s=0.01)
    sync = VenueSync(client, relayer.maker, engine.positions, MarketRegistry([market]), world.bus)
    try:
        data_api.set_position(relayer.maker, no, D("7"))
        data_api.inject("429", retry_after="0.3")
        started = time.monotonic()
        report = await sync.run()
        assert time.monotonic() - started >= 0.3  # Retry-After honoured, not the 0.01 s backoff
        assert report.ok and [d.venue for d in report.differences] == [D("7")]
        assert data_api.statuses[429] == 1 and client.stats.retries == 1
        assert len(mismatch_alerts(world)) == 1

        data_api.inject("malformed")
        broken = await sync.run()
        assert not broken.ok and "malformed" in broken.error
        assert client.stats.malformed == 1 and sync.counters.errors == 1
        assert [d.venue for d in broken.differences] == [D("7")]  # the last good comparison stands
        assert len(mismatch_alerts(world)) == 1 and mismatch_clears(world) == []  # no alert change

        data_api.inject("500", count=3)  # more than the retries allowed
        assert not (await sync.run()).ok and sync.counters.errors == 2
        assert (await sync.run()).ok and len(mismatch_alerts(world)) == 1

        quick = DataApiClient(data_api.url, timeout_s=0.3, max_retries=1, backoff_s=0.01)
        try:
            data_api.inject("hang", delay_s=10)  # no answer: the client's timeout, then a retry that works
            assert [p.asset for p in await quick.positions(relayer.maker)] == [no]
            assert quick.stats.failures["timeout"] == 1
        finally:
            await quick.aclose()
    finally:
        await client.aclose()


async def test_a_live_service_syncs_at_start_and_shows_the_venue_in_positions(
    db_url: str, clob_server: MockClobServer, data_api: MockDataApiServer
) -> None:
    from eth_account import Account

    from core.service import Service, ServiceOptions
    from core.settings import load_settings
    from polybot.sandbox import THROWAWAY_KEY, environment, exchange_settings, mode_settings

    maker = Account.from_key(THROWAWAY_KEY).address
    market = next(m for m in clob_server.markets.values() if not m.neg_risk)
    token, outcome = market.tokens[0]
    data_api.set_position(maker, token, D("12"))  # bought on the website
    values = {
        **exchange_settings(clob=clob_server),
        **mode_settings(Mode.LIVE, clob_server),
        "db__url": db_url,
        "data_api__url": data_api.url,
        "telegram__enabled": "false",
        "metrics__enabled": "false",
    }
    service = Service(load_settings(None, env=environment(values)), ServiceOptions(migrate=True, with_bot=False))
    seen: list[Alert] = []
    service.bus.subscribe(Alert, lambda a: seen.append(a) if a.kind == KIND else None)
    await service.start()
    try:
        await wait_until(lambda: len(seen) == 1, what="the start-up sync's alert")
        assert "Polybot holds 0 shares, the venue 12" in seen[0].message and outcome in seen[0].message
        rows = await service.control.positions()
        assert [(r.token_id, r.size, r.venue) for r in rows] == [(token, D(0), D(12))]
        assert [r.path for r in data_api.requests] == ["/positions"]
        assert data_api.requests[0].param("user") == maker
    finally:
        await asyncio.wait_for(service.stop(), 30)


async def test_the_clob_double_answers_positions_from_its_ledger(clob_server: MockClobServer) -> None:
    holder = "0x00000000000000000000000000000000000000Aa"
    market = next(m for m in clob_server.markets.values() if not m.neg_risk)
    clob_server.give_shares(holder, market.tokens[1][0], D("3.5"))
    client = DataApiClient(clob_server.url, timeout_s=2)
    try:
        (held,) = await client.positions(holder.lower())
    finally:
        await client.aclose()
    assert (held.asset, held.size, held.outcome, held.conditionId) == (
        market.tokens[1][0],
        D("3.5"),
        market.tokens[1][1],
        market.condition_id,
    )
