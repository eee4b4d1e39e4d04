"""A crash between "signed and journaled" and "receipt": the next start reconciles by hash and
never signs a new transaction for a journaled call (SQLite and PostgreSQL journals, chain double)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from eth_account import Account

from core.chain.calls import merge_call
from core.chain.journal import JournalStatus, MemoryTxJournal
from core.chain.rpc import JsonRpc
from core.chain.signing import Signer
from core.chain.tx import TxManager
from core.chain.types import TxStatus
from core.settings.sections import ChainSettings
from core.sim.mock_chain import MockChain
from core.store.chain_txs import SqlTxJournal
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_to_head
from tests.integration.test_chain_tx import ADDRESS, CONDITION, FAST, KEY, NO, YES

GWEI = 10**9


class Crash(BaseException):
    """The process dies here: nothing after it runs (not even ``except Exception``)."""


class CrashBeforeSend(JsonRpc):
    async def send_raw_transaction(self, raw: bytes) -> str:
        raise Crash


class CrashAfterSend(JsonRpc):
    async def send_raw_transaction(self, raw: bytes) -> str:
        await super().send_raw_transaction(raw)
        raise Crash


@pytest.fixture
async def chain() -> AsyncIterator[MockChain]:
    chain = MockChain()
    chain.add_market(CONDITION, YES, NO)
    chain.ledger.give(ADDRESS, YES, Decimal(10))
    chain.ledger.give(ADDRESS, NO, Decimal(10))
    await chain.start()
    try:
        yield chain
    finally:
        await chain.close()


@pytest.fixture
async def journal(db_url: str) -> AsyncIterator[SqlTxJournal]:
    await upgrade_to_head(db_url)
    engine = create_engine(db_url)
    try:
        yield SqlTxJournal(session_factory(engine))
    finally:
        await engine.dispose()


def manager(rpc: JsonRpc, journal: SqlTxJournal | MemoryTxJournal, **chain: object) -> TxManager:
    settings = ChainSettings.model_validate({**FAST, **chain})
    return TxManager(rpc, journal, Signer(KEY), chain_id=137, chain=settings, poll_s=0.05)


async def crash_during_send(chain: MockChain, journal: SqlTxJournal, rpc_cls: type[JsonRpc]) -> str:
    tm = manager(rpc_cls(chain.url), journal)
    with pytest.raises(Crash):
        await tm.send(merge_call(CONDITION, 3_000_000, neg_risk=False), purpose="merge", ref=CONDITION)
    await tm.aclose()
    (entry,) = await journal.pending()
    assert entry.status is JournalStatus.SIGNED  # journaled before the broadcast
    return entry.tx_hash


async def test_crash_before_the_broadcast_then_reconcile_sends_the_same_bytes(
    chain: MockChain, journal: SqlTxJournal
) -> None:
    tx_hash = await crash_during_send(chain, journal, CrashBeforeSend)
    assert chain.sent_raw == 0
    tm = manager(JsonRpc(chain.url), journal)
    try:
        report = await tm.reconcile()
        assert report.rebroadcast == [tx_hash] and chain.sent_raw == 1
        assert list(chain.txs) == [tx_hash]  # the very transaction that was journaled, no other
        chain.mine(2)
        report = await tm.reconcile()
        assert [(i.tx_hash, i.after) for i in report.items] == [(tx_hash, "confirmed")]
        assert chain.sent_raw == 1 and chain.ledger.cash(ADDRESS) == 3
        chain.blocks_per_receipt_poll = 1  # the next send takes the next nonce
        follow = await tm.send(merge_call(CONDITION, 1_000_000, neg_risk=False), purpose="merge", ref="next")
        assert (follow.status, follow.nonce, chain.sent_raw) == (TxStatus.CONFIRMED, 1, 2)
    finally:
        await tm.aclose()


async def test_crash_after_the_broadcast_then_reconcile_finds_it_by_hash(
    chain: MockChain, journal: SqlTxJournal
) -> None:
    tx_hash = await crash_during_send(chain, journal, CrashAfterSend)
    assert chain.sent_raw == 1
    chain.mine(2)
    tm = manager(JsonRpc(chain.url), journal)
    try:
        report = await tm.reconcile()
    finally:
        await tm.aclose()
    assert [(i.tx_hash, i.before, i.after) for i in report.items] == [(tx_hash, "signed", "confirmed")]
    assert chain.sent_raw == 1 and report.rebroadcast == []  # nothing sent again, nothing new signed
    assert await journal.pending() == [] and chain.ledger.cash(ADDRESS) == 3
    (entry,) = await journal.entries()
    assert entry.gas_used and entry.block_number


async def test_a_nonce_used_outside_polybot_makes_the_journaled_tx_dropped(
    chain: MockChain, journal: SqlTxJournal
) -> None:
    chain.faults.drop_next()  # the node says "ok" and forgets it
    # caps at the first fees: no replacement, so the nonce stays open in the journal
    tm = manager(JsonRpc(chain.url), journal, max_fee_gwei=85, max_priority_fee_gwei=25, receipt_timeout_s=1.0)
    try:
        result = await tm.send(merge_call(CONDITION, 3_000_000, neg_risk=False), purpose="merge", ref=CONDITION)
    finally:
        await tm.aclose()
    assert result.status is TxStatus.STUCK and [e.status for e in await journal.pending()] == [JournalStatus.STUCK]
    # another wallet app uses nonce 0 of the same key
    other = Account.from_key(KEY).sign_transaction(
        {
            "type": 2,
            "chainId": 137,
            "nonce": 0,
            "to": ADDRESS,
            "value": 0,
            "data": "0x",
            "gas": 21_000,
            "maxFeePerGas": 200 * GWEI,
            "maxPriorityFeePerGas": 30 * GWEI,
        }
    )
    rpc = JsonRpc(chain.url)
    try:
        await rpc.send_raw_transaction(bytes(other.raw_transaction))
        tm = manager(rpc, journal)
        report = await tm.reconcile()
    finally:
        await rpc.aclose()
    assert {i.after for i in report.items} == {"dropped"} and await journal.pending() == []
    assert "outside Polybot" in (report.items[0].note or "") and chain.ledger.cash(ADDRESS) == 0


async def test_a_journal_that_cannot_write_stops_the_send(chain: MockChain) -> None:
    journal = MemoryTxJournal(fail_next_record=True)
    tm = manager(JsonRpc(chain.url), journal)
    try:
        result = await tm.send(merge_call(CONDITION, 1_000_000, neg_risk=False), purpose="merge", ref="j")
    finally:
        await tm.aclose()
    assert result.status is TxStatus.FAILED and "journal could not record it" in (result.error or "")
    assert chain.sent_raw == 0 and journal.entries == {}
