"""What a transaction needs before it is signed, the same for a live send and a dry run: the
wallet can sign it, the node is on the configured chain, the call does not revert, gas and fees
fit the caps. A :class:`Refused` says why not, in words an operator can act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.chain.fees import Caps, FeeRefusal, Fees, gas_limit, initial_fees
from core.chain.journal import json_args
from core.chain.rpc import JsonRpc
from core.chain.rpc_errors import ExecutionReverted
from core.chain.types import ChainCall

WALLET_NAMES = {
    1: "a proxy wallet (signature type 1)",
    2: "a Safe (signature type 2)",
    3: "a deposit wallet (signature type 3)",
}


class Refused(Exception):
    """Not sent, and sending it as it stands would not help (caps, wallet type, a revert)."""


def wallet_refusal(signature_type: int) -> str | None:
    """Why an EOA transaction cannot settle for this wallet type (None: it can)."""
    if signature_type == 0:
        return None
    wallet = WALLET_NAMES.get(signature_type, f"signature type {signature_type}")
    return (
        f"the funds are held by {wallet}, a contract: a transaction from the EOA key cannot move them. "
        "Merge or redeem by hand on polymarket.com (Portfolio), or through the wallet itself "
        "(a Safe transaction); see docs/chain-transactions.md"
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    estimate: int
    gas_limit: int
    fees: Fees


def estimate_request(call: ChainCall, sender: str) -> dict[str, Any]:
    return {"from": sender, "to": call.to, "data": "0x" + call.data.hex(), "value": hex(call.value)}


async def check_chain(rpc: JsonRpc, expected: int) -> None:
    actual = await rpc.chain_id()
    if actual != expected:
        raise Refused(f"the RPC node ({rpc.where}) is on chain {actual}, relayer.chain_id is {expected}")


async def prepare(rpc: JsonRpc, call: ChainCall, sender: str, caps: Caps) -> Prepared:
    """Gas (estimate + margin) and fees for ``call`` from ``sender``; RpcError when the node fails."""
    try:
        estimate = await rpc.estimate_gas(estimate_request(call, sender))
    except ExecutionReverted as exc:
        raise Refused(f"the call reverts (gas estimate): {exc.reason or exc}") from None
    try:
        limit = gas_limit(estimate, caps)
        base = await rpc.base_fee()
        tip = await rpc.max_priority_fee_per_gas()
        return Prepared(estimate, limit, initial_fees(base, tip, caps))
    except FeeRefusal as exc:
        raise Refused(str(exc)) from None


def request_summary(call: ChainCall, **extra: object) -> dict[str, Any]:
    """What exec_audit keeps of a call: the decoded call, never a key or the RPC URL."""
    summary: dict[str, Any] = {
        "contract": call.contract,
        "to": call.to,
        "function": call.function,
        "args": json_args(call),
        "value": str(call.value),
    }
    summary.update({k: v for k, v in extra.items() if v is not None})
    return summary
