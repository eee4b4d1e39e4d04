"""The CLOB double's ``POST /orders`` over real HTTP, driven by raw L2-authenticated requests.

Each order of a batch is checked as ``POST /order`` checks it (tick, minimum size, $1 marketable
minimum, balance, signature, owner): a refused one answers ``success`` true, an empty ``orderID``
and the reason, the others are accepted and matched. A batch over 15 orders (or not an array) is a
400. Injected faults apply to the batch as a whole (after-accept: every order accepted, the answer
lost); injected per-order rejections refuse chosen orders of an accepted batch. Requests are
counted per method and path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_http import ClobHttp, VenueError, as_creds
from core.execution.relayers.clob_signing import OrderSigner
from core.execution.types import ErrorClass, OrderRequest, Outcome
from core.sim.mock_clob import MockClobServer, MockMarket
from core.types import OrderType, Side

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TIMEOUT_S = 0.6


@pytest.fixture
def server(clob_server: MockClobServer) -> MockClobServer:
    return clob_server  # tests/integration/conftest.py starts and stops it


@pytest.fixture
async def signer(server: MockClobServer) -> AsyncIterator[ClobRelayer]:
    """Signs bodies with the key's owner field (no prewarm: each order signs with its own tick)."""
    r = ClobRelayer(server.url, 137, KEY, dry_run=False, derive_api_key=True, heartbeat_interval_s=0)
    await r.start()
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture
async def http(server: MockClobServer) -> AsyncIterator[ClobHttp]:
    key = server.creds_for(ADDRESS)
    client = ClobHttp(
        server.url,
        OrderSigner(KEY).official_signer,
        as_creds((key.api_key, key.secret, key.passphrase)),
        timeout_s=TIMEOUT_S,
    )
    try:
        yield client
    finally:
        await client.aclose()


def _binary(server: MockClobServer) -> MockMarket:
    return next(m for m in server.markets.values() if not m.neg_risk)


def _order(market: MockMarket, cid: str, price: str, size: str = "10", **kw: Any) -> OrderRequest:
    args: dict[str, Any] = {"side": Side.BUY, "tick_size": market.tick_size, "neg_risk": market.neg_risk, **kw}
    return OrderRequest(cid, market.condition_id, market.tokens[0][0], price=Decimal(price), size=Decimal(size), **args)


async def _bodies(signer: ClobRelayer, orders: list[OrderRequest]) -> list[dict[str, Any]]:
    return [dict((await signer.sign(o)).body) for o in orders]


async def _post(http: ClobHttp, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = await http.request("POST", "/orders", serialized=json.dumps(bodies, separators=(",", ":")), auth="l2")
    assert isinstance(answer, list)
    return answer


async def test_each_order_of_a_batch_is_checked_as_a_single_order(
    server: MockClobServer, signer: ClobRelayer, http: ClobHttp
) -> None:
    m = _binary(server)
    server.set_balance(ADDRESS, Decimal("10"))
    rests, takes = _order(m, "rests", "0.45"), _order(m, "takes", "0.52", "5")  # 4.50 + 2.60 of 10 pUSD
    bodies = await _bodies(
        signer,
        [
            rests,
            _order(m, "off-tick", "0.455", tick_size=Decimal("0.001")),
            _order(m, "small", "0.40", "2"),
            _order(m, "under-1-usd", "0.53", "1.5"),
            takes,
            _order(m, "no-funds", "0.45", "20"),  # 9.00 pUSD: more than is left
            _order(m, "forged", "0.30"),
            _order(m, "not-mine", "0.31"),
        ],
    )
    bodies[6]["order"] = {**bodies[6]["order"], "makerAmount": "3100000"}  # changed after signing
    bodies[7]["owner"] = "someone-elses-api-key"
    answer = await _post(http, bodies)

    refused = {i: a["errorMsg"] for i, a in enumerate(answer) if not a["orderID"]}
    assert all(a["success"] is True for a in answer)
    assert sorted(refused) == [1, 2, 3, 5, 6, 7]
    assert "minimum tick size" in refused[1]
    assert "lower than the minimum" in refused[2]
    assert "min size: $1" in refused[3]
    assert "not enough balance" in refused[5]
    assert "invalid signature" in refused[6]
    assert "owner" in refused[7]
    assert (answer[0]["status"], answer[4]["status"]) == ("live", "matched")
    assert set(server.orders) == {answer[0]["orderID"], answer[4]["orderID"]}
    assert server.orders[answer[4]["orderID"]].size_matched == Decimal("5")


async def test_batch_limits(server: MockClobServer, signer: ClobRelayer, http: ClobHttp) -> None:
    m = _binary(server)
    bodies = await _bodies(signer, [_order(m, f"o{i}", f"0.{10 + i}") for i in range(16)])
    for bad in (bodies, [], {"order": bodies[0]}):
        with pytest.raises(VenueError) as err:
            await http.request("POST", "/orders", body=bad, auth="l2")
        assert err.value.status == 400 and err.value.outcome is Outcome.REJECTED
    assert server.orders == {}
    answer = await _post(http, bodies[:15])
    assert len(answer) == 15 and len(server.orders) == 15
    assert server.request_counts[("POST", "/orders")] == 4 and server.request_counts[("POST", "/order")] == 0


@pytest.mark.parametrize("kind", ["timeout_after_accept", "drop_after_accept"])
async def test_an_after_accept_fault_accepts_every_order_of_the_batch(
    kind: str, server: MockClobServer, signer: ClobRelayer, http: ClobHttp
) -> None:
    m = _binary(server)
    bodies = await _bodies(signer, [_order(m, f"o{i}", f"0.{20 + i}") for i in range(3)])
    server.inject(kind, path="/orders", delay_s=60)
    with pytest.raises(VenueError) as err:
        await _post(http, bodies)
    assert err.value.outcome is Outcome.UNKNOWN and err.value.error_class is ErrorClass.UNKNOWN_OUTCOME
    assert len(server.orders) == 3 and all(o.status == "LIVE" for o in server.orders.values())
    assert server.request_counts[("POST", "/orders")] == 1


@pytest.mark.parametrize("kind", ["400", "425", "429", "500", "503"])
async def test_a_status_fault_refuses_the_whole_batch(
    kind: str, server: MockClobServer, signer: ClobRelayer, http: ClobHttp
) -> None:
    m = _binary(server)
    bodies = await _bodies(signer, [_order(m, f"o{i}", f"0.{20 + i}") for i in range(3)])
    server.inject(kind, path="/orders", retry_after=3)
    with pytest.raises(VenueError) as err:
        await _post(http, bodies)
    assert err.value.status == int(kind) and server.orders == {}
    if kind in ("425", "429"):
        assert err.value.retry_after_s == 3.0
    assert len(await _post(http, bodies)) == 3 and len(server.orders) == 3  # the fault was used up


async def test_injected_per_order_rejections(server: MockClobServer, signer: ClobRelayer, http: ClobHttp) -> None:
    m = _binary(server)
    no_token = m.tokens[1][0]
    orders = [_order(m, f"o{i}", f"0.{20 + i}") for i in range(3)]
    orders.append(replace(_order(m, "no", "0.30"), token_id=no_token))
    server.reject_in_batch("second leg refused", position=1)
    server.reject_in_batch("no token refused", token_id=no_token, count=2)
    answer = await _post(http, await _bodies(signer, orders))
    assert [a["errorMsg"] for a in answer] == ["", "second leg refused", "", "no token refused"]
    assert [bool(a["orderID"]) for a in answer] == [True, False, True, False]
    assert len(server.orders) == 2
    # the position rejection is spent; the token one has one use left
    again = await _post(http, await _bodies(signer, [orders[1], replace(orders[3], client_order_id="no-2")]))
    assert [a["errorMsg"] for a in again] == ["", "no token refused"]
    third = await _post(http, await _bodies(signer, [replace(orders[3], client_order_id="no-3")]))
    assert third[0]["orderID"] and third[0]["status"] == "live"
    # a single POST /order is not touched by batch rejections
    server.reject_in_batch("only in batches", position=0)
    single = await http.request(
        "POST", "/order", serialized=(await signer.sign(_order(m, "single", "0.35"))).serialized, auth="l2"
    )
    assert isinstance(single, dict) and single["orderID"]


async def test_fok_and_fak_inside_a_batch(server: MockClobServer, signer: ClobRelayer, http: ClobHttp) -> None:
    m = _binary(server)
    orders = [
        _order(m, "fok-fills", "0.52", "50", order_type=OrderType.FOK),
        _order(m, "fok-killed", "0.52", "500", order_type=OrderType.FOK),
        _order(m, "fak-nothing", "0.30", "10", order_type=OrderType.FAK),
    ]
    answer = await _post(http, await _bodies(signer, orders))
    assert answer[0]["status"] == "matched" and answer[0]["orderID"]
    assert "FOK" in answer[1]["errorMsg"] and not answer[1]["orderID"]
    assert "FAK" in answer[2]["errorMsg"] and not answer[2]["orderID"]
