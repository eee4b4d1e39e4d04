"""CLOB V2 relayer (``type = "real"``): dry-run (sign, never post) and live (post, cancel, reconcile).

Built on the official ``py-clob-client-v2``: orders are built and signed by its ``OrderBuilder``
(see :mod:`.clob_signing`), request bodies and L1/L2 auth headers are produced by its functions
(see :mod:`.clob_http`). Signing runs in a worker thread (``asyncio.to_thread``) and never waits
on REST: market parameters (tick size, neg-risk, fees) are pre-warmed with :meth:`prewarm`.

How a ``POST /order`` answer maps to the relayer contract:

====================================  =========  ===============  ============================
answer                                outcome    error class      order status
====================================  =========  ===============  ============================
200 ``success: true``                 ACCEPTED   none             live / filled / partially
200 ``success: false`` or 4xx         REJECTED   400              rejected
425 (matching-engine restart)         RETRYABLE  425              new (Retry-After kept)
429 (throttled)                       RETRYABLE  429              new (Retry-After kept)
503 (cancel-only / unavailable)       RETRYABLE  5xx              new
other 5xx                             UNKNOWN    5xx              submitted_unknown
connect error / connect timeout       RETRYABLE  network/timeout  new (nothing was sent)
read timeout, connection lost         UNKNOWN    unknown-outcome  submitted_unknown
====================================  =========  ===============  ============================

An UNKNOWN result carries the locally computed order hash (``PlaceResult.order_hash``): the venue's
order id is that hash, so :meth:`ClobRelayer.lookup` finds the order even when its response was
lost. Re-placing the same ``client_order_id`` with the same content re-sends the *same* signed
order, so a retry can never create a second order: the venue answers "duplicated" and the
relayer reports the existing order.

Fills do not come from ``POST /order`` answers but from the user channel (``/ws/user``), where a
trade runs MATCHED -> MINED -> CONFIRMED (or RETRYING -> FAILED): ``on_fill`` gets an unconfirmed
:class:`Fill` when a trade is first seen and a confirmed one at CONFIRMED; ``on_order_event`` gets
every :class:`OrderEvent` / :class:`TradeEvent`. After a reconnect, open orders and trades are
re-read over REST (the channel does not replay) and fed through the same de-duplicating path.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import httpx
from py_clob_client_v2.clob_types import ApiCreds

from core.errors import PolybotError, UsageError
from core.execution.relayers.clob_http import ClobHttp, VenueError
from core.execution.relayers.clob_signing import (
    POLYGON_CHAIN_ID,
    MarketParams,
    OrderInvalid,
    OrderSigner,
    SignedClobOrder,
)
from core.execution.relayers.clob_user_channel import (
    OrderEvent,
    TradeEvent,
    TradeStatus,
    UserChannel,
    UserEvent,
    UserStreamTranslator,
    map_order_status,
    parse_decimal,
    parse_side,
)
from core.execution.types import (
    CancelResult,
    ErrorClass,
    Fill,
    OrderRequest,
    OrderStatus,
    Outcome,
    PlaceResult,
    VenueOrder,
)
from core.execution.venue_link import VenueStatus
from core.money import from_units
from core.redact import register_secret
from core.types import MarketInfo, Mode, OrderType, Side

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://clob.polymarket.com"
DEFAULT_USER_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/user"
END_CURSOR = "LTE="
INITIAL_CURSOR = "MA=="
MAX_PAGES = 1000
RESYNC_LOOKUPS = 200
MAX_FINAL_REMEMBERED = 100_000

_FINAL_ORDER_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED})

FillCallback = Callable[[Fill], Awaitable[None] | None]
EventCallback = Callable[[UserEvent], Awaitable[None] | None]
Creds = ApiCreds | tuple[str, str, str]


def _as_creds(creds: Creds | None) -> ApiCreds | None:
    if creds is None:
        return None
    if not isinstance(creds, ApiCreds):
        key, secret, passphrase = creds
        creds = ApiCreds(api_key=key, api_secret=secret, api_passphrase=passphrase)
    # The secret and passphrase are masked in every log line and error text from now on.
    register_secret(creds.api_secret)
    register_secret(creds.api_passphrase)
    return creds


def _order_key(order: OrderRequest) -> tuple[object, ...]:
    return (
        order.token_id,
        order.side,
        order.price,
        order.size,
        order.order_type,
        order.post_only,
        order.expiration,
    )


def _order_status_from_post(resp: dict[str, Any], order: OrderRequest) -> OrderStatus:
    status = str(resp.get("status") or "").lower()
    if status == "matched":
        if order.order_type is OrderType.FOK:
            return OrderStatus.FILLED
        shares = parse_decimal(resp.get("takingAmount") if order.side is Side.BUY else resp.get("makingAmount"))
        if shares is not None and shares >= order.size:
            return OrderStatus.FILLED
        return OrderStatus.PARTIALLY_FILLED
    return OrderStatus.LIVE


def venue_order_from(item: dict[str, Any], client_order_id: str | None) -> VenueOrder | None:
    """A ``/data/orders`` or ``/data/order/{id}`` item -> :class:`VenueOrder` (None when unreadable)."""
    side = parse_side(item.get("side"))
    price = parse_decimal(item.get("price"))
    original = parse_decimal(item.get("original_size"))
    if not item.get("id") or side is None or price is None or original is None:
        return None
    return VenueOrder(
        venue_order_id=str(item["id"]),
        client_order_id=client_order_id,
        token_id=str(item.get("asset_id") or ""),
        side=side,
        price=price,
        original_size=original,
        size_matched=parse_decimal(item.get("size_matched")) or Decimal(0),
        status=str(item.get("status") or ""),
    )


def market_params_from_clob_market(condition_id: str, payload: dict[str, Any]) -> list[MarketParams]:
    """Parse ``GET /clob-markets/{condition_id}`` (compact: ``t``, ``mts``, ``nr``, ``fd``)."""
    tokens = payload.get("t") or []
    tick = parse_decimal(payload.get("mts"))
    if not tokens or tick is None:
        raise ValueError(f"market info for {condition_id} has no tokens or tick size")
    fees = payload.get("fd") or {}
    min_size = parse_decimal(payload.get("mos")) or Decimal("5")
    out = []
    for token in tokens:
        if not token or not token.get("t"):
            continue
        out.append(
            MarketParams(
                token_id=str(token["t"]),
                tick_size=tick,
                neg_risk=bool(payload.get("nr", False)),
                condition_id=condition_id,
                outcome=str(token.get("o") or ""),
                min_order_size=min_size,
                fee_rate=parse_decimal(fees.get("r")) or Decimal(0),
                fee_exponent=parse_decimal(fees.get("e")) or Decimal(0),
            )
        )
    return out


def market_params_from_market(payload: dict[str, Any]) -> list[MarketParams]:
    """Parse ``GET /markets/{condition_id}`` (full shape: ``tokens[]``, ``minimum_tick_size`` ...)."""
    tick = parse_decimal(payload.get("minimum_tick_size"))
    if tick is None:
        raise ValueError("market has no minimum_tick_size")
    out = []
    for token in payload.get("tokens") or []:
        if not token.get("token_id"):
            continue
        out.append(
            MarketParams(
                token_id=str(token["token_id"]),
                tick_size=tick,
                neg_risk=bool(payload.get("neg_risk", False)),
                condition_id=str(payload.get("condition_id") or "") or None,
                outcome=str(token.get("outcome") or ""),
                min_order_size=parse_decimal(payload.get("minimum_order_size")) or Decimal("5"),
            )
        )
    return out


class ClobRelayer:
    """Places and cancels orders on Polymarket's CLOB V2 (see the module docstring for the mapping)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        chain_id: int = POLYGON_CHAIN_ID,
        private_key: str = "",
        *,
        signature_type: int = 0,
        funder: str | None = None,
        api_creds: Creds | None = None,
        dry_run: bool = True,
        timeout_s: float = 5.0,
        connect_timeout_s: float | None = None,
        user_ws_url: str | None = None,
        user_markets: Iterable[str] = (),
        on_fill: FillCallback | None = None,
        on_order_event: EventCallback | None = None,
        heartbeat_interval_s: float = 5.0,
        derive_api_key: bool = False,
        signed_cache_size: int = 10_000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not private_key:
            raise UsageError("the CLOB relayer needs a private key")
        self._signer = OrderSigner(private_key, chain_id=chain_id, signature_type=signature_type, funder=funder)
        self.host = host.rstrip("/")
        self.chain_id = chain_id
        self.mode = Mode.DRY_RUN if dry_run else Mode.LIVE
        self._creds = _as_creds(api_creds)
        self._derive = derive_api_key
        self._http = ClobHttp(
            self.host,
            self._signer.official_signer,
            self._creds,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            transport=transport,
        )
        self.user_ws_url = user_ws_url
        self._user_markets = list(dict.fromkeys(user_markets))
        self.on_fill = on_fill
        self.on_order_event = on_order_event
        self.heartbeat_interval_s = heartbeat_interval_s
        self._params: dict[str, MarketParams] = {}
        self._signed: OrderedDict[str, tuple[tuple[object, ...], SignedClobOrder]] = OrderedDict()
        self._hash_by_client: OrderedDict[str, str] = OrderedDict()
        self._cache_size = signed_cache_size
        self._translator = UserStreamTranslator(
            self._creds.api_key if self._creds else None, {self._signer.maker, self._signer.order_signer}
        )
        self._user: UserChannel | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._heartbeat_id = ""
        self._heartbeat_ok_at: float | None = None  # monotonic
        self._last_trade_ts = 0
        self._final_orders: set[str] = set()
        self._started = False
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------ identity

    def __repr__(self) -> str:
        return (
            f"ClobRelayer(mode={self.mode.value}, host={self.host!r}, address={self.address}, "
            f"maker={self.maker}, signature_type={int(self._signer.signature_type)})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pragma: no cover - guard: pickling would copy the key
        raise TypeError("ClobRelayer holds a private key and cannot be pickled")

    @property
    def address(self) -> str:
        return self._signer.address

    @property
    def maker(self) -> str:
        return self._signer.maker

    @property
    def signer(self) -> OrderSigner:
        return self._signer

    @property
    def api_key(self) -> str | None:
        return self._creds.api_key if self._creds else None

    @property
    def translator(self) -> UserStreamTranslator:
        return self._translator

    @property
    def user_channel(self) -> UserChannel | None:
        return self._user

    # ------------------------------------------------------------------ life-cycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.mode is not Mode.LIVE:
            return
        if self._creds is None:
            if not self._derive:
                raise UsageError("live mode needs API credentials (api key, secret, passphrase) or derive_api_key")
            await self.derive_api_creds()
        if self.heartbeat_interval_s > 0:
            self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="clob-heartbeat")
        if self.user_ws_url:
            self._start_user_channel()

    async def close(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeat_task
            self._heartbeat_task = None
        if self._user is not None:
            await self._user.stop()
            self._user = None
        await self._http.aclose()
        self._started = False

    async def __aenter__(self) -> ClobRelayer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def derive_api_creds(self) -> ApiCreds:
        """L1: derive (or create) this key's API credentials; they are kept, never logged."""
        try:
            resp = await self._http.request("GET", "/auth/derive-api-key", auth="l1")
        except VenueError:
            resp = await self._http.request("POST", "/auth/api-key", auth="l1")
        if not isinstance(resp, dict) or not resp.get("apiKey"):
            raise PolybotError("the venue returned no API credentials")
        creds = _as_creds(
            ApiCreds(api_key=resp["apiKey"], api_secret=resp["secret"], api_passphrase=resp["passphrase"])
        )
        assert creds is not None
        self._creds = creds
        self._http.set_creds(creds)
        self._translator.api_key = creds.api_key
        return creds

    # ------------------------------------------------------------------ market parameters

    async def prewarm(self, condition_id: str) -> list[MarketParams]:
        """Fetch tick size / neg-risk / fees of both tokens of a market (one REST call)."""
        try:
            payload = await self._http.request("GET", f"/clob-markets/{condition_id}")
            params = market_params_from_clob_market(condition_id, payload)
        except (VenueError, ValueError, TypeError, AttributeError) as first:
            try:
                payload = await self._http.request("GET", f"/markets/{condition_id}")
                params = market_params_from_market(payload)
            except (VenueError, ValueError, TypeError, AttributeError) as exc:
                raise PolybotError(f"cannot read market {condition_id}: {first}; {exc}") from None
        for p in params:
            self._params[p.token_id] = p
        self._watch_market(condition_id)
        return params

    def _watch_market(self, condition_id: str | None) -> None:
        """Receive user-channel events for this market too (resubscribes a running channel)."""
        if not condition_id or condition_id in self._user_markets:
            return
        self._user_markets.append(condition_id)
        if self._user is not None:
            self._user.set_markets(self._user_markets)

    def prewarm_token(
        self,
        token_id: str,
        tick_size: Decimal,
        neg_risk: bool,
        *,
        condition_id: str | None = None,
        fee_rate: Decimal = Decimal(0),
        min_order_size: Decimal = Decimal("5"),
    ) -> MarketParams:
        """Pre-warm from parameters already known (Gamma / the markets table): no network."""
        params = MarketParams(
            token_id=token_id,
            tick_size=tick_size,
            neg_risk=neg_risk,
            condition_id=condition_id,
            fee_rate=fee_rate,
            min_order_size=min_order_size,
        )
        self._params[token_id] = params
        self._watch_market(condition_id)
        return params

    def prewarm_market(self, market: MarketInfo) -> list[MarketParams]:
        return [
            self.prewarm_token(
                tok.token_id,
                market.tick_size,
                market.neg_risk,
                condition_id=market.condition_id,
                fee_rate=market.fee_rate,
                min_order_size=market.min_order_size,
            )
            for tok in market.tokens
        ]

    def market_params(self, token_id: str) -> MarketParams | None:
        return self._params.get(token_id)

    def update_tick_size(self, token_id: str, tick_size: Decimal) -> None:
        """A ``tick_size_change`` arrived: sign with the new tick from now on."""
        current = self._params.get(token_id)
        if current is not None:
            self._params[token_id] = MarketParams(
                token_id=token_id,
                tick_size=tick_size,
                neg_risk=current.neg_risk,
                condition_id=current.condition_id,
                outcome=current.outcome,
                min_order_size=current.min_order_size,
                fee_rate=current.fee_rate,
                fee_exponent=current.fee_exponent,
            )

    # ------------------------------------------------------------------ signing

    def remember_order(self, client_order_id: str, order_hash: str) -> None:
        """Seed the client id -> order hash map (e.g. from the orders table after a restart)."""
        self._hash_by_client[client_order_id] = order_hash
        self._hash_by_client.move_to_end(client_order_id)
        while len(self._hash_by_client) > self._cache_size:
            self._hash_by_client.popitem(last=False)

    def signed_order(self, client_order_id: str) -> SignedClobOrder | None:
        """The signed order last built for ``client_order_id`` (exchange, hash, body)."""
        cached = self._signed.get(client_order_id)
        return cached[1] if cached else None

    async def get_public(self, path: str, params: dict[str, str] | None = None) -> Any:
        """An unauthenticated GET (market data); raises :class:`VenueError`."""
        return await self._http.request("GET", path, params=params)

    def order_hash_for(self, client_order_id: str) -> str | None:
        return self._hash_by_client.get(client_order_id)

    async def sign(self, order: OrderRequest) -> SignedClobOrder:
        """The signed order for ``order`` (re-used when the same client id is placed again unchanged)."""
        key = _order_key(order)
        cached = self._signed.get(order.client_order_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None:
            self.stats["client_id_reused_with_other_content"] += 1
            log.warning("client order id %s re-used with different content: signing anew", order.client_order_id)
        params = self._params.get(order.token_id)
        if params is None:
            self.stats["sign_without_prewarm"] += 1
        owner = self._creds.api_key if self._creds else ""
        signed = await asyncio.to_thread(self._signer.sign, order, params, owner=owner)
        self._signed[order.client_order_id] = (key, signed)
        while len(self._signed) > self._cache_size:
            self._signed.popitem(last=False)
        self.remember_order(order.client_order_id, signed.order_hash)
        self._translator.register_order(signed.order_hash, order.client_order_id, order.side, order.token_id)
        return signed

    # ------------------------------------------------------------------ the Relayer protocol

    async def place(self, order: OrderRequest) -> PlaceResult:
        started = time.perf_counter()

        def ms() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            signed = await self.sign(order)
        except OrderInvalid as exc:
            self.stats["place_invalid"] += 1
            log.warning("order %s refused before signing: %s", order.client_order_id, exc)
            return PlaceResult(
                Outcome.REJECTED,
                status=OrderStatus.REJECTED,
                error_class=ErrorClass.BAD_REQUEST,
                error=str(exc),
                latency_ms=ms(),
            )
        body = signed.body
        if self.mode is not Mode.LIVE:
            self.stats["place_dry_run"] += 1
            return PlaceResult(
                Outcome.ACCEPTED,
                status=OrderStatus.DRY_RUN,
                signed_order=body,
                order_hash=signed.order_hash,
                latency_ms=ms(),
            )
        try:
            resp = await self._http.request("POST", "/order", serialized=signed.serialized, auth="l2")
        except VenueError as err:
            if err.outcome is Outcome.REJECTED and "duplicat" in err.message.lower():
                existing = await self._lookup_hash(signed.order_hash, order.client_order_id)
                if existing is not None:
                    self.stats["place_duplicate_found"] += 1
                    return PlaceResult(
                        Outcome.ACCEPTED,
                        venue_order_id=existing.venue_order_id,
                        status=map_order_status(existing.status, existing.original_size, existing.size_matched)
                        or OrderStatus.LIVE,
                        signed_order=body,
                        order_hash=signed.order_hash,
                        latency_ms=ms(),
                    )
            self.stats[f"place_{err.outcome.value}_{err.error_class.value}"] += 1
            status = {
                Outcome.REJECTED: OrderStatus.REJECTED,
                Outcome.UNKNOWN: OrderStatus.SUBMITTED_UNKNOWN,
            }.get(err.outcome, OrderStatus.NEW)
            return PlaceResult(
                err.outcome,
                status=status,
                error_class=err.error_class,
                error=err.message,
                retry_after_s=err.retry_after_s,
                signed_order=body,
                order_hash=signed.order_hash,
                latency_ms=ms(),
            )
        return self._post_result(resp, order, signed, ms())

    def _post_result(self, resp: Any, order: OrderRequest, signed: SignedClobOrder, latency: float) -> PlaceResult:
        if not isinstance(resp, dict):
            self.stats["place_unreadable_answer"] += 1
            return PlaceResult(
                Outcome.UNKNOWN,
                status=OrderStatus.SUBMITTED_UNKNOWN,
                error_class=ErrorClass.UNKNOWN_OUTCOME,
                error=f"unreadable answer to POST /order: {str(resp)[:200]}",
                signed_order=signed.body,
                order_hash=signed.order_hash,
                latency_ms=latency,
            )
        status_text = str(resp.get("status") or "").lower()
        if not resp.get("success") or status_text == "unmatched":
            self.stats["place_rejected_400"] += 1
            return PlaceResult(
                Outcome.REJECTED,
                status=OrderStatus.REJECTED,
                error_class=ErrorClass.BAD_REQUEST,
                error=str(resp.get("errorMsg") or resp.get("error") or f"order {status_text or 'not accepted'}"),
                signed_order=signed.body,
                order_hash=signed.order_hash,
                latency_ms=latency,
            )
        venue_id = str(resp.get("orderID") or signed.order_hash)
        if venue_id.lower() != signed.order_hash.lower():
            self.stats["venue_id_differs_from_hash"] += 1
            self._translator.register_order(venue_id, order.client_order_id, order.side, order.token_id)
        self.stats["place_accepted"] += 1
        return PlaceResult(
            Outcome.ACCEPTED,
            venue_order_id=venue_id,
            status=_order_status_from_post(resp, order),
            signed_order=signed.body,
            order_hash=signed.order_hash,
            latency_ms=latency,
        )

    async def cancel(self, venue_order_id: str) -> CancelResult:
        return await self._cancel("DELETE", "/order", {"orderID": venue_order_id}, [venue_order_id])

    async def cancel_many(self, venue_order_ids: list[str]) -> CancelResult:
        return await self._cancel("DELETE", "/orders", list(venue_order_ids), list(venue_order_ids))

    async def cancel_all(self) -> CancelResult:
        return await self._cancel("DELETE", "/cancel-all", None, [])

    async def cancel_market(self, market: str | None = None, asset_id: str | None = None) -> CancelResult:
        body = {k: v for k, v in (("market", market), ("asset_id", asset_id)) if v}
        return await self._cancel("DELETE", "/cancel-market-orders", body, [])

    async def _cancel(self, method: str, path: str, body: Any, ids: list[str]) -> CancelResult:
        if self.mode is not Mode.LIVE:
            return CancelResult(not_canceled={i: "dry-run: nothing was posted" for i in ids})
        try:
            resp = await self._http.request(method, path, body=body, auth="l2")
        except VenueError as err:
            self.stats[f"cancel_{err.outcome.value}_{err.error_class.value}"] += 1
            return CancelResult(
                not_canceled={i: err.message for i in ids},
                outcome=err.outcome,
                error_class=err.error_class,
                error=err.message,
            )
        resp = resp if isinstance(resp, dict) else {}
        canceled = tuple(str(x) for x in resp.get("canceled") or ())
        not_canceled = {str(k): str(v) for k, v in (resp.get("not_canceled") or {}).items()}
        self.stats["cancel_ok"] += 1
        return CancelResult(canceled=canceled, not_canceled=not_canceled)

    async def open_orders(self, market: str | None = None, asset_id: str | None = None) -> list[VenueOrder]:
        """Every open order (all pages). Raises :class:`VenueError` when the venue cannot be read:
        an empty list always means "none", never "could not tell"."""
        if self.mode is not Mode.LIVE:
            return []
        items = await self._paged("/data/orders", {k: v for k, v in (("market", market), ("asset_id", asset_id)) if v})
        out = []
        for item in items:
            vo = venue_order_from(item, self._translator.client_order_id(str(item.get("id") or "")))
            if vo is None:
                self.stats["bad_open_order"] += 1
                log.warning("open orders: unreadable item %s", str(item)[:200])
                continue
            out.append(vo)
        return out

    async def trades(self, *, after: int | None = None, market: str | None = None) -> list[dict[str, Any]]:
        """Our trades from ``GET /data/trades`` (all pages), raw items."""
        params = {k: str(v) for k, v in (("after", after), ("market", market)) if v}
        return await self._paged("/data/trades", params)

    async def _paged(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        cursor = INITIAL_CURSOR
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            resp = await self._http.request("GET", path, params={**params, "next_cursor": cursor}, auth="l2")
            if not isinstance(resp, dict):
                raise VenueError(Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"unreadable page from {path}")
            items.extend(x for x in resp.get("data") or () if isinstance(x, dict))
            cursor = str(resp.get("next_cursor") or END_CURSOR)
            if cursor == END_CURSOR:
                return items
        raise VenueError(Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"{path}: more than {MAX_PAGES} pages")

    async def get_order(self, venue_order_id: str) -> VenueOrder | None:
        """One order by id (= order hash); None when the venue does not know it."""
        if self.mode is not Mode.LIVE:
            return None
        return await self._lookup_hash(venue_order_id, self._translator.client_order_id(venue_order_id))

    async def _lookup_hash(self, order_hash: str, client_order_id: str | None) -> VenueOrder | None:
        try:
            resp = await self._http.request("GET", f"/data/order/{order_hash}", auth="l2")
        except VenueError as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(resp, dict) or not resp.get("id"):
            return None
        return venue_order_from(resp, client_order_id)

    async def lookup(self, order: OrderRequest) -> VenueOrder | None:
        """Find an order we may have placed: by its order hash (known from signing or remembered);
        without a hash, by an exact unique match among open orders. Raises :class:`VenueError`
        when the venue cannot be read (never "not found" by mistake)."""
        if self.mode is not Mode.LIVE:
            return None
        order_hash = self._hash_by_client.get(order.client_order_id)
        if order_hash is not None:
            return await self._lookup_hash(order_hash, order.client_order_id)
        claimed = set(self._hash_by_client.values())
        matches = [
            vo
            for vo in await self.open_orders(asset_id=order.token_id)
            if vo.side is order.side
            and vo.price == order.price
            and vo.original_size == order.size
            and vo.venue_order_id not in claimed
        ]
        if len(matches) == 1:
            found = matches[0]
            self.remember_order(order.client_order_id, found.venue_order_id)
            return VenueOrder(
                venue_order_id=found.venue_order_id,
                client_order_id=order.client_order_id,
                token_id=found.token_id,
                side=found.side,
                price=found.price,
                original_size=found.original_size,
                size_matched=found.size_matched,
                status=found.status,
            )
        if len(matches) > 1:
            self.stats["lookup_ambiguous"] += 1
            log.warning(
                "lookup %s: %d open orders match and no order hash is known", order.client_order_id, len(matches)
            )
        return None

    # ------------------------------------------------------------------ heartbeat

    async def heartbeat(self) -> str:
        """One venue heartbeat (chained by id). Once started, missing ~10 s cancels all orders."""
        try:
            resp = await self._http.request(
                "POST", "/v1/heartbeats", body={"heartbeat_id": self._heartbeat_id}, auth="l2"
            )
        except VenueError as err:
            if err.outcome is Outcome.REJECTED:
                self._heartbeat_id = ""  # start a fresh chain on the next beat
            raise
        if isinstance(resp, dict) and resp.get("heartbeat_id"):
            self._heartbeat_id = str(resp["heartbeat_id"])
        self.stats["heartbeats"] += 1
        self._heartbeat_ok_at = time.monotonic()
        return self._heartbeat_id

    def venue_status(self) -> VenueStatus:
        """REST reachability, user-channel state and heartbeat age (for alerts, /status, /health)."""
        link = self._http.link
        user = self._user
        if user is None:
            channel, user_down = "off", None
        else:
            channel = "connected" if user.connected.is_set() else "disconnected"
            user_down = None if user.connected.is_set() else user.down_since
        beat = self._heartbeat_ok_at
        return VenueStatus(
            rest_failures=link.failures,
            rest_down_since=link.down_since,
            rest_error=link.last_error,
            user_channel=channel,
            user_down_since=user_down,
            heartbeat_age_s=None if beat is None else time.monotonic() - beat,
        )

    # ------------------------------------------------------------------ balances

    async def collateral_balance(self) -> Decimal:
        """pUSD the venue says this account holds (``GET /balance-allowance``, COLLATERAL)."""
        return await self._balance({"asset_type": "COLLATERAL"})

    async def token_balance(self, token_id: str) -> Decimal:
        """Shares of one outcome token the venue says this account holds (CONDITIONAL)."""
        return await self._balance({"asset_type": "CONDITIONAL", "token_id": token_id})

    async def _balance(self, params: dict[str, str]) -> Decimal:
        query = {**params, "signature_type": str(int(self._signer.signature_type))}
        resp = await self._http.request("GET", "/balance-allowance", params=query, auth="l2")
        raw = resp.get("balance") if isinstance(resp, dict) else None
        try:
            return from_units(int(str(raw)))
        except (TypeError, ValueError):
            raise VenueError(
                Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"unreadable balance from /balance-allowance: {raw!r}"
            ) from None

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except VenueError as err:
                self.stats["heartbeat_errors"] += 1
                log.warning("venue heartbeat failed: %s", err)
            except Exception:
                self.stats["heartbeat_errors"] += 1
                log.exception("venue heartbeat crashed")
            await asyncio.sleep(self.heartbeat_interval_s)

    # ------------------------------------------------------------------ user channel

    def _start_user_channel(self) -> None:
        assert self._creds is not None and self.user_ws_url
        auth = {
            "apiKey": self._creds.api_key,
            "secret": self._creds.api_secret,
            "passphrase": self._creds.api_passphrase,
        }
        self._user = UserChannel(self.user_ws_url, auth, self._user_markets, self._on_items, self._on_connect)
        self._user.start()

    async def _on_items(self, items: list[Any], *, source: str = "ws") -> None:
        for item in items:
            for event in self._translator.handle(item, source=source):
                await self._dispatch(event)

    async def _dispatch(self, event: UserEvent) -> None:
        if isinstance(event, OrderEvent) and event.status in _FINAL_ORDER_STATUSES:
            if len(self._final_orders) >= MAX_FINAL_REMEMBERED:
                self._final_orders.clear()  # only an optimisation for resync: forgetting is safe
            self._final_orders.add(event.venue_order_id.lower())
        if isinstance(event, TradeEvent):
            self._last_trade_ts = max(self._last_trade_ts, event.fill.ts_ms // 1000)
        await self._call(self.on_order_event, event)
        if isinstance(event, TradeEvent) and self.on_fill is not None:
            if event.status is TradeStatus.CONFIRMED or (event.first_seen and not event.status.final):
                await self._call(self.on_fill, event.fill)

    async def _call(self, callback: Callable[[Any], Awaitable[None] | None] | None, arg: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(arg)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.stats["callback_errors"] += 1
            log.exception("relayer callback %r failed", getattr(callback, "__name__", callback))

    async def _on_connect(self, reconnected: bool) -> None:
        if reconnected:
            try:
                await self.resync()
            except (VenueError, PolybotError) as err:
                self.stats["resync_errors"] += 1
                log.warning("user channel resync over REST failed: %s", err)

    async def resync(self) -> None:
        """Re-read open orders and recent trades over REST and feed them through the translator."""
        self.stats["resyncs"] += 1
        open_items = await self._paged("/data/orders", {})
        open_ids = {str(item.get("id") or "").lower() for item in open_items}
        await self._on_items([{**item, "event_type": "order"} for item in open_items], source="rest")
        after = max(0, self._last_trade_ts - 60) if self._last_trade_ts else None
        await self._on_items(await self.trades(after=after), source="rest")
        # Orders we placed that are no longer open and not known final: read their state (bounded).
        missing = [
            oid for oid in self._translator.known_order_ids() if oid not in open_ids and oid not in self._final_orders
        ][-RESYNC_LOOKUPS:]
        for oid in missing:
            try:
                resp = await self._http.request("GET", f"/data/order/{oid}", auth="l2")
            except VenueError as err:
                if err.status == 404:
                    continue
                raise
            if isinstance(resp, dict) and resp.get("id"):
                await self._on_items([{**resp, "event_type": "order"}], source="rest")


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_USER_WS_URL",
    "ClobRelayer",
    "MarketParams",
    "OrderEvent",
    "SignedClobOrder",
    "TradeEvent",
    "TradeStatus",
    "VenueError",
]
