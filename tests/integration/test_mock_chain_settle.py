"""Merge and redeem through the chain double move the CLOB double's ledger: what the venue's
``GET /balance-allowance`` answers (read here through the project's live CLOB relayer) changes
with each mined settlement, and a call that cannot apply is mined with status 0 and moves nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from core.execution.relayers.clob import ClobRelayer
from core.sim.mock_chain import MinedTx, MockChain
from core.sim.mock_clob import MockClobServer, MockMarket
from tests.chain_double import (
    ADDRESS,
    CTF,
    CTF_ADAPTER,
    KEY,
    NEG_RISK_ADAPTER,
    PUSD,
    Rpc,
    calldata,
    merge_data,
    redeem_data,
    signed,
)


@dataclass
class Venue:
    clob: MockClobServer
    chain: MockChain
    rpc: Rpc
    relayer: ClobRelayer
    binary: MockMarket
    negrisk: MockMarket
    nonce: int = 0

    async def mine(self, to: str, data: bytes, **kw: Any) -> MinedTx:
        """Send one transaction at the next nonce; the double mines it at once."""
        tx_hash = await self.rpc.send(signed(to, data, self.nonce, **kw))
        self.nonce += 1
        receipt = await self.rpc.receipt(tx_hash)
        assert receipt is not None
        tx = self.chain.txs[tx_hash]
        assert isinstance(tx, MinedTx) and receipt["status"] == hex(tx.status or 0)
        return tx

    async def balances(self, market: MockMarket) -> tuple[Decimal, Decimal, Decimal]:
        """(pUSD, YES, NO) as the CLOB double reports them."""
        yes, no = market.tokens[0][0], market.tokens[1][0]
        return (
            await self.relayer.collateral_balance(),
            await self.relayer.token_balance(yes),
            await self.relayer.token_balance(no),
        )


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    async with MockClobServer(confirm_delay_s=0.05) as clob:
        chain = MockChain.beside(clob)
        rpc = Rpc(await chain.start())
        relayer = ClobRelayer(clob.url, 137, KEY, dry_run=False, derive_api_key=True, heartbeat_interval_s=0)
        await relayer.start()
        binary = next(m for m in clob.markets.values() if not m.neg_risk)
        negrisk = next(m for m in clob.markets.values() if m.neg_risk)
        clob.set_balance(ADDRESS, Decimal(10))
        for market in (binary, negrisk):
            clob.give_shares(ADDRESS, market.tokens[0][0], Decimal(20))
            clob.give_shares(ADDRESS, market.tokens[1][0], Decimal("12.5"))
        try:
            yield Venue(clob, chain, rpc, relayer, binary, negrisk)
        finally:
            await relayer.close()
            await rpc.aclose()
            await chain.close()


async def test_a_merge_moves_what_the_venue_reports(venue: Venue) -> None:
    assert await venue.balances(venue.binary) == (Decimal(10), Decimal(20), Decimal("12.5"))
    tx = await venue.mine(CTF_ADAPTER, merge_data(venue.binary.condition_id, 12_345_678))
    assert tx.status == 1
    assert await venue.balances(venue.binary) == (Decimal("22.345678"), Decimal("7.654322"), Decimal("0.154322"))
    tx = await venue.mine(NEG_RISK_ADAPTER, merge_data(venue.negrisk.condition_id, 12_500_000))
    assert tx.status == 1
    assert await venue.balances(venue.negrisk) == (Decimal("34.845678"), Decimal("7.5"), Decimal(0))


async def test_a_redeem_pays_the_winning_shares_once_resolved(venue: Venue) -> None:
    cid = venue.binary.condition_id
    unresolved = await venue.mine(CTF_ADAPTER, redeem_data(cid))
    assert unresolved.status == 0 and unresolved.revert_reason == "result for condition not received yet"
    assert await venue.balances(venue.binary) == (Decimal(10), Decimal(20), Decimal("12.5"))
    venue.chain.resolve(cid, venue.binary.tokens[1][0])  # NO won
    assert (await venue.mine(CTF_ADAPTER, redeem_data(cid))).status == 1
    assert await venue.balances(venue.binary) == (Decimal("22.5"), Decimal(0), Decimal(0))
    again = await venue.mine(CTF_ADAPTER, redeem_data(cid))  # nothing left: pays nothing, like the CTF
    assert again.status == 1 and await venue.balances(venue.binary) == (Decimal("22.5"), Decimal(0), Decimal(0))


async def test_calls_that_cannot_apply_are_mined_reverted_and_move_nothing(venue: Venue) -> None:
    cid = venue.binary.condition_id
    before = await venue.balances(venue.binary)
    cases = [
        (CTF_ADAPTER, merge_data(cid, 12_500_001), "ERC1155: burn amount exceeds balance"),
        (CTF_ADAPTER, merge_data("0x" + "77" * 32, 1), "condition not prepared yet"),
        (CTF_ADAPTER, merge_data(cid, 1, partition=(1,)), "got invalid index set"),
        (NEG_RISK_ADAPTER, merge_data(cid, 1), "mock chain: condition is not neg-risk, use CtfCollateralAdapter"),
        (CTF_ADAPTER, b"\xde\xad\xbe\xef", None),  # no such function: a bare revert
        ("0x000000000000000000000000000000000000dEaD", merge_data(cid, 1), "mock chain: no contract at"),
    ]
    for to, data, reason in cases:
        tx = await venue.mine(to, data)
        assert tx.status == 0, (to, reason)
        assert (tx.revert_reason or "").startswith(reason or "") and (reason is not None or tx.revert_reason is None)
    out_of_gas = await venue.mine(CTF_ADAPTER, merge_data(cid, 1), gas=60_000)
    assert out_of_gas.status == 0 and out_of_gas.revert_reason == "out of gas" and out_of_gas.gas_used == 60_000
    assert await venue.balances(venue.binary) == before
    assert venue.chain.nonce_of(ADDRESS) == len(cases) + 1  # reverted transactions still use their nonce


async def test_the_adapter_needs_the_ctf_approval(venue: Venue) -> None:
    cid = venue.binary.condition_id
    venue.chain.set_approval(ADDRESS, CTF_ADAPTER, False)
    denied = await venue.mine(CTF_ADAPTER, merge_data(cid, 1_000_000))
    assert denied.status == 0 and denied.revert_reason == "ERC1155: need operator approval for 3rd party transfers."
    approve = calldata("setApprovalForAll(address,bool)", ["address", "bool"], [CTF_ADAPTER, True])
    approval = await venue.mine(CTF, approve)
    assert approval.status == 1 and approval.function == "setApprovalForAll(address,bool)"
    assert approval.args == {"operator": CTF_ADAPTER, "approved": True}
    assert (await venue.mine(CTF_ADAPTER, merge_data(cid, 1_000_000))).status == 1
    assert await venue.balances(venue.binary) == (Decimal(11), Decimal(19), Decimal("11.5"))


async def test_a_pusd_approve_is_recorded(venue: Venue) -> None:
    venue.chain.world.default_approved = False
    read = calldata("allowance(address,address)", ["address", "address"], [ADDRESS, CTF_ADAPTER])
    assert int(await venue.rpc.call("eth_call", {"to": PUSD, "data": "0x" + read.hex()}, "latest"), 16) == 0
    approve = calldata("approve(address,uint256)", ["address", "uint256"], [CTF_ADAPTER, 5_000_000])
    assert (await venue.mine(PUSD, approve)).status == 1
    assert int(await venue.rpc.call("eth_call", {"to": PUSD, "data": "0x" + read.hex()}, "latest"), 16) == 5_000_000
