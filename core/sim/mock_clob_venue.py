"""The CLOB double's venue: markets, external books, orders, trades, the ledger, and the order
rules the real venue applies (signature and signer rules per signature type, tick, minimum size,
$1 marketable minimum, post-only, FOK/FAK, a GTD order's expiration, balance and allowance).

Synchronous bookkeeping, no I/O: :mod:`core.sim.mock_clob` serves it over HTTP and publishes
what it returns on the user channel. Each rule is one small check, in the order the venue applies
them, so the first broken rule names the refusal.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_utils.address import to_checksum_address

from core.fees import taker_fee
from core.sim.mock_clob_state import (
    ZERO,
    ApiKey,
    Book,
    Ledger,
    MockMarket,
    MockOrder,
    MockTrade,
    fmt,
    order_price_and_size,
    price_on_tick,
)
from core.sim.mock_clob_verify import VerifyError, order_hash, recover_order_signer
from core.types import OrderType, Side

EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
EXTERNAL_MAKER = "0x000000000000000000000000000000000000dEaD"  # resting liquidity we trade against
EXTERNAL_TAKER = "0x000000000000000000000000000000000000bEEF"  # a taker hitting our resting order
GTD_SAFETY_S = 60  # the venue refuses a GTD order expiring sooner than this
Levels = list[tuple[Decimal, Decimal]]
Json = dict[str, Any]  # a JSON object as decoded (values of any JSON type)


class Reject(Exception):
    """An order/request refusal with the venue's status and message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _token_id(label: str) -> str:
    return str(int(hashlib.sha256(label.encode()).hexdigest(), 16))[:77]


def _condition_id(label: str) -> str:
    return "0x" + hashlib.sha256(label.encode()).hexdigest()


def _random_hash() -> str:
    return "0x" + hashlib.sha256(uuid.uuid4().bytes).hexdigest()


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


@dataclass(frozen=True, slots=True)
class _Ticket:
    """A ``POST /order`` body whose shape, owner, version and options passed."""

    payload: Json
    order: Json
    order_type: OrderType
    post_only: bool
    token: str
    market: MockMarket


@dataclass(frozen=True, slots=True)
class Placement:
    """An accepted order and the trades it made at once."""

    order: MockOrder
    trades: list[MockTrade]

    def answer(self) -> Json:
        """The ``POST /order`` response."""
        cash = sum((t.price * t.size for t in self.trades), ZERO)
        shares = self.order.size_matched
        making, taking = (cash, shares) if self.order.side is Side.BUY else (shares, cash)
        return {
            "success": True,
            "errorMsg": "",
            "orderID": self.order.id,
            "status": "matched" if self.trades else "live",
            "makingAmount": fmt(making),
            "takingAmount": fmt(taking),
            "transactionsHashes": [t.transaction_hash for t in self.trades],
            "tradeIDs": [t.id for t in self.trades],
        }


def refused_in_batch(reason: str) -> Json:
    """A refused order inside an accepted ``POST /orders`` batch: the venue answers ``success``
    true with an empty ``orderID`` and the reason in ``errorMsg``."""
    return {"success": True, "errorMsg": reason, "orderID": "", "status": ""}


class ClobVenue:
    def __init__(self, chain_id: int, balance: Decimal) -> None:
        self.chain_id = chain_id
        self.markets: dict[str, MockMarket] = {}
        self.token_market: dict[str, MockMarket] = {}
        self.books: dict[str, Book] = {}
        self.orders: dict[str, MockOrder] = {}
        self.trades: dict[str, MockTrade] = {}
        self.ledger = Ledger(balance)

    # ------------------------------------------------------------------ markets and books

    def add_market(self, market: MockMarket) -> None:
        self.markets[market.condition_id] = market
        for token, _ in market.tokens:
            self.token_market[token] = market
            self.books.setdefault(token, Book())

    def set_book(self, token_id: str, bids: Levels, asks: Levels) -> None:
        self.books.setdefault(token_id, Book()).set(bids, asks)

    def book_view(self, token_id: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """Bids and asks of a token as the venue shows them: external liquidity plus our open orders."""
        book = self.books[token_id]
        bids, asks = dict(book.bids), dict(book.asks)
        for order in self.orders.values():
            if order.asset_id == token_id and order.is_open:
                side = bids if order.side is Side.BUY else asks
                side[order.price] = side.get(order.price, ZERO) + order.remaining
        return bids, asks

    # ------------------------------------------------------------------ queries

    def open_orders_of(self, api_key: str) -> list[MockOrder]:
        return [o for o in self.orders.values() if o.owner == api_key and o.is_open]

    def funded_address(self, key: ApiKey, signature_type: str | None) -> str:
        """The address whose funds a key trades: its EOA, or (signature types 1-3) the funder
        wallet its orders name as maker."""
        if signature_type in (None, "", "0"):
            return to_checksum_address(key.address)
        makers = [o.maker_address for o in self.orders.values() if o.owner == key.api_key]
        return makers[-1] if makers else to_checksum_address(key.address)

    def _locked_cash(self, maker: str) -> Decimal:
        buys = (o for o in self.orders.values() if o.is_open and o.side is Side.BUY and o.maker_address == maker)
        return sum((o.price * o.remaining for o in buys), ZERO)

    def _locked_shares(self, maker: str, token_id: str) -> Decimal:
        sells = (
            o
            for o in self.orders.values()
            if o.is_open and o.side is Side.SELL and o.maker_address == maker and o.asset_id == token_id
        )
        return sum((o.remaining for o in sells), ZERO)

    # ------------------------------------------------------------------ placing orders

    def place(self, key: ApiKey, payload: object) -> Placement:
        """Check ``payload`` as the venue does, then rest it and/or match it against the book."""
        ticket = _ticket(key, payload, self.token_market)
        venue_id, maker = self._verify(key, ticket)
        side, price, size = _amounts(ticket)
        crossing = self.books[ticket.token].crossing(side, price)
        _check_size(ticket, crossing, price, size)
        self._check_funds(maker, side, ticket.token, price, size)
        _check_fill(ticket.order_type, crossing, size)
        order = MockOrder(
            id=venue_id,
            owner=key.api_key,
            maker_address=maker,
            market=ticket.market.condition_id,
            asset_id=ticket.token,
            outcome=ticket.market.outcome_of(ticket.token),
            side=side,
            price=price,
            original_size=size,
            order_type=ticket.order_type,
            expiration=str(ticket.order.get("expiration", "0")),
            body=ticket.payload,
        )
        self.orders[venue_id] = order
        trades = self._match(order, ticket.market, crossing)
        if order.remaining > 0 and ticket.order_type in (OrderType.FOK, OrderType.FAK):
            order.status = "CANCELED"
        elif order.remaining <= 0:
            order.status = "MATCHED"
        return Placement(order, trades)

    def _verify(self, key: ApiKey, ticket: _Ticket) -> tuple[str, str]:
        """The order's venue id and maker, once its signature and signer rules hold."""
        exchange = NEG_RISK_EXCHANGE_V2 if ticket.market.neg_risk else EXCHANGE_V2
        try:
            recovered = recover_order_signer(ticket.order, exchange, self.chain_id)
            venue_id = order_hash(ticket.order, exchange, self.chain_id)
        except VerifyError as exc:
            raise Reject(str(exc)) from None
        maker = _check_signer(ticket.order, key, recovered)
        if venue_id in self.orders:
            raise Reject(f"order {venue_id} is invalid. Duplicated.")
        return venue_id, maker

    def _check_funds(self, maker: str, side: Side, token: str, price: Decimal, size: Decimal) -> None:
        if side is Side.BUY:
            enough = price * size <= self.ledger.cash(maker) - self._locked_cash(maker)
        else:
            enough = size <= self.ledger.held(maker, token) - self._locked_shares(maker, token)
        if not enough:
            raise Reject("not enough balance / allowance")

    def _match(self, taker: MockOrder, market: MockMarket, crossing: Levels) -> list[MockTrade]:
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
                transaction_hash=_random_hash(),
                maker_orders=[
                    {
                        "order_id": _random_hash(),
                        "owner": "external-liquidity",
                        "maker_address": EXTERNAL_MAKER,
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

    def trade_against(self, order_id: str, size: Decimal | None = None) -> MockTrade:
        """An external taker hits our resting order: we are MAKER of the resulting trade."""
        order = self.orders[order_id]
        if not order.is_open:
            raise ValueError(f"order {order_id} is not open")
        fill = min(order.remaining, size if size is not None else order.remaining)
        order.size_matched += fill
        if order.remaining <= 0:
            order.status = "MATCHED"
        market = self.token_market[order.asset_id]
        trade = MockTrade(
            id=str(uuid.uuid4()),
            market=order.market,
            asset_id=order.asset_id,
            outcome=order.outcome,
            side=order.side.opposite,
            price=order.price,
            size=fill,
            taker_order_id=_random_hash(),
            taker_owner="external-taker",
            taker_address=EXTERNAL_TAKER,
            fee_rate_bps=int(market.fee_rate * 10_000),
            transaction_hash=_random_hash(),
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
        return trade

    def _move(self, trade: MockTrade, address: str, side: Side, price: Decimal, size: Decimal, fee: Decimal) -> None:
        move = (to_checksum_address(address), side, trade.asset_id, price, size, fee)
        self.ledger.trade(*move)
        trade.moves.append(move)

    def unsettle(self, trade: MockTrade) -> None:
        """The match never settled: balances as before it."""
        for move in trade.moves:
            self.ledger.undo(*move)

    # ------------------------------------------------------------------ cancels

    def cancel(self, api_key: str, ids: Iterable[str]) -> Json:
        """Cancel ``api_key``'s orders among ``ids``: the venue's ``canceled`` / ``not_canceled`` answer."""
        canceled: list[str] = []
        not_canceled: dict[str, str] = {}
        for oid in ids:
            order = self.orders.get(oid)
            if order is None or order.owner != api_key:
                not_canceled[oid] = "order not found"
            elif not order.is_open:
                not_canceled[oid] = "already canceled or matched"
            else:
                order.status = "CANCELED"
                canceled.append(oid)
        return {"canceled": canceled, "not_canceled": not_canceled}


# ---------------------------------------------------------------------- the order rules


def _ticket(key: ApiKey, payload: object, token_market: dict[str, MockMarket]) -> _Ticket:
    if not isinstance(payload, dict) or not isinstance(payload.get("order"), dict):
        raise Reject("Invalid order payload")
    order: Json = payload["order"]
    if payload.get("owner") != key.api_key:
        raise Reject("the order owner has to be the owner of the API KEY")
    if "timestamp" not in order or "nonce" in order or "feeRateBps" in order:
        raise Reject("order_version_mismatch")  # a V1 order
    try:
        order_type = OrderType(str(payload.get("orderType", "GTC")).upper())
    except ValueError:
        raise Reject(f"invalid order type {payload.get('orderType')!r}") from None
    post_only = bool(payload.get("postOnly", False))
    if post_only and order_type in (OrderType.FOK, OrderType.FAK):
        raise Reject("invalid post-only order: only GTC and GTD orders can be post-only")
    _check_expiration(order_type, order)
    token = str(order.get("tokenId", ""))
    market = token_market.get(token)
    if market is None:
        raise Reject(f"invalid token id {token!r}: market not found")
    if not market.accepting_orders:
        raise Reject("market is not accepting orders")
    return _Ticket(payload, order, order_type, post_only, token, market)


def _check_expiration(order_type: OrderType, order: Json) -> None:
    """A GTD order expires at least a minute from now (the venue's safety threshold); no other type expires."""
    try:
        expiration = int(str(order.get("expiration", "0")))
    except ValueError:
        raise Reject("invalid order expiration") from None
    if order_type is OrderType.GTD and expiration < int(time.time()) + GTD_SAFETY_S:
        raise Reject(f"invalid expiration value: a GTD order must expire at least {GTD_SAFETY_S}s from now")
    if order_type is not OrderType.GTD and expiration != 0:
        raise Reject("invalid expiration value: only a GTD order has an expiration")


def _check_signer(order: Json, key: ApiKey, recovered: str) -> str:
    """The maker, once the signer rules of the order's signature type hold."""
    sig_type = int(order.get("signatureType", 0))
    signer = to_checksum_address(order["signer"])
    maker = to_checksum_address(order["maker"])
    if sig_type == 3:  # POLY_1271: the deposit wallet signs, the API key's EOA behind it
        if signer != maker:
            raise Reject("the order signer must be the deposit wallet (maker) for signature type 3")
        if recovered != key.address:
            raise Reject("invalid signature")
        return maker
    if recovered != signer:
        raise Reject("invalid signature")
    if signer != key.address:
        raise Reject("order signer address has to be the address of the API KEY")
    if sig_type == 0 and maker != signer:
        raise Reject("maker address not allowed, please use the deposit wallet flow")
    return maker


def _amounts(ticket: _Ticket) -> tuple[Side, Decimal, Decimal]:
    order = ticket.order
    side = Side.BUY if order["side"] in ("BUY", 0) else Side.SELL
    try:
        price, size = order_price_and_size(side, int(order["makerAmount"]), int(order["takerAmount"]))
    except (ValueError, ArithmeticError):
        raise Reject("invalid order amounts") from None
    tick = ticket.market.tick_size
    if not price_on_tick(price, tick):
        raise Reject(f"order price {fmt(price)} breaks the market's minimum tick size {fmt(tick)}")
    return side, price, size


def _check_size(ticket: _Ticket, crossing: Levels, price: Decimal, size: Decimal) -> None:
    if ticket.post_only and crossing:
        raise Reject("invalid post-only order: order crosses book")
    minimum = ticket.market.min_order_size
    if not crossing and size < minimum:
        raise Reject(f"Size ({fmt(size)}) lower than the minimum: {fmt(minimum)}")
    if crossing and price * size < 1 and ticket.order_type not in (OrderType.FOK, OrderType.FAK):
        raise Reject("invalid amount for a marketable order, min size: $1")


def _check_fill(order_type: OrderType, crossing: Levels, size: Decimal) -> None:
    available = sum((s for _, s in crossing), ZERO)
    if order_type is OrderType.FOK and available < size:
        raise Reject("order couldn't be fully filled. FOK orders are fully filled or killed.")
    if order_type is OrderType.FAK and available <= 0:
        raise Reject(
            "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
        )
