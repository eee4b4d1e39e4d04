"""On-chain approvals a trader needs before CLOB V2 orders can settle, and reading them back.

An EOA (or the funder wallet of a proxy/safe) approves, for each of the CTF Exchange V2, the
NegRisk CTF Exchange V2 and the NegRisk Adapter:
- pUSD (ERC-20 collateral): ``approve(spender, 2**256 - 1)``;
- ConditionalTokens (ERC-1155 outcome tokens): ``setApprovalForAll(operator, true)``.

This module builds those transactions exactly (target contract + calldata) and, given a JSON-RPC
URL, reads the current ``allowance(owner, spender)`` / ``isApprovedForAll(owner, operator)`` with
``eth_call`` to say which are missing. It never signs or sends a transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from core.chain.rpc import JsonRpc
from core.errors import PolybotError, UsageError

POLYGON_CHAIN_ID = 137
MAX_UINT256 = 2**256 - 1

CTF_EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
NEG_RISK_ADAPTER = "0xd91E80cF2E7be2e162c6513ceD06f1dD0dA35296"
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
CONDITIONAL_TOKENS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"

SPENDERS: tuple[tuple[str, str], ...] = (
    ("CTF Exchange V2", CTF_EXCHANGE_V2),
    ("NegRisk CTF Exchange V2", NEG_RISK_EXCHANGE_V2),
    ("NegRisk Adapter", NEG_RISK_ADAPTER),
)


def selector(signature: str) -> str:
    """The 4-byte function selector, as 8 hex digits."""
    return bytes(keccak(text=signature))[:4].hex()


APPROVE = selector("approve(address,uint256)")  # 095ea7b3
SET_APPROVAL_FOR_ALL = selector("setApprovalForAll(address,bool)")  # a22cb465
ALLOWANCE = selector("allowance(address,address)")  # dd62ed3e
IS_APPROVED_FOR_ALL = selector("isApprovedForAll(address,address)")  # e985e9c5


def _word_address(address: str) -> str:
    return to_checksum_address(address)[2:].lower().rjust(64, "0")


def _word_uint(value: int) -> str:
    return format(value, "064x")


class TokenKind(enum.StrEnum):
    COLLATERAL = "pUSD"
    OUTCOME = "ConditionalTokens"


@dataclass(frozen=True, slots=True)
class ApprovalTx:
    """One approval transaction to send from the funder address (value 0)."""

    kind: TokenKind
    spender_name: str
    spender: str
    token: str  # the contract the transaction is sent to
    function: str
    data: str  # calldata, 0x-prefixed

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "spender_name": self.spender_name,
            "spender": self.spender,
            "to": self.token,
            "value": "0",
            "function": self.function,
            "data": self.data,
        }


def usdc_approvals() -> list[ApprovalTx]:
    """pUSD ``approve(spender, max)`` for each spender."""
    return [
        ApprovalTx(
            TokenKind.COLLATERAL,
            name,
            spender,
            PUSD,
            f"approve({spender}, {MAX_UINT256})",
            "0x" + APPROVE + _word_address(spender) + _word_uint(MAX_UINT256),
        )
        for name, spender in SPENDERS
    ]


def outcome_approvals() -> list[ApprovalTx]:
    """ConditionalTokens ``setApprovalForAll(operator, true)`` for each spender."""
    return [
        ApprovalTx(
            TokenKind.OUTCOME,
            name,
            spender,
            CONDITIONAL_TOKENS,
            f"setApprovalForAll({spender}, true)",
            "0x" + SET_APPROVAL_FOR_ALL + _word_address(spender) + _word_uint(1),
        )
        for name, spender in SPENDERS
    ]


@dataclass(frozen=True, slots=True)
class ApprovalState:
    tx: ApprovalTx
    owner: str
    value: int  # allowance in 10^-6 units, or 1/0 for isApprovedForAll

    @property
    def approved(self) -> bool:
        if self.tx.kind is TokenKind.OUTCOME:
            return self.value != 0
        # An allowance that finite trading cannot exhaust; a limited one is reported as missing.
        return self.value >= MAX_UINT256 // 2

    def describe(self) -> str:
        if self.tx.kind is TokenKind.OUTCOME:
            return "approved" if self.value else "MISSING"
        if self.approved:
            return "approved (unlimited)"
        return "MISSING" if self.value == 0 else f"MISSING (limited to {self.value} units)"

    def as_dict(self) -> dict[str, object]:
        return {**self.tx.as_dict(), "owner": self.owner, "current": str(self.value), "approved": self.approved}


def _decode_uint(result: str) -> int:
    digits = result[2:]
    if not digits:
        raise PolybotError("eth_call returned empty data (is the address a contract on this chain?)")
    try:
        return int(digits[:64], 16)
    except ValueError:
        raise PolybotError(f"eth_call returned non-hex data {result[:20]}...") from None


async def read_approvals(rpc: JsonRpc, owner: str, txs: list[ApprovalTx]) -> list[ApprovalState]:
    """Current allowance / approval of ``owner`` for each transaction's spender."""
    try:
        owner = to_checksum_address(owner)
    except (ValueError, TypeError):
        raise UsageError(f"not an address: {owner!r}") from None
    states = []
    for tx in txs:
        fn = ALLOWANCE if tx.kind is TokenKind.COLLATERAL else IS_APPROVED_FOR_ALL
        data = "0x" + fn + _word_address(owner) + _word_address(tx.spender)
        states.append(ApprovalState(tx, owner, _decode_uint(await rpc.eth_call(tx.token, data))))
    return states
