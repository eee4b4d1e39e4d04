"""An async Ethereum JSON-RPC client (httpx): the calls Polybot needs to read the chain and to
send a signed transaction and follow it.

One request is one HTTP POST. A 429 (Retry-After honoured, capped) and a timeout are asked again
a bounded number of times through :func:`core.retry.retry_call`; asking ``eth_sendRawTransaction``
again is safe because the same signed bytes are the same transaction (the node says "already
known"). Everything else fails at once with an error of :mod:`core.chain.rpc_errors` that names
the node by its origin only: the URL's path or query may hold an API key.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from core.chain.rpc_errors import (
    RpcBadAnswer,
    RpcCallError,
    RpcError,
    RpcHttpError,
    RpcRateLimited,
    RpcTimeout,
    RpcUnreachable,
    call_error,
)
from core.retry import Backoff, Outcome, RetryAfter, Sleep, retry_after_seconds, retry_call

DEFAULT_BACKOFF = Backoff(0.5, 8.0)
DEFAULT_MAX_RETRIES = 3
RETRY_AFTER_CAP_S = 30.0


def origin_of(url: str) -> str:
    """``scheme://host[:port]``: what may be shown of an RPC URL (its path may hold an API key)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured RPC URL"
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def quantity(value: object, what: str) -> int:
    """A JSON-RPC QUANTITY (``"0x1a"``) as an int."""
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcBadAnswer(f"{what}: expected a hex quantity, got {str(value)[:40]!r}")


def hex_quantity(value: int) -> str:
    return hex(value)


def _hint(outcome: Outcome[Any]) -> float | None:
    err = outcome.error
    return err.retry_after_s if isinstance(err, RpcRateLimited) else None


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, RpcError) and exc.retryable


class JsonRpc:
    """A JSON-RPC client for one node. ``where`` (the URL's origin) is what errors and logs show."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.url = url
        self.where = origin_of(url)
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._ids = itertools.count(1)
        self._max_retries = max_retries
        self._backoff = backoff
        self._sleep = sleep

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ transport

    async def request(self, method: str, params: list[Any]) -> Any:
        """The ``result`` of one call (None is a valid result: an unknown receipt)."""

        async def attempt() -> Any:  # a coroutine function: tenacity awaits only those
            return await self._once(method, params)

        return await retry_call(
            attempt,
            backoff=self._backoff,
            max_retries=self._max_retries,
            retry_error=_retryable,
            retry_after=RetryAfter(_hint, cap_s=RETRY_AFTER_CAP_S, replaces_backoff=False),
            sleep=self._sleep,
        )

    async def _once(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        where = self.where
        try:
            resp = await self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise RpcTimeout(f"RPC {where} {method}: no answer in time", method=method) from None
        except httpx.HTTPError as exc:
            raise RpcUnreachable(f"RPC {where} unreachable ({method}): {type(exc).__name__}", method=method) from None
        if resp.status_code == 429:
            hint = retry_after_seconds(resp.headers.get("Retry-After"))
            after = "" if hint is None or not math.isfinite(hint) else f", retry after {hint:g} s"
            raise RpcRateLimited(
                f"RPC {where} {method}: rate limited (HTTP 429{after})", method=method, retry_after_s=hint
            )
        if resp.status_code != 200:
            raise RpcHttpError(f"RPC {where} {method}: HTTP {resp.status_code}", method=method, status=resp.status_code)
        try:
            payload = resp.json()
        except ValueError:
            raise RpcBadAnswer(f"RPC {where} {method}: the answer is not JSON", method=method) from None
        if not isinstance(payload, dict) or ("result" not in payload and "error" not in payload):
            raise RpcBadAnswer(f"RPC {where} {method}: not a JSON-RPC response", method=method)
        if payload.get("error") is not None:
            raise call_error(method, where, payload["error"])
        return payload.get("result")

    # ------------------------------------------------------------------ reads

    async def chain_id(self) -> int:
        return quantity(await self.request("eth_chainId", []), "eth_chainId")

    async def block_number(self) -> int:
        return quantity(await self.request("eth_blockNumber", []), "eth_blockNumber")

    async def get_transaction_count(self, address: str, block: str = "pending") -> int:
        return quantity(await self.request("eth_getTransactionCount", [address, block]), "eth_getTransactionCount")

    async def gas_price(self) -> int:
        return quantity(await self.request("eth_gasPrice", []), "eth_gasPrice")

    async def max_priority_fee_per_gas(self) -> int:
        return quantity(await self.request("eth_maxPriorityFeePerGas", []), "eth_maxPriorityFeePerGas")

    async def fee_history(
        self, block_count: int, newest: str = "latest", percentiles: list[float] | None = None
    ) -> dict[str, Any]:
        result = await self.request("eth_feeHistory", [hex_quantity(block_count), newest, percentiles or []])
        if not isinstance(result, dict):
            raise RpcBadAnswer(f"RPC {self.where} eth_feeHistory: not an object", method="eth_feeHistory")
        return result

    async def get_block(self, block: str = "latest") -> dict[str, Any] | None:
        result = await self.request("eth_getBlockByNumber", [block, False])
        if result is not None and not isinstance(result, dict):
            raise RpcBadAnswer(f"RPC {self.where} eth_getBlockByNumber: not an object", method="eth_getBlockByNumber")
        return result

    async def base_fee(self) -> int:
        """The base fee a transaction sent now must meet: the larger of the latest block's and the
        next block's (``eth_feeHistory`` gives both); the latest block's alone where the node has
        no ``eth_feeHistory``."""
        try:
            history = await self.fee_history(1, "latest")
            fees = [quantity(v, "baseFeePerGas") for v in history.get("baseFeePerGas") or []]
            if fees:
                return max(fees)
        except RpcCallError:
            pass
        block = await self.get_block("latest")
        if block is None or "baseFeePerGas" not in block:
            raise RpcBadAnswer(f"RPC {self.where}: the latest block has no baseFeePerGas (not an EIP-1559 chain?)")
        return quantity(block["baseFeePerGas"], "baseFeePerGas")

    async def estimate_gas(self, tx: dict[str, Any]) -> int:
        return quantity(await self.request("eth_estimateGas", [tx]), "eth_estimateGas")

    async def eth_call(self, to: str, data: str, block: str = "latest") -> str:
        result = await self.request("eth_call", [{"to": to, "data": data}, block])
        if not isinstance(result, str) or not result.startswith("0x"):
            raise RpcBadAnswer(f"RPC {self.where} eth_call to {to} returned no result", method="eth_call")
        return result

    async def get_transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        return await self._object_or_none("eth_getTransactionReceipt", tx_hash)

    async def get_transaction_by_hash(self, tx_hash: str) -> dict[str, Any] | None:
        return await self._object_or_none("eth_getTransactionByHash", tx_hash)

    async def _object_or_none(self, method: str, tx_hash: str) -> dict[str, Any] | None:
        result = await self.request(method, [tx_hash])
        if result is not None and not isinstance(result, dict):
            raise RpcBadAnswer(f"RPC {self.where} {method}: not an object", method=method)
        return result

    # ------------------------------------------------------------------ write

    async def send_raw_transaction(self, raw: bytes) -> str:
        """Broadcast signed bytes; the transaction hash the node computed."""
        result = await self.request("eth_sendRawTransaction", ["0x" + raw.hex()])
        if not isinstance(result, str) or not result.startswith("0x"):
            raise RpcBadAnswer(
                f"RPC {self.where} eth_sendRawTransaction returned no hash", method="eth_sendRawTransaction"
            )
        return result
