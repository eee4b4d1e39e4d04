"""The CLOB double's account reads: open orders, one live order, trades (cursor paged) and
balance-allowance, each for the API key the request is signed with.

Paging is the venue's: ``next_cursor`` is a base64 offset, ``MA==`` the first page, ``LTE=``
(base64 of -1) the end.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from core.money import UNIT
from core.sim.http_double import HttpRequest, HttpResponse, RouteSpec
from core.sim.mock_clob_auth import ClobAuth
from core.sim.mock_clob_state import MAX_ALLOWANCE, MockTrade
from core.sim.mock_clob_venue import ClobVenue, Json, Reject

FIRST_CURSOR = "MA=="
END_CURSOR = "LTE="


def page(items: list[Json], cursor: str | None, size: int) -> Json:
    """One page of ``items`` from ``cursor`` on, with the cursor of the next page."""
    cursor = cursor or FIRST_CURSOR
    try:
        offset = int(base64.b64decode(cursor).decode())
    except (ValueError, UnicodeDecodeError):
        raise Reject(f"invalid next_cursor {cursor!r}") from None
    if offset < 0:
        return {"data": [], "next_cursor": END_CURSOR, "limit": size, "count": 0}
    chunk = items[offset : offset + size]
    nxt = offset + size
    next_cursor = base64.b64encode(str(nxt).encode()).decode() if nxt < len(items) else END_CURSOR
    return {"data": chunk, "next_cursor": next_cursor, "limit": size, "count": len(chunk)}


def _seconds(name: str, text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise Reject(f"invalid {name} {text!r}: expected unix seconds") from None


@dataclass(frozen=True, slots=True)
class TradeQuery:
    """The filters of ``GET /data/trades`` (each one unset = no filter)."""

    trade_id: str | None = None
    market: str | None = None
    asset_id: str | None = None
    after: int | None = None
    before: int | None = None
    maker_address: str | None = None

    @classmethod
    def from_params(cls, param: Callable[[str], str | None]) -> TradeQuery:
        maker = param("maker_address")
        return cls(
            trade_id=param("id") or None,
            market=param("market") or None,
            asset_id=param("asset_id") or None,
            after=_seconds("after", param("after")),
            before=_seconds("before", param("before")),
            maker_address=maker.lower() if maker else None,
        )

    def matches(self, trade: MockTrade, api_key: str) -> bool:
        """Whether ``api_key`` took part in ``trade`` and the trade passes every filter."""
        if api_key not in trade.owners() or not self._same_place(trade):
            return False
        if self.after is not None and trade.match_time < self.after:
            return False
        if self.before is not None and trade.match_time > self.before:
            return False
        return self.maker_address is None or self.maker_address in {
            str(m.get("maker_address", "")).lower() for m in trade.maker_orders
        }

    def _same_place(self, trade: MockTrade) -> bool:
        return (
            (self.trade_id is None or trade.id == self.trade_id)
            and (self.market is None or trade.market == self.market)
            and (self.asset_id is None or trade.asset_id == self.asset_id)
        )


class ReadRoutes:
    def __init__(self, venue: ClobVenue, auth: ClobAuth, page_size: int) -> None:
        self._venue = venue
        self._auth = auth
        self.page_size = page_size

    def routes(self) -> list[RouteSpec]:
        return [
            ("GET", r"/data/orders", self.open_orders),
            ("GET", r"/data/order/(.+)", self.live_order),
            ("GET", r"/data/trades", self.trades),
            ("GET", r"/balance-allowance", self.balance_allowance),
            ("GET", r"/balance-allowance/update", self.balance_allowance),
        ]

    def _page(self, req: HttpRequest, items: list[Json]) -> HttpResponse:
        return HttpResponse.json(page(items, req.param("next_cursor"), self.page_size))

    async def open_orders(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        market, asset, oid = req.param("market"), req.param("asset_id"), req.param("id")
        items = [
            o.item()
            for o in self._venue.open_orders_of(key.api_key)
            if (not market or o.market == market) and (not asset or o.asset_id == asset) and (not oid or o.id == oid)
        ]
        return self._page(req, items)

    async def live_order(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        order = self._venue.orders.get(req.path_args[0])
        # like the venue: only live orders are found; a filled, canceled or expired one is a 404
        if order is None or order.owner != key.api_key or not order.is_open:
            raise Reject("order not found", 404)
        return HttpResponse.json(order.item())

    async def trades(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        query = TradeQuery.from_params(req.param)
        items = [t.item_for(key.api_key) for t in self._venue.trades.values() if query.matches(t, key.api_key)]
        return self._page(req, items)

    async def balance_allowance(self, req: HttpRequest) -> HttpResponse:
        key = self._auth.l2(req)
        address = self._venue.funded_address(key, req.param("signature_type"))
        asset_type = (req.param("asset_type") or "COLLATERAL").upper()
        if asset_type == "COLLATERAL":
            amount = self._venue.ledger.cash(address)
        elif asset_type == "CONDITIONAL":
            amount = self._venue.ledger.held(address, req.param("token_id") or "")
        else:
            raise Reject(f"invalid asset_type {asset_type!r}")
        return HttpResponse.json({"balance": str(int(amount * UNIT)), "allowance": str(MAX_ALLOWANCE)})
