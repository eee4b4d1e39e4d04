"""CLOB V2 relayer (``type = "real"``): dry-run (sign, never post) and live (post, cancel, reconcile).

Orders are signed on a fast path held equal to the official ``py-clob-client-v2`` builder (see
:mod:`.clob_signing` and :mod:`.order_digest`), request bodies and L1/L2 auth headers are produced by its functions
(see :mod:`.clob_http`). Signing runs in a worker thread (``asyncio.to_thread``) and never waits
on REST: market parameters (tick size, neg-risk, fees) are pre-warmed with :meth:`prewarm`.

How a ``POST /order`` answer maps to the relayer contract is :mod:`.clob_post`; posting one order or
a batch (``POST /orders``, :meth:`ClobRelayer.place_batch`: every leg signed first, all in one
worker-thread call, then one request) and mapping each leg's answer is :mod:`.clob_place`.

An UNKNOWN result carries the locally computed order hash (``PlaceResult.order_hash``): the venue's
order id is that hash, so :meth:`ClobRelayer.lookup` finds the order even when its response was
lost. Re-placing the same ``client_order_id`` with the same content re-sends the *same* signed
order, so a retry can never create a second order: the venue answers "duplicated" and the
relayer reports the existing order.

Fills do not come from ``POST /order`` answers but from the user channel (``/ws/user``), where a
trade runs MATCHED -> MINED -> CONFIRMED (or RETRYING -> FAILED). What the channel says reaches the
engine through ``events``, the sink the relayer is built with (:mod:`.clob_user_feed`); after a
reconnect, open orders and trades are re-read over REST (the channel does not replay) and fed
through the same de-duplicating path. REST reads live in :mod:`.clob_reads`, the venue heartbeat
in :mod:`.clob_heartbeat`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import NoReturn

import httpx
from py_clob_client_v2.clob_types import ApiCreds

from core.defaults import DEFAULT_CLOB_URL
from core.errors import PolybotError, UsageError
from core.execution.events import EventSink
from core.execution.relayers.clob_heartbeat import Heartbeat
from core.execution.relayers.clob_http import ClobHttp, Creds, VenueError, as_creds
from core.execution.relayers.clob_markets import market_params_from_clob_market, market_params_from_market
from core.execution.relayers.clob_place import (
    ClobSigningJob,
    OrderPoster,
    SignedOrders,
    check_batch_size,
    ms_since,
    refused,
)
from core.execution.relayers.clob_reads import ClobReader
from core.execution.relayers.clob_signing import (
    POLYGON_CHAIN_ID,
    MarketParams,
    OrderInvalid,
    OrderSigner,
    SignedClobOrder,
)
from core.execution.relayers.clob_user_channel import UserChannel
from core.execution.relayers.clob_user_feed import UserFeed
from core.execution.relayers.clob_user_translate import UserStreamTranslator
from core.execution.types import (
    CancelResult,
    OrderRequest,
    OrderStatus,
    Outcome,
    PlaceResult,
    VenueOrder,
)
from core.execution.venue_link import VenueStatus
from core.types import MarketInfo, Mode

log = logging.getLogger(__name__)


class ClobRelayer:
    """Places and cancels orders on Polymarket's CLOB V2 (see the module docstring for the mapping)."""

    def __init__(
        self,
        host: str = DEFAULT_CLOB_URL,
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
        events: EventSink | None = None,
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
        self.events = events if events is not None else EventSink()
        self._creds = as_creds(api_creds)
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
        self.stats: Counter[str] = Counter()
        self._params: dict[str, MarketParams] = {}
        self._translator = UserStreamTranslator(
            self._creds.api_key if self._creds else None, {self._signer.maker, self._signer.order_signer}
        )
        self._reads = ClobReader(
            self._http,
            self._translator,
            self.stats,
            signature_type=int(self._signer.signature_type),
            remembered=signed_cache_size,
        )
        self._poster = OrderPoster(self._http, self._reads, self._translator, self.stats)
        self._signed = SignedOrders(signed_cache_size, self._reads, self._translator, self.stats)
        self._feed = UserFeed(self._translator, self._reads, self.events, self.stats)
        self._feed.follow(user_markets)
        self._heartbeat = Heartbeat(self._http, self.stats, heartbeat_interval_s)
        self._started = False

    # ------------------------------------------------------------------ identity

    def __repr__(self) -> str:
        return (
            f"ClobRelayer(mode={self.mode.value}, host={self.host!r}, address={self.address}, "
            f"maker={self.maker}, signature_type={int(self._signer.signature_type)})"
        )

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # pragma: no cover - guard: pickling would copy the key
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
        return self._feed.channel

    @property
    def heartbeat_interval_s(self) -> float:
        return self._heartbeat.interval_s

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
        self._heartbeat.start()
        if self.user_ws_url:
            self._start_user_channel(self.user_ws_url)

    async def close(self) -> None:
        await self._heartbeat.stop()
        await self._feed.stop()
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
        creds = as_creds(ApiCreds(api_key=resp["apiKey"], api_secret=resp["secret"], api_passphrase=resp["passphrase"]))
        assert creds is not None
        self._creds = creds
        self._http.set_creds(creds)
        self._translator.api_key = creds.api_key
        return creds

    def _start_user_channel(self, url: str) -> None:
        assert self._creds is not None
        auth = {
            "apiKey": self._creds.api_key,
            "secret": self._creds.api_secret,
            "passphrase": self._creds.api_passphrase,
        }
        self._feed.start(url, auth)

    # ------------------------------------------------------------------ market parameters

    async def prewarm(self, condition_id: str) -> list[MarketParams]:
        """Fetch tick size / neg-risk / fees of both tokens of a market (one REST call)."""
        try:
            payload = await self._http.request("GET", f"/clob-markets/{condition_id}")
            params = market_params_from_clob_market(condition_id, payload)
        except (VenueError, ValueError) as first:
            try:
                payload = await self._http.request("GET", f"/markets/{condition_id}")
                params = market_params_from_market(payload)
            except (VenueError, ValueError) as exc:
                raise PolybotError(f"cannot read market {condition_id}: {first}; {exc}") from None
        for p in params:
            self._params[p.token_id] = p
        return params

    def follow_markets(self, markets: Iterable[str]) -> None:
        """The user channel covers these markets (open orders, positions) plus any being posted to."""
        self._feed.follow(markets)

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
            self._params[token_id] = replace(current, tick_size=tick_size)

    # ------------------------------------------------------------------ signing

    def remember_order(self, client_order_id: str, order_hash: str) -> None:
        """Seed the client id -> order hash map (e.g. from the orders table after a restart)."""
        self._reads.remember(client_order_id, order_hash)

    def order_hash_for(self, client_order_id: str) -> str | None:
        return self._reads.hash_for(client_order_id)

    def signed_order(self, client_order_id: str) -> SignedClobOrder | None:
        """The signed order last built for ``client_order_id`` (exchange, hash, body)."""
        return self._signed.last(client_order_id)

    async def get_public(self, path: str, params: dict[str, str] | None = None) -> object:
        """An unauthenticated GET (market data): the decoded JSON; raises :class:`VenueError`."""
        return await self._http.request("GET", path, params=params)

    async def sign(self, order: OrderRequest) -> SignedClobOrder:
        """The signed order for ``order`` (re-used when the same client id is placed again unchanged)."""
        cached = self._signed.cached(order)
        if cached is not None:
            return cached
        signed = await asyncio.to_thread(self._signer.sign, order, self._params_for(order), owner=self._owner())
        return self._signed.keep(order, signed)

    async def sign_batch(self, orders: Sequence[OrderRequest]) -> list[SignedClobOrder | OrderInvalid]:
        """Per order its signed order or its :class:`OrderInvalid`; the unsigned legs in one worker-thread call."""
        job = self.signing_job(orders)
        if job.pending:
            await asyncio.to_thread(job.run)
        job.finish()
        return job.results()

    def signing_job(self, orders: Sequence[OrderRequest]) -> ClobSigningJob:
        """The legs' signing as a job: hashes at once, signatures beside the write-ahead (:class:`.types.JobPresigner`)."""
        complete = partial(self._signer.complete_batch, owner=self._owner())
        return ClobSigningJob(orders, self._signed, self._signer.prepare_batch, complete, self._params_for)

    async def sign_orders(self, orders: Sequence[OrderRequest]) -> list[str | None]:
        """Each order's hash (None: cannot be signed), before the write-ahead (:class:`.types.Presigner`)."""
        return [s.order_hash if isinstance(s, SignedClobOrder) else None for s in await self.sign_batch(orders)]

    def _params_for(self, order: OrderRequest) -> MarketParams | None:
        params = self._params.get(order.token_id)
        if params is None:
            self.stats["sign_without_prewarm"] += 1
        return params

    def _owner(self) -> str:
        return self._creds.api_key if self._creds else ""

    # ------------------------------------------------------------------ the Relayer protocol

    async def place(self, order: OrderRequest) -> PlaceResult:
        started = time.perf_counter()
        signed = await self._sign_or_refuse(order, started)
        if isinstance(signed, PlaceResult):
            return signed
        if self.mode is not Mode.LIVE:
            return self._dry_run(signed, started)
        async with self._feed.posting((order.market,)):
            return await self._poster.post_one(order, signed, started)

    async def place_batch(self, orders: Sequence[OrderRequest]) -> list[PlaceResult]:
        """Up to 15 orders as one ``POST /orders``, signed first (:meth:`sign_batch`); a result per order, in
        order (:mod:`.clob_place`). A leg that cannot be signed is REJECTED, left out; dry-run posts nothing."""
        check_batch_size(orders)
        started = time.perf_counter()
        signed = [
            refused(o, s, started, self.stats) if isinstance(s, OrderInvalid) else s
            for o, s in zip(orders, await self.sign_batch(orders), strict=True)
        ]
        legs = [(o, s) for o, s in zip(orders, signed, strict=True) if isinstance(s, SignedClobOrder)]
        if self.mode is not Mode.LIVE:
            posted = iter([self._dry_run(s, started) for _, s in legs])
        else:
            async with self._feed.posting(o.market for o, _ in legs):
                posted = iter(await self._poster.post_batch(legs, started))  # one result per leg, in order
        return [s if isinstance(s, PlaceResult) else next(posted) for s in signed]

    async def _sign_or_refuse(self, order: OrderRequest, started: float) -> SignedClobOrder | PlaceResult:
        """The signed order, or the REJECTED result of an order that cannot be signed as asked."""
        try:
            return await self.sign(order)
        except OrderInvalid as exc:
            return refused(order, exc, started, self.stats)

    def _dry_run(self, signed: SignedClobOrder, started: float) -> PlaceResult:
        self.stats["place_dry_run"] += 1
        return PlaceResult(
            Outcome.ACCEPTED,
            status=OrderStatus.DRY_RUN,
            signed_order=signed.body,
            order_hash=signed.order_hash,
            latency_ms=ms_since(started),
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

    async def _cancel(self, method: str, path: str, body: object, ids: list[str]) -> CancelResult:
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
        answer = resp if isinstance(resp, dict) else {}
        canceled = answer.get("canceled")
        refused = answer.get("not_canceled")
        self.stats["cancel_ok"] += 1
        return CancelResult(
            canceled=tuple(str(x) for x in canceled) if isinstance(canceled, list) else (),
            not_canceled={str(k): str(v) for k, v in refused.items()} if isinstance(refused, dict) else {},
        )

    async def open_orders(self, market: str | None = None, asset_id: str | None = None) -> list[VenueOrder]:
        """Every open order (all pages). Raises :class:`VenueError` when the venue cannot be read:
        an empty list always means "none", never "could not tell"."""
        if self.mode is not Mode.LIVE:
            return []
        return await self._reads.open_orders(market, asset_id)

    async def trades(self, *, after: int | None = None, market: str | None = None) -> list[dict[str, object]]:
        """Our trades from ``GET /data/trades`` (all pages), raw items."""
        return await self._reads.trades(after=after, market=market)

    async def get_order(self, venue_order_id: str) -> VenueOrder | None:
        """One order by id (= order hash); None when the venue does not know it."""
        if self.mode is not Mode.LIVE:
            return None
        return await self._reads.by_hash(venue_order_id, self._translator.client_order_id(venue_order_id))

    async def lookup(self, order: OrderRequest) -> VenueOrder | None:
        """Find an order we may have placed: by its order hash (known from signing or remembered);
        without a hash, by an exact unique match among open orders. Raises :class:`VenueError`
        when the venue cannot be read (never "not found" by mistake)."""
        if self.mode is not Mode.LIVE:
            return None
        return await self._reads.lookup(order)

    async def resync(self) -> None:
        """Re-read open orders and recent trades over REST and feed them through the translator."""
        await self._feed.resync()

    # ------------------------------------------------------------------ heartbeat, reachability, balances

    async def heartbeat(self) -> str:
        """One venue heartbeat (chained by id). Once started, missing ~10 s cancels all orders."""
        return await self._heartbeat.beat()

    def venue_status(self) -> VenueStatus:
        """REST reachability, user-channel state and heartbeat age (for alerts, /status, /health)."""
        link = self._http.link
        user = self._feed.channel
        if user is None:
            channel, user_down = "off", None
        else:
            channel = "connected" if user.connected.is_set() else "disconnected"
            user_down = None if user.connected.is_set() else user.down_since
        return VenueStatus(
            rest_failures=link.failures,
            rest_down_since=link.down_since,
            rest_error=link.last_error,
            user_channel=channel,
            user_down_since=user_down,
            heartbeat_age_s=self._heartbeat.age_s(),
        )

    async def collateral_balance(self) -> Decimal:
        """pUSD the venue says this account holds (``GET /balance-allowance``, COLLATERAL)."""
        return await self._reads.collateral_balance()

    async def collateral_balance_allowance(self) -> tuple[Decimal, Decimal | None]:
        """pUSD held and the allowance the venue reports (``GET /balance-allowance``, COLLATERAL)."""
        return await self._reads.collateral_balance_allowance()

    async def token_balance(self, token_id: str) -> Decimal:
        """Shares of one outcome token the venue says this account holds (CONDITIONAL)."""
        return await self._reads.token_balance(token_id)


__all__ = ["ClobRelayer"]
