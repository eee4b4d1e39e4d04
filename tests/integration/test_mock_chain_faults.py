"""The chain double's faults (dropped, reverted, stuck transactions; 429; held requests) and the
ways its chain grows on its own (blocks per receipt poll, a block timer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from core.sim.mock_chain import MinedTx, MockChain
from tests.chain_double import ADDRESS, CTF_ADAPTER, GWEI, Rpc, merge_data, signed

CONDITION = "0x" + "cd" * 32
YES, NO = "2001", "2002"


@pytest.fixture
async def chain() -> AsyncIterator[tuple[MockChain, Rpc]]:
    chain = MockChain()
    chain.add_market(CONDITION, YES, NO)
    chain.ledger.give(ADDRESS, YES, Decimal(10))
    chain.ledger.give(ADDRESS, NO, Decimal(10))
    rpc = Rpc(await chain.start())
    try:
        yield chain, rpc
    finally:
        await rpc.aclose()
        await chain.close()


def merge(nonce: int, **kw: Any) -> str:
    return signed(CTF_ADAPTER, merge_data(CONDITION, 1_000_000), nonce, **kw)


async def test_a_dropped_transaction_is_never_seen_again(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    double.faults.drop_next()
    raw = merge(0)
    lost = await rpc.send(raw)
    double.mine(3)
    assert await rpc.receipt(lost) is None and await rpc.call("eth_getTransactionByHash", lost) is None
    assert lost not in double.txs and lost in double.state.dropped
    assert await rpc.call("eth_getTransactionCount", ADDRESS, "pending") == "0x0"
    assert double.faults.dropped == 1 and double.ledger.held(ADDRESS, YES) == 10
    assert await rpc.send(raw) == lost  # a rebroadcast of the same bytes goes through
    receipt = await rpc.receipt(lost)
    assert receipt is not None and receipt["status"] == "0x1" and double.sent_raw == 2


async def test_a_forced_revert_is_mined_with_status_0_and_applies_nothing(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    double.faults.revert_next()
    tx_hash = await rpc.send(merge(0))
    receipt = await rpc.receipt(tx_hash)
    assert receipt is not None and receipt["status"] == "0x0"
    assert double.ledger.held(ADDRESS, YES) == 10 and double.ledger.cash(ADDRESS) == 0
    assert double.faults.reverted == 1 and double.nonce_of(ADDRESS) == 1
    assert (await rpc.receipt(await rpc.send(merge(1))) or {}).get("status") == "0x1"  # the next one applies


async def test_a_stuck_transaction_waits_for_release(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    double.faults.stick_next()
    stuck = await rpc.send(merge(0))
    behind = await rpc.send(merge(1))  # queued behind the stuck nonce
    double.mine(5)
    assert await rpc.receipt(stuck) is None and await rpc.receipt(behind) is None
    assert (await rpc.call("eth_getTransactionByHash", stuck))["blockNumber"] is None
    assert await rpc.call("eth_getTransactionCount", ADDRESS, "latest") == "0x0"
    assert await rpc.call("eth_getTransactionCount", ADDRESS, "pending") == "0x2"
    assert double.release() == 1
    assert [(await rpc.receipt(h) or {}).get("blockNumber") for h in (stuck, behind)] == ["0x6", "0x7"]
    assert double.faults.stuck == 1 and double.ledger.held(ADDRESS, YES) == 8


async def test_a_stuck_transaction_is_replaced_by_a_higher_fee_one(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    double.faults.stick_next()
    stuck = await rpc.send(merge(0))
    bumped = await rpc.send(merge(0, max_fee=120 * GWEI, tip=40 * GWEI))
    receipt = await rpc.receipt(bumped)
    assert receipt is not None and receipt["status"] == "0x1"
    assert await rpc.call("eth_getTransactionByHash", stuck) is None and double.pending() == []
    assert isinstance(double.txs[bumped], MinedTx) and double.ledger.held(ADDRESS, YES) == 9


async def test_rate_limited_requests_get_429_with_retry_after(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    double.faults.rate_limit_next(2, retry_after_s=3)
    for _ in range(2):
        response = await rpc.http.post(rpc.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        assert response.status_code == 429 and response.headers["Retry-After"] == "3"
        assert response.json()["error"]["code"] == -32005
    assert await rpc.call("eth_chainId") == "0x89"
    assert double.faults.rate_limits == 2


async def test_a_held_request_outlasts_the_client_timeout_then_closes(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    double.faults.timeout_next()
    async with httpx.AsyncClient(timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post(rpc.url, json=body)
    double.faults.timeout_next(hold_s=0.1)  # a client that waits longer sees the connection closed unanswered
    with pytest.raises(httpx.RemoteProtocolError):
        await rpc.http.post(rpc.url, json=body)
    assert await rpc.call("eth_blockNumber") == "0x0"
    assert double.faults.timeouts_served == 2


async def test_each_receipt_poll_adds_blocks_when_asked(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    double.blocks_per_receipt_poll = 2
    tx_hash = await rpc.send(merge(0))  # block 1
    for _ in range(3):
        await rpc.receipt(tx_hash)
    assert double.block_number == 7 and double.receipt_polls == 3


async def test_a_block_timer_makes_confirmations_arrive() -> None:
    async with MockChain(block_interval_s=0.02) as double:
        rpc = Rpc(double.url)
        try:
            async with asyncio.timeout(30):
                while int(await rpc.call("eth_blockNumber"), 16) < 3:  # noqa: ASYNC110 - the timer mines
                    await asyncio.sleep(0.02)
        finally:
            await rpc.aclose()
