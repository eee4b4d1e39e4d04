"""Live-mode ClobRelayer against the local CLOB double over real HTTP.

Covers post / cancel / cancel-all / open orders (paged), every injected error class mapped to
the relayer contract, timeout-after-accept reconciled by lookup (never a second order), the
venue's validation (signature types, exchange, tick, minimum size) and the heartbeat.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from core.execution.relayers.clob import ClobRelayer
from core.execution.types import ErrorClass, OrderRequest, OrderStatus, Outcome
from core.sim.mock_clob import MockClobServer, MockMarket
from core.types import Mode, OrderType, Side

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
FUNDER = "0x1111111111111111111111111111111111111111"
TIMEOUT_S = 0.6


@pytest.fixture
async def server() -> AsyncIterator[MockClobServer]:
    srv = MockClobServer(confirm_delay_s=0.1, heartbeat_timeout_s=0.6)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _relayer(server: MockClobServer, **kw: Any) -> ClobRelayer:
    args: dict[str, Any] = {
        "dry_run": False,
        "derive_api_key": True,
        "timeout_s": TIMEOUT_S,
        "heartbeat_interval_s": 0,
    }
    args.update(kw)
    return ClobRelayer(server.url, 137, KEY, **args)


@pytest.fixture
async def relayer(server: MockClobServer) -> AsyncIterator[ClobRelayer]:
    r = _relayer(server)
    await r.start()
    for market in server.markets.values():
        await r.prewarm(market.condition_id)
    try:
        yield r
    finally:
        await r.close()


def _binary(server: MockClobServer) -> MockMarket:
    return next(m for m in server.markets.values() if not m.neg_risk)


def _neg_risk(server: MockClobServer) -> MockMarket:
    return next(m for m in server.markets.values() if m.neg_risk)


def _order(market: MockMarket, cid: str, price: str, size: str = "10", **kw: Any) -> OrderRequest:
    args: dict[str, Any] = {"side": Side.BUY, "tick_size": market.tick_size, "neg_risk": market.neg_risk, **kw}
    return OrderRequest(
        client_order_id=cid,
        market=market.condition_id,
        token_id=market.tokens[0][0],
        price=Decimal(price),
        size=Decimal(size),
        **args,
    )


async def test_post_open_orders_cancel_and_cancel_all(server: MockClobServer, relayer: ClobRelayer) -> None:
    assert relayer.mode is Mode.LIVE and relayer.api_key
    m = _binary(server)
    first = await relayer.place(_order(m, "a", "0.45"))
    assert first.outcome is Outcome.ACCEPTED and first.status is OrderStatus.LIVE
    assert first.venue_order_id == first.order_hash and first.venue_order_id in server.orders
    second = await relayer.place(_order(m, "b", "0.44"))
    nr = _neg_risk(server)
    third = await relayer.place(_order(nr, "c", "0.250"))
    assert third.outcome is Outcome.ACCEPTED, third.error
    opened = {o.venue_order_id: o for o in await relayer.open_orders()}
    assert set(opened) == {first.venue_order_id, second.venue_order_id, third.venue_order_id}
    assert opened[first.venue_order_id].client_order_id == "a"
    assert opened[first.venue_order_id].price == Decimal("0.45") and opened[first.venue_order_id].side is Side.BUY

    cancel = await relayer.cancel(str(first.venue_order_id))
    assert cancel.outcome is Outcome.ACCEPTED and cancel.canceled == (first.venue_order_id,)
    again = await relayer.cancel(str(first.venue_order_id))
    assert again.canceled == () and again.not_canceled == {first.venue_order_id: "already canceled or matched"}

    by_market = await relayer.cancel_market(market=nr.condition_id)
    assert by_market.canceled == (third.venue_order_id,)
    rest = await relayer.cancel_all()
    assert rest.canceled == (second.venue_order_id,)
    assert await relayer.open_orders() == []
    # like the venue, GET /data/order/{id} only finds live orders: a canceled one is a 404
    assert await relayer.lookup(_order(m, "a", "0.45")) is None


async def test_marketable_order_fills_against_the_book(server: MockClobServer, relayer: ClobRelayer) -> None:
    m = _binary(server)
    result = await relayer.place(_order(m, "taker", "0.53", "150"))
    assert result.outcome is Outcome.ACCEPTED and result.status is OrderStatus.FILLED
    assert result.fills == ()  # fills arrive from the user channel, with trade ids and confirmation
    order = server.orders[str(result.venue_order_id)]
    assert order.size_matched == Decimal("150") and order.status == "MATCHED"
    partial = await relayer.place(_order(m, "partial", "0.53", "200"))
    assert partial.status is OrderStatus.PARTIALLY_FILLED
    fok = await relayer.place(_order(m, "fok", "0.53", "1000", order_type=OrderType.FOK))
    assert fok.outcome is Outcome.REJECTED and "FOK" in fok.error


async def test_open_orders_follow_every_page(server: MockClobServer, relayer: ClobRelayer) -> None:
    server.page_size = 2
    m = _binary(server)
    placed = [await relayer.place(_order(m, f"p{i}", f"0.{30 + i}")) for i in range(5)]
    assert all(p.outcome is Outcome.ACCEPTED for p in placed)
    assert len(await relayer.open_orders()) == 5
    assert len(server.requests_to("GET", "/data/orders")) == 3


@pytest.mark.parametrize(
    ("fault", "kw", "outcome", "error_class", "status", "retry_after"),
    [
        (
            "400",
            {"message": "not enough balance / allowance"},
            Outcome.REJECTED,
            ErrorClass.BAD_REQUEST,
            OrderStatus.REJECTED,
            None,
        ),
        ("425", {"retry_after": "3"}, Outcome.RETRYABLE, ErrorClass.MAINTENANCE, OrderStatus.NEW, 3.0),
        ("429", {"retry_after": "2"}, Outcome.RETRYABLE, ErrorClass.RATE_LIMITED, OrderStatus.NEW, 2.0),
        ("503", {}, Outcome.RETRYABLE, ErrorClass.SERVER, OrderStatus.NEW, None),
        ("500", {}, Outcome.UNKNOWN, ErrorClass.SERVER, OrderStatus.SUBMITTED_UNKNOWN, None),
        ("502", {}, Outcome.UNKNOWN, ErrorClass.SERVER, OrderStatus.SUBMITTED_UNKNOWN, None),
        ("hang", {}, Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, OrderStatus.SUBMITTED_UNKNOWN, None),
    ],
)
async def test_injected_errors_map_to_the_contract(
    server: MockClobServer,
    relayer: ClobRelayer,
    fault: str,
    kw: dict[str, Any],
    outcome: Outcome,
    error_class: ErrorClass,
    status: OrderStatus,
    retry_after: float | None,
) -> None:
    m = _binary(server)
    order = _order(m, f"f-{fault}", "0.41")
    server.inject(fault, **kw)
    result = await relayer.place(order)
    assert (result.outcome, result.error_class, result.status) == (outcome, error_class, status)
    assert result.retry_after_s == retry_after
    assert result.order_hash and result.signed_order is not None
    if fault == "400":
        assert result.error == "not enough balance / allowance"
    # None of these faults stored the order: reconciliation finds nothing, a retry places it once.
    assert await relayer.lookup(order) is None
    retry = await relayer.place(order)
    assert retry.outcome is Outcome.ACCEPTED and retry.venue_order_id == result.order_hash
    posts = server.requests_to("POST", "/order")
    assert posts[-1].body == posts[-2].body  # the same signed order was re-sent
    assert len(server.open_orders_of(str(relayer.api_key))) == 1


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept"])
async def test_lost_response_after_accept_is_unknown_and_found_by_lookup(
    server: MockClobServer, relayer: ClobRelayer, fault: str
) -> None:
    m = _binary(server)
    order = _order(m, f"lost-{fault}", "0.42")
    server.inject(fault, delay_s=5)
    result = await relayer.place(order)
    assert result.outcome is Outcome.UNKNOWN and result.error_class is ErrorClass.UNKNOWN_OUTCOME
    assert result.status is OrderStatus.SUBMITTED_UNKNOWN and result.venue_order_id is None
    found = await relayer.lookup(order)
    assert found is not None and found.venue_order_id == result.order_hash and found.status == "LIVE"
    # A blind resubmission cannot create a second order: the same signed order is a duplicate.
    again = await relayer.place(order)
    assert again.outcome is Outcome.ACCEPTED and again.venue_order_id == result.order_hash
    assert len(server.open_orders_of(str(relayer.api_key))) == 1


async def test_lookup_after_restart_uses_the_remembered_hash_or_a_unique_match(
    server: MockClobServer, relayer: ClobRelayer
) -> None:
    m = _binary(server)
    order = _order(m, "restart", "0.43")
    placed = await relayer.place(order)
    fresh = _relayer(server)
    await fresh.start()
    try:
        by_scan = await fresh.lookup(order)  # no hash known: exact unique open-order match
        assert by_scan is not None and by_scan.venue_order_id == placed.venue_order_id
        other = _relayer(server)
        await other.start()
        other.remember_order("restart", str(placed.order_hash))
        by_hash = await other.lookup(order)
        assert by_hash is not None and by_hash.venue_order_id == placed.venue_order_id
        await other.close()
    finally:
        await fresh.close()


async def test_connect_failure_is_retryable_network() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    relayer = ClobRelayer(
        f"http://127.0.0.1:{port}", 137, KEY, dry_run=False, api_creds=("k", "c2VjcmV0", "p"), heartbeat_interval_s=0
    )
    await relayer.start()
    try:
        order = OrderRequest("net", "0xabc", "123", Side.BUY, Decimal("0.5"), Decimal("10"))
        result = await relayer.place(order)
        assert (result.outcome, result.error_class, result.status) == (
            Outcome.RETRYABLE,
            ErrorClass.NETWORK,
            OrderStatus.NEW,
        )
        with pytest.raises(Exception, match="could not connect"):
            await relayer.open_orders()
    finally:
        await relayer.close()


async def test_venue_refuses_orders_signed_for_the_wrong_exchange(server: MockClobServer, relayer: ClobRelayer) -> None:
    nr = _neg_risk(server)
    token = nr.tokens[0][0]
    relayer.prewarm_token(token, nr.tick_size, neg_risk=False)  # stale / wrong market info
    result = await relayer.place(_order(nr, "wrong-exchange", "0.250"))
    assert result.outcome is Outcome.REJECTED and result.error == "invalid signature"


async def test_venue_checks_tick_and_minimum_size(server: MockClobServer, relayer: ClobRelayer) -> None:
    m = _binary(server)
    small = await relayer.place(_order(m, "small", "0.40", "2"))
    assert small.outcome is Outcome.REJECTED and small.error == "Size (2) lower than the minimum: 5"
    relayer.prewarm_token(m.tokens[0][0], Decimal("0.001"), m.neg_risk)  # wrong: finer than the venue's
    off = await relayer.place(_order(m, "off-tick", "0.405", tick_size=Decimal("0.001")))
    assert off.outcome is Outcome.REJECTED and "tick size" in off.error


@pytest.mark.parametrize(("sig_type", "funder"), [(1, FUNDER), (2, FUNDER), (3, FUNDER)])
async def test_signature_types_are_accepted(server: MockClobServer, sig_type: int, funder: str) -> None:
    r = _relayer(server, signature_type=sig_type, funder=funder)
    await r.start()
    try:
        m = _binary(server)
        result = await r.place(_order(m, f"sig{sig_type}", "0.40"))
        assert result.outcome is Outcome.ACCEPTED, result.error
        stored = server.orders[str(result.venue_order_id)]
        assert stored.maker_address == funder
    finally:
        await r.close()


async def test_wrong_api_key_owner_is_refused(server: MockClobServer, relayer: ClobRelayer) -> None:
    other = server.creds_for("0x70997970C51812dc3A010C7d01b50e0D17dc79C8")
    r = ClobRelayer(
        server.url,
        137,
        KEY,
        dry_run=False,
        api_creds=(other.api_key, other.secret, other.passphrase),
        heartbeat_interval_s=0,
        timeout_s=TIMEOUT_S,
    )
    await r.start()
    try:
        result = await r.place(_order(_binary(server), "bad-key", "0.40"))
        assert result.outcome is Outcome.REJECTED and "Invalid api key" in result.error
    finally:
        await r.close()


async def test_heartbeats_keep_orders_and_their_absence_cancels_them(server: MockClobServer) -> None:
    r = _relayer(server, heartbeat_interval_s=0.1)
    await r.start()
    m = _binary(server)
    placed = await r.place(_order(m, "hb", "0.40"))
    await asyncio.sleep(1.0)  # longer than the double's 0.6 s heartbeat timeout
    assert server.orders[str(placed.venue_order_id)].status == "LIVE"
    assert r.stats["heartbeats"] >= 5 and r.stats["heartbeat_errors"] == 0
    await r.close()  # heartbeats stop: the venue's dead-man switch cancels the orders
    for _ in range(40):
        if server.orders[str(placed.venue_order_id)].status == "CANCELED":
            break
        await asyncio.sleep(0.05)
    assert server.orders[str(placed.venue_order_id)].status == "CANCELED"


async def test_dry_run_never_posts(server: MockClobServer) -> None:
    r = ClobRelayer(server.url, 137, KEY, dry_run=True)
    await r.start()
    try:
        await r.prewarm(_binary(server).condition_id)
        result = await r.place(_order(_binary(server), "dry", "0.40"))
        assert result.status is OrderStatus.DRY_RUN
    finally:
        await r.close()
    assert [req.path for req in server.requests] == [f"/clob-markets/{_binary(server).condition_id}"]
