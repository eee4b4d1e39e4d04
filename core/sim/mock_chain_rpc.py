"""The Ethereum JSON-RPC methods the chain double answers, in the node's wire format (quantities
as 0x-hex without leading zeros, data as 0x-hex, unknown transactions and receipts as null).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from core.sim.mock_chain_abi import CONTRACTS, Revert
from core.sim.mock_chain_faults import DROP, REVERT, STICK, ChainFaults
from core.sim.mock_chain_state import Block, ChainState
from core.sim.mock_chain_tx import EXECUTION_REVERTED, INVALID_PARAMS, MinedTx, PendingTx, RpcError

METHOD_NOT_FOUND = -32601
ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = "0x" + "00" * 32
EMPTY_BLOOM = "0x" + "00" * 256
Json = Any
Method = Callable[[list[Json]], Json]


def q(value: int) -> str:
    """A quantity as the node writes it."""
    return hex(value)


def _quantity(value: Json, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, f"invalid argument: {what} is not a hex quantity: {value!r}")


def _data(value: Json, what: str) -> bytes:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, f"invalid argument: {what} is not hex data")


def _address(value: Json, what: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise RpcError(INVALID_PARAMS, f"invalid argument: {what} is not an address: {value!r}")
    return to_checksum_address(value)


def _arg(params: list[Json], index: int, default: Json = None) -> Json:
    return params[index] if len(params) > index else default


class ChainRpc:
    """Method table over a :class:`ChainState`; counts what the tests want counted."""

    def __init__(self, state: ChainState, faults: ChainFaults, *, blocks_per_receipt_poll: int = 0) -> None:
        self.state = state
        self.faults = faults
        self.blocks_per_receipt_poll = blocks_per_receipt_poll
        self.sent_raw = 0
        self.receipt_polls = 0
        self.suggested_tip: int | None = None  # eth_maxPriorityFeePerGas (the node's floor unless set)
        self.methods: dict[str, Method] = {
            "web3_clientVersion": lambda p: "polybot-mock-chain/1.0",
            "eth_chainId": lambda p: q(self.state.chain_id),
            "net_version": lambda p: str(self.state.chain_id),
            "eth_syncing": lambda p: False,
            "eth_blockNumber": lambda p: q(self.state.head.number),
            "eth_getBlockByNumber": self._block_by_number,
            "eth_getBlockByHash": self._block_by_hash,
            "eth_gasPrice": lambda p: q(self.state.base_fee + self._tip()),
            "eth_maxPriorityFeePerGas": lambda p: q(self._tip()),
            "eth_feeHistory": self._fee_history,
            "eth_getTransactionCount": self._nonce,
            "eth_getBalance": self._balance,
            "eth_getCode": self._code,
            "eth_call": self._call,
            "eth_estimateGas": self._estimate,
            "eth_sendRawTransaction": self._send_raw,
            "eth_getTransactionReceipt": self._receipt,
            "eth_getTransactionByHash": self._tx_by_hash,
        }

    def dispatch(self, method: str, params: list[Json]) -> Json:
        handler = self.methods.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"the method {method} does not exist/is not available")
        return handler(params)

    def _tip(self) -> int:
        return self.state.min_tip if self.suggested_tip is None else self.suggested_tip

    # ------------------------------------------------------------------ blocks and fees

    def _block_at(self, tag: Json) -> Block | None:
        if tag in ("latest", "pending", "safe", "finalized", None):
            return self.state.head
        if tag == "earliest":
            return self.state.blocks[0]
        number = _quantity(tag, "block number")
        return self.state.blocks[number] if 0 <= number < len(self.state.blocks) else None

    def _block_by_number(self, params: list[Json]) -> Json:
        block = self._block_at(_arg(params, 0, "latest"))
        return None if block is None else self._block_json(block, bool(_arg(params, 1, False)))

    def _block_by_hash(self, params: list[Json]) -> Json:
        wanted = str(_arg(params, 0, "")).lower()
        block = next((b for b in self.state.blocks if b.hash == wanted), None)
        return None if block is None else self._block_json(block, bool(_arg(params, 1, False)))

    def _block_json(self, block: Block, full: bool) -> Json:
        txs = [self._tx_json(self.state.txs[h]) if full else h for h in block.tx_hashes if h in self.state.txs]
        return {
            "number": q(block.number),
            "hash": block.hash,
            "parentHash": block.parent_hash,
            "nonce": "0x0000000000000000",
            "mixHash": ZERO_HASH,
            "sha3Uncles": ZERO_HASH,
            "logsBloom": EMPTY_BLOOM,
            "transactionsRoot": ZERO_HASH,
            "stateRoot": ZERO_HASH,
            "receiptsRoot": ZERO_HASH,
            "miner": ZERO_ADDRESS,
            "difficulty": "0x1",
            "totalDifficulty": q(block.number + 1),
            "extraData": "0x",
            "size": "0x200",
            "gasLimit": q(self.state.gas_limit),
            "gasUsed": q(block.gas_used),
            "timestamp": q(block.timestamp),
            "baseFeePerGas": q(block.base_fee),
            "transactions": txs,
            "uncles": [],
        }

    def _fee_history(self, params: list[Json]) -> Json:
        count = max(1, min(1024, _quantity(_arg(params, 0, "0x1"), "blockCount")))
        newest = self._block_at(_arg(params, 1, "latest")) or self.state.head
        percentiles = _arg(params, 2) or []
        blocks = self.state.blocks[max(0, newest.number - count + 1) : newest.number + 1]
        history: dict[str, Json] = {
            "oldestBlock": q(blocks[0].number),
            "baseFeePerGas": [q(b.base_fee) for b in blocks] + [q(self.state.base_fee)],
            "gasUsedRatio": [b.gas_used / self.state.gas_limit for b in blocks],
        }
        if percentiles:
            history["reward"] = [[q(self._tip()) for _ in percentiles] for _ in blocks]
        return history

    # ------------------------------------------------------------------ accounts and calls

    def _nonce(self, params: list[Json]) -> Json:
        address = _address(_arg(params, 0), "address")
        return q(self.state.nonce_of(address, pending=_arg(params, 1, "latest") == "pending"))

    def _balance(self, params: list[Json]) -> Json:
        return q(self.state.world.balance(_address(_arg(params, 0), "address")))

    def _code(self, params: list[Json]) -> Json:
        return "0x6080604052" if _address(_arg(params, 0), "address") in CONTRACTS else "0x"

    def _run_call(self, params: list[Json]) -> tuple[bytes, int]:
        call = _arg(params, 0)
        if not isinstance(call, dict):
            raise RpcError(INVALID_PARAMS, "invalid argument 0: expected a call object")
        sender = _address(call.get("from") or ZERO_ADDRESS, "from")
        to = _address(call["to"], "to") if call.get("to") else None
        data = _data(call.get("input") or call.get("data") or "0x", "data")
        value = _quantity(call.get("value") or "0x0", "value")
        try:
            result = self.state.world.execute(sender, to, value, data, apply=False)
        except Revert as exc:
            raise RpcError(EXECUTION_REVERTED, exc.message, exc.data) from None
        return result.output, result.gas_used

    def _call(self, params: list[Json]) -> Json:
        return "0x" + self._run_call(params)[0].hex()

    def _estimate(self, params: list[Json]) -> Json:
        return q(self._run_call(params)[1])

    # ------------------------------------------------------------------ transactions

    def _send_raw(self, params: list[Json]) -> Json:
        self.sent_raw += 1
        tx, replaces = self.state.decode_and_check(_data(_arg(params, 0), "raw transaction"))
        fault = self.faults.take_tx()
        if fault == DROP:
            self.state.drop(tx)
            return tx.hash
        tx.force_revert = fault == REVERT
        tx.stuck = fault == STICK
        self.state.accept(tx, replaces)
        return tx.hash

    def _receipt(self, params: list[Json]) -> Json:
        self.receipt_polls += 1
        if self.blocks_per_receipt_poll > 0:
            self.state.mine(self.blocks_per_receipt_poll)
        tx = self.state.txs.get(str(_arg(params, 0, "")).lower())
        if not isinstance(tx, MinedTx):
            return None
        block = self.state.blocks[tx.block or 0]
        return {
            "transactionHash": tx.hash,
            "transactionIndex": q(tx.index),
            "blockHash": block.hash,
            "blockNumber": q(block.number),
            "from": tx.sender,
            "to": tx.to,
            "cumulativeGasUsed": q(tx.gas_used),
            "gasUsed": q(tx.gas_used),
            "effectiveGasPrice": q(tx.effective_gas_price),
            "contractAddress": None,
            "logs": [],
            "logsBloom": EMPTY_BLOOM,
            "status": q(tx.status or 0),
            "type": q(tx.tx_type),
        }

    def _tx_by_hash(self, params: list[Json]) -> Json:
        tx = self.state.txs.get(str(_arg(params, 0, "")).lower())
        return None if tx is None else self._tx_json(tx)

    def _tx_json(self, tx: PendingTx) -> Json:
        mined = isinstance(tx, MinedTx)
        block = self.state.blocks[tx.block] if mined and tx.block is not None else None
        out: dict[str, Json] = {
            "hash": tx.hash,
            "type": q(tx.tx_type),
            "chainId": q(tx.chain_id or 0),
            "nonce": q(tx.nonce),
            "from": tx.sender,
            "to": tx.to,
            "value": q(tx.value),
            "gas": q(tx.gas),
            "input": "0x" + tx.data.hex(),
            "blockHash": block.hash if block else None,
            "blockNumber": q(block.number) if block else None,
            "transactionIndex": q(0) if block else None,
            "v": q(tx.v),
            "r": q(tx.r),
            "s": q(tx.s),
        }
        if tx.tx_type == 2:
            out["maxFeePerGas"] = q(tx.max_fee)
            out["maxPriorityFeePerGas"] = q(tx.max_priority_fee)
            out["gasPrice"] = q(tx.effective_gas_price) if isinstance(tx, MinedTx) else q(tx.max_fee)
        else:
            out["gasPrice"] = q(tx.max_fee)
        if tx.tx_type in (1, 2):
            out["accessList"] = []
            out["yParity"] = q(tx.v)
        return out
