"""Local double of Polymarket's CLOB V2: REST over real HTTP plus the ``/ws/user`` channel.

It answers what ``py-clob-client-v2`` calls (server time/version, market info, tick size,
neg-risk, fee rate, book, L1/L2 auth, order post/cancel, cancel-all, open orders, trades,
heartbeats, balance-allowance) and checks posted orders the way the venue does: L2 HMAC, the
owner's API key, the EIP-712 signature under the right exchange (standard vs neg-risk), signer /
maker rules per signature type, price on tick, minimum size, balance. Marketable orders match
against a configurable external book; each trade then settles MATCHED -> MINED -> CONFIRMED (or
RETRYING -> FAILED) on the user channel after a configurable delay.

Faults for tests (:meth:`MockClobServer.inject`), consumed by the next N matching requests:
``400`` (venue message), ``425``, ``429`` (Retry-After), ``500``, ``502``, ``503``, ``hang``
(never answer), ``timeout_after_accept`` (process and store, answer after a delay longer than the
client's timeout), ``drop_after_accept`` (process, then close the connection without an answer).
Every request is recorded in :attr:`MockClobServer.requests`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import websockets
from eth_utils import to_checksum_address
from websockets.asyncio.server import Server, ServerConnection

from core.fees import taker_fee
from core.money import UNIT
from core.sim.mock_clob_http import DROP, HttpRequest, HttpResponse, MiniHttpServer
from core.sim.mock_clob_state import (
    MAX_ALLOWANCE,
    ZERO,
    ApiKey,
    Book,
    Ledger,
    MockMarket,
    MockOrder,
    MockTrade,
    derive_api_key,
    fmt,
    order_price_and_size,
    price_on_tick,
)
from core.sim.mock_clob_verify import (
    VerifyError,
    l2_signature,
    order_hash,
    recover_clob_auth,
    recover_order_signer,
)
from core.types import OrderType, Side

log = logging.getLogger(__name__)
T = TypeVar("T")

EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
END_CURSOR = "LTE="
FAULTS = ("400", "425", "429", "500", "502", "503", "hang", "timeout_after_accept", "drop_after_accept")
MAX_BATCH = 15


def _token_id(label: str) -> str:
    return str(int(hashlib.sha256(label.encode()).hexdigest(), 16))[:77]


def _condition_id(label: str) -> str:
    return "0x" + hashlib.sha256(label.encode()).hexdigest()


def demo_markets() -> list[tuple[MockMarket, dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]]]:
    """Two deterministic markets (binary, tick 0.01; neg-risk, tick 0.001) with books."""
    yes, no = _token_id("polybot-mock-binary-yes"), _token_id("polybot-mock-binary-no")
    binary = MockMarket(
        condition_id=_condition_id("polybot-mock-binary"),
        tokens=((yes, "Yes"), (no, "No")),
        tick_size=Decimal("0.01"),
        question="Will the mock market resolve Yes?",
        fee_rate=Decimal("0.05"),
    )
    a, b = _token_id("polybot-mock-negrisk-a-yes"), _token_id("polybot-mock-negrisk-a-no")
    negrisk = MockMarket(
        condition_id=_condition_id("polybot-mock-negrisk-a"),
        tokens=((a, "Yes"), (b, "No")),
        tick_size=Decimal("0.001"),
        neg_risk=True,
        question="Will candidate A win the mock election?",
    )
    books = {
        yes: ([("0.47", "200"), ("0.48", "100")], [("0.52", "100"), ("0.53", "200")]),
        no: ([("0.47", "200"), ("0.48", "100")], [("0.52", "100"), ("0.53", "200")]),
        a: ([("0.300", "150")], [("0.310", "150"), ("0.320", "400")]),
        b: ([("0.680", "150")], [("0.700", "150")]),
    }
    return [(binary, {t: books[t] for t, _ in binary.tokens}), (negrisk, {t: books[t] for t, _ in negrisk.tokens})]


@dataclass(slots=True)
class Fault:
    kind: str
    remaining: int
    method: str | None
    path: str | None
    message: str | None
    retry_after: str | None
    delay_s: float


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    fault: str | None = None
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(slots=True)
class _Subscriber:
    ws: ServerConnection
    api_key: str
    markets: set[str]


class Reject(Exception):
    """An order/request refusal with the venue's status and message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


Route = Callable[[HttpRequest], Awaitable[HttpResponse]]


class MockClobServer:
    """The CLOB double. ``await start()`` binds the HTTP port and the user-channel websocket port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ws_port: int = 0,
        chain_id: int = 137,
        markets: list[MockMarket] | None = None,
        demo: bool = True,
        confirm_delay_s: float = 0.2,
        settlement: str = "confirm",
        heartbeat_timeout_s: float = 10.0,
        balance: Decimal = Decimal("1000000"),
        page_size: int = 100,
        seed: str = "polybot-mock-clob",
    ) -> None:
        self.host = host
        self.chain_id = chain_id
        self.confirm_delay_s = confirm_delay_s
        if settlement not in ("confirm", "fail"):
            raise ValueError("settlement must be 'confirm' or 'fail'")
        self.settlement = settlement
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.default_balance = balance
        self.page_size = page_size
        self._seed = seed
        self._http = MiniHttpServer(self._handle, host, port)
        self._ws_port = ws_port
        self._ws_server: Server | None = None
        self.markets: dict[str, MockMarket] = {}
        self._token_market: dict[str, MockMarket] = {}
        self.books: dict[str, Book] = {}
        self.api_keys: dict[str, ApiKey] = {}
        self.orders: dict[str, MockOrder] = {}
        self.trades: dict[str, MockTrade] = {}
        self.ledger = Ledger(balance)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.heartbeats: dict[str, tuple[str, float]] = {}
        self.fail_next_settlements = 0
        self._subscribers: list[_Subscriber] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._routes: list[tuple[str, re.Pattern[str], Route]] = self._build_routes()
        for market in markets or []:
            self.add_market(market)
        if demo and not markets:
            for market, books in demo_markets():
                self.add_market(market)
                for token, (bids, asks) in books.items():
                    self.set_book(
                        token, [(Decimal(p), Decimal(s)) for p, s in bids], [(Decimal(p), Decimal(s)) for p, s in asks]
                    )

    # ------------------------------------------------------------------ setup and life-cycle

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_port(self) -> int:
        if self._ws_server is None:
            return self._ws_port
        return int(next(iter(self._ws_server.sockets)).getsockname()[1])

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}/ws/user"

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        await self._http.start()
        self._ws_server = await websockets.serve(self._ws_handler, self.host, self._ws_port, ping_interval=None)
        self._watchdog = asyncio.create_task(self._heartbeat_watchdog())

    async def stop(self) -> None:
        self._stopped.set()
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._ws_server is not None:
            self._ws_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws_server.wait_closed(), 2)
            self._ws_server = None
        await self._http.stop()
        for task in [*self._tasks, *([self._watchdog] if self._watchdog else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._watchdog = None

    async def __aenter__(self) -> MockClobServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def add_market(self, market: MockMarket) -> None:
        self.markets[market.condition_id] = market
        for token, _ in market.tokens:
            self._token_market[token] = market
            self.books.setdefault(token, Book())

    def market_of(self, token_id: str) -> MockMarket | None:
        return self._token_market.get(token_id)

    def set_book(self, token_id: str, bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]) -> None:
        self.books.setdefault(token_id, Book()).set(bids, asks)

    def creds_for(self, address: str) -> ApiKey:
        """The API credentials of ``address`` (what derive-api-key returns), registering them."""
        key = derive_api_key(to_checksum_address(address), self._seed)
        self.api_keys[key.api_key] = key
        return key

    def set_balance(self, address: str, balance: Decimal) -> None:
        """Set the pUSD collateral of ``address`` (trades move it from there)."""
        self.ledger.set_cash(to_checksum_address(address), balance)

    def give_shares(self, address: str, token_id: str, size: Decimal) -> None:
        """Credit ``address`` with outcome shares (a position bought elsewhere, e.g. on the website)."""
        self.ledger.give(to_checksum_address(address), token_id, size)

    def inject(
        self,
        kind: str,
        *,
        count: int = 1,
        method: str | None = "POST",
        path: str | None = "/order",
        message: str | None = None,
        retry_after: str | float | None = None,
        delay_s: float = 30.0,
    ) -> None:
        """Make the next ``count`` requests matching ``method``/``path`` (None = any) fail with ``kind``."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULTS)})")
        self.faults.append(
            Fault(kind, count, method, path, message, None if retry_after is None else str(retry_after), delay_s)
        )

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def open_orders_of(self, api_key: str) -> list[MockOrder]:
        return [o for o in self.orders.values() if o.owner == api_key and o.is_open]

    # ------------------------------------------------------------------ request pipeline

    def _take_fault(self, req: HttpRequest) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.method in (None, req.method) and fault.path in (None, req.path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _handle(self, req: HttpRequest) -> HttpResponse:
        rec = RecordedRequest(req.method, req.path, req.query, dict(req.headers), req.body)
        self.requests.append(rec)
        fault = self._take_fault(req)
        if fault is not None:
            rec.fault = fault.kind
            early = self._fault_response(fault)
            if early is not None:
                rec.status = early.status
                return early
            if fault.kind == "hang":
                await self._sleep(fault.delay_s if fault.delay_s > 0 else None)
                return DROP
        try:
            response = await self._route(req)
        except Reject as exc:
            response = HttpResponse.error(exc.status, str(exc))
        except Exception as exc:  # a bug in the double must show as a 500, not kill the connection
            log.exception("mock clob: handler failed for %s %s", req.method, req.path)
            response = HttpResponse.error(500, f"mock clob internal error: {type(exc).__name__}")
        rec.status = response.status
        if fault is not None and fault.kind == "timeout_after_accept":
            await self._sleep(fault.delay_s)
        if fault is not None and fault.kind == "drop_after_accept":
            return DROP
        return response

    def _fault_response(self, fault: Fault) -> HttpResponse | None:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        defaults = {
            "400": "injected venue error",
            "425": "the matching engine is restarting, try again later",
            "429": "Too Many Requests",
            "500": "Internal server error",
            "502": "Bad gateway",
            "503": "trading is currently in cancel-only mode",
        }
        if fault.kind in defaults:
            return HttpResponse.error(int(fault.kind), fault.message or defaults[fault.kind], headers)
        return None

    async def _sleep(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def _route(self, req: HttpRequest) -> HttpResponse:
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(req.path)
            if match is None:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            req.path_args = match.groups()
            return await handler(req)
        if allowed:
            return HttpResponse.error(405, f"method {req.method} not allowed on {req.path}")
        return HttpResponse.error(404, f"no route {req.method} {req.path}")

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Route]]:
        table: list[tuple[str, str, Route]] = [
            ("GET", r"/", self._ok),
            ("GET", r"/ok", self._ok),
            ("GET", r"/time", self._time),
            ("GET", r"/version", self._version),
            ("GET", r"/clob-markets/(.+)", self._clob_market),
            ("GET", r"/markets/(.+)", self._market),
            ("GET", r"/markets-by-token/(.+)", self._market_by_token),
            ("GET", r"/tick-size", self._tick_size),
            ("GET", r"/neg-risk", self._neg_risk),
            ("GET", r"/fee-rate", self._fee_rate),
            ("GET", r"/book", self._book),
            ("POST", r"/auth/api-key", self._auth_api_key),
            ("GET", r"/auth/derive-api-key", self._auth_api_key),
            ("POST", r"/order", self._post_order),
            ("POST", r"/orders", self._post_orders),
            ("DELETE", r"/order", self._cancel_order),
            ("DELETE", r"/orders", self._cancel_orders),
            ("DELETE", r"/cancel-all", self._cancel_all),
            ("DELETE", r"/cancel-market-orders", self._cancel_market),
            ("GET", r"/data/orders", self._data_orders),
            ("GET", r"/data/order/(.+)", self._data_order),
            ("GET", r"/data/trades", self._data_trades),
            ("POST", r"/v1/heartbeats", self._heartbeat),
            ("GET", r"/balance-allowance", self._balance_allowance),
            ("GET", r"/balance-allowance/update", self._balance_allowance),
        ]
        return [(m, re.compile(p), h) for m, p, h in table]

    # ------------------------------------------------------------------ auth

    def _l1(self, req: HttpRequest) -> str:
        h = req.headers
        try:
            address, sig, ts = h["poly_address"], h["poly_signature"], h["poly_timestamp"]
            nonce = int(h.get("poly_nonce", "0"))
        except (KeyError, ValueError):
            raise Reject("Invalid L1 Request headers", 401) from None
        recovered = recover_clob_auth(address, ts, nonce, sig, self.chain_id)
        if recovered.lower() != address.lower():
            raise Reject("Invalid L1 Request headers", 401)
        return to_checksum_address(address)

    def _l2(self, req: HttpRequest) -> ApiKey:
        h = req.headers
        try:
            api_key, passphrase = h["poly_api_key"], h["poly_passphrase"]
            sig, ts, address = h["poly_signature"], h["poly_timestamp"], h["poly_address"]
        except KeyError:
            raise Reject("Unauthorized/Invalid api key", 401) from None
        key = self.api_keys.get(api_key)
        if key is None or key.passphrase != passphrase or key.address.lower() != address.lower():
            raise Reject("Unauthorized/Invalid api key", 401)
        body = req.body.decode("utf-8") if req.body else None
        if l2_signature(key.secret, ts, req.method, req.path, body) != sig:
            raise Reject("Unauthorized/Invalid api key (bad signature)", 401)
        return key

    async def _auth_api_key(self, req: HttpRequest) -> HttpResponse:
        address = self._l1(req)
        key = self.creds_for(address)
        return HttpResponse.json({"apiKey": key.api_key, "secret": key.secret, "passphrase": key.passphrase})

    # ------------------------------------------------------------------ public market data

    async def _ok(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json("OK")

    async def _time(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json(int(time.time()))

    async def _version(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"version": 2})

    def _market_for_path(self, req: HttpRequest) -> MockMarket:
        market = self.markets.get(req.path_args[0])
        if market is None:
            raise Reject("market not found", 404)
        return market

    def _token_param(self, req: HttpRequest) -> tuple[str, MockMarket]:
        token = req.param("token_id") or ""
        market = self._token_market.get(token)
        if market is None:
            raise Reject(f"market not found for token id {token!r}", 404)
        return token, market

    async def _clob_market(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json(self._market_for_path(req).clob_market_info())

    async def _market(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json(self._market_for_path(req).market_info())

    async def _market_by_token(self, req: HttpRequest) -> HttpResponse:
        market = self._token_market.get(req.path_args[0])
        if market is None:
            raise Reject("market not found", 404)
        return HttpResponse.json({"condition_id": market.condition_id})

    async def _tick_size(self, req: HttpRequest) -> HttpResponse:
        _, market = self._token_param(req)
        return HttpResponse.json({"minimum_tick_size": float(market.tick_size)})

    async def _neg_risk(self, req: HttpRequest) -> HttpResponse:
        _, market = self._token_param(req)
        return HttpResponse.json({"neg_risk": market.neg_risk})

    async def _fee_rate(self, req: HttpRequest) -> HttpResponse:
        _, market = self._token_param(req)
        return HttpResponse.json({"base_fee": int(market.fee_rate * 10_000)})

    async def _book(self, req: HttpRequest) -> HttpResponse:
        token, market = self._token_param(req)
        book = self.books[token]
        bids = dict(book.bids)
        asks = dict(book.asks)
        for order in self.orders.values():
            if order.asset_id == token and order.is_open:
                side = bids if order.side is Side.BUY else asks
                side[order.price] = side.get(order.price, ZERO) + order.remaining
        return HttpResponse.json(
            {
                "market": market.condition_id,
                "asset_id": token,
                "timestamp": str(int(time.time() * 1000)),
                "hash": "",
                "bids": [{"price": fmt(p), "size": fmt(s)} for p, s in sorted(bids.items())],
                "asks": [{"price": fmt(p), "size": fmt(s)} for p, s in sorted(asks.items(), reverse=True)],
                "min_order_size": fmt(market.min_order_size),
                "tick_size": fmt(market.tick_size),
                "neg_risk": market.neg_risk,
                "last_trade_price": "",
            }
        )

    # ------------------------------------------------------------------ orders

    async def _post_order(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        try:
            payload = req.json()
        except ValueError:
            raise Reject("Invalid order payload") from None
        async with self._lock:
            result = await self._place(key, payload)
        return HttpResponse.json(result)

    async def _post_orders(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        try:
            payloads = req.json()
        except ValueError:
            raise Reject("Invalid order payload") from None
        if not isinstance(payloads, list) or not payloads:
            raise Reject("Invalid order payload")
        if len(payloads) > MAX_BATCH:
            raise Reject(f"too many orders in one batch: at most {MAX_BATCH}")
        out = []
        async with self._lock:
            for payload in payloads:
                try:
                    out.append(await self._place(key, payload))
                except Reject as exc:
                    out.append({"success": False, "errorMsg": str(exc), "orderID": "", "status": ""})
        return HttpResponse.json(out)

    def _exchange(self, market: MockMarket) -> str:
        return NEG_RISK_EXCHANGE_V2 if market.neg_risk else EXCHANGE_V2

    def _balance(self, address: str) -> Decimal:
        return self.ledger.cash(to_checksum_address(address))

    def _locked(self, maker: str) -> Decimal:
        return sum(
            (
                o.price * o.remaining
                for o in self.orders.values()
                if o.is_open and o.side is Side.BUY and o.maker_address == maker
            ),
            ZERO,
        )

    def _locked_shares(self, maker: str, token_id: str) -> Decimal:
        return sum(
            (
                o.remaining
                for o in self.orders.values()
                if o.is_open and o.side is Side.SELL and o.maker_address == maker and o.asset_id == token_id
            ),
            ZERO,
        )

    def _move(self, trade: MockTrade, address: str, side: Side, price: Decimal, size: Decimal, fee: Decimal) -> None:
        move = (to_checksum_address(address), side, trade.asset_id, price, size, fee)
        self.ledger.trade(*move)
        trade.moves.append(move)

    async def _place(self, key: ApiKey, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("order"), dict):
            raise Reject("Invalid order payload")
        order = payload["order"]
        if payload.get("owner") != key.api_key:
            raise Reject("the order owner has to be the owner of the API KEY")
        if "timestamp" not in order or "nonce" in order or "feeRateBps" in order:
            raise Reject("order_version_mismatch")
        try:
            order_type = OrderType(str(payload.get("orderType", "GTC")).upper())
        except ValueError:
            raise Reject(f"invalid order type {payload.get('orderType')!r}") from None
        post_only = bool(payload.get("postOnly", False))
        if post_only and order_type in (OrderType.FOK, OrderType.FAK):
            raise Reject("invalid post-only order: only GTC and GTD orders can be post-only")
        token = str(order.get("tokenId", ""))
        market = self._token_market.get(token)
        if market is None:
            raise Reject(f"invalid token id {token!r}: market not found")
        if not market.accepting_orders:
            raise Reject("market is not accepting orders")
        exchange = self._exchange(market)
        try:
            recovered = recover_order_signer(order, exchange, self.chain_id)
            venue_id = order_hash(order, exchange, self.chain_id)
        except VerifyError as exc:
            raise Reject(str(exc)) from None
        sig_type = int(order.get("signatureType", 0))
        signer = to_checksum_address(order["signer"])
        maker = to_checksum_address(order["maker"])
        if sig_type == 3:
            if signer != maker:
                raise Reject("the order signer must be the deposit wallet (maker) for signature type 3")
            if recovered != key.address:
                raise Reject("invalid signature")
        else:
            if recovered != signer:
                raise Reject("invalid signature")
            if signer != key.address:
                raise Reject("order signer address has to be the address of the API KEY")
            if sig_type == 0 and maker != signer:
                raise Reject("maker address not allowed, please use the deposit wallet flow")
        if venue_id in self.orders:
            raise Reject(f"order {venue_id} is invalid. Duplicated.")
        side = Side.BUY if order["side"] in ("BUY", 0) else Side.SELL
        try:
            price, size = order_price_and_size(side, int(order["makerAmount"]), int(order["takerAmount"]))
        except (ValueError, ArithmeticError):
            raise Reject("invalid order amounts") from None
        if not price_on_tick(price, market.tick_size):
            raise Reject(f"order price {fmt(price)} breaks the market's minimum tick size {fmt(market.tick_size)}")
        book = self.books[token]
        crossing = book.crossing(side, price)
        if post_only and crossing:
            raise Reject("invalid post-only order: order crosses book")
        if not crossing and size < market.min_order_size:
            raise Reject(f"Size ({fmt(size)}) lower than the minimum: {fmt(market.min_order_size)}")
        if crossing and price * size < 1 and order_type not in (OrderType.FOK, OrderType.FAK):
            raise Reject("invalid amount for a marketable order, min size: $1")
        if side is Side.BUY and price * size > self._balance(maker) - self._locked(maker):
            raise Reject("not enough balance / allowance")
        if side is Side.SELL and size > self.ledger.held(maker, token) - self._locked_shares(maker, token):
            raise Reject("not enough balance / allowance")
        available = sum((s for _, s in crossing), ZERO)
        if order_type is OrderType.FOK and available < size:
            raise Reject("order couldn't be fully filled. FOK orders are fully filled or killed.")
        if order_type is OrderType.FAK and available <= 0:
            raise Reject(
                "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
            )

        mock = MockOrder(
            id=venue_id,
            owner=key.api_key,
            maker_address=maker,
            market=market.condition_id,
            asset_id=token,
            outcome=market.outcome_of(token),
            side=side,
            price=price,
            original_size=size,
            order_type=order_type,
            expiration=str(order.get("expiration", "0")),
            body=payload,
        )
        self.orders[venue_id] = mock
        trades = self._match(mock, market, crossing)
        if mock.remaining > 0 and order_type in (OrderType.FOK, OrderType.FAK):
            mock.status = "CANCELED"
        elif mock.remaining <= 0:
            mock.status = "MATCHED"
        if mock.status == "LIVE" and not trades:
            await self._publish_order(mock, "PLACEMENT")
        elif trades:
            await self._publish_order(mock, "UPDATE")
        for trade in trades:
            await self._publish_trade(trade)
            self._spawn(self._settle(trade))
        matched_shares = mock.size_matched
        matched_cash = sum((t.price * t.size for t in trades), ZERO)
        making, taking = (matched_cash, matched_shares) if side is Side.BUY else (matched_shares, matched_cash)
        return {
            "success": True,
            "errorMsg": "",
            "orderID": venue_id,
            "status": "matched" if trades else "live",
            "makingAmount": fmt(making),
            "takingAmount": fmt(taking),
            "transactionsHashes": [t.transaction_hash for t in trades],
            "tradeIDs": [t.id for t in trades],
        }

    def _match(self, taker: MockOrder, market: MockMarket, crossing: list[tuple[Decimal, Decimal]]) -> list[MockTrade]:
        trades = []
        book = self.books[taker.asset_id]
        for level_price, level_size in crossing:
            if taker.remaining <= 0:
                break
            size = min(level_size, taker.remaining)
            book.take(taker.side, level_price, size)
            taker.size_matched += size
            trade = MockTrade(
                id=str(uuid.uuid4()),
                market=market.condition_id,
                asset_id=taker.asset_id,
                outcome=taker.outcome,
                side=taker.side,
                price=level_price,
                size=size,
                taker_order_id=taker.id,
                taker_owner=taker.owner,
                taker_address=taker.maker_address,
                fee_rate_bps=int(market.fee_rate * 10_000),
                transaction_hash="0x" + hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
                maker_orders=[
                    {
                        "order_id": "0x" + hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
                        "owner": "external-liquidity",
                        "maker_address": "0x000000000000000000000000000000000000dEaD",
                        "matched_amount": fmt(size),
                        "price": fmt(level_price),
                        "fee_rate_bps": "0",
                        "asset_id": taker.asset_id,
                        "outcome": taker.outcome,
                        "side": taker.side.opposite.value,
                    }
                ],
            )
            fee = taker_fee(size, level_price, market.fee_rate)
            self._move(trade, taker.maker_address, taker.side, level_price, size, fee)
            self.trades[trade.id] = trade
            taker.associate_trades.append(trade.id)
            trades.append(trade)
        return trades

    async def trade_against(self, order_id: str, size: Decimal | None = None) -> MockTrade:
        """An external taker hits our resting order: we are MAKER of the resulting trade."""
        async with self._lock:
            order = self.orders[order_id]
            if not order.is_open:
                raise ValueError(f"order {order_id} is not open")
            fill = min(order.remaining, size if size is not None else order.remaining)
            order.size_matched += fill
            if order.remaining <= 0:
                order.status = "MATCHED"
            market = self._token_market[order.asset_id]
            trade = MockTrade(
                id=str(uuid.uuid4()),
                market=order.market,
                asset_id=order.asset_id,
                outcome=order.outcome,
                side=order.side.opposite,
                price=order.price,
                size=fill,
                taker_order_id="0x" + hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
                taker_owner="external-taker",
                taker_address="0x000000000000000000000000000000000000bEEF",
                fee_rate_bps=int(market.fee_rate * 10_000),
                transaction_hash="0x" + hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
                maker_orders=[
                    {
                        "order_id": order.id,
                        "owner": order.owner,
                        "maker_address": order.maker_address,
                        "matched_amount": fmt(fill),
                        "price": fmt(order.price),
                        "fee_rate_bps": "0",
                        "asset_id": order.asset_id,
                        "outcome": order.outcome,
                    }
                ],
            )
            self._move(trade, order.maker_address, order.side, order.price, fill, ZERO)  # makers pay no fee
            self.trades[trade.id] = trade
            order.associate_trades.append(trade.id)
            await self._publish_order(order, "UPDATE")
            await self._publish_trade(trade)
            self._spawn(self._settle(trade))
            return trade

    async def _settle(self, trade: MockTrade) -> None:
        fail = self.settlement == "fail" or self.fail_next_settlements > 0
        if self.fail_next_settlements > 0:
            self.fail_next_settlements -= 1
        steps = ("RETRYING", "FAILED") if fail else ("MINED", "CONFIRMED")
        for status in steps:
            await asyncio.sleep(self.confirm_delay_s / 2)
            trade.status = status
            trade.last_update = int(time.time())
            if status == "FAILED":
                for move in trade.moves:
                    self.ledger.undo(*move)  # the match never settled: balances as before
            await self._publish_trade(trade)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_ids(self, key: ApiKey, ids: list[str]) -> dict[str, Any]:
        canceled, not_canceled = [], {}
        for oid in ids:
            order = self.orders.get(oid)
            if order is None or order.owner != key.api_key:
                not_canceled[oid] = "order not found"
            elif not order.is_open:
                not_canceled[oid] = "already canceled or matched"
            else:
                order.status = "CANCELED"
                canceled.append(oid)
        return {"canceled": canceled, "not_canceled": not_canceled}

    async def _publish_cancels(self, result: dict[str, Any]) -> None:
        for oid in result["canceled"]:
            await self._publish_order(self.orders[oid], "CANCELLATION")

    async def _cancel_order(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        body = req.json() or {}
        oid = body.get("orderID") if isinstance(body, dict) else None
        if not oid:
            raise Reject("Invalid order id")
        async with self._lock:
            result = self._cancel_ids(key, [str(oid)])
            await self._publish_cancels(result)
        return HttpResponse.json(result)

    async def _cancel_orders(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        ids = req.json()
        if not isinstance(ids, list):
            raise Reject("Invalid order ids")
        async with self._lock:
            result = self._cancel_ids(key, [str(i) for i in ids])
            await self._publish_cancels(result)
        return HttpResponse.json(result)

    async def _cancel_all(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        async with self._lock:
            result = self._cancel_ids(key, [o.id for o in self.open_orders_of(key.api_key)])
            await self._publish_cancels(result)
        return HttpResponse.json(result)

    async def _cancel_market(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        body = req.json() or {}
        market, asset = body.get("market"), body.get("asset_id")
        ids = [
            o.id
            for o in self.open_orders_of(key.api_key)
            if (not market or o.market == market) and (not asset or o.asset_id == asset)
        ]
        async with self._lock:
            result = self._cancel_ids(key, ids)
            await self._publish_cancels(result)
        return HttpResponse.json(result)

    # ------------------------------------------------------------------ reads

    def _page(self, req: HttpRequest, items: list[dict[str, Any]]) -> HttpResponse:
        cursor = req.param("next_cursor") or "MA=="
        try:
            offset = int(base64.b64decode(cursor).decode())
        except (ValueError, UnicodeDecodeError):
            raise Reject(f"invalid next_cursor {cursor!r}") from None
        if offset < 0:
            return HttpResponse.json({"data": [], "next_cursor": END_CURSOR, "limit": self.page_size, "count": 0})
        page = items[offset : offset + self.page_size]
        nxt = offset + self.page_size
        next_cursor = base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else END_CURSOR
        return HttpResponse.json(
            {"data": page, "next_cursor": next_cursor, "limit": self.page_size, "count": len(page)}
        )

    async def _data_orders(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        market, asset, oid = req.param("market"), req.param("asset_id"), req.param("id")
        items = [
            o.item()
            for o in self.open_orders_of(key.api_key)
            if (not market or o.market == market) and (not asset or o.asset_id == asset) and (not oid or o.id == oid)
        ]
        return self._page(req, items)

    async def _data_order(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        order = self.orders.get(req.path_args[0])
        # like the venue: only live orders are found; a filled, canceled or expired one is a 404
        if order is None or order.owner != key.api_key or not order.is_open:
            raise Reject("order not found", 404)
        return HttpResponse.json(order.item())

    async def _data_trades(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        tid, market, asset = req.param("id"), req.param("market"), req.param("asset_id")
        after, before = req.param("after"), req.param("before")
        maker_address = req.param("maker_address")
        items = []
        for trade in self.trades.values():
            if key.api_key not in trade.owners():
                continue
            if (tid and trade.id != tid) or (market and trade.market != market) or (asset and trade.asset_id != asset):
                continue
            if after and trade.match_time < int(after):
                continue
            if before and trade.match_time > int(before):
                continue
            if maker_address and maker_address.lower() not in {
                str(m.get("maker_address", "")).lower() for m in trade.maker_orders
            }:
                continue
            items.append(trade.item_for(key.api_key))
        return self._page(req, items)

    async def _balance_allowance(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        address = self._funded_address(key, req.param("signature_type"))
        asset_type = (req.param("asset_type") or "COLLATERAL").upper()
        if asset_type == "COLLATERAL":
            amount = self.ledger.cash(address)
        elif asset_type == "CONDITIONAL":
            amount = self.ledger.held(address, req.param("token_id") or "")
        else:
            raise Reject(f"invalid asset_type {asset_type!r}")
        return HttpResponse.json({"balance": str(int(amount * UNIT)), "allowance": str(MAX_ALLOWANCE)})

    def _funded_address(self, key: ApiKey, signature_type: str | None) -> str:
        """The address whose funds a key trades: its EOA, or (signature types 1-3) the funder
        wallet its orders name as maker."""
        if signature_type in (None, "", "0"):
            return to_checksum_address(key.address)
        makers = [o.maker_address for o in self.orders.values() if o.owner == key.api_key]
        return makers[-1] if makers else to_checksum_address(key.address)

    # ------------------------------------------------------------------ heartbeats

    async def _heartbeat(self, req: HttpRequest) -> HttpResponse:
        key = self._l2(req)
        body = req.json() or {}
        given = str(body.get("heartbeat_id") or "") if isinstance(body, dict) else ""
        current = self.heartbeats.get(key.api_key)
        if given and (current is None or given != current[0]):
            raise Reject("Invalid Heartbeat ID")
        new_id = str(uuid.uuid4())
        self.heartbeats[key.api_key] = (new_id, time.monotonic())
        return HttpResponse.json({"heartbeat_id": new_id})

    async def _heartbeat_watchdog(self) -> None:
        """Once a key has sent a heartbeat, missing them for ``heartbeat_timeout_s`` cancels its orders."""
        while True:
            await asyncio.sleep(min(1.0, self.heartbeat_timeout_s / 4))
            now = time.monotonic()
            for api_key, (_, last) in list(self.heartbeats.items()):
                if now - last <= self.heartbeat_timeout_s:
                    continue
                del self.heartbeats[api_key]
                key = self.api_keys.get(api_key)
                if key is None:
                    continue
                async with self._lock:
                    result = self._cancel_ids(key, [o.id for o in self.open_orders_of(api_key)])
                    await self._publish_cancels(result)
                log.info("mock clob: heartbeats stopped for %s, canceled %d orders", api_key, len(result["canceled"]))

    # ------------------------------------------------------------------ user channel

    async def _ws_handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        if path.split("?")[0] != "/ws/user":
            await ws.close(1008, "unknown path")
            return
        try:
            first = await asyncio.wait_for(ws.recv(), timeout=10)
            sub = json.loads(first)
            auth = sub.get("auth") or {}
            key = self.api_keys.get(str(auth.get("apiKey")))
            if (
                sub.get("type", "user").lower() != "user"
                or key is None
                or auth.get("secret") != key.secret
                or auth.get("passphrase") != key.passphrase
            ):
                await ws.send(json.dumps({"error": "invalid auth"}))
                await ws.close(1008, "invalid auth")
                return
        except (TimeoutError, ValueError, AttributeError, websockets.ConnectionClosed):
            with contextlib.suppress(Exception):
                await ws.close(1008, "expected a subscribe message")
            return
        subscriber = _Subscriber(ws, key.api_key, {str(m) for m in sub.get("markets") or []})
        self._subscribers.append(subscriber)
        try:
            async for message in ws:
                if message == "PING":
                    await ws.send("PONG")
        except websockets.ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(subscriber)

    async def _send(self, api_key: str, market: str, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"))
        for sub in list(self._subscribers):
            if sub.api_key != api_key or (sub.markets and market not in sub.markets):
                continue
            try:
                await sub.ws.send(text)
            except websockets.ConnectionClosed:
                with contextlib.suppress(ValueError):
                    self._subscribers.remove(sub)

    async def _publish_order(self, order: MockOrder, kind: str) -> None:
        await self._send(order.owner, order.market, order.event(kind))

    async def _publish_trade(self, trade: MockTrade) -> None:
        for owner in trade.owners():
            if owner in self.api_keys:
                await self._send(owner, trade.market, trade.event_for(owner))

    @property
    def user_channel_clients(self) -> int:
        return len(self._subscribers)

    async def disconnect_user_channels(self) -> None:
        """Close every user-channel socket (clients must reconnect and resync over REST)."""
        for sub in list(self._subscribers):
            with contextlib.suppress(Exception):
                await sub.ws.close(1012, "service restart")


class MockClobThread:
    """Runs a :class:`MockClobServer` on its own event loop in a thread (for synchronous callers)."""

    def __init__(self, server: MockClobServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mock-clob", daemon=True)

    def __enter__(self) -> MockClobServer:
        self._thread.start()
        self.call(self.server.start())
        return self.server

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.call(self.server.stop(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)


__all__ = [
    "EXCHANGE_V2",
    "FAULTS",
    "NEG_RISK_EXCHANGE_V2",
    "ApiKey",
    "MockClobServer",
    "MockClobThread",
    "MockMarket",
    "MockOrder",
    "MockTrade",
    "RecordedRequest",
    "demo_markets",
]
