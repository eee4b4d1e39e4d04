"""The CLOB requests on aiohttp's client: one keep-alive pool, the transport errors classified as
:func:`~core.execution.relayers.clob_http.classify_transport` classifies httpx's.

Why not httpx here: an order's ``POST /orders`` is on the tick-to-wire path, and on loopback httpx
spends ~0.9 ms of CPU per request before its last byte leaves (URL merging, header models, anyio
locks, a failed ``import sniffio`` per request in httpcore) against ~0.16 ms for aiohttp's client
(bench/tick_to_wire.py, issue 15). Every request of the relayer goes through the same pool, so the
heartbeat keeps the connection the next order uses warm. Headers and body are the ones
:class:`~core.execution.relayers.clob_http.ClobHttp` builds: the venue sees the same request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from core.execution.types import ErrorClass, Outcome


class WireError(Exception):
    """A request that got no HTTP answer: ``outcome`` says whether it may have reached the venue."""

    def __init__(self, outcome: Outcome, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.error_class = error_class
        self.message = message


@dataclass(frozen=True, slots=True)
class WireAnswer:
    status: int
    payload: object
    """The decoded JSON, the text when it is not JSON, None when empty."""
    retry_after: str | None


def classify_aiohttp(exc: BaseException) -> WireError:
    """Before sending -> RETRYABLE (a connect failure or timeout: nothing left); after -> UNKNOWN."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return WireError(Outcome.RETRYABLE, ErrorClass.TIMEOUT, f"{name}: request not sent")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return WireError(Outcome.RETRYABLE, ErrorClass.NETWORK, f"{name}: could not connect")
    if isinstance(exc, TimeoutError):
        return WireError(Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"{name}: no answer after the request was sent")
    return WireError(Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"{name}: connection failed after sending")


def decode(body: bytes) -> object:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class ClobWire:
    """Requests to one host on one aiohttp session, opened on first use (it needs the running loop)."""

    def __init__(self, host: str, headers: Mapping[str, str], timeout_s: float, connect_timeout_s: float) -> None:
        self.host = host
        self._headers = dict(headers)
        # connect: the pool wait and the connection (nothing sent yet); sock_read: waiting for the answer
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
    ) -> WireAnswer:
        """One request; raises :class:`WireError` when no HTTP answer came."""
        session = self._session or self._open()
        try:
            async with session.request(
                method, self.host + path, data=content, headers=headers, params=params, allow_redirects=False
            ) as resp:
                body = await resp.read()
                return WireAnswer(resp.status, decode(body), resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise classify_aiohttp(exc) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
