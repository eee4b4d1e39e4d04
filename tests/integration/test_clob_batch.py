"""ClobRelayer.place_batch over real HTTP: one ``POST /orders`` per batch, each leg's answer mapped.

Against the CLOB double: mixed per-order results (accepted, refused inside the batch, matched),
every injected fault on the batch mapped onto every leg (after-accept faults: the orders exist and
are found by lookup, one POST), the 15-order limit (locally and at the double), dry-run (signs,
posts nothing) and signing of all legs in one worker-thread call while the event loop keeps running. Against
a bare HTTP server: a short or malformed answer array leaves the unanswered legs UNKNOWN.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from core.execution.relayers.clob import ClobRelayer
from core.execution.relayers.clob_http import ClobHttp, VenueError, as_creds
from core.execution.relayers.clob_signing import MarketParams, OrderInvalid, PreparedOrder, SignedClobOrder
from core.execution.types import MAX_BATCH_ORDERS, ErrorClass, OrderRequest, OrderStatus, Outcome, Presigner
from core.sim.http_double import HttpRequest, HttpResponse, MiniHttpServer
from core.sim.mock_clob import MockClobServer, MockMarket
from core.types import Side

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TIMEOUT_S = 0.6
BATCH_POST = ("POST", "/orders")
SINGLE_POST = ("POST", "/order")


@pytest.fixture
def server(clob_server: MockClobServer) -> MockClobServer:
    return clob_server  # tests/integration/conftest.py starts and stops it


def _relayer(url: str, **kw: Any) -> ClobRelayer:
    args: dict[str, Any] = {"dry_run": False, "derive_api_key": True, "timeout_s": TIMEOUT_S, "heartbeat_interval_s": 0}
    args.update(kw)
    return ClobRelayer(url, 137, KEY, **args)


@pytest.fixture
async def relayer(server: MockClobServer) -> AsyncIterator[ClobRelayer]:
    r = _relayer(server.url)
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


def _order(market: MockMarket, cid: str, price: str, size: str = "10", token: int = 0) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        market=market.condition_id,
        token_id=market.tokens[token][0],
        side=Side.BUY,
        price=Decimal(price),
        size=Decimal(size),
        tick_size=market.tick_size,
        neg_risk=market.neg_risk,
    )


def _resting(server: MockClobServer, n: int, prefix: str = "leg") -> list[OrderRequest]:
    """``n`` BUY orders that rest (under the best ask), distinct prices so distinct orders."""
    m = _binary(server)
    return [_order(m, f"{prefix}-{i}", f"0.{10 + i}") for i in range(n)]


async def test_batch_maps_mixed_per_order_results(server: MockClobServer, relayer: ClobRelayer) -> None:
    m, nr = _binary(server), _neg_risk(server)
    orders = [
        _order(m, "rests", "0.45"),  # accepted, live
        _order(m, "too-small", "0.40", "2"),  # refused inside the batch: under the minimum size
        _order(m, "takes", "0.53", "10"),  # accepted, matched against the asks
        _order(nr, "refused-at-3", "0.250"),  # refused by an injected per-order rejection (position)
        _order(m, "refused-no-token", "0.40", token=1),  # refused by an injected rejection (token id)
    ]
    server.reject_in_batch("market is closed for this leg", position=3)
    server.reject_in_batch("not enough balance / allowance", token_id=m.tokens[1][0])

    results = await relayer.place_batch(orders)

    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.REJECTED,
        Outcome.ACCEPTED,
        Outcome.REJECTED,
        Outcome.REJECTED,
    ]
    rests, small, takes, at3, no_token = results
    assert rests.status is OrderStatus.LIVE and rests.venue_order_id == rests.order_hash
    assert takes.status is OrderStatus.FILLED and takes.venue_order_id == takes.order_hash
    assert server.orders[str(takes.venue_order_id)].status == "MATCHED"
    assert server.orders[str(rests.venue_order_id)].status == "LIVE"
    assert small.status is OrderStatus.REJECTED and small.error_class is ErrorClass.BAD_REQUEST
    assert "lower than the minimum" in small.error
    assert at3.error == "market is closed for this leg" and no_token.error == "not enough balance / allowance"
    for refused in (small, at3, no_token):
        assert refused.venue_order_id is None and refused.order_hash not in server.orders
    # every leg carries its signed body and hash and is known to the user-channel translator
    for order, result in zip(orders, results, strict=True):
        assert result.order_hash and result.signed_order is not None
        assert relayer.translator.client_order_id(result.order_hash) == order.client_order_id
    assert server.request_counts[BATCH_POST] == 1 and server.request_counts[SINGLE_POST] == 0
    body = server.requests_to(*BATCH_POST)[0].json()
    assert [b["order"]["tokenId"] for b in body] == [o.token_id for o in orders]
    assert {b["owner"] for b in body} == {relayer.api_key}


async def test_a_duplicated_leg_is_found_not_failed(server: MockClobServer, relayer: ClobRelayer) -> None:
    """The same signed batch sent again: the venue refuses each leg as duplicated; each is looked
    up by its hash and reported as the order the venue already holds."""
    orders = _resting(server, 3)
    first = await relayer.place_batch(orders)
    again = await relayer.place_batch(orders)
    assert [r.outcome for r in again] == [Outcome.ACCEPTED] * 3
    assert [r.venue_order_id for r in again] == [r.venue_order_id for r in first]
    assert relayer.stats["place_duplicate_found"] == 3
    assert len(server.orders) == 3 and server.request_counts[BATCH_POST] == 2


@dataclass(frozen=True)
class Case:
    kind: str
    inject: dict[str, Any]
    outcome: Outcome
    error_class: ErrorClass
    status: OrderStatus
    at_venue: bool  # the batch's orders exist at the venue afterwards


CASES = [
    Case("400", {"message": "bad batch"}, Outcome.REJECTED, ErrorClass.BAD_REQUEST, OrderStatus.REJECTED, False),
    Case("425", {"retry_after": 2}, Outcome.RETRYABLE, ErrorClass.MAINTENANCE, OrderStatus.NEW, False),
    Case("429", {"retry_after": 1}, Outcome.RETRYABLE, ErrorClass.RATE_LIMITED, OrderStatus.NEW, False),
    Case("500", {}, Outcome.UNKNOWN, ErrorClass.SERVER, OrderStatus.SUBMITTED_UNKNOWN, False),
    Case("503", {}, Outcome.RETRYABLE, ErrorClass.SERVER, OrderStatus.NEW, False),
    Case("hang", {"delay_s": 60}, Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, OrderStatus.SUBMITTED_UNKNOWN, False),
    Case(
        "timeout_after_accept",
        {"delay_s": 60},
        Outcome.UNKNOWN,
        ErrorClass.UNKNOWN_OUTCOME,
        OrderStatus.SUBMITTED_UNKNOWN,
        True,
    ),
    Case("drop_after_accept", {}, Outcome.UNKNOWN, ErrorClass.UNKNOWN_OUTCOME, OrderStatus.SUBMITTED_UNKNOWN, True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
async def test_a_fault_on_the_batch_maps_onto_every_leg(
    case: Case, server: MockClobServer, relayer: ClobRelayer
) -> None:
    orders = _resting(server, 4)
    server.inject(case.kind, path="/orders", **case.inject)

    results = await asyncio.wait_for(relayer.place_batch(orders), 30)

    assert server.request_counts[BATCH_POST] == 1 and server.request_counts[SINGLE_POST] == 0
    assert server.requests_to(*BATCH_POST)[0].fault == case.kind
    for result in results:
        assert (result.outcome, result.error_class, result.status) == (case.outcome, case.error_class, case.status)
        assert result.order_hash and result.signed_order is not None
        if case.kind in ("425", "429"):
            assert result.retry_after_s == float(case.inject["retry_after"])
        if case.kind == "400":
            assert result.error == "bad batch"
    hashes = [str(r.order_hash) for r in results]
    assert all((h in server.orders) is case.at_venue for h in hashes)
    if case.outcome is Outcome.UNKNOWN:
        # reconciliation, leg by leg: lookup finds exactly the orders the venue holds
        found = [await relayer.lookup(o) for o in orders]
        if case.at_venue:
            assert [f.venue_order_id if f else None for f in found] == hashes
            assert [f.client_order_id if f else None for f in found] == [o.client_order_id for o in orders]
        else:
            assert found == [None] * len(orders)
    assert server.request_counts[BATCH_POST] == 1  # reconciling re-posts nothing


async def test_more_than_15_orders_are_refused_locally_and_by_the_double(
    server: MockClobServer, relayer: ClobRelayer
) -> None:
    orders = _resting(server, MAX_BATCH_ORDERS + 1)
    with pytest.raises(ValueError, match="at most 15"):
        await relayer.place_batch(orders)
    assert server.request_counts[BATCH_POST] == 0
    assert await relayer.place_batch([]) == []
    assert server.request_counts[BATCH_POST] == 0

    # the double refuses the same 16 orders sent by hand
    signed = [await relayer.sign(o) for o in orders]
    key = server.creds_for(ADDRESS)
    http = ClobHttp(server.url, relayer.signer.official_signer, as_creds((key.api_key, key.secret, key.passphrase)))
    try:
        with pytest.raises(VenueError) as err:
            await http.request("POST", "/orders", serialized=_array(signed), auth="l2")
        assert err.value.status == 400 and "at most 15" in err.value.message
        answer = await http.request("POST", "/orders", serialized=_array(signed[:MAX_BATCH_ORDERS]), auth="l2")
        assert isinstance(answer, list) and [a["success"] for a in answer] == [True] * MAX_BATCH_ORDERS
    finally:
        await http.aclose()
    assert server.orders.keys() == {s.order_hash for s in signed[:MAX_BATCH_ORDERS]}


def _array(signed: list[SignedClobOrder]) -> str:
    return json.dumps([s.body for s in signed], separators=(",", ":"))


async def test_dry_run_signs_every_leg_and_posts_nothing(server: MockClobServer) -> None:
    orders = _resting(server, 10)
    async with _relayer(server.url, dry_run=True) as dry:
        results = await dry.place_batch(orders)
    assert [(r.outcome, r.status) for r in results] == [(Outcome.ACCEPTED, OrderStatus.DRY_RUN)] * 10
    assert len({r.order_hash for r in results}) == 10
    assert [r.signed_order["order"]["tokenId"] for r in results if r.signed_order] == [o.token_id for o in orders]
    assert server.requests == []


async def test_a_leg_that_cannot_be_signed_is_rejected_and_left_out(
    server: MockClobServer, relayer: ClobRelayer
) -> None:
    m = _binary(server)
    orders = [_order(m, "good", "0.30"), _order(m, "off-tick", "0.305"), _order(m, "good-2", "0.31")]
    results = await relayer.place_batch(orders)
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert "tick" in results[1].error and results[1].order_hash is None
    assert len(server.requests_to(*BATCH_POST)[0].json()) == 2


async def test_legs_are_signed_in_one_worker_call_while_the_loop_runs(
    server: MockClobServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All legs' signatures are made in one ``complete_batch`` call (one thread hop: under the GIL, a
    thread per leg only adds switches), in a worker thread; that call waits on an event only a
    task of the event loop sets, so the loop must stay free while the batch is signed."""
    legs = 3
    released = threading.Event()
    batch_calls: list[tuple[int, list[str]]] = []  # (thread, client ids) per sign_batch call
    sign_threads: list[int] = []
    signing = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with _relayer(server.url, dry_run=True) as dry:
        real_complete, real_complete_batch = dry.signer.complete, dry.signer.complete_batch

        def recording_complete(prepared: PreparedOrder, *, owner: str = "") -> SignedClobOrder:
            sign_threads.append(threading.get_ident())
            return real_complete(prepared, owner=owner)

        def slow_complete_batch(
            prepared: Iterable[PreparedOrder], *, owner: str = ""
        ) -> list[SignedClobOrder | OrderInvalid]:
            jobs = list(prepared)
            batch_calls.append((threading.get_ident(), [p.order.client_order_id for p in jobs]))
            loop.call_soon_threadsafe(signing.set)
            if not released.wait(10):
                raise TimeoutError("the event loop never ran while signing")
            return real_complete_batch(jobs, owner=owner)

        monkeypatch.setattr(dry.signer, "complete", recording_complete)
        monkeypatch.setattr(dry.signer, "complete_batch", slow_complete_batch)

        async def release_when_signing() -> None:
            await signing.wait()
            released.set()

        releaser = asyncio.create_task(release_when_signing())
        orders = _resting(server, legs)
        try:
            results = await asyncio.wait_for(dry.place_batch(orders), 30)
        finally:
            releaser.cancel()
        again = await dry.place_batch(orders)  # already signed: no second hop
    assert [r.status for r in results] == [OrderStatus.DRY_RUN] * legs
    assert len(batch_calls) == 1
    worker, ids = batch_calls[0]
    assert ids == [o.client_order_id for o in orders]
    assert worker != threading.get_ident() and sign_threads == [worker] * legs
    assert [r.order_hash for r in again] == [r.order_hash for r in results] and len(batch_calls) == 1


async def test_legs_signed_before_the_write_ahead_are_the_ones_posted(
    server: MockClobServer, relayer: ClobRelayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relayer is a Presigner: sign_orders gives every leg's hash (None for a leg that cannot be
    signed) in one signing call, and place_batch posts exactly those signed orders, signing again only
    the leg that was refused (and is refused again)."""
    calls: list[int] = []
    real_prepare = relayer.signer.prepare_batch

    def counting_prepare(
        orders: Iterable[tuple[OrderRequest, MarketParams | None]],
    ) -> list[PreparedOrder | OrderInvalid]:
        jobs = list(orders)
        calls.append(len(jobs))
        return real_prepare(jobs)

    monkeypatch.setattr(relayer.signer, "prepare_batch", counting_prepare)
    m = _binary(server)
    orders = [_order(m, "a", "0.30"), _order(m, "off-tick", "0.305"), _order(m, "b", "0.31")]
    assert isinstance(relayer, Presigner)

    hashes = await relayer.sign_orders(orders)
    results = await relayer.place_batch(orders)

    assert calls == [3, 1]
    assert hashes[1] is None and all(hashes[i] for i in (0, 2))
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert [results[i].venue_order_id for i in (0, 2)] == [hashes[0], hashes[2]]
    posted = server.requests_to(*BATCH_POST)[0].json()
    assert [b["order"]["signature"] for b in posted] == [
        s.body["order"]["signature"] for s in (relayer.signed_order("a"), relayer.signed_order("b")) if s
    ]


# ---------------------------------------------------------------------- answers the double never gives


async def test_a_short_or_malformed_answer_leaves_the_unanswered_legs_unknown() -> None:
    answers: list[object] = []

    async def handler(req: HttpRequest) -> HttpResponse:
        return HttpResponse.json(answers.pop(0))

    bare = MiniHttpServer(handler)
    await bare.start()
    # long random credentials: each becomes a registered secret, masked in every later log line of
    # this process (a short word like "pass" would be masked in other tests' texts too)
    creds = (secrets.token_hex(16), base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(), secrets.token_hex(32))
    r = _relayer(f"http://127.0.0.1:{bare.port}", api_creds=creds, derive_api_key=False)
    token = "1234567890"
    r.prewarm_token(token, Decimal("0.01"), False)
    orders = [
        OrderRequest(f"o{i}", "0xc0", token, Side.BUY, Decimal("0.40"), Decimal("10"), tick_size=Decimal("0.01"))
        for i in range(3)
    ]
    try:
        await r.start()
        answers.append([{"success": True, "errorMsg": "", "orderID": "0xabc", "status": "live"}])
        short = await r.place_batch(orders)
        answers.append({"success": True})  # not an array
        not_a_list = await r.place_batch(orders)
        answers.append(
            [
                {"success": True, "errorMsg": "", "orderID": "", "status": "live"},  # names neither id nor reason
                "garbage",
                {"success": False, "errorMsg": "invalid signature"},
            ]
        )
        odd = await r.place_batch(orders)
    finally:
        await r.close()
        await bare.stop()
    assert [x.outcome for x in short] == [Outcome.ACCEPTED, Outcome.UNKNOWN, Outcome.UNKNOWN]
    assert short[0].venue_order_id == "0xabc"
    assert [x.outcome for x in not_a_list] == [Outcome.UNKNOWN] * 3
    assert [x.outcome for x in odd] == [Outcome.UNKNOWN, Outcome.UNKNOWN, Outcome.REJECTED]
    assert odd[2].error == "invalid signature"
    for result in [*short[1:], *not_a_list, *odd[:2]]:
        assert result.status is OrderStatus.SUBMITTED_UNKNOWN and result.error_class is ErrorClass.UNKNOWN_OUTCOME
        assert result.order_hash and result.signed_order is not None
    assert r.stats["batch_answer_malformed"] == 2
