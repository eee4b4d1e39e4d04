"""Async HTTP to the CLOB, with the official client's auth headers and a precise error taxonomy.

The official client sends requests through one module-level synchronous ``httpx.Client`` and
folds every transport error into ``PolyApiException("Request exception!")``, dropping both the
distinction between "never sent" (connect failure) and "sent, no answer" (read timeout) and the
``Retry-After`` header. Those distinctions decide whether an order may be retried, so requests go
through our own client while the L1/L2 headers and body serialisation come from the official
client (``create_level_1_headers``, ``create_level_2_headers``): what the venue sees is
byte-for-byte what the client would send (the L2 headers by :class:`L2Auth`, held equal to
``create_level_2_headers``). The client is aiohttp's (:mod:`.clob_wire`: a quarter of
httpx's CPU per order post); an injected httpx transport (tests, preflight doubles) selects httpx.
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from typing import TypeAlias

import httpx
from py_clob_client_v2.clob_types import ApiCreds
from py_clob_client_v2.headers.headers import create_level_1_headers
from py_clob_client_v2.signer import Signer

from core.execution.relayers.clob_signing import serialize_body
from core.execution.relayers.clob_wire import ClobWire, WireAnswer, WireError
from core.execution.types import ErrorClass, Outcome
from core.execution.venue_link import VenueLink
from core.redact import register_secret
from core.retry import retry_after_seconds

log = logging.getLogger(__name__)

_BASE_HEADERS = {
    "User-Agent": "py_clob_client_v2",
    "Accept": "*/*",
    "Content-Type": "application/json",
}


Creds: TypeAlias = "ApiCreds | tuple[str, str, str]"


def as_creds(creds: Creds | None) -> ApiCreds | None:
    """The official credentials object, its secret and passphrase registered for redaction."""
    if creds is None:
        return None
    official: ApiCreds = ApiCreds(*creds) if isinstance(creds, tuple) else creds
    # The secret and passphrase are masked in every log line and error text from now on.
    register_secret(official.api_secret)
    register_secret(official.api_passphrase)
    return official


class VenueError(Exception):
    """A request that did not succeed, classified for the engine.

    ``outcome`` follows the relayer contract: RETRYABLE means the request certainly had no effect,
    UNKNOWN means it may have reached the venue, REJECTED is a final refusal.
    """

    def __init__(
        self,
        outcome: Outcome,
        error_class: ErrorClass,
        message: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.error_class = error_class
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else self.error_class.value
        return f"{where}: {self.message}"


def venue_message(payload: object, fallback: str = "") -> str:
    """The venue's error text from ``{"error": ...}`` / ``{"errorMsg": ...}`` or a raw body."""
    if isinstance(payload, dict):
        for key in ("error", "errorMsg", "message"):
            value = payload.get(key)
            if value:
                return value if isinstance(value, str) else serialize_body(value)
    if isinstance(payload, str) and payload.strip():
        return payload.strip()[:500]
    return fallback


def classify_status(status: int, payload: object, retry_after: str | None) -> VenueError:
    """Map a non-2xx answer to a :class:`VenueError`."""
    message = venue_message(payload, fallback=f"HTTP {status}")
    wait = retry_after_seconds(retry_after)
    if status == 425:
        return VenueError(Outcome.RETRYABLE, ErrorClass.MAINTENANCE, message, status, wait)
    if status == 429:
        return VenueError(Outcome.RETRYABLE, ErrorClass.RATE_LIMITED, message, status, wait)
    if status == 408:
        # The server gave up waiting for the request itself: it was not processed.
        return VenueError(Outcome.RETRYABLE, ErrorClass.TIMEOUT, message, status, wait)
    if status == 503:
        # 503 is the venue refusing work (cancel-only mode, unavailable): the request had no effect.
        return VenueError(Outcome.RETRYABLE, ErrorClass.SERVER, message, status, wait)
    if status >= 500:
        # Any other 5xx may come after the matching engine took the order: never assume it did not.
        return VenueError(Outcome.UNKNOWN, ErrorClass.SERVER, message, status, wait)
    return VenueError(Outcome.REJECTED, ErrorClass.BAD_REQUEST, message, status, wait)


def classify_transport(exc: httpx.HTTPError) -> VenueError:
    """Map an httpx transport failure: before sending -> RETRYABLE, after -> UNKNOWN."""
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return VenueError(Outcome.RETRYABLE, ErrorClass.TIMEOUT, f"{name}: request not sent")
    if isinstance(exc, httpx.ConnectError):
        return VenueError(Outcome.RETRYABLE, ErrorClass.NETWORK, f"{name}: could not connect")
    if isinstance(exc, httpx.TimeoutException):
        return VenueError(Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"{name}: no answer after the request was sent")
    return VenueError(Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"{name}: connection failed after sending")


class L2Auth:
    """The official client's L2 headers (``create_level_2_headers``: HMAC-SHA256 of timestamp, method,
    path and body under the base64 secret) with the secret decoded once and the HMAC taken in one C
    call; tests/unit/test_clob_wire.py holds them equal to the official ones. Never printed."""

    __slots__ = ("_address", "_key", "_key_id", "_passphrase")

    def __init__(self, address: str, creds: ApiCreds) -> None:
        self._address = address
        self._key = base64.urlsafe_b64decode(creds.api_secret)
        self._key_id = creds.api_key
        self._passphrase = creds.api_passphrase

    def __repr__(self) -> str:
        return "L2Auth(<credentials not shown>)"

    def headers(self, method: str, path: str, serialized: str | None, ts: int) -> dict[str, str]:
        message = f"{ts}{method}{path}"
        if serialized:
            message += serialized.replace("'", '"')  # as build_hmac_signature does
        signature = base64.urlsafe_b64encode(hmac.digest(self._key, message.encode("utf-8"), "sha256")).decode()
        return {
            "POLY_ADDRESS": self._address,
            "POLY_SIGNATURE": signature,
            "POLY_TIMESTAMP": str(ts),
            "POLY_API_KEY": self._key_id,
            "POLY_PASSPHRASE": self._passphrase,
        }


class ClobHttp:
    """Authenticated JSON requests to one CLOB host."""

    def __init__(
        self,
        host: str,
        signer: Signer | None,
        creds: ApiCreds | None,
        *,
        timeout_s: float = 5.0,
        connect_timeout_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        self._signer = signer
        self._creds = creds
        self._l2: L2Auth | None = None  # made on first use from the signer and credentials
        self.timeout_s = timeout_s
        self.link = VenueLink()  # reachability, from the outcome of every request
        connect_s = connect_timeout_s if connect_timeout_s is not None else timeout_s
        self._wire: ClobWire | None = None
        self._client: httpx.AsyncClient | None = None
        if transport is None:
            self._wire = ClobWire(self.host, _BASE_HEADERS, timeout_s, connect_s)
        else:
            self._client = httpx.AsyncClient(
                base_url=self.host,
                timeout=httpx.Timeout(timeout_s, connect=connect_s),
                headers=_BASE_HEADERS,
                transport=transport,
                follow_redirects=False,
            )

    def __repr__(self) -> str:
        return f"ClobHttp(host={self.host!r}, auth={'L2' if self._creds else 'L1' if self._signer else 'none'})"

    @property
    def has_l2(self) -> bool:
        return self._signer is not None and self._creds is not None

    def set_creds(self, creds: ApiCreds) -> None:
        self._creds = creds
        self._l2 = None

    async def aclose(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
        if self._client is not None:
            await self._client.aclose()

    def _auth_headers(
        self, auth: str | None, method: str, path: str, serialized: str | None, nonce: int
    ) -> dict[str, str]:
        if auth is None:
            return {}
        if self._signer is None:
            raise VenueError(Outcome.REJECTED, ErrorClass.BAD_REQUEST, "a private key is needed for this request")
        if auth == "l1":
            return {k: str(v) for k, v in create_level_1_headers(self._signer, nonce=nonce).items()}
        if self._creds is None:
            raise VenueError(Outcome.REJECTED, ErrorClass.BAD_REQUEST, "API credentials are needed for this request")
        if self._l2 is None:
            self._l2 = L2Auth(str(self._signer.address()), self._creds)
        return self._l2.headers(method, path, serialized, int(time.time()))

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: dict[str, str] | None = None,
        auth: str | None = None,
        nonce: int = 0,
        serialized: str | None = None,
    ) -> object:
        """Send one request; returns the decoded JSON (or text) of a 2xx, raises :class:`VenueError`."""
        if serialized is None and body is not None:
            serialized = serialize_body(body)
        headers = self._auth_headers(auth, method, path, serialized, nonce)
        content = serialized.encode("utf-8") if serialized is not None else None
        try:
            answer = await self._send(method, path, content, headers, params)
        except WireError as exc:
            err = VenueError(exc.outcome, exc.error_class, exc.message)
            self.link.failed(str(err))
            # debug, not warning: the caller reports what it does with the error (a command's error
            # line, "venue heartbeat failed: ..."); a warning here printed the same text twice
            log.debug("clob %s %s failed: %s", method, path, err)
            raise err from None
        if answer.status // 100 != 2:
            err = classify_status(answer.status, answer.payload, answer.retry_after)
            if answer.status >= 500:
                self.link.failed(str(err))
            else:
                self.link.ok()  # a 4xx is an answer: the venue is there
            log.debug("clob %s %s -> %s", method, path, err)  # the caller reports it (see above)
            raise err
        self.link.ok()
        return answer.payload

    async def _send(
        self, method: str, path: str, content: bytes | None, headers: dict[str, str], params: dict[str, str] | None
    ) -> WireAnswer:
        if self._wire is not None:
            return await self._wire.request(method, path, content, headers, params)
        assert self._client is not None
        try:
            resp = await self._client.request(method, path, content=content, params=params, headers=headers)
        except httpx.HTTPError as exc:
            err = classify_transport(exc)
            raise WireError(err.outcome, err.error_class, err.message) from None
        return WireAnswer(resp.status_code, _decode(resp), resp.headers.get("retry-after"))


def _decode(resp: httpx.Response) -> object:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text
