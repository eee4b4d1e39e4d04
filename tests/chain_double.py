"""What the chain-double tests share: a bare JSON-RPC client over httpx and transactions built and
signed with eth-account and eth-abi (never with core.chain, whose code the double stands in for)."""

from __future__ import annotations

from typing import Any

import httpx
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak

CTF_ADAPTER = "0xAdA100Db00Ca00073811820692005400218FcE1f"
NEG_RISK_ADAPTER = "0xadA2005600Dec949baf300f4C6120000bDB6eAab"
PUSD = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
CTF = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
USDC_E = "0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174"
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # a well-known test key
ADDRESS = Account.from_key(KEY).address
GWEI = 10**9


def calldata(signature: str, types: list[str], values: list[Any]) -> bytes:
    return bytes(keccak(text=signature))[:4] + encode(types, values)


def merge_data(condition_id: str, units: int, partition: tuple[int, ...] = (1, 2)) -> bytes:
    return calldata(
        "mergePositions(address,bytes32,bytes32,uint256[],uint256)",
        ["address", "bytes32", "bytes32", "uint256[]", "uint256"],
        [USDC_E, bytes(32), bytes.fromhex(condition_id[2:]), list(partition), units],
    )


def redeem_data(condition_id: str) -> bytes:
    return calldata(
        "redeemPositions(address,bytes32,bytes32,uint256[])",
        ["address", "bytes32", "bytes32", "uint256[]"],
        [USDC_E, bytes(32), bytes.fromhex(condition_id[2:]), [1, 2]],
    )


def signed(
    to: str,
    data: bytes,
    nonce: int,
    *,
    key: str = KEY,
    chain_id: int = 137,
    max_fee: int = 100 * GWEI,
    tip: int = 30 * GWEI,
    gas: int = 300_000,
) -> str:
    tx = {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": tip,
        "gas": gas,
        "to": to,
        "value": 0,
        "data": data,
    }
    return "0x" + bytes(Account.from_key(key).sign_transaction(tx).raw_transaction).hex()


class RpcFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.code = error.get("code")
        self.message = str(error.get("message"))
        self.data = error.get("data")


class Rpc:
    """JSON-RPC 2.0 over one httpx client; ``call`` returns the result or raises :class:`RpcFailed`."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.http = httpx.AsyncClient(timeout=timeout_s)
        self._id = 0

    async def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        response = await self.http.post(
            self.url, json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        )
        body = response.json()
        assert body["id"] == self._id and body["jsonrpc"] == "2.0"
        if "error" in body:
            raise RpcFailed(body["error"])
        return body["result"]

    async def send(self, raw: str) -> str:
        result = await self.call("eth_sendRawTransaction", raw)
        assert isinstance(result, str)
        return result

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        result = await self.call("eth_getTransactionReceipt", tx_hash)
        assert result is None or isinstance(result, dict)
        return result

    async def aclose(self) -> None:
        await self.http.aclose()
