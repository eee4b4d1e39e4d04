"""What can go wrong talking to a JSON-RPC node, as errors a person can read in one line.

Every message names the node by its origin only (``https://host``): an RPC URL often carries an
API key in its path or query. ``retryable`` says whether asking again may help (a 429, a
timeout); :mod:`core.chain.rpc` retries those, bounded, honouring Retry-After.

An error object from the node is a :class:`RpcCallError`; the ones the transaction layer acts on
have their own class: the nonce is already used (:class:`NonceTooLow`), the node already has this
very transaction (:class:`AlreadyKnown`), a replacement's fees are not high enough
(:class:`ReplacementUnderpriced`), the call reverts (:class:`ExecutionReverted`, with the reason
decoded when the node sent the revert data).
"""

from __future__ import annotations

from core.errors import PolybotError

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


class RpcError(PolybotError):
    """A JSON-RPC request that did not give an answer."""

    retryable = False

    def __init__(self, message: str, *, method: str = "") -> None:
        super().__init__(message)
        self.method = method


class RpcUnreachable(RpcError):
    """No connection to the node (refused, DNS, TLS)."""


class RpcTimeout(RpcError):
    """The node did not answer in time; the request may or may not have been handled."""

    retryable = True


class RpcRateLimited(RpcError):
    """HTTP 429; ``retry_after_s`` is the server's hint (None when it gave none)."""

    retryable = True

    def __init__(self, message: str, *, method: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(message, method=method)
        self.retry_after_s = retry_after_s


class RpcHttpError(RpcError):
    """An HTTP status other than 200 and 429."""

    def __init__(self, message: str, *, method: str = "", status: int = 0) -> None:
        super().__init__(message, method=method)
        self.status = status


class RpcBadAnswer(RpcError):
    """An answer that is not a JSON-RPC response of the expected shape."""


class RpcCallError(RpcError):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, message: str, *, method: str = "", code: int | None = None, data: object = None) -> None:
        super().__init__(message, method=method)
        self.code = code
        self.data = data


class NonceTooLow(RpcCallError):
    """The nonce is already used by a mined transaction of the same sender."""


class AlreadyKnown(RpcCallError):
    """The node already holds this exact transaction (same hash): sending it again changed nothing."""


class ReplacementUnderpriced(RpcCallError):
    """A transaction with this nonce is pending and the new one does not raise both fees enough."""


class ExecutionReverted(RpcCallError):
    """The call reverts (eth_estimateGas / eth_call); ``reason`` is the decoded revert reason, if any."""

    def __init__(
        self, message: str, *, method: str = "", code: int | None = None, data: object = None, reason: str | None = None
    ) -> None:
        super().__init__(message, method=method, code=code, data=data)
        self.reason = reason


def revert_reason(data: object) -> str | None:
    """The reason in revert data: ``Error(string)`` text, ``Panic(uint256)`` code, or None."""
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."} or {"message":..., "data":...}
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x"):
        return None
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return None
    if raw[:4] not in (ERROR_STRING_SELECTOR, PANIC_SELECTOR):
        return f"custom error 0x{raw[:4].hex()}" if len(raw) >= 4 else None
    from eth_abi.abi import decode  # eth_abi (~0.15 s to import) only when a revert reason is read
    from eth_abi.exceptions import DecodingError

    try:
        if raw[:4] == ERROR_STRING_SELECTOR:
            (text,) = decode(["string"], raw[4:])
            return str(text)
        (code,) = decode(["uint256"], raw[4:])  # PANIC_SELECTOR
        return f"panic 0x{int(code):02x}"
    except (DecodingError, ValueError, OverflowError):
        return None


def call_error(method: str, where: str, error: object) -> RpcCallError:
    """The exception for a JSON-RPC error object, classified by what the node's message says."""
    if isinstance(error, dict):
        raw_code = error.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        message = str(error.get("message") or "no message")
        data = error.get("data")
    else:
        code, message, data = None, str(error), None
    text = f"RPC {where} {method} failed: {message}"
    low = message.lower()
    if "nonce too low" in low or "nonce is too low" in low:
        return NonceTooLow(text, method=method, code=code, data=data)
    if "already known" in low or "known transaction" in low or "already imported" in low:
        return AlreadyKnown(text, method=method, code=code, data=data)
    if "replacement transaction underpriced" in low or "replacement fee too low" in low:
        return ReplacementUnderpriced(text, method=method, code=code, data=data)
    if code == 3 or "revert" in low:
        reason = revert_reason(data)
        if reason is not None and reason not in message:
            text = f"{text} (reason: {reason})"
        return ExecutionReverted(text, method=method, code=code, data=data, reason=reason)
    return RpcCallError(text, method=method, code=code, data=data)
