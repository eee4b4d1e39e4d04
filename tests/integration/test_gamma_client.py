"""GammaClient against the mock Gamma server over real loopback HTTP: paging, filters, faults."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from core.defaults import GAMMA_MAX_OFFSET
from core.markets import GammaClient, GammaError, MarketFilters, iter_keyset_pages, parse_events, parse_markets
from core.markets.wire import GammaMarketItem, decode_market
from core.retry import Backoff, upward_jitter
from core.sim.mock_gamma import MockGammaServer, events_from_markets, load_markets_file, synthetic_markets
from tests.conftest import PROJECT_FIXTURES

FAST = {"timeout_s": 1.0, "backoff_s": 0.01, "max_backoff_s": 0.05}


@pytest.fixture
async def server() -> AsyncIterator[MockGammaServer]:
    async with MockGammaServer(markets=synthetic_markets(250)) as srv:
        yield srv


def _decoded(items: list[msgspec.Raw]) -> list[GammaMarketItem]:
    return [decode_market(bytes(i)) for i in items]


def _keyset_requests(srv: MockGammaServer) -> list[dict[str, list[str]]]:
    return [r.params for r in srv.requests if r.path == "/markets/keyset"]


async def test_keyset_250_markets_in_3_pages(server: MockGammaServer) -> None:
    async with GammaClient(server.url, **FAST) as client:
        pages = [p async for p in iter_keyset_pages(client, MarketFilters(active=None, closed=None))]
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert [p.stop_reason for p in pages] == [None, None, "end"]
    assert pages[0].cursor is None and [p.cursor for p in pages[1:]] == [p.next_cursor for p in pages[:-1]]
    sent = _keyset_requests(server)
    assert "after_cursor" not in sent[0] and [q["after_cursor"] for q in sent[1:]] == [
        [str(p.next_cursor)] for p in pages[:-1]
    ]
    assert all(q["limit"] == ["100"] and "offset" not in q for q in sent)
    slugs = [item.slug for p in pages for item in _decoded(p.items)]
    assert len(set(slugs)) == 250


async def test_exact_multiple_of_limit_ends_without_an_empty_page() -> None:
    async with MockGammaServer(markets=synthetic_markets(200)) as srv, GammaClient(srv.url, **FAST) as client:
        pages = [p async for p in iter_keyset_pages(client, MarketFilters(active=None, closed=None))]
    assert [len(p.items) for p in pages] == [100, 100] and pages[-1].next_cursor is None
    assert len(_keyset_requests(srv)) == 2


async def test_max_pages_stops_early(server: MockGammaServer) -> None:
    async with GammaClient(server.url, **FAST) as client:
        pages = [p async for p in iter_keyset_pages(client, MarketFilters(None, None, limit=40, max_pages=2))]
    assert [len(p.items) for p in pages] == [40, 40]
    assert pages[-1].stop_reason == "max_pages"


async def test_offset_past_the_cap_is_refused_by_the_client_before_gamma_does(server: MockGammaServer) -> None:
    async with GammaClient(server.url, **FAST) as client:
        with pytest.raises(ValueError):
            await client.get_markets(offset=GAMMA_MAX_OFFSET + 1)
    assert server.requests == []


async def test_filters_are_sent_and_applied() -> None:
    async with MockGammaServer() as srv, GammaClient(srv.url, **FAST) as client:
        everything = _decoded(await client.get_markets())
        open_ = _decoded(await client.get_markets(active=True, closed=False))
        closed = _decoded(await client.get_markets(closed=True))
        cid = everything[0].condition_id
        assert cid is not None
        one = _decoded(await client.get_markets(condition_ids=[cid.upper()]))
        two = _decoded(await client.get_markets(slugs=[str(everything[1].slug), str(everything[2].slug)]))
        events = await client.get_events()
    assert len(everything) == 10
    assert len(open_) == 9 and all(m.closed is False for m in open_)
    assert len(closed) == 1 and closed[0].closed is True
    assert [m.slug for m in one] == [everything[0].slug]
    assert {m.slug for m in two} == {everything[1].slug, everything[2].slug}
    assert srv.requests[1].params["active"] == ["true"] and srv.requests[1].params["closed"] == ["false"]
    assert sorted(len(msgspec.json.decode(e)["markets"]) for e in events) == [1, 1, 4, 4]
    markets, stats = parse_events(events)
    assert len(markets) == 10 and stats.bad_total == 0
    assert all(m.event_id is not None for m in markets)


async def test_comma_separated_condition_ids() -> None:
    async with MockGammaServer() as srv, httpx.AsyncClient() as http:
        items = srv.markets
        cids = ",".join(m["conditionId"] for m in items[:3])
        resp = await http.get(f"{srv.url}/markets", params={"condition_ids": cids})
        bad = await http.get(f"{srv.url}/markets", params={"offset": GAMMA_MAX_OFFSET + 1})
        nope = await http.get(f"{srv.url}/nope")
        post = await http.post(f"{srv.url}/markets")
    assert len(resp.json()) == 3
    assert bad.status_code == 422 and "offset" in bad.json()["error"]
    assert nope.status_code == 404 and post.status_code == 405


async def test_429_with_retry_after_then_success(server: MockGammaServer) -> None:
    server.fail_429(2, retry_after=0.2)
    async with GammaClient(server.url, timeout_s=1.0, backoff_s=0.001) as client:
        items = await client.get_markets(limit=10)
        assert len(items) == 10
        assert client.stats.retries == 2 and client.stats.failures["429"] == 2
        # the waits are the server's Retry-After, not the (much shorter) backoff
        assert list(client.stats.delays) == [0.2, 0.2]
    assert [r.status for r in server.requests] == [429, 429, 200]


async def test_retry_after_is_bounded(server: MockGammaServer) -> None:
    server.fail_429(1, retry_after=3600)
    async with GammaClient(server.url, timeout_s=1.0, backoff_s=0.001, max_retry_after_s=0.05) as client:
        assert len(await client.get_markets(limit=5)) == 5
        assert list(client.stats.delays) == [0.05]


async def test_429_without_retry_after_uses_backoff(server: MockGammaServer) -> None:
    server.fail_429(1, retry_after=None)
    async with GammaClient(server.url, timeout_s=1.0, backoff_s=0.01) as client:
        assert len(await client.get_markets(limit=5)) == 5
        assert 0.01 <= client.stats.delays[0] <= 0.011


async def test_backoff_waits_are_exact_with_an_injected_clock_and_randomness(server: MockGammaServer) -> None:
    # the waits go through core.retry: doubling from backoff_s to max_backoff_s, plus up to 10%
    server.fail_500(4)
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    async with GammaClient(
        server.url, backoff_s=0.5, max_backoff_s=1.5, rng=random.Random(7), sleep=sleep, timeout_s=5.0
    ) as client:
        assert len(await client.get_markets(limit=5)) == 5
    backoff, rng = Backoff(0.5, 1.5, 2.0, upward_jitter(0.1)), random.Random(7)
    expected = [backoff.delay(n, rng) for n in range(4)]
    assert waits == expected == list(client.stats.delays)
    assert all(b <= w <= b * 1.1 for w, b in zip(waits, (0.5, 1.0, 1.5, 1.5), strict=True))


async def test_timeout_then_success(server: MockGammaServer) -> None:
    server.delay(1, delay_s=2.0)
    async with GammaClient(server.url, timeout_s=0.3, backoff_s=0.01) as client:
        items = await client.get_markets(limit=100)
        assert len(items) == 100
        assert client.stats.failures["timeout"] == 1 and client.stats.retries == 1


async def test_persistent_500_gives_a_clear_error(server: MockGammaServer) -> None:
    server.fail_500(10)
    async with GammaClient(server.url, max_retries=3, **FAST) as client:
        with pytest.raises(GammaError) as err:
            await client.get_markets(limit=100, offset=0)
    assert err.value.status == 500
    msg = str(err.value)
    assert f"{server.url}/markets?limit=100&offset=0" in msg
    assert "after 4 attempts" in msg and "HTTP 500" in msg
    assert server.pending_faults == 6


async def test_persistent_timeout_gives_a_clear_error(server: MockGammaServer) -> None:
    server.delay(3, delay_s=2.0)
    async with GammaClient(server.url, timeout_s=0.2, max_retries=1, backoff_s=0.01) as client:
        with pytest.raises(GammaError, match=r"after 2 attempts: last timed out after 0.2s") as err:
            await client.get_markets()
    assert err.value.status is None


async def test_client_error_is_not_retried(server: MockGammaServer) -> None:
    async with GammaClient(server.url, **FAST) as client:
        with pytest.raises(GammaError, match=r"/nothing-here failed: HTTP 404"):
            await client.get_body("/nothing-here")
        assert client.stats.retries == 0


async def test_non_json_body_is_a_clear_error(server: MockGammaServer) -> None:
    server.garbage(1)
    async with GammaClient(server.url, **FAST) as client:
        with pytest.raises(GammaError, match="not JSON"):
            await client.get_markets()


async def test_connection_refused_is_retried_then_reported() -> None:
    srv = MockGammaServer(markets=[])
    url = await srv.start()
    await srv.stop()  # nothing listens on that port any more
    async with GammaClient(url, max_retries=2, **FAST) as client:
        with pytest.raises(GammaError, match=r"failed after 3 attempts: last ConnectError"):
            await client.get_markets()
        assert client.stats.failures["network"] == 3


async def test_bad_items_served_reach_the_parser_and_are_counted() -> None:
    good = load_markets_file(PROJECT_FIXTURES / "gamma" / "markets.json")
    broken = {**good[0], "conditionId": "0xbroken", "clobTokenIds": "[not json"}
    async with MockGammaServer(markets=[*good, broken, 42]) as srv, GammaClient(srv.url, **FAST) as client:
        items = await client.get_markets()
    markets, stats = parse_markets(items)
    assert len(markets) == len(good) and stats.bad_total == 2


def test_markets_file_forms(tmp_path: Path) -> None:
    base = tmp_path
    items = load_markets_file(PROJECT_FIXTURES / "gamma" / "markets.json")
    (base / "one.json").write_text(json.dumps(items[0]))
    (base / "wrapped.json").write_text(json.dumps({"markets": items[:2]}))
    (base / "events.json").write_text(json.dumps(events_from_markets(items)))
    assert len(load_markets_file(base / "one.json")) == 1
    assert len(load_markets_file(base / "wrapped.json")) == 2
    flattened = load_markets_file(base / "events.json")
    assert len(flattened) == len(items) and all(m["events"][0]["id"] for m in flattened)
    (base / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="cannot read Gamma markets"):
        load_markets_file(base / "bad.json")


async def test_server_stops_with_an_open_keep_alive_connection(server: MockGammaServer) -> None:
    client = GammaClient(server.url, **FAST)
    await client.get_markets(limit=1)  # the pooled connection stays open
    await asyncio.wait_for(server.stop(), 5)
    await client.aclose()
