"""The venue's view of our orders, trades and balances, read over REST (live mode).

Every read raises :class:`~core.execution.relayers.clob_http.VenueError` when the venue cannot be
read: an empty list always means "none", never "could not tell"; a lookup's None means "the venue
does not know it".
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from decimal import Decimal

import msgspec

from core.execution.relayers.clob_http import ClobHttp, VenueError
from core.execution.relayers.clob_user_translate import UserStreamTranslator
from core.execution.relayers.clob_user_wire import OrderWire, parse_decimal, parse_side
from core.execution.types import ErrorClass, OrderRequest, Outcome, VenueOrder
from core.money import from_units

log = logging.getLogger(__name__)

END_CURSOR = "LTE="
INITIAL_CURSOR = "MA=="
MAX_PAGES = 1000


def venue_order_from(item: object, client_order_id: str | None) -> VenueOrder | None:
    """A ``/data/orders`` or ``/data/order/{id}`` item -> :class:`VenueOrder` (None when unreadable)."""
    try:
        wire = msgspec.convert(item, OrderWire, strict=False)
    except msgspec.ValidationError:
        return None
    side = parse_side(wire.side)
    price = parse_decimal(wire.price)
    original = parse_decimal(wire.original_size)
    if not wire.id or side is None or price is None or original is None:
        return None
    return VenueOrder(
        venue_order_id=wire.id,
        client_order_id=client_order_id,
        token_id=wire.asset_id,
        side=side,
        price=price,
        original_size=original,
        size_matched=parse_decimal(wire.size_matched) or Decimal(0),
        status=wire.status,
    )


def _item_id(item: object) -> str:
    return str(item.get("id") or "") if isinstance(item, dict) else ""


class ClobReader:
    """REST reads of our account; remembers the order hash of each client order id it is told of."""

    def __init__(
        self,
        http: ClobHttp,
        translator: UserStreamTranslator,
        stats: Counter[str],
        *,
        signature_type: int,
        remembered: int = 10_000,
    ) -> None:
        self._http = http
        self._translator = translator
        self._stats = stats
        self._signature_type = signature_type
        self._hash_by_client: OrderedDict[str, str] = OrderedDict()
        self._remembered = remembered

    # -- order hashes ------------------------------------------------------------------------

    def remember(self, client_order_id: str, order_hash: str) -> None:
        known = self._hash_by_client
        if client_order_id in known:
            known.move_to_end(client_order_id)  # a new one goes to the end by itself
        known[client_order_id] = order_hash
        while len(self._hash_by_client) > self._remembered:
            self._hash_by_client.popitem(last=False)

    def hash_for(self, client_order_id: str) -> str | None:
        return self._hash_by_client.get(client_order_id)

    # -- pages -------------------------------------------------------------------------------

    async def paged(self, path: str, params: dict[str, str]) -> list[dict[str, object]]:
        cursor = INITIAL_CURSOR
        items: list[dict[str, object]] = []
        for _ in range(MAX_PAGES):
            resp = await self._http.request("GET", path, params={**params, "next_cursor": cursor}, auth="l2")
            if not isinstance(resp, dict):
                raise VenueError(Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"unreadable page from {path}")
            data = resp.get("data")
            if isinstance(data, list):
                items.extend(x for x in data if isinstance(x, dict))
            cursor = str(resp.get("next_cursor") or END_CURSOR)
            if cursor == END_CURSOR:
                return items
        raise VenueError(Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"{path}: more than {MAX_PAGES} pages")

    async def open_orders(self, market: str | None = None, asset_id: str | None = None) -> list[VenueOrder]:
        """Every open order (all pages)."""
        items = await self.paged("/data/orders", {k: v for k, v in (("market", market), ("asset_id", asset_id)) if v})
        out = []
        for item in items:
            vo = venue_order_from(item, self._translator.client_order_id(_item_id(item)))
            if vo is None:
                self._stats["bad_open_order"] += 1
                log.warning("open orders: unreadable item %s", str(item)[:200])
                continue
            out.append(vo)
        return out

    async def trades(self, *, after: int | None = None, market: str | None = None) -> list[dict[str, object]]:
        """Our trades from ``GET /data/trades`` (all pages), raw items for the translator."""
        params = {k: str(v) for k, v in (("after", after), ("market", market)) if v}
        return await self.paged("/data/trades", params)

    async def order_item(self, venue_order_id: str) -> dict[str, object] | None:
        """``GET /data/order/{id}`` as the venue wrote it; None when it does not know the order."""
        try:
            resp = await self._http.request("GET", f"/data/order/{venue_order_id}", auth="l2")
        except VenueError as err:
            if err.status == 404:
                return None
            raise
        return resp if isinstance(resp, dict) and resp.get("id") else None

    async def by_hash(self, order_hash: str, client_order_id: str | None) -> VenueOrder | None:
        item = await self.order_item(order_hash)
        return None if item is None else venue_order_from(item, client_order_id)

    async def lookup(self, order: OrderRequest) -> VenueOrder | None:
        """Find an order we may have placed: by its order hash (known from signing or remembered);
        without a hash, by an exact unique match among open orders."""
        order_hash = self._hash_by_client.get(order.client_order_id)
        if order_hash is not None:
            return await self.by_hash(order_hash, order.client_order_id)
        claimed = set(self._hash_by_client.values())
        matches = [
            vo
            for vo in await self.open_orders(asset_id=order.token_id)
            if vo.side is order.side
            and vo.price == order.price
            and vo.original_size == order.size
            and vo.venue_order_id not in claimed
        ]
        if len(matches) > 1:
            self._stats["lookup_ambiguous"] += 1
            log.warning(
                "lookup %s: %d open orders match and no order hash is known", order.client_order_id, len(matches)
            )
        if len(matches) != 1:
            return None
        found = matches[0]
        self.remember(order.client_order_id, found.venue_order_id)
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

    # -- balances ----------------------------------------------------------------------------

    async def collateral_balance(self) -> Decimal:
        return (await self.collateral_balance_allowance())[0]

    async def collateral_balance_allowance(self) -> tuple[Decimal, Decimal | None]:
        """pUSD held and the allowance the venue reports (None when the answer carries none)."""
        resp = await self._balance_answer({"asset_type": "COLLATERAL"})
        allowance = resp.get("allowance")
        return _amount(resp.get("balance")), None if allowance is None else _amount(allowance)

    async def token_balance(self, token_id: str) -> Decimal:
        resp = await self._balance_answer({"asset_type": "CONDITIONAL", "token_id": token_id})
        return _amount(resp.get("balance"))

    async def _balance_answer(self, params: dict[str, str]) -> dict[str, object]:
        query = {**params, "signature_type": str(self._signature_type)}
        resp = await self._http.request("GET", "/balance-allowance", params=query, auth="l2")
        if not isinstance(resp, dict):
            raise VenueError(
                Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"unreadable answer from /balance-allowance: {resp!r}"
            )
        return resp


def _amount(raw: object) -> Decimal:
    """A balance or allowance: 10^-6 units as an integer string (the documented form), or, in the
    form some answers take, a decimal string already in pUSD/shares ("250.500000")."""
    text = str(raw).strip()
    try:
        if text.isdigit():
            return from_units(int(text))
        value = Decimal(text)
    except (TypeError, ValueError, ArithmeticError):
        value = Decimal("NaN")
    if "." not in text or not value.is_finite() or value < 0:
        raise VenueError(
            Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, f"unreadable amount from /balance-allowance: {raw!r}"
        ) from None
    return value
