"""Discovery without the offset cap, against the Gamma double over real loopback HTTP.

Keyset scans of 25,000 markets into SQLite and PostgreSQL (none dropped, none twice), loads by
condition id 100 per request, the double refusing what Gamma refuses, a cursor that repeats,
429 + Retry-After, and the client-side rate limit measured at the double.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Final

import httpx
import pytest
from aiolimiter import AsyncLimiter
from sqlalchemy import func, select
from sqlalchemy import text as sa_text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.defaults import GAMMA_MAX_OFFSET
from core.markets import (
    CursorLoopError,
    GammaClient,
    MarketFilters,
    RefreshResult,
    gamma_limiter,
    load_by_condition_ids,
    load_by_events,
    load_by_slugs,
    refresh_markets,
    scan_all,
)
from core.sim.mock_gamma import MockGammaServer, RequestLog, synthetic_markets
from core.sim.mock_gamma_keyset import KeysetEnd
from core.store.db import create_engine
from core.store.migrate import upgrade_engine
from core.store.models import Market, Token


def _client(url: str, limiter: AsyncLimiter | None = None) -> GammaClient:
    """Short retry waits (the 429 test checks the server's wait replaces them)."""
    return GammaClient(url, timeout_s=5.0, backoff_s=0.01, max_backoff_s=0.05, limiter=limiter)


ALL: Final = MarketFilters(active=None, closed=None)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    await upgrade_engine(eng)
    yield eng
    await eng.dispose()


def _keyset(srv: MockGammaServer) -> list[RequestLog]:
    return [r for r in srv.requests if r.path == "/markets/keyset"]


@pytest.mark.slow(seconds=19)
async def test_25000_markets_every_one_stored_once(engine: AsyncEngine) -> None:
    universe = synthetic_markets(25_000)
    late = synthetic_markets(50, prefix="late")  # listed on Gamma while the scan is under way
    async with MockGammaServer(markets=universe) as srv, GammaClient(srv.url) as client:  # Gamma's own rate limit

        def list_more_midway(r: RefreshResult) -> None:
            if r.pages == 120:
                srv.markets.extend(late)

        started = time.monotonic()
        result = await refresh_markets(engine, client, ALL, progress=list_more_midway)
        elapsed = time.monotonic() - started
    want = {m["conditionId"] for m in universe + late}
    assert (result.seen, result.inserted, result.bad, result.stop_reason) == (25_050, 25_050, 0, "end")
    assert result.pages == result.requests == 251 == len(_keyset(srv))
    assert all(r.status == 200 and r.params["limit"] == ["100"] and "offset" not in r.params for r in _keyset(srv))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(func.count(), func.count(Market.condition_id.distinct())))).one()
        stored = set((await conn.execute(select(Market.condition_id))).scalars())
        tokens = (await conn.execute(select(func.count()).select_from(Token))).scalar_one()
    assert tuple(rows) == (25_050, 25_050)  # none duplicated
    assert stored == want  # none dropped, nothing else
    assert tokens == 2 * 25_050
    print(f"\n25,050 markets scanned and stored in {elapsed:.1f}s ({result.seen / elapsed:.0f} markets/s)")
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:  # the scan's one connection, back from the pool
            plans = (
                await conn.execute(
                    sa_text(
                        "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)"
                        " FROM pg_prepared_statements WHERE statement LIKE '%WHERE tokens.token_id IN %'"
                    )
                )
            ).one()
        generic, custom = (int(n) for n in plans)
        # one plan per page, made for its own ids: a generic plan kept from the first pages, when
        # the tables were nearly empty, scans the whole table on every later page (37 s, not 8)
        assert generic <= 2 and custom >= result.pages - 2, f"token lookups: {generic} generic plans, {custom} custom"


async def test_250_condition_ids_load_in_3_requests() -> None:
    universe = synthetic_markets(400)
    async with MockGammaServer(markets=universe) as srv, _client(srv.url) as client:
        ids = [m["conditionId"] for m in universe[:250]]
        asked = [*ids, ids[0].upper().replace("0X", "0x"), "0x" + "00" * 32, " "]  # a repeat, an unknown, a blank
        markets = await load_by_condition_ids(client, asked)
    calls = [r for r in srv.requests if r.path == "/markets"]
    assert [len(r.params["condition_ids"]) for r in calls] == [100, 100, 51]
    assert all(r.status == 200 for r in calls)
    assert [m.condition_id for m in markets] == ids  # each once, in the order asked


async def test_slugs_load_100_per_request() -> None:
    universe = synthetic_markets(150)
    async with MockGammaServer(markets=universe) as srv, _client(srv.url) as client:
        markets = await load_by_slugs(client, [m["slug"] for m in universe])
    assert [len(r.params["slug"]) for r in srv.requests] == [100, 50]
    assert len(markets) == 150


async def test_the_double_refuses_what_gamma_refuses() -> None:
    universe = synthetic_markets(150)
    cids = [m["conditionId"] for m in universe]
    async with MockGammaServer(markets=universe) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        past_cap = await http.get("/markets", params={"offset": GAMMA_MAX_OFFSET + 1})
        at_cap = await http.get("/markets", params={"offset": GAMMA_MAX_OFFSET})
        too_many = await http.get("/markets", params={"condition_ids": cids[:101]})
        too_many_keyset = await http.get("/markets/keyset", params={"condition_ids": cids[:101]})
        just_enough = await http.get("/markets/keyset", params={"condition_ids": cids[:100]})
        keyset_offset = await http.get("/markets/keyset", params={"offset": 0})
        bad_cursor = await http.get("/markets/keyset", params={"after_cursor": "not-a-cursor"})
        big_page = await http.get("/markets/keyset", params={"limit": 1000})
    assert past_cap.status_code == 422 and "offset" in past_cap.json()["error"]
    assert at_cap.status_code == 200 and at_cap.json() == []
    assert too_many.status_code == too_many_keyset.status_code == 422
    assert just_enough.status_code == 200 and len(just_enough.json()["markets"]) == 100
    assert keyset_offset.status_code == 422 and "after_cursor" in keyset_offset.json()["error"]
    assert bad_cursor.status_code == 422
    assert len(big_page.json()["markets"]) == 100  # limit capped at 100, like Gamma


@pytest.mark.parametrize("end", ["absent", "null", "empty"])
async def test_every_way_of_saying_the_end_ends_the_scan(end: KeysetEnd) -> None:
    universe = synthetic_markets(230)
    async with MockGammaServer(markets=universe) as srv, _client(srv.url) as client:
        srv.keyset.end = end
        result = await scan_all(client, ALL)
        async with httpx.AsyncClient(base_url=srv.url) as http:  # one market: a last page, as sent
            last = (await http.get("/markets/keyset", params={"condition_ids": universe[0]["conditionId"]})).json()
    assert (result.pages, result.seen, len(result.markets), result.stop_reason) == (3, 230, 230, "end")
    assert len(_keyset(srv)) == 4  # three pages and the raw check
    assert ("next_cursor" in last) is (end != "absent")


async def test_a_repeated_cursor_stops_the_scan_with_a_clear_error(engine: AsyncEngine) -> None:
    async with MockGammaServer(markets=synthetic_markets(500)) as srv, _client(srv.url) as client:
        srv.keyset.ignore_cursor = True  # Gamma answering every cursor with the first page
        async with asyncio.timeout(60):  # without the guard the scan never ends: fail, not hang
            with pytest.raises(CursorLoopError, match=r"page 2 gave next_cursor .* already followed"):
                await scan_all(client, ALL)
            assert len(_keyset(srv)) == 2
            with pytest.raises(CursorLoopError, match="already followed"):
                await refresh_markets(engine, client, ALL)
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(Market))).scalar_one() == 100


async def test_429_retry_after_is_honoured() -> None:
    async with MockGammaServer(markets=synthetic_markets(250)) as srv, _client(srv.url) as client:
        srv.answer_normally(1)
        srv.fail_429(2, retry_after=0.3)
        result = await scan_all(client, ALL)
    assert (result.seen, result.requests) == (250, 5)
    assert list(client.stats.delays) == [0.3, 0.3]  # the server's wait, not the 0.01 s backoff
    sent = _keyset(srv)
    assert [r.status for r in sent] == [200, 429, 429, 200, 200]
    assert sent[2].at - sent[1].at >= 0.29 and sent[3].at - sent[2].at >= 0.29
    assert sent[1].params == sent[3].params  # the refused page is asked for again, same cursor


def _busiest_window(times: list[float], n: int) -> float:
    """The shortest span holding ``n + 1`` requests (a limit of ``n`` per window needs it >= the window)."""
    return min(b - a for a, b in zip(times, times[n:], strict=False))


async def test_rate_limit_holds_every_window_at_the_double() -> None:
    # Gamma's 300 per 10 s scaled down to 20 per 0.5 s: the same limiter, a shorter clock
    per_window, window_s = 20, 1.0  # 20 unlimited requests took 0.77 s at load 11: the window must exceed that
    universe = synthetic_markets(600)
    filters = MarketFilters(None, None, limit=10)  # 60 pages
    unlimited_limiter = gamma_limiter(10**9, 1.0, burst=10**8)
    async with (
        MockGammaServer(markets=universe) as srv,
        _client(srv.url, unlimited_limiter) as client,
    ):
        await scan_all(client, filters)
        unlimited = [r.at for r in _keyset(srv)]
    limiter = gamma_limiter(per_window, window_s, burst=5)
    async with MockGammaServer(markets=universe) as srv, _client(srv.url, limiter) as client:
        started = time.monotonic()
        result = await scan_all(client, filters)
        elapsed = time.monotonic() - started
        limited = [r.at for r in _keyset(srv)]
    assert len(limited) == len(unlimited) == 60 and result.seen == 600
    assert _busiest_window(unlimited, per_window) < window_s  # the check can fail: without the limiter it does
    assert _busiest_window(limited, per_window) >= window_s - 0.02  # 0.02 s: arrival jitter on a loaded machine
    assert elapsed >= (60 - 5) / ((per_window - 5) / window_s) - 0.05  # the burst, then the rate


def test_default_limiter_is_gammas_300_per_10_s() -> None:
    limiter = gamma_limiter()
    # a leaky bucket lets `max_rate` through at once, then max_rate / time_period per second
    burst, rate = limiter.max_rate, limiter.max_rate / limiter.time_period
    assert burst + rate * 10 == pytest.approx(300)
    assert burst == 30
    with pytest.raises(ValueError):
        gamma_limiter(300, 10, burst=300)
    with pytest.raises(ValueError):
        gamma_limiter(300, 0)


async def test_scan_all_keeps_what_select_keeps_and_each_market_once() -> None:
    universe = synthetic_markets(300)
    served = [*universe[:150], universe[10], *universe[150:]]  # one market listed twice
    async with MockGammaServer(markets=served) as srv, _client(srv.url) as client:
        seen: list[int] = []
        result = await scan_all(
            client, ALL, select=lambda gm: gm.info.slug.endswith("7"), progress=lambda r: seen.append(r.pages)
        )
    assert (result.seen, result.duplicates, result.selected) == (301, 1, 30)
    assert {m.info.slug for m in result.markets} == {m["slug"] for m in universe if m["slug"].endswith("7")}
    assert seen == [1, 2, 3, 4]


async def test_markets_of_named_events() -> None:
    async with MockGammaServer() as srv, _client(srv.url) as client:  # the project's fixture: 4 events
        markets = await load_by_events(client, slugs=["demo-cup-2026-winner", "no-such-event"], ids=["910003"])
    assert sorted(m.info.slug for m in markets) == [
        *(f"demo-city-mayor-2026-{s}" for s in ("alice", "bruno", "chen", "other")),
        *(f"demo-cup-2026-{s}" for s in ("aurora", "borealis", "cascade", "dynamo")),
    ]
    assert [r.params.get("slug") or r.params["id"] for r in srv.requests] == [
        ["demo-cup-2026-winner", "no-such-event"],
        ["910003"],
    ]
