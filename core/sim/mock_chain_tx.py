"""Raw transactions as the chain double receives them: decoded and their signer recovered with
eth-account (typed EIP-1559 and EIP-2930 transactions, and EIP-155 legacy ones), then kept as a
:class:`PendingTx` until mined into a :class:`MinedTx`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rlp  # type: ignore[import-untyped]  # rlp ships no type information
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from core.sim.mock_chain_abi import decode_call

INVALID_PARAMS = -32602
SERVER_ERROR = -32000  # what geth answers for a refused transaction
EXECUTION_REVERTED = 3


class RpcError(Exception):
    """A JSON-RPC error answer (the request itself was well formed HTTP)."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(slots=True)
class PendingTx:
    """A transaction the double accepted and has not mined (or a dropped one, kept for tests)."""

    hash: str
    raw: bytes = field(repr=False)
    sender: str
    chain_id: int | None
    nonce: int
    to: str | None
    value: int
    data: bytes
    gas: int
    max_fee: int  # maxFeePerGas (gasPrice for a legacy transaction)
    max_priority_fee: int
    tx_type: int
    v: int
    r: int
    s: int
    function: str | None = None  # decoded against the double's ABIs; None when nothing there takes it
    args: dict[str, object] = field(default_factory=dict)
    stuck: bool = False  # held back by the stick fault until released or replaced
    force_revert: bool = False  # the revert fault: mined with status 0, nothing applied
    status: int | None = None
    block: int | None = None

    @property
    def from_(self) -> str:
        return self.sender

    def replaceable_by(self, other: PendingTx) -> bool:
        """geth's rule: both fee caps at least 10% higher."""
        return other.max_fee * 100 >= self.max_fee * 110 and other.max_priority_fee * 100 >= self.max_priority_fee * 110


@dataclass(slots=True)
class MinedTx(PendingTx):
    """A mined transaction with its receipt (``status`` 1 ok, 0 reverted)."""

    gas_used: int = 0
    effective_gas_price: int = 0
    revert_reason: str | None = None
    index: int = 0  # position in its block (always 0: one transaction per block)


def decode_raw(raw: bytes) -> PendingTx:
    """Decode a signed raw transaction and recover its signer; RpcError when it is not one."""
    if not raw:
        raise RpcError(SERVER_ERROR, "typed transaction too short")
    try:
        fields = _fields(raw)
        sender = to_checksum_address(Account.recover_transaction(raw))
    except RpcError:
        raise
    except Exception as exc:  # rlp, signature and field errors all mean "not a transaction"
        raise RpcError(SERVER_ERROR, f"rlp: cannot decode transaction: {exc}") from None
    to = fields["to"]
    tx = PendingTx(
        hash="0x" + bytes(keccak(raw)).hex(),
        raw=raw,
        sender=sender,
        chain_id=fields["chainId"],
        nonce=fields["nonce"],
        to=to_checksum_address(to) if to else None,
        value=fields["value"],
        data=bytes(fields["data"]),
        gas=fields["gas"],
        max_fee=fields["maxFeePerGas"],
        max_priority_fee=fields["maxPriorityFeePerGas"],
        tx_type=fields["type"],
        v=fields["v"],
        r=fields["r"],
        s=fields["s"],
    )
    if tx.to is not None and tx.data:
        try:
            call = decode_call(tx.to, tx.data)
        except Exception:
            pass
        else:
            tx.function, tx.args = call.function.signature, call.named_args()
    return tx


def _fields(raw: bytes) -> dict[str, Any]:
    if raw[0] in (1, 2):
        d = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        if raw[0] == 1:
            d["maxFeePerGas"] = d["maxPriorityFeePerGas"] = d["gasPrice"]
        d["type"] = raw[0]
        return d
    if raw[0] < 0xC0:
        raise RpcError(SERVER_ERROR, "transaction type not supported")
    items = rlp.decode(raw)
    if not isinstance(items, list) or len(items) != 9:
        raise RpcError(SERVER_ERROR, "rlp: a legacy transaction has 9 fields")
    nonce, gas_price, gas, to, value, data, v, r, s = items
    v_int = _uint(v)
    chain_id = (v_int - 35) // 2 if v_int >= 35 else None
    return {
        "nonce": _uint(nonce),
        "maxFeePerGas": _uint(gas_price),
        "maxPriorityFeePerGas": _uint(gas_price),
        "gas": _uint(gas),
        "to": bytes(to),
        "value": _uint(value),
        "data": bytes(data),
        "v": v_int,
        "r": _uint(r),
        "s": _uint(s),
        "chainId": chain_id,
        "type": 0,
    }


def _uint(item: object) -> int:
    if not isinstance(item, bytes):
        raise ValueError("expected a byte string")
    return int.from_bytes(item, "big")
