"""Local double of Polymarket's CLOB V2: REST over real HTTP plus the ``/ws/user`` channel, one
aiohttp app (:mod:`core.sim.http_double`).

It answers what ``py-clob-client-v2`` calls (server time/version, market info, tick size,
neg-risk, fee rate, book, L1/L2 auth, order post/cancel, cancel-all, open orders, trades,
heartbeats, balance-allowance) and checks posted orders the way the venue does
(:mod:`core.sim.mock_clob_venue`). Marketable orders match against a configurable external book;
each trade then settles MATCHED -> MINED -> CONFIRMED (or RETRYING -> FAILED) on the user
channel (:mod:`core.sim.mock_clob_user`) after a configurable delay.

Faults for tests (:meth:`MockClobServer.inject`, :mod:`core.sim.mock_clob_faults`), consumed by
the next N matching REST requests: ``400`` (venue message), ``425``, ``429`` (Retry-After),
``500``, ``502``, ``503``, ``hang`` (never answer), ``timeout_after_accept`` (process and store,
answer after a delay longer than the client's timeout), ``drop_after_accept`` (process, then close
the connection without an answer); on ``POST /orders`` a fault applies to the batch as a whole (the
after-accept ones accept every order of it). :meth:`MockClobServer.reject_in_batch` refuses chosen
orders inside an accepted batch. Every REST request is recorded in :attr:`MockClobServer.requests`
and counted per method and path in :attr:`MockClobServer.request_counts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from eth_utils.address import to_checksum_address

from core.sim.http_double import DROP, HttpRequest, HttpResponse, MiniHttpServer, RouteSpec, sleep_until
from core.sim.mock_clob_auth import ClobAuth
from core.sim.mock_clob_faults import (
    DROP_AFTER_ACCEPT,
    FAULTS,
    HANG,
    TIMEOUT_AFTER_ACCEPT,
    BatchRejection,
    Fault,
    make_fault,
    take_fault,
)
from core.sim.mock_clob_reads import ReadRoutes
from core.sim.mock_clob_state import ApiKey, Book, Ledger, MockMarket, MockOrder, MockTrade, fmt
from core.sim.mock_clob_trading import TradingRoutes
from core.sim.mock_clob_user import SERVICE_RESTART, USER_PATH, UserChannel
from core.sim.mock_clob_venue import EXCHANGE_V2, NEG_RISK_EXCHANGE_V2, ClobVenue, Reject, demo_markets
from core.sim.mock_data_positions import answer_positions

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        """The body as sent, decoded (any JSON value)."""
        return json.loads(self.body) if self.body else None


class MockClobServer:
    """The CLOB double. ``await start()`` binds the port REST and the user channel share (and
    ``ws_port`` too when one is given: the same app then also listens there)."""

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
        if settlement not in ("confirm", "fail"):
            raise ValueError("settlement must be 'confirm' or 'fail'")
        self.host = host
        self.chain_id = chain_id
        self.confirm_delay_s = confirm_delay_s
        self.settlement = settlement
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.default_balance = balance
        self.venue = ClobVenue(chain_id, balance)
        self.auth = ClobAuth(chain_id, seed)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.batch_rejections: list[BatchRejection] = []
        self.request_counts: Counter[tuple[str, str]] = Counter()  # (method, path) -> requests
        self.fail_next_settlements = 0
        self._user = UserChannel(self.auth.api_keys)
        self._lock = asyncio.Lock()
        self._trading = TradingRoutes(
            self.venue, self.auth, self._user, self._lock, self._settle_later, self.batch_rejections
        )
        self._reads = ReadRoutes(self.venue, self.auth, page_size)
        self._own_ws_port = ws_port not in (0, port)
        self._http = MiniHttpServer(
            self._handle,
            host,
            port,
            websocket_routes={USER_PATH: self._user.handle},
            extra_ports=(ws_port,) if self._own_ws_port else (),
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._routes = [(m, re.compile(p), h) for m, p, h in self._route_table()]
        for market in markets or []:
            self.add_market(market)
        if demo and not markets:
            for market, books in demo_markets():
                self.add_market(market)
                for token, (bids, asks) in books.items():
                    self.set_book(token, _levels(bids), _levels(asks))

    # ------------------------------------------------------------------ state, read by tests

    @property
    def markets(self) -> dict[str, MockMarket]:
        return self.venue.markets

    @property
    def books(self) -> dict[str, Book]:
        return self.venue.books

    @property
    def orders(self) -> dict[str, MockOrder]:
        return self.venue.orders

    @property
    def trades(self) -> dict[str, MockTrade]:
        return self.venue.trades

    @property
    def ledger(self) -> Ledger:
        return self.venue.ledger

    @property
    def api_keys(self) -> dict[str, ApiKey]:
        return self.auth.api_keys

    @property
    def heartbeats(self) -> dict[str, tuple[str, float]]:
        return self._trading.heartbeats

    @property
    def page_size(self) -> int:
        return self._reads.page_size

    @page_size.setter
    def page_size(self, size: int) -> None:
        self._reads.page_size = size

    @property
    def user(self) -> UserChannel:
        return self._user

    @property
    def user_channel_clients(self) -> int:
        return len(self._user.subscribers)

    # ------------------------------------------------------------------ life-cycle

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_port(self) -> int:
        return self._http.ports[-1] if self._own_ws_port else self.port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}{USER_PATH}"

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        await self._http.start()
        self._watchdog = asyncio.create_task(self._heartbeat_watchdog())

    async def stop(self) -> None:
        self._stopped.set()  # held answers (hang, timeout_after_accept) end now
        tasks = [*self._tasks, *([self._watchdog] if self._watchdog else [])]
        for task in tasks:
            task.cancel()
        await self._user.close_all(1001, "going away", subscribed_only=False)
        await self._http.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._watchdog = None

    async def __aenter__(self) -> MockClobServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ controls for tests and the CLI

    def add_market(self, market: MockMarket) -> None:
        self.venue.add_market(market)

    def market_of(self, token_id: str) -> MockMarket | None:
        return self.venue.token_market.get(token_id)

    def set_book(self, token_id: str, bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]) -> None:
        self.venue.set_book(token_id, bids, asks)

    def creds_for(self, address: str) -> ApiKey:
        """The API credentials of ``address`` (what derive-api-key returns), registering them."""
        return self.auth.creds_for(address)

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
        fault = make_fault(
            kind, count=count, method=method, path=path, message=message, retry_after=retry_after, delay_s=delay_s
        )
        self.faults.append(fault)

    def reject_in_batch(
        self,
        message: str = "order rejected by the venue (injected)",
        *,
        token_id: str | None = None,
        position: int | None = None,
        count: int = 1,
    ) -> None:
        """Refuse the next ``count`` orders of ``POST /orders`` batches for ``token_id`` and/or at
        ``position`` (0-based; None = any) with ``message``; the rest of the batch goes on."""
        self.batch_rejections.append(BatchRejection(message, token_id, position, count))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def open_orders_of(self, api_key: str) -> list[MockOrder]:
        return self.venue.open_orders_of(api_key)

    async def trade_against(self, order_id: str, size: Decimal | None = None) -> MockTrade:
        """An external taker hits our resting order: we are MAKER of the resulting trade."""
        return await self._trading.trade_against(order_id, size)

    def mute_user_channel(self, muted: bool = True) -> None:
        """Keep the user-channel sockets up but send no event (what a client cannot tell from a quiet
        account): the client learns of what happened only by asking over REST."""
        self._user.muted = muted

    async def disconnect_user_channels(self) -> None:
        """Close every user-channel socket (clients must reconnect and resync over REST)."""
        await self._user.close_all(SERVICE_RESTART, "service restart")

    # ------------------------------------------------------------------ request pipeline

    async def _handle(self, req: HttpRequest) -> HttpResponse:
        rec = RecordedRequest(req.method, req.path, req.query, dict(req.headers), req.body)
        self.requests.append(rec)
        self.request_counts[(req.method, req.path)] += 1
        fault = take_fault(self.faults, req.method, req.path)
        kind = rec.fault = fault.kind if fault is not None else None
        early = fault.status_answer() if fault is not None else None
        if early is not None:
            rec.status = early.status
            return early
        if fault is not None and kind == HANG:
            await sleep_until(self._stopped, fault.delay_s if fault.delay_s > 0 else None)
            return DROP
        response = await self._answer(req)
        rec.status = response.status
        if fault is not None and kind == TIMEOUT_AFTER_ACCEPT:
            await sleep_until(self._stopped, fault.delay_s)
        return DROP if kind == DROP_AFTER_ACCEPT else response

    async def _answer(self, req: HttpRequest) -> HttpResponse:
        try:
            return await self._route(req)
        except Reject as exc:
            return HttpResponse.error(exc.status, str(exc))
        except Exception as exc:  # a bug in the double must show as a 500, not kill the connection
            log.exception("mock clob: handler failed for %s %s", req.method, req.path)
            return HttpResponse.error(500, f"mock clob internal error: {type(exc).__name__}")

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

    def _route_table(self) -> list[RouteSpec]:
        public: list[RouteSpec] = [
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
            ("GET", r"/positions", partial(answer_positions, self.venue)),  # the Data API's, on one venue
        ]
        return [*public, *self._trading.routes(), *self._reads.routes()]

    # ------------------------------------------------------------------ public market data and L1 auth

    async def _auth_api_key(self, req: HttpRequest) -> HttpResponse:
        key = self.creds_for(self.auth.l1(req))
        return HttpResponse.json({"apiKey": key.api_key, "secret": key.secret, "passphrase": key.passphrase})

    async def _ok(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json("OK")

    async def _time(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json(int(time.time()))

    async def _version(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"version": 2})

    def _market_at(self, condition_id: str) -> MockMarket:
        market = self.markets.get(condition_id)
        if market is None:
            raise Reject("market not found", 404)
        return market

    def _token_param(self, req: HttpRequest) -> tuple[str, MockMarket]:
        token = req.param("token_id") or ""
        market = self.market_of(token)
        if market is None:
            raise Reject(f"market not found for token id {token!r}", 404)
        return token, market

    async def _clob_market(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json(self._market_at(req.path_args[0]).clob_market_info())

    async def _market(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json(self._market_at(req.path_args[0]).market_info())

    async def _market_by_token(self, req: HttpRequest) -> HttpResponse:
        market = self.market_of(req.path_args[0])
        if market is None:
            raise Reject("market not found", 404)
        return HttpResponse.json({"condition_id": market.condition_id})

    async def _tick_size(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"minimum_tick_size": float(self._token_param(req)[1].tick_size)})

    async def _neg_risk(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"neg_risk": self._token_param(req)[1].neg_risk})

    async def _fee_rate(self, req: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"base_fee": int(self._token_param(req)[1].fee_rate * 10_000)})

    async def _book(self, req: HttpRequest) -> HttpResponse:
        token, market = self._token_param(req)
        bids, asks = self.venue.book_view(token)
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

    # ------------------------------------------------------------------ settlement and heartbeats

    def _settle_later(self, trade: MockTrade) -> None:
        task = asyncio.create_task(self._settle(trade))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, trade: MockTrade) -> None:
        fail = self.settlement == "fail" or self.fail_next_settlements > 0
        if self.fail_next_settlements > 0:
            self.fail_next_settlements -= 1
        for status in ("RETRYING", "FAILED") if fail else ("MINED", "CONFIRMED"):
            await asyncio.sleep(self.confirm_delay_s / 2)
            trade.status = status
            trade.last_update = int(time.time())
            if status == "FAILED":
                self.venue.unsettle(trade)
            await self._user.publish_trade(trade)

    async def _heartbeat_watchdog(self) -> None:
        """Once a key has sent a heartbeat, missing them for ``heartbeat_timeout_s`` cancels its orders."""
        while True:
            await asyncio.sleep(min(1.0, self.heartbeat_timeout_s / 4))
            for api_key in await self._trading.cancel_silent(self.heartbeat_timeout_s):
                log.info("mock clob: heartbeats stopped for %s, canceled its open orders", api_key)


def _levels(pairs: list[tuple[str, str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(s)) for p, s in pairs]


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

    def call(self, coro: Coroutine[object, object, T], timeout: float = 30) -> T:
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
    "Reject",
    "demo_markets",
]
