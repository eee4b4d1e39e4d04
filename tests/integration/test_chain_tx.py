"""TxManager against the chain double, journaled in a real database (SQLite and PostgreSQL):
confirmed, reverted, refused by the caps or the estimate, replaced when stuck, STUCK when it
cannot be replaced, concurrent sends on distinct nonces, 429s and timeouts from the node, and a
dry run that sends nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.chain.calls import merge_call, redeem_call
from core.chain.dry_run import DryRunTxSender
from core.chain.journal import JournalStatus
from core.chain.rpc import JsonRpc
from core.chain.signing import Signer, decode_signed
from core.chain.tx import TxManager
from core.chain.types import TxStatus
from core.settings.sections import ChainSettings
from core.sim.mock_chain import MockChain
from core.store import models as m
from core.store.chain_txs import SqlTxJournal
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_to_head

KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # a well-known test key
ADDRESS = Signer(KEY).address
CONDITION = "0x" + "c1" * 32
YES, NO = "1001", "1002"
GWEI = 10**9
FAST = {"confirmations": 2, "replace_after_s": 0.4, "receipt_timeout_s": 4.0}


@dataclass
class Rig:
    chain: MockChain
    journal: SqlTxJournal
    engine: AsyncEngine
    url: str
    managers: list[TxManager]

    def manager(
        self, *, chain_id: int = 137, signature_type: int = 0, rpc_timeout_s: float = 5.0, **chain: Any
    ) -> TxManager:
        settings = ChainSettings(**{**FAST, **chain})
        rpc = JsonRpc(self.url, timeout_s=rpc_timeout_s)
        tm = TxManager(
            rpc,
            self.journal,
            Signer(KEY),
            chain_id=chain_id,
            chain=settings,
            signature_type=signature_type,
            poll_s=0.05,
        )
        self.managers.append(tm)
        return tm

    def held(self) -> tuple[Decimal, Decimal, Decimal]:
        ledger = self.chain.ledger
        return ledger.cash(ADDRESS), ledger.held(ADDRESS, YES), ledger.held(ADDRESS, NO)

    async def audit(self) -> list[tuple[str, str]]:
        async with session_factory(self.engine)() as s:
            rows = await s.scalars(select(m.ExecAudit).order_by(m.ExecAudit.id))
            return [(r.action, r.outcome) for r in rows]


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    await upgrade_to_head(db_url)
    engine = create_engine(db_url)
    chain = MockChain(blocks_per_receipt_poll=1)  # each receipt poll adds a block: confirmations come alone
    chain.add_market(CONDITION, YES, NO)
    chain.ledger.give(ADDRESS, YES, Decimal(10))
    chain.ledger.give(ADDRESS, NO, Decimal(10))
    url = await chain.start()
    r = Rig(chain, SqlTxJournal(session_factory(engine)), engine, url, [])
    try:
        yield r
    finally:
        for tm in r.managers:
            await tm.aclose()
        await chain.close()
        await engine.dispose()


async def test_a_merge_is_journaled_sent_once_and_confirmed(rig: Rig) -> None:
    call = merge_call(CONDITION, 4_000_000, neg_risk=False)
    result = await rig.manager().send(call, purpose="merge", ref=CONDITION)
    assert result.status is TxStatus.CONFIRMED, result.error
    assert rig.chain.sent_raw == 1 and rig.held() == (Decimal(4), Decimal(6), Decimal(6))
    (entry,) = await rig.journal.entries()
    assert entry.status is JournalStatus.CONFIRMED and entry.tx_hash == result.tx_hash
    assert (entry.block_number, entry.gas_used) == (result.block_number, result.gas_used) and entry.gas_used
    fields = decode_signed(entry.raw_tx)  # the journal holds exactly what went to the node
    assert (fields["chainId"], fields["nonce"], fields["from"]) == (137, 0, ADDRESS)
    assert fields["to"] == call.to.lower() and fields["data"] == call.data
    assert fields["maxPriorityFeePerGas"] == 25 * GWEI and fields["maxFeePerGas"] == 85 * GWEI
    assert entry.args[4] == ["amount", 4_000_000] and entry.function.startswith("mergePositions(")
    assert await rig.audit() == [("chain_send", "signed"), ("chain_send", "sent"), ("chain_result", "confirmed")]


async def test_concurrent_sends_never_share_a_nonce(rig: Rig) -> None:
    tm = rig.manager()
    calls = [merge_call(CONDITION, 1_000_000, neg_risk=False) for _ in range(3)]
    results = await asyncio.gather(*(tm.send(c, purpose="merge", ref=f"{CONDITION}#{i}") for i, c in enumerate(calls)))
    assert [r.status for r in results] == [TxStatus.CONFIRMED] * 3
    assert sorted(r.nonce for r in results if r.nonce is not None) == [0, 1, 2]
    assert rig.held() == (Decimal(3), Decimal(7), Decimal(7))


async def test_a_revert_on_chain_is_reported(rig: Rig) -> None:
    rig.chain.faults.revert_next()
    result = await rig.manager().send(merge_call(CONDITION, 1_000_000, neg_risk=False), purpose="merge", ref="r")
    assert result.status is TxStatus.REVERTED and "status 0" in (result.error or "")
    (entry,) = await rig.journal.entries()
    assert entry.status is JournalStatus.REVERTED and rig.held()[0] == 0


async def test_refusals_sign_nothing(rig: Rig) -> None:
    too_much = await rig.manager().send(merge_call(CONDITION, 50_000_000, neg_risk=False), purpose="merge", ref="x")
    assert too_much.status is TxStatus.REFUSED and "burn amount exceeds balance" in (too_much.error or "")
    unresolved = await rig.manager().send(redeem_call(CONDITION, neg_risk=False), purpose="redeem", ref="x")
    assert unresolved.status is TxStatus.REFUSED and "not received yet" in (unresolved.error or "")
    gas = await rig.manager(gas_limit_cap=100_000).send(
        merge_call(CONDITION, 1, neg_risk=False), purpose="merge", ref="x"
    )
    assert gas.status is TxStatus.REFUSED and "gas_limit_cap" in (gas.error or "")
    rig.chain.set_base_fee(600 * GWEI)
    fee = await rig.manager().send(merge_call(CONDITION, 1, neg_risk=False), purpose="merge", ref="x")
    assert fee.status is TxStatus.REFUSED and "base fee 600 gwei alone exceeds" in (fee.error or "")
    other_chain = await rig.manager(chain_id=80002).send(
        merge_call(CONDITION, 1, neg_risk=False), purpose="merge", ref="x"
    )
    assert other_chain.status is TxStatus.REFUSED and "on chain 137, relayer.chain_id is 80002" in (
        other_chain.error or ""
    )
    before = rig.chain.http_requests
    safe = await rig.manager(signature_type=2).send(merge_call(CONDITION, 1, neg_risk=False), purpose="merge", ref="x")
    assert safe.status is TxStatus.REFUSED and "polymarket.com" in (safe.error or "")
    assert rig.chain.http_requests == before  # the wallet type is refused before asking the node anything
    assert rig.chain.sent_raw == 0 and await rig.journal.entries() == []
    assert [a for a in await rig.audit()] == [("chain_refused", "refused")] * 6


async def test_a_stuck_transaction_is_replaced_and_the_replacement_settles_the_nonce(rig: Rig) -> None:
    rig.chain.faults.stick_next()
    result = await rig.manager().send(merge_call(CONDITION, 2_000_000, neg_risk=False), purpose="merge", ref="s")
    assert result.status is TxStatus.CONFIRMED, result.error
    assert len(result.attempts) == 2 and result.tx_hash == result.attempts[1] and rig.chain.sent_raw == 2
    first, second = await rig.journal.entries()
    assert (first.status, second.status) == (JournalStatus.REPLACED, JournalStatus.CONFIRMED)
    assert second.replaces == first.tx_hash and first.nonce == second.nonce == 0
    assert second.max_priority_fee_per_gas == first.max_priority_fee_per_gas * 115 // 100
    assert second.max_fee_per_gas > first.max_fee_per_gas
    assert rig.held() == (Decimal(2), Decimal(8), Decimal(8))  # merged once
    assert ("chain_replace", "sent") in await rig.audit()


async def test_stuck_within_the_caps_is_reported_and_kept_open_then_reconciled(rig: Rig) -> None:
    rig.chain.faults.stick_next()
    # a cap at the first fees leaves no room for a replacement
    tm = rig.manager(max_fee_gwei=Decimal(85), max_priority_fee_gwei=Decimal(25), receipt_timeout_s=1.2)
    result = await tm.send(merge_call(CONDITION, 2_000_000, neg_risk=False), purpose="merge", ref="s")
    assert result.status is TxStatus.STUCK and "not confirmed within 1.2 s" in (result.error or "")
    assert rig.chain.sent_raw == 1 and ("chain_replace", "capped") in await rig.audit()
    (entry,) = await rig.journal.pending()
    assert entry.status is JournalStatus.STUCK
    rig.chain.release()
    rig.chain.mine(3)
    report = await tm.reconcile()
    assert [(i.before, i.after) for i in report.items] == [("stuck", "confirmed")]
    assert await rig.journal.pending() == [] and rig.chain.sent_raw == 1


async def test_rate_limits_and_timeouts_from_the_node_are_ridden_out(rig: Rig) -> None:
    rig.chain.faults.rate_limit_next(2, retry_after_s=0.1)
    result = await rig.manager().send(merge_call(CONDITION, 1_000_000, neg_risk=False), purpose="merge", ref="a")
    assert result.status is TxStatus.CONFIRMED and rig.chain.faults.rate_limits == 2
    rig.chain.faults.timeout_next(1, hold_s=5.0)
    result = await rig.manager(rpc_timeout_s=0.3).send(
        merge_call(CONDITION, 1_000_000, neg_risk=False), purpose="merge", ref="b"
    )
    assert result.status is TxStatus.CONFIRMED and rig.chain.faults.timeouts_served == 1
    assert rig.chain.sent_raw == 2 and rig.held()[0] == 2


async def test_a_dry_run_estimates_and_sends_nothing(rig: Rig) -> None:
    rpc = JsonRpc(rig.url)
    sender = DryRunTxSender(ChainSettings(**FAST), chain_id=137, rpc=rpc, sender=ADDRESS, journal=rig.journal)
    try:
        ok = await sender.send(merge_call(CONDITION, 3_000_000, neg_risk=False), purpose="merge", ref="d")
        bad = await sender.send(merge_call(CONDITION, 30_000_000, neg_risk=False), purpose="merge", ref="d")
    finally:
        await sender.aclose()
    assert ok.status is TxStatus.DRY_RUN and ok.gas_limit and ok.gas_limit > 21_000 and ok.error is None
    assert bad.status is TxStatus.REFUSED and "burn amount exceeds balance" in (bad.error or "")
    assert rig.chain.sent_raw == 0 and rig.chain.method_counts["eth_sendRawTransaction"] == 0
    assert await rig.journal.entries() == [] and rig.held() == (Decimal(0), Decimal(10), Decimal(10))
    assert await rig.audit() == [("chain_dry_run", "dry_run"), ("chain_dry_run", "refused")]
