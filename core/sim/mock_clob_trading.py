"""The CLOB double's trading routes: post one order or a batch, cancel (one, some, all, a market's),
heartbeats; and what each says on the user channel.

A change of the venue's state and its user-channel events happen under one lock, so a client
never sees the events of two requests interleaved. New trades settle in the background through
the ``settle`` callback the server gives (it owns those tasks).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

from core.sim.http_double import HttpRequest, HttpResponse, RouteSpec
from core.sim.mock_clob_auth import ClobAuth
from core.sim.mock_clob_faults import BatchRejection, take_rejection
from core.sim.mock_clob_state import ApiKey, MockTrade
from core.sim.mock_clob_user import UserChannel
from core.sim.mock_clob_venue import ClobVenue, Json, Placement, Reject, refused_in_batch

MAX_BATCH = 15


def json_body(req: HttpRequest, refusal: str) -> object:
    try:
        return req.json()
    except ValueError:  # not JSON (or not UTF-8): the venue's 400
        raise Reject(refusal) from None


class TradingRoutes:
    def __init__(
        self,
        venue: ClobVenue,
        auth: ClobAuth,
        user: UserChannel,
        lock: asyncio.Lock,
        settle: Callable[[MockTrade], None],
        rejections: list[BatchRejection] | None = None,
    ) -> None:
        self._venue = venue
        self._auth = auth
        self._user = user
        self._lock = lock
        self._settle = settle
        self.rejections: list[BatchRejection] = rejections if rejections is not None else []
        self.heartbeats: dict[str, tuple[str, float]] = {}  # api key -> (current id, monotonic time)

    def routes(self) -> list[RouteSpec]:
        return [
            ("POST", r"/order", self.post_order),
            ("POST", r"/orders", self.post_orders),
            ("DELETE", r"/order", self.cancel_order),
            ("DELETE", r"/orders", self.cancel_orders),
            ("DELETE", r"/cancel-all", self.cancel_all),
            ("DELETE", r"/cancel-market-orders", self.cancel_market),
            ("POST", r"/v1/heartbeats", self.heartbeat),
        ]

    # ------------------------------------------------------------------ orders

    async def post_order(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        payload = json_body(req, "Invalid order payload")
        async with self._lock:
            placement = self._venue.place(key, payload)
            await self._announce(placement)
        return HttpResponse.json(placement.answer())

    async def post_orders(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        payloads = json_body(req, "Invalid order payload")
        if not isinstance(payloads, list) or not payloads:
            raise Reject("Invalid order payload")
        if len(payloads) > MAX_BATCH:
            raise Reject(f"too many orders in one batch: at most {MAX_BATCH}")
        out: list[Json] = []
        async with self._lock:
            for position, payload in enumerate(payloads):
                try:
                    injected = take_rejection(self.rejections, position, payload)
                    if injected is not None:
                        raise Reject(injected)
                    placement = self._venue.place(key, payload)
                except Reject as exc:  # each order is checked as POST /order checks it, refused in place
                    out.append(refused_in_batch(str(exc)))
                    continue
                await self._announce(placement)
                out.append(placement.answer())
        return HttpResponse.json(out)

    async def _announce(self, placement: Placement) -> None:
        """What the user channel says about a new order, then its trades (settling in the background)."""
        order, trades = placement.order, placement.trades
        if trades:
            await self._user.publish_order(order, "UPDATE")
        elif order.status == "LIVE":
            await self._user.publish_order(order, "PLACEMENT")
        for trade in trades:
            await self._user.publish_trade(trade)
            self._settle(trade)

    async def trade_against(self, order_id: str, size: Decimal | None = None) -> MockTrade:
        """An external taker hits our resting order: we are MAKER of the resulting trade."""
        async with self._lock:
            trade = self._venue.trade_against(order_id, size)
            await self._user.publish_order(self._venue.orders[order_id], "UPDATE")
            await self._user.publish_trade(trade)
            self._settle(trade)
            return trade

    # ------------------------------------------------------------------ cancels

    async def cancel(self, key: ApiKey, ids: list[str]) -> Json:
        async with self._lock:
            result = self._venue.cancel(key.api_key, ids)
            for oid in result["canceled"]:
                await self._user.publish_order(self._venue.orders[oid], "CANCELLATION")
        return result

    async def cancel_order(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        body = json_body(req, "Invalid order id")
        oid = body.get("orderID") if isinstance(body, dict) else None
        if not oid:
            raise Reject("Invalid order id")
        return HttpResponse.json(await self.cancel(key, [str(oid)]))

    async def cancel_orders(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        ids = json_body(req, "Invalid order ids")
        if not isinstance(ids, list):
            raise Reject("Invalid order ids")
        return HttpResponse.json(await self.cancel(key, [str(i) for i in ids]))

    async def cancel_all(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        return HttpResponse.json(await self.cancel(key, [o.id for o in self._venue.open_orders_of(key.api_key)]))

    async def cancel_market(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        body = json_body(req, "Invalid payload")
        market, asset = (body.get("market"), body.get("asset_id")) if isinstance(body, dict) else (None, None)
        ids = [
            o.id
            for o in self._venue.open_orders_of(key.api_key)
            if (not market or o.market == market) and (not asset or o.asset_id == asset)
        ]
        return HttpResponse.json(await self.cancel(key, ids))

    # ------------------------------------------------------------------ heartbeats

    async def heartbeat(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        body = json_body(req, "Invalid Heartbeat ID")
        given = str(body.get("heartbeat_id") or "") if isinstance(body, dict) else ""
        current = self.heartbeats.get(key.api_key)
        if given and (current is None or given != current[0]):
            raise Reject("Invalid Heartbeat ID")
        new_id = str(uuid.uuid4())
        self.heartbeats[key.api_key] = (new_id, time.monotonic())
        return HttpResponse.json({"heartbeat_id": new_id})

    async def cancel_silent(self, timeout_s: float) -> list[str]:
        """Once a key has sent a heartbeat, missing them for ``timeout_s`` cancels its open orders;
        returns the keys whose orders were canceled."""
        now = time.monotonic()
        silent = [k for k, (_, last) in self.heartbeats.items() if now - last > timeout_s]
        for api_key in silent:
            del self.heartbeats[api_key]
            key = self._auth.api_keys.get(api_key)
            if key is not None:
                await self.cancel(key, [o.id for o in self._venue.open_orders_of(api_key)])
        return silent
