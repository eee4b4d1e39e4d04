"""The chain double speaks a node's JSON-RPC over a real socket: reads, batches, errors, decoding
of signed transactions with signer recovery, and geth's pool rules for nonces and replacements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from core.sim.mock_chain import MinedTx, MockChain, PendingTx
from tests.chain_double import (
    ADDRESS,
    CTF,
    CTF_ADAPTER,
    GWEI,
    PUSD,
    Rpc,
    RpcFailed,
    calldata,
    merge_data,
    signed,
)

CONDITION = "0x" + "ab" * 32
YES, NO = "1001", "1002"
OTHER = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
async def chain() -> AsyncIterator[tuple[MockChain, Rpc]]:
    chain = MockChain(markets=None)
    chain.add_market(CONDITION, YES, NO)
    chain.ledger.give(ADDRESS, YES, Decimal(50))
    chain.ledger.give(ADDRESS, NO, Decimal(50))
    url = await chain.start()
    rpc = Rpc(url)
    try:
        yield chain, rpc
    finally:
        await rpc.aclose()
        await chain.close()


def merge(nonce: int, units: int = 1_000_000, **kw: Any) -> str:
    return signed(CTF_ADAPTER, merge_data(CONDITION, units), nonce, **kw)


async def test_reads_answer_in_the_node_wire_format(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    assert await rpc.call("eth_chainId") == "0x89"
    assert await rpc.call("net_version") == "137"
    assert await rpc.call("eth_blockNumber") == "0x0"
    block = await rpc.call("eth_getBlockByNumber", "latest", False)
    assert block["number"] == "0x0" and block["baseFeePerGas"] == hex(30 * GWEI) and block["transactions"] == []
    assert await rpc.call("eth_getBlockByNumber", "0x5", False) is None
    assert int(await rpc.call("eth_gasPrice"), 16) == 55 * GWEI
    assert int(await rpc.call("eth_maxPriorityFeePerGas"), 16) == 25 * GWEI
    double.mine(3)
    history = await rpc.call("eth_feeHistory", "0x2", "latest", [25, 75])
    assert history["oldestBlock"] == "0x2" and len(history["baseFeePerGas"]) == 3 and len(history["reward"]) == 2
    assert await rpc.call("eth_getTransactionCount", ADDRESS, "latest") == "0x0"
    assert await rpc.call("eth_getTransactionReceipt", "0x" + "11" * 32) is None
    assert await rpc.call("eth_getTransactionByHash", "0x" + "11" * 32) is None


async def test_eth_call_reads_the_ledger_and_the_approvals(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    double.ledger.set_cash(ADDRESS, Decimal("12.345678"))

    async def read(to: str, signature: str, types: list[str], values: list[object]) -> int:
        out = await rpc.call("eth_call", {"to": to, "data": "0x" + calldata(signature, types, values).hex()}, "latest")
        return int(out, 16)

    assert await read(PUSD, "balanceOf(address)", ["address"], [ADDRESS]) == 12_345_678
    assert await read(CTF, "balanceOf(address,uint256)", ["address", "uint256"], [ADDRESS, int(YES)]) == 50_000_000
    assert await read(PUSD, "allowance(address,address)", ["address", "address"], [ADDRESS, CTF_ADAPTER]) == 2**256 - 1
    approved = ("isApprovedForAll(address,address)", ["address", "address"], [ADDRESS, CTF_ADAPTER])
    assert await read(CTF, *approved) == 1
    double.set_approval(ADDRESS, CTF_ADAPTER, False)
    assert await read(CTF, *approved) == 0


async def test_batches_and_malformed_requests(chain: tuple[MockChain, Rpc]) -> None:
    _, rpc = chain
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_nope", "params": []},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber"},
    ]
    answers = (await rpc.http.post(rpc.url, json=batch)).json()
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[0]["result"] == "0x89" and answers[1]["error"]["code"] == -32601 and answers[2]["result"] == "0x0"
    assert (await rpc.http.post(rpc.url, content=b"{nope")).json()["error"]["code"] == -32700
    assert (await rpc.http.post(rpc.url, json=[])).json()["error"]["code"] == -32600
    with pytest.raises(RpcFailed) as bad:
        await rpc.call("eth_getTransactionCount", "not-an-address", "latest")
    assert bad.value.code == -32602


async def test_estimate_gas_runs_the_call_and_reverts_like_a_node(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    call = {"from": ADDRESS, "to": CTF_ADAPTER, "data": "0x" + merge_data(CONDITION, 50_000_000).hex()}
    assert int(await rpc.call("eth_estimateGas", call), 16) > 21_000
    assert double.ledger.held(ADDRESS, YES) == 50  # estimated, not applied
    call["data"] = "0x" + merge_data(CONDITION, 50_000_001).hex()
    with pytest.raises(RpcFailed) as reverted:
        await rpc.call("eth_estimateGas", call)
    assert reverted.value.code == 3
    assert reverted.value.message == "execution reverted: ERC1155: burn amount exceeds balance"
    assert str(reverted.value.data).startswith("0x08c379a0")  # Error(string)


async def test_a_raw_transaction_is_decoded_and_its_signer_recovered(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    raw = merge(0, 2_500_000)
    tx_hash = await rpc.send(raw)
    assert tx_hash == "0x" + bytes(keccak(hexstr=raw)).hex()
    assert double.sent_raw == 1
    tx = double.txs[tx_hash]
    assert isinstance(tx, MinedTx) and tx.status == 1 and tx.block == 1
    assert tx.sender == tx.from_ == ADDRESS and tx.nonce == 0 and tx.to == CTF_ADAPTER
    assert tx.function == "mergePositions(address,bytes32,bytes32,uint256[],uint256)"
    assert tx.args["conditionId"] == CONDITION and tx.args["partition"] == [1, 2] and tx.args["amount"] == 2_500_000
    seen = await rpc.call("eth_getTransactionByHash", tx_hash)
    assert seen["from"] == ADDRESS and seen["blockNumber"] == "0x1" and seen["maxFeePerGas"] == hex(100 * GWEI)
    receipt = await rpc.receipt(tx_hash)
    assert receipt is not None and receipt["status"] == "0x1" and receipt["blockNumber"] == "0x1"
    assert int(receipt["effectiveGasPrice"], 16) == 60 * GWEI  # base fee 30 + the 30 tip sent (under the cap)
    assert await rpc.call("eth_getTransactionCount", ADDRESS, "latest") == "0x1"


async def test_a_transaction_for_another_chain_is_refused(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    with pytest.raises(RpcFailed, match="invalid chain id for signer"):
        await rpc.send(merge(0, chain_id=80002))
    with pytest.raises(RpcFailed, match="rlp"):
        await rpc.send("0x02c0ffee")
    assert double.txs == {} and double.sent_raw == 2


async def test_nonce_too_low_already_known_and_a_gap_held(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    first = merge(0)
    await rpc.send(first)
    with pytest.raises(RpcFailed, match="nonce too low"):
        await rpc.send(first)  # mined: a resend is refused on its nonce, as geth does
    gap = await rpc.send(merge(2))
    assert isinstance(double.txs[gap], PendingTx) and not isinstance(double.txs[gap], MinedTx)
    assert await rpc.receipt(gap) is None
    assert await rpc.call("eth_getTransactionCount", ADDRESS, "pending") == "0x1"  # the gap is not counted
    with pytest.raises(RpcFailed, match="already known"):
        await rpc.send(merge(2))
    filler = await rpc.send(merge(1))
    both = [await rpc.receipt(filler), await rpc.receipt(gap)]
    assert [r["blockNumber"] for r in both if r] == ["0x2", "0x3"]  # mined in nonce order
    assert double.nonce_of(ADDRESS) == 3 and double.ledger.held(ADDRESS, YES) == 47


async def test_replacing_a_pending_transaction_needs_ten_percent_more(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    double.set_base_fee(200 * GWEI)  # above every fee cap below: they wait in the pool
    old = await rpc.send(merge(0, max_fee=100 * GWEI, tip=30 * GWEI))
    with pytest.raises(RpcFailed, match="replacement transaction underpriced"):
        await rpc.send(merge(0, max_fee=109 * GWEI, tip=33 * GWEI))
    assert await rpc.call("eth_getTransactionCount", ADDRESS, "pending") == "0x1"
    new = await rpc.send(merge(0, max_fee=110 * GWEI, tip=33 * GWEI))
    assert old not in double.txs and old in double.state.replaced
    assert await rpc.call("eth_getTransactionByHash", old) is None
    assert double.pending()[0].hash == new and await rpc.receipt(new) is None
    double.set_base_fee(30 * GWEI)
    receipt = await rpc.receipt(new)
    assert receipt is not None and receipt["status"] == "0x1"
    assert int(receipt["effectiveGasPrice"], 16) == 63 * GWEI


async def test_underpriced_and_unfunded_transactions_are_refused(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    with pytest.raises(RpcFailed, match="transaction underpriced"):
        await rpc.send(merge(0, tip=1 * GWEI))
    double.set_native(ADDRESS, 10**15)
    with pytest.raises(RpcFailed, match="insufficient funds for gas"):
        await rpc.send(merge(0))
    double.set_native(ADDRESS, 10**18)
    tx_hash = await rpc.send(merge(0))
    paid = 10**18 - int(await rpc.call("eth_getBalance", ADDRESS, "latest"), 16)
    tx = double.txs[tx_hash]
    assert isinstance(tx, MinedTx) and paid == tx.gas_used * tx.effective_gas_price


async def test_a_legacy_eip155_transaction_is_accepted(chain: tuple[MockChain, Rpc]) -> None:
    double, rpc = chain
    from tests.chain_double import KEY

    legacy = {"chainId": 137, "nonce": 0, "gasPrice": 60 * GWEI, "gas": 300_000, "to": CTF_ADAPTER, "value": 0}
    raw = Account.from_key(KEY).sign_transaction({**legacy, "data": merge_data(CONDITION, 1_000_000)}).raw_transaction
    tx_hash = await rpc.send("0x" + bytes(raw).hex())
    tx = double.txs[tx_hash]
    assert isinstance(tx, MinedTx) and tx.status == 1 and tx.tx_type == 0 and tx.sender == ADDRESS


async def test_get_is_not_json_rpc(chain: tuple[MockChain, Rpc]) -> None:
    _, rpc = chain
    async with httpx.AsyncClient() as http:
        assert (await http.get(rpc.url)).status_code == 405
