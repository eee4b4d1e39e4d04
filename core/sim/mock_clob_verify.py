"""What the local CLOB double checks, written from the protocol rather than from the client.

- L1 (``ClobAuth`` EIP-712, domain ``ClobAuthDomain`` v1): the signature recovers to POLY_ADDRESS.
- L2: HMAC-SHA256 over ``timestamp + METHOD + path + body`` with the base64url secret.
- Orders: the V2 ``Order`` EIP-712 struct under the exchange's domain (version "2"); for
  signature type 3 (POLY_1271 deposit wallet) the ERC-7739 ``TypedDataSign`` wrapper.

These use eth_account's generic EIP-712 encoder, not the order builder under test, so a test
that passes through the double checks the builder against an independent implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

ORDER_FIELDS = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
ORDER_TYPE_STRING = "Order(" + ",".join(f"{f['type']} {f['name']}" for f in ORDER_FIELDS) + ")"
TYPED_DATA_SIGN_TYPE = (
    "TypedDataSign(Order contents,string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)"
    + ORDER_TYPE_STRING
)
EXCHANGE_NAME = "Polymarket CTF Exchange"
EXCHANGE_VERSION = "2"
CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"


class VerifyError(ValueError):
    """The request or order fails a check; the message is what the venue would answer."""


def _hash_signable(message: SignableMessage) -> bytes:
    return bytes(keccak(b"\x19" + message.version + message.header + message.body))


def _b32(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if len(raw) > 32:
        raise VerifyError(f"not a bytes32 value: {value}")
    return raw.rjust(32, b"\x00")


def side_value(side: Any) -> int:
    if side in ("BUY", 0, "0"):
        return 0
    if side in ("SELL", 1, "1"):
        return 1
    raise VerifyError(f"invalid side {side!r}")


def order_message(order: dict[str, Any]) -> dict[str, Any]:
    try:
        return {
            "salt": int(order["salt"]),
            "maker": to_checksum_address(order["maker"]),
            "signer": to_checksum_address(order["signer"]),
            "tokenId": int(order["tokenId"]),
            "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]),
            "side": side_value(order["side"]),
            "signatureType": int(order["signatureType"]),
            "timestamp": int(order["timestamp"]),
            "metadata": _b32(order["metadata"]),
            "builder": _b32(order["builder"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyError(f"invalid order: {exc}") from None


def order_typed_data(order: dict[str, Any], exchange: str, chain_id: int) -> dict[str, Any]:
    return {
        "primaryType": "Order",
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": ORDER_FIELDS,
        },
        "domain": {
            "name": EXCHANGE_NAME,
            "version": EXCHANGE_VERSION,
            "chainId": chain_id,
            "verifyingContract": exchange,
        },
        "message": order_message(order),
    }


def order_hash(order: dict[str, Any], exchange: str, chain_id: int) -> str:
    """The EIP-712 digest of the order: the venue's order id."""
    return "0x" + _hash_signable(encode_typed_data(full_message=order_typed_data(order, exchange, chain_id))).hex()


def domain_separator(exchange: str, chain_id: int) -> bytes:
    return bytes(
        keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                    keccak(text=EXCHANGE_NAME),
                    keccak(text=EXCHANGE_VERSION),
                    chain_id,
                    exchange,
                ],
            )
        )
    )


def order_struct_hash(order: dict[str, Any]) -> bytes:
    msg = order_message(order)
    return bytes(
        keccak(
            abi_encode(
                [
                    "bytes32",
                    "uint256",
                    "address",
                    "address",
                    "uint256",
                    "uint256",
                    "uint256",
                    "uint8",
                    "uint8",
                    "uint256",
                    "bytes32",
                    "bytes32",
                ],
                [
                    keccak(text=ORDER_TYPE_STRING),
                    msg["salt"],
                    msg["maker"],
                    msg["signer"],
                    msg["tokenId"],
                    msg["makerAmount"],
                    msg["takerAmount"],
                    msg["side"],
                    msg["signatureType"],
                    msg["timestamp"],
                    msg["metadata"],
                    msg["builder"],
                ],
            )
        )
    )


def recover_order_signer(order: dict[str, Any], exchange: str, chain_id: int) -> str:
    """The EOA whose key signed ``order`` for ``exchange`` (raises :class:`VerifyError`)."""
    signature = str(order.get("signature") or "")
    try:
        sig = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
    except ValueError:
        raise VerifyError("invalid signature") from None
    sig_type = int(order.get("signatureType", 0))
    try:
        if sig_type != 3:
            if len(sig) != 65:
                raise VerifyError("invalid signature")
            signable = encode_typed_data(full_message=order_typed_data(order, exchange, chain_id))
            return str(Account.recover_message(signable, signature=sig))
        return _recover_poly_1271(order, sig, exchange, chain_id)
    except VerifyError:
        raise
    except Exception:
        raise VerifyError("invalid signature") from None


def _recover_poly_1271(order: dict[str, Any], sig: bytes, exchange: str, chain_id: int) -> str:
    """ERC-7739 nested signature: ecdsa(65) || app domain separator || contents hash || type || len(2)."""
    if len(sig) < 65 + 32 + 32 + 2:
        raise VerifyError("invalid signature")
    type_len = int.from_bytes(sig[-2:], "big")
    ecdsa, app_sep, contents = sig[:65], sig[65:97], sig[97:129]
    contents_type = sig[129:-2]
    if len(contents_type) != type_len or contents_type.decode("utf-8", "replace") != ORDER_TYPE_STRING:
        raise VerifyError("invalid signature: contents type")
    if app_sep != domain_separator(exchange, chain_id):
        raise VerifyError("invalid signature")
    if contents != order_struct_hash(order):
        raise VerifyError("invalid signature: contents hash")
    wallet = to_checksum_address(order["signer"])
    struct = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address", "bytes32"],
            [
                keccak(text=TYPED_DATA_SIGN_TYPE),
                contents,
                keccak(text="DepositWallet"),
                keccak(text="1"),
                chain_id,
                wallet,
                b"\x00" * 32,
            ],
        )
    )
    digest = keccak(b"\x19\x01" + app_sep + struct)
    return str(Account._recover_hash(digest, signature=ecdsa))


def recover_clob_auth(address: str, timestamp: str, nonce: int, signature: str, chain_id: int) -> str:
    """L1: the address that signed the ``ClobAuth`` message."""
    typed = {
        "primaryType": "ClobAuth",
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "ClobAuth": [
                {"name": "address", "type": "address"},
                {"name": "timestamp", "type": "string"},
                {"name": "nonce", "type": "uint256"},
                {"name": "message", "type": "string"},
            ],
        },
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {
            "address": to_checksum_address(address),
            "timestamp": str(timestamp),
            "nonce": int(nonce),
            "message": CLOB_AUTH_MESSAGE,
        },
    }
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))
    except Exception:
        raise VerifyError("Invalid L1 Request headers") from None


def l2_signature(secret: str, timestamp: str, method: str, path: str, body: str | None) -> str:
    """HMAC-SHA256 over ``timestamp + method + path + body``, base64url, as the venue computes it."""
    message = f"{timestamp}{method}{path}"
    if body:
        message += body.replace("'", '"')
    digest = hmac.new(base64.urlsafe_b64decode(secret), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("utf-8")
