"""The CLOB double driven by the REAL py-clob-client-v2 (sync, over HTTP), by raw HTTP and by a
websockets client on its user channel; its answers checked against the venue's captured shapes."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
from collections.abc import Callable, Iterator
from decimal import Decimal
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import (
    ApiCreds,
    AssetType,
    BalanceAllowanceParams,
    OpenOrderParams,
    OrderArgsV2,
    OrderMarketCancelParams,
    OrderPayload,
    OrderType,
    PartialCreateOrderOptions,
    PostOrdersV2Args,
    TradeParams,
)
from py_clob_client_v2.exceptions import PolyApiException
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from core.sim.http_double import HttpRequest, HttpResponse, MiniHttpServer
from core.sim.mock_clob import MockClobServer, MockClobThread, MockMarket

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@pytest.fixture(scope="module")
def served() -> Iterator[MockClobServer]:
    server = MockClobServer(confirm_delay_s=0.05, page_size=3)
    with MockClobThread(server) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(served: MockClobServer) -> ClobClient:
    c = ClobClient(served.url, 137, key=KEY)
    c.set_api_creds(c.create_or_derive_api_key())
    return c


def _binary(server: MockClobServer) -> MockMarket:
    return next(m for m in server.markets.values() if not m.neg_risk)


def _negrisk(server: MockClobServer) -> MockMarket:
    return next(m for m in server.markets.values() if m.neg_risk)


def test_real_client_reads_public_data(served: MockClobServer, client: ClobClient) -> None:
    m = _binary(served)
    yes = m.tokens[0][0]
    assert client.get_version() == 2
    assert abs(int(client.get_server_time()) - int(__import__("time").time())) < 5
    info = client.get_clob_market_info(m.condition_id)
    assert {t["t"] for t in info["t"]} == {t for t, _ in m.tokens}
    assert client.get_tick_size(yes) == "0.01"
    assert client.get_neg_risk(_negrisk(served).tokens[0][0]) is True
    assert client.get_fee_rate_bps(yes) == 500
    # the double is shared by the module's tests (some trade against this book): give it known levels
    served.books[yes].set([(D("0.47"), D("20")), (D("0.48"), D("10"))], [(D("0.52"), D("10")), (D("0.53"), D("20"))])
    book = client.get_order_book(yes)
    assert book["bids"][-1]["price"] == "0.48" and book["asks"][-1]["price"] == "0.52"  # best level last
    assert client.get_market(m.condition_id)["tokens"][0]["outcome"] == "Yes"


def test_real_client_derives_the_same_credentials(served: MockClobServer, client: ClobClient) -> None:
    creds = ClobClient(served.url, 137, key=KEY).derive_api_key()
    assert creds.api_key == client.creds.api_key and creds.api_secret == client.creds.api_secret
    assert served.creds_for(ADDRESS).api_key == creds.api_key


def test_real_client_trades_end_to_end(served: MockClobServer, client: ClobClient) -> None:
    m = _binary(served)
    yes = m.tokens[0][0]
    resting = client.create_and_post_order(OrderArgsV2(token_id=yes, price=0.40, size=10, side="BUY"))
    assert resting["success"] and resting["status"] == "live"
    taker = client.create_and_post_order(OrderArgsV2(token_id=yes, price=0.52, size=5, side="BUY"))
    assert taker["status"] == "matched" and taker["tradeIDs"] and taker["transactionsHashes"]
    nr = _negrisk(served)
    neg = client.create_and_post_order(
        OrderArgsV2(token_id=nr.tokens[0][0], price=0.2, size=10, side="BUY"),
        PartialCreateOrderOptions(tick_size="0.001", neg_risk=True),
    )
    assert neg["success"]
    batch = client.post_orders(
        [
            PostOrdersV2Args(
                order=client.create_order(OrderArgsV2(token_id=yes, price=p, size=10, side="BUY")),
                orderType=OrderType.GTC,
            )
            for p in (0.30, 0.31, 0.32)
        ]
    )
    assert [b["success"] for b in batch] == [True, True, True]
    opened = client.get_open_orders()  # 5 open orders over pages of 3
    assert len(opened) == 5 and len(client.get_open_orders(OpenOrderParams(asset_id=nr.tokens[0][0]))) == 1
    assert client.get_order(resting["orderID"])["status"] == "LIVE"
    trades = client.get_trades(TradeParams(id=taker["tradeIDs"][0]))
    assert trades[0]["taker_order_id"] == taker["orderID"] and trades[0]["trader_side"] == "TAKER"
    assert client.post_heartbeat()["heartbeat_id"]
    balance = client.get_balance_allowance(BalanceAllowanceParams(asset_type=AssetType.COLLATERAL))
    assert int(balance["balance"]) > 0
    assert client.cancel_order(OrderPayload(orderID=resting["orderID"]))["canceled"] == [resting["orderID"]]
    assert client.cancel_market_orders(OrderMarketCancelParams(asset_id=nr.tokens[0][0]))["canceled"] == [
        neg["orderID"]
    ]
    assert len(client.cancel_orders([batch[0]["orderID"]])["canceled"]) == 1
    assert len(client.cancel_all()["canceled"]) == 2
    assert client.get_open_orders() == []


def test_v1_orders_are_refused_with_order_version_mismatch(served: MockClobServer, client: ClobClient) -> None:
    yes = _binary(served).tokens[0][0]
    v1 = client.create_order(
        OrderArgsV2(token_id=yes, price=0.40, size=10, side="BUY"), PartialCreateOrderOptions(version=1)
    )
    with pytest.raises(PolyApiException) as err:
        client.post_order(v1)
    assert err.value.status_code == 400 and "order_version_mismatch" in str(err.value.error_msg)


def test_bad_l2_signature_and_unknown_routes(served: MockClobServer, client: ClobClient) -> None:
    headers = {k: str(v) for k, v in client._l2_headers("GET", "/data/orders").items()}
    ok = httpx.get(f"{served.url}/data/orders", headers=headers, timeout=30)
    assert ok.status_code == 200
    forged = {**headers, "POLY_SIGNATURE": base64.urlsafe_b64encode(b"x" * 32).decode()}
    assert httpx.get(f"{served.url}/data/orders", headers=forged, timeout=30).status_code == 401
    assert httpx.get(f"{served.url}/nope", timeout=30).status_code == 404
    assert httpx.put(f"{served.url}/order", timeout=30).status_code == 405
    resp = httpx.get(f"{served.url}/tick-size", params={"token_id": "1"}, timeout=30)
    assert resp.status_code == 404 and "error" in resp.json()


@pytest.mark.parametrize("request_bytes", [b"GARBAGE\r\n\r\n", b"GET /time HTTP/1.1\r\nno colon here\r\n\r\n"])
def test_malformed_http_gets_a_400(served: MockClobServer, request_bytes: bytes) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as s:
        s.sendall(request_bytes)
        head = s.recv(1024)
    # the framework answers a request it cannot parse (in HTTP/1.0 when it could not read a version)
    assert re.match(rb"HTTP/1\.[01] 400 ", head), head


def test_faults_are_consumed_and_recorded(served: MockClobServer, client: ClobClient) -> None:
    yes = _binary(served).tokens[0][0]
    served.inject("429", count=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(PolyApiException) as err:
            client.create_and_post_order(OrderArgsV2(token_id=yes, price=0.40, size=10, side="BUY"))
        assert err.value.status_code == 429
    ok = client.create_and_post_order(OrderArgsV2(token_id=yes, price=0.40, size=10, side="BUY"))
    assert ok["success"]
    posts = served.requests_to("POST", "/order")[-3:]
    assert [p.fault for p in posts] == ["429", "429", None] and [p.status for p in posts] == [429, 429, 200]
    assert posts[-1].json()["owner"] == client.creds.api_key
    with pytest.raises(ValueError):
        served.inject("418")
    client.cancel_all()


def test_venue_rules(served: MockClobServer, client: ClobClient) -> None:
    m = _binary(served)
    yes = m.tokens[0][0]
    cases = [
        (OrderArgsV2(token_id=yes, price=0.40, size=2, side="BUY"), OrderType.GTC, False, "lower than the minimum"),
        (
            OrderArgsV2(token_id=yes, price=0.52, size=1000, side="BUY"),
            OrderType.FOK,
            False,
            "FOK orders are fully filled",
        ),
        (OrderArgsV2(token_id=yes, price=0.10, size=10, side="BUY"), OrderType.FAK, False, "no orders found to match"),
        (OrderArgsV2(token_id=yes, price=0.55, size=10, side="BUY"), OrderType.GTC, True, "order crosses book"),
    ]
    for args, order_type, post_only, message in cases:
        with pytest.raises(PolyApiException) as err:
            client.create_and_post_order(args, order_type=order_type, post_only=post_only)
        assert message in str(err.value.error_msg)
    served.set_balance(ADDRESS, Decimal("3"))
    try:
        with pytest.raises(PolyApiException) as err:
            client.create_and_post_order(OrderArgsV2(token_id=yes, price=0.40, size=10, side="BUY"))
        assert "not enough balance" in str(err.value.error_msg)
    finally:
        served.set_balance(ADDRESS, Decimal("1000000"))
    fak = client.create_and_post_order(
        OrderArgsV2(token_id=yes, price=0.53, size=1000, side="BUY"), order_type=OrderType.FAK
    )
    assert fak["status"] == "matched" and served.orders[fak["orderID"]].status == "CANCELED"


async def test_mini_http_server_keep_alive_and_chunked_bodies() -> None:
    seen: list[HttpRequest] = []

    async def handler(req: HttpRequest) -> HttpResponse:
        seen.append(req)
        return HttpResponse.json({"echo": req.body.decode(), "q": req.param("a")})

    server = MiniHttpServer(handler)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as http:
            first = await http.post("/x?a=1", content=b"hello")
            escaped = await http.get("/z", params={"a": "1+2&b=3", "c": ""})

            async def chunks():  # type: ignore[no-untyped-def]
                yield b"he"
                yield b"llo"

            second = await http.post("/y", content=chunks())
        assert first.json() == {"echo": "hello", "q": "1"} and second.json() == {"echo": "hello", "q": None}
        assert escaped.json()["q"] == "1+2&b=3" and seen[1].query == {"a": ["1+2&b=3"], "c": [""]}
        assert seen[2].headers.get("transfer-encoding") == "chunked"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        assert data.count(b"HTTP/1.1 200 OK") == 2 and [r.path for r in seen[-2:]] == ["/a", "/b"]
        assert json.loads(data.split(b"\r\n\r\n")[-1])["q"] is None
    finally:
        await server.stop()


def test_a_refused_order_in_a_batch_is_reported_in_place(served: MockClobServer, client: ClobClient) -> None:
    yes = _binary(served).tokens[0][0]
    sizes = (10, 2, 10)  # 2 shares is under the market's minimum of 5
    batch = client.post_orders(
        [
            PostOrdersV2Args(
                order=client.create_order(OrderArgsV2(token_id=yes, price=0.33, size=size, side="BUY")),
                orderType=OrderType.GTC,
            )
            for size in sizes
        ]
    )
    # the venue answers success with an empty orderID and the reason (POLYMARKET_FACTS, batches)
    assert [bool(b["orderID"]) for b in batch] == [True, False, True]
    assert batch[1]["success"] is True and "lower than the minimum" in batch[1]["errorMsg"]
    client.cancel_all()


def _shape(value: object) -> str:
    return type(value).__name__


def _assert_same_shape(ours: dict[str, object], capture: dict[str, object], what: str) -> None:
    """Every field of the venue's capture is there, with the same JSON type (null in a capture
    matches anything: the venue sends it for some orders only)."""
    missing = sorted(set(capture) - set(ours))
    assert not missing, f"{what}: fields the venue sends are missing: {missing}"
    differ = {
        k: (_shape(ours[k]), _shape(v)) for k, v in capture.items() if v is not None and _shape(ours[k]) != _shape(v)
    }
    assert not differ, f"{what}: (ours, venue's) JSON types differ: {differ}"


def test_answers_and_events_have_the_venues_shapes(
    served: MockClobServer, client: ClobClient, shared_fixtures: Path
) -> None:
    def capture(rel: str) -> dict[str, object]:
        data = json.loads((shared_fixtures / rel).read_text())
        return dict(data[0] if isinstance(data, list) else data)

    yes = _binary(served).tokens[0][0]
    _assert_same_shape(client.get_order_book(yes), capture("clob_rest/clob_book_response_empty_ask.json"), "GET /book")
    resting = client.create_and_post_order(OrderArgsV2(token_id=yes, price=0.41, size=10, side="BUY"))
    _assert_same_shape(resting, capture("clob_rest/http_order_response_ok.json"), "POST /order")
    [item] = [o for o in client.get_open_orders() if o["id"] == resting["orderID"]]
    _assert_same_shape(item, capture("clob_rest/http_open_order.json"), "GET /data/orders item")
    order = served.orders[resting["orderID"]]
    _assert_same_shape(order.event("PLACEMENT"), capture("ws_user/order_placement.json"), "user channel order")
    served.set_book(yes, [], [(Decimal("0.52"), Decimal("100"))])  # earlier tests may have taken the asks
    taker = client.create_and_post_order(OrderArgsV2(token_id=yes, price=0.52, size=5, side="BUY"))
    [trade] = client.get_trades(TradeParams(id=taker["tradeIDs"][0]))
    _assert_same_shape(trade, capture("ws_user/trades.json"), "GET /data/trades item")
    event = served.trades[taker["tradeIDs"][0]].event_for(client.creds.api_key)
    _assert_same_shape(event, capture("ws_user/user_trade2.json"), "user channel trade")
    for maker_order in event["maker_orders"]:
        _assert_same_shape(maker_order, capture("ws_user/user_trade2.json")["maker_orders"][0], "maker_orders[]")
    client.cancel_all()


async def test_every_fault_answers_as_the_fault_suite_expects() -> None:
    async with MockClobServer() as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for kind in ("400", "425", "429", "500", "502", "503"):
            server.inject(kind, method="GET", path="/time", retry_after=3 if kind == "429" else None)
            answer = await http.get("/time")
            assert answer.status_code == int(kind) and answer.json()["error"], kind
            assert answer.headers.get("Retry-After") == ("3" if kind == "429" else None)
        # never answered; the client gives up, nothing was processed
        server.inject("hang", method="GET", path="/time", delay_s=60)
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/time", timeout=0.3)
        # processed, then answered too late or never: the connection closes with no answer
        server.inject("timeout_after_accept", method="GET", path="/version", delay_s=60)
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/version", timeout=0.3)
        server.inject("drop_after_accept", method="GET", path="/version")
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await http.get("/version")
        assert (await http.get("/version")).json() == {"version": 2}  # every fault spent
        recorded = [(r.path, r.fault, r.status) for r in server.requests[-4:]]
        assert recorded == [
            ("/time", "hang", None),
            ("/version", "timeout_after_accept", 200),
            ("/version", "drop_after_accept", 200),
            ("/version", None, 200),
        ]
        started = asyncio.get_running_loop().time()
    # the held answers end with the double: stopping does not wait out their 60 s
    assert asyncio.get_running_loop().time() - started < 10
    assert server.requests[-4].status is None, "a hung request is never processed, even once released"


async def _until(pred: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(30):
        while not pred():  # noqa: ASYNC110 - the double changes state on its own
            await asyncio.sleep(0.01)


async def _next_json(ws: ClientConnection) -> dict[str, object]:
    async with asyncio.timeout(30):
        data = json.loads(await ws.recv())
    assert isinstance(data, dict)
    return data


async def test_user_channel_shares_the_rest_port_and_speaks_the_venue_protocol() -> None:
    async with MockClobServer(confirm_delay_s=0.05) as server:
        assert server.ws_url == f"ws://127.0.0.1:{server.port}/ws/user"
        creds = server.creds_for(ADDRESS)
        auth = {"apiKey": creds.api_key, "secret": creds.secret, "passphrase": creds.passphrase}
        async with connect(server.ws_url, proxy=None) as ws:
            await ws.send(json.dumps({"auth": {**auth, "secret": "wrong"}, "markets": [], "type": "user"}))
            assert await _next_json(ws) == {"error": "invalid auth"}
            with pytest.raises(ConnectionClosed) as refused:
                await asyncio.wait_for(ws.recv(), 30)
            assert refused.value.rcvd is not None and refused.value.rcvd.code == 1008
        async with connect(server.ws_url, proxy=None) as ws:
            await ws.send(json.dumps({"auth": auth, "markets": [], "type": "user"}))
            await _until(lambda: server.user_channel_clients == 1, "the subscription")
            await ws.send("PING")
            assert await asyncio.wait_for(ws.recv(), 30) == "PONG"
            client = ClobClient(server.url, 137, key=KEY)
            client.set_api_creds(ApiCreds(creds.api_key, creds.secret, creds.passphrase))
            yes = _binary(server).tokens[0][0]
            args = OrderArgsV2(token_id=yes, price=0.40, size=10, side="BUY")
            resting = await asyncio.to_thread(client.create_and_post_order, args)
            placed = await _next_json(ws)
            assert (placed["event_type"], placed["type"], placed["id"]) == ("order", "PLACEMENT", resting["orderID"])
            await server.trade_against(resting["orderID"], Decimal(4))
            update = await _next_json(ws)
            assert (update["type"], update["size_matched"]) == ("UPDATE", "4")
            trades = [await _next_json(ws) for _ in range(3)]
            assert [(t["trader_side"], t["status"]) for t in trades] == [
                ("MAKER", "MATCHED"),
                ("MAKER", "MINED"),
                ("MAKER", "CONFIRMED"),
            ]
            await server.disconnect_user_channels()
            with pytest.raises(ConnectionClosed) as restarted:
                await asyncio.wait_for(ws.recv(), 30)
            assert restarted.value.rcvd is not None and restarted.value.rcvd.code == 1012
        # the user channel is no REST route: a fault on every path leaves it alone
        server.inject("500", count=100, method=None, path=None)
        async with connect(server.ws_url, proxy=None) as ws:
            await ws.send(json.dumps({"auth": auth, "markets": [], "type": "user"}))
            await ws.send("PING")
            assert await asyncio.wait_for(ws.recv(), 30) == "PONG"


async def test_a_separate_ws_port_serves_the_same_app() -> None:
    with socket.socket() as probe:  # a free port for the user channel
        probe.bind(("127.0.0.1", 0))
        ws_port = probe.getsockname()[1]
    async with MockClobServer(ws_port=ws_port) as server, httpx.AsyncClient(timeout=30) as http:
        assert server.ws_port == ws_port != server.port
        assert server.ws_url == f"ws://127.0.0.1:{ws_port}/ws/user"
        for port in (server.port, ws_port):
            assert (await http.get(f"http://127.0.0.1:{port}/version")).json() == {"version": 2}
        async with connect(server.ws_url, proxy=None) as ws:
            await ws.send("not a subscribe message")
            with pytest.raises(ConnectionClosed) as refused:
                await asyncio.wait_for(ws.recv(), 30)
            assert refused.value.rcvd is not None and refused.value.rcvd.code == 1008
