"""Signing a type-2 (EIP-1559) transaction with an EOA key, and reading signed bytes back.

The key lives in an eth-account ``LocalAccount`` held by :class:`Signer`; neither its repr nor
any message shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from core.chain.fees import Fees
from core.chain.types import ChainCall


@dataclass(frozen=True, slots=True)
class SignedTx:
    tx_hash: str  # 0x + 64 hex, lower case
    raw: bytes
    nonce: int
    gas_limit: int
    fees: Fees


class Signer:
    """An EOA that signs transactions (signature type 0)."""

    __slots__ = ("_account",)

    def __init__(self, private_key: str) -> None:
        try:
            self._account: LocalAccount = Account.from_key(private_key)
        except (ValueError, TypeError):
            raise ValueError("relayer.private_key is not a valid private key") from None

    def __repr__(self) -> str:
        return f"Signer({self.address})"

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign(self, call: ChainCall, *, chain_id: int, nonce: int, gas_limit: int, fees: Fees) -> SignedTx:
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": chain_id,
            "nonce": nonce,
            "to": call.to,
            "value": call.value,
            "data": "0x" + call.data.hex(),
            "gas": gas_limit,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
        }
        signed = self._account.sign_transaction(tx)
        return SignedTx("0x" + bytes(signed.hash).hex(), bytes(signed.raw_transaction), nonce, gas_limit, fees)


def decode_signed(raw: bytes) -> dict[str, Any]:
    """The fields of signed type-2 bytes (chainId, nonce, to, data, gas, fees) plus ``from``."""
    fields = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
    fields["to"] = "0x" + bytes(fields["to"]).hex()
    fields["data"] = bytes(fields["data"])
    fields["from"] = str(Account.recover_transaction(raw))
    return fields
