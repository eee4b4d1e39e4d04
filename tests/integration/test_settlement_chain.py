"""Live settlement through the real TxManager and the chain double (SQLite and PostgreSQL): a
CONFIRMED merge books the paper of record and moves the chain's ledger; a reverted one books
nothing and alerts once; a redeem after resolution pays the winning shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest

from core.app.resolution import Resolution
from core.app.settlement import ALERT_KIND, Settlement
from core.app.settlement_plan import Status
from core.chain.rpc import JsonRpc
from core.chain.signing import Signer
from core.chain.tx import TxManager
from core.events import Alert
from core.execution.engine import Engine
from core.registry import MarketRegistry
from core.settings.sections import ChainSettings
from core.sim.mock_chain import MockChain
from core.store.chain_txs import SqlTxJournal
from core.store.db import session_factory
from core.types import Mode
from tests.integration.engine_world import NO, YES, World
from tests.integration.test_settlement import BIN, Tasks, filled_sets

KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # a well-known test key
ADDRESS = Signer(KEY).address
FAST = ChainSettings(confirmations=2, replace_after_s=0.4, receipt_timeout_s=4.0)


@pytest.fixture
async def chain(world: World) -> AsyncIterator[MockChain]:
    world.books.set(YES, asks=[("0.45", "100")], bids=[("0.43", "100")])
    world.books.set(NO, asks=[("0.50", "100")], bids=[("0.48", "100")])
    double = MockChain(blocks_per_receipt_poll=1)
    double.add_market(BIN.condition_id, YES, NO)
    double.ledger.give(ADDRESS, YES, D(10))
    double.ledger.give(ADDRESS, NO, D(10))
    await double.start()
    try:
        yield double
    finally:
        await double.close()


async def live_settlement(
    world: World, chain: MockChain, resolved: dict[str, Resolution]
) -> tuple[Settlement, Engine, TxManager]:
    engine = await world.engine()
    await filled_sets(engine)
    manager = TxManager(
        JsonRpc(chain.url, timeout_s=5.0),
        SqlTxJournal(session_factory(world.db)),
        Signer(KEY),
        chain_id=137,
        chain=FAST,
        poll_s=0.05,
    )
    s = Settlement(
        mode=Mode.LIVE,
        engine=engine,
        registry=MarketRegistry([BIN]),
        bus=world.bus,
        resolved=resolved,
        spawn=Tasks(),
        sender=manager,
        clock=world.clock,
    )
    return s, engine, manager


async def test_a_confirmed_merge_books_and_moves_the_chain(world: World, chain: MockChain) -> None:
    s, engine, manager = await live_settlement(world, chain, {})
    try:
        [out] = await s.merge(BIN.slug, D(4))
        assert out.status is Status.CONFIRMED, out.message
        assert chain.sent_raw == 1 and out.tx_hash in chain.txs
        assert chain.ledger.cash(ADDRESS) == D(4) and chain.ledger.held(ADDRESS, YES) == D(6)
        assert engine.positions.get(YES).shares == D(6)  # type: ignore[union-attr]
        assert f"merged 4 sets of {BIN.slug}: 4 pUSD returned (transaction {out.tx_hash} confirmed)" == out.message
        # the chain reverts the next one: nothing booked, one alert
        chain.faults.revert_next()
        [bad] = await s.merge(BIN.slug, D(1))
        assert bad.status is Status.REVERTED, bad.message
        assert "transaction reverted" in bad.message and str(bad.tx_hash) in bad.message
        assert engine.positions.get(YES).shares == D(6)  # type: ignore[union-attr]
        alerts = [a for a in world.recorder.of(Alert) if a.kind == ALERT_KIND]
        assert len(alerts) == 1 and alerts[0].message.startswith(f"merge failed: 1 sets of {BIN.slug}: ")
    finally:
        await manager.aclose()


async def test_a_redeem_after_resolution_pays_the_winner(world: World, chain: MockChain) -> None:
    resolved: dict[str, Resolution] = {}
    s, engine, manager = await live_settlement(world, chain, resolved)
    try:
        chain.resolve(BIN.condition_id, YES)
        resolved[BIN.condition_id] = Resolution(BIN.condition_id, YES, "Yes", "feed")
        [out] = await s.redeem()
        assert out.status is Status.CONFIRMED, out.message
        assert chain.ledger.cash(ADDRESS) == D(10) and chain.ledger.held(ADDRESS, NO) == 0
        assert engine.positions.open_positions() == [] and out.pusd == D(10)
    finally:
        await manager.aclose()
