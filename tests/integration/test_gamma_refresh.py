"""refresh_markets from the mock Gamma into SQLite and PostgreSQL; lookups over the stored rows."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import PolybotError
from core.markets import (
    GammaClient,
    GammaError,
    MarketFilters,
    MarketLookupError,
    RefreshResult,
    list_markets,
    load_markets,
    market_for_token,
    parse_markets,
    refresh_markets,
    resolve_market,
    store_markets,
)
from core.sim.mock_gamma import MockGammaServer, load_markets_file, synthetic_markets
from core.store.db import create_engine, session_factory
from core.store.migrate import upgrade_engine
from core.store.models import Market, Token
from tests.conftest import PROJECT_FIXTURES

FAST = {"timeout_s": 2.0, "backoff_s": 0.01, "max_backoff_s": 0.05}
ALL = MarketFilters(active=None, closed=None)
FIXTURE = PROJECT_FIXTURES / "gamma" / "markets.json"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    await upgrade_engine(eng)
    yield eng
    await eng.dispose()


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        markets = (await conn.execute(select(func.count()).select_from(Market))).scalar_one()
        tokens = (await conn.execute(select(func.count()).select_from(Token))).scalar_one()
    return markets, tokens


async def test_refresh_twice_second_run_changes_nothing(engine: AsyncEngine) -> None:
    seen_progress: list[RefreshResult] = []
    async with MockGammaServer(markets=synthetic_markets(250)) as srv, GammaClient(srv.url, **FAST) as client:
        first = await refresh_markets(engine, client, ALL, progress=lambda r: seen_progress.append(copy.copy(r)))
        second = await refresh_markets(session_factory(engine), client, ALL)
    assert (first.pages, first.seen, first.inserted, first.updated, first.unchanged, first.bad) == (
        3,
        250,
        250,
        0,
        0,
        0,
    )
    assert (second.inserted, second.updated, second.unchanged, second.changed) == (0, 0, 250, 0)
    assert [p.pages for p in seen_progress] == [1, 2, 3] and [p.seen for p in seen_progress] == [100, 200, 250]
    assert await _counts(engine) == (250, 500)


async def test_refresh_project_fixture_stores_every_field(engine: AsyncEngine) -> None:
    async with MockGammaServer(markets=FIXTURE) as srv, GammaClient(srv.url, **FAST) as client:
        first = await refresh_markets(engine, client)  # default filters: active and not closed
        everything = await refresh_markets(engine, client, ALL)
        again = await refresh_markets(engine, client, ALL)
    assert (first.seen, first.inserted) == (9, 9)
    assert (everything.inserted, everything.unchanged) == (1, 9)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 10)

    items = {i["conditionId"]: i for i in load_markets_file(FIXTURE)}
    parsed = {m.condition_id: m for m in parse_markets(items.values())[0]}
    stored = await list_markets(engine)
    assert len(stored) == 10
    for s in stored:
        assert s.info == parsed[s.info.condition_id].info  # MarketInfo round-trips exactly
        assert s.end_date == parsed[s.info.condition_id].end_date
        assert s.fee_schedule == parsed[s.info.condition_id].fee_schedule
    async with session_factory(engine)() as session:
        row = await session.get(Market, next(iter(items)))
        assert row is not None and row.raw == items[row.condition_id]
        assert isinstance(row.raw["clobTokenIds"], str)  # raw kept verbatim, strings and all


async def test_changed_market_is_updated_and_tokens_follow(engine: AsyncEngine) -> None:
    markets = synthetic_markets(5)
    async with MockGammaServer(markets=markets) as srv, GammaClient(srv.url, **FAST) as client:
        await refresh_markets(engine, client, ALL)
        srv.markets[0] = {**srv.markets[0], "orderPriceMinTickSize": 0.001, "question": "Renamed?"}
        tokens = json.loads(srv.markets[1]["clobTokenIds"])
        srv.markets[1] = {
            **srv.markets[1],
            "outcomes": json.dumps(["Yes", "No", "Maybe"]),
            "clobTokenIds": json.dumps([tokens[1], "424242", tokens[0]]),
        }
        srv.markets.append(synthetic_markets(1, prefix="late")[0])
        result = await refresh_markets(engine, client, ALL)
    assert (result.inserted, result.updated, result.unchanged) == (1, 2, 3)
    first = await resolve_market(engine, markets[0]["slug"])
    assert first.tick_size == Decimal("0.001") and first.question == "Renamed?"
    second = await resolve_market(engine, markets[1]["conditionId"])
    assert [(t.token_id, t.outcome) for t in second.tokens] == [
        (tokens[1], "Yes"),
        ("424242", "No"),
        (tokens[0], "Maybe"),
    ]
    assert await _counts(engine) == (6, 13)


async def test_dropped_token_is_deleted(engine: AsyncEngine) -> None:
    item = synthetic_markets(1)[0]
    await store_markets(engine, parse_markets([item])[0])
    tokens = json.loads(item["clobTokenIds"])
    shrunk = {**item, "outcomes": json.dumps(["Yes"]), "clobTokenIds": json.dumps(tokens[:1])}
    result = await store_markets(engine, parse_markets([shrunk])[0])
    assert result.updated == 1
    assert await _counts(engine) == (1, 1)
    assert await market_for_token(engine, tokens[1]) is None


async def test_bad_items_are_counted_and_good_ones_stored(engine: AsyncEngine) -> None:
    good = synthetic_markets(3)
    stolen = {**synthetic_markets(1, prefix="thief")[0], "clobTokenIds": good[0]["clobTokenIds"]}
    bad = [{**good[1], "conditionId": None}, {**good[2], "conditionId": "0xother", "clobTokenIds": "["}]
    async with MockGammaServer(markets=[*good, *bad]) as srv, GammaClient(srv.url, **FAST) as client:
        result = await refresh_markets(engine, client, ALL)
        srv.markets = [stolen]
        clash = await refresh_markets(engine, client, ALL)
    assert (result.seen, result.inserted, result.bad) == (5, 3, 2)
    assert result.bad_reasons == {"missing_condition_id": 1, "bad_clob_token_ids": 1}
    # a market claiming another market's token ids is refused, not silently merged
    assert (clash.inserted, clash.bad, clash.bad_reasons) == (0, 1, {"token_id_conflict": 1})
    assert await _counts(engine) == (3, 6)


async def test_refresh_failure_keeps_stored_pages_and_names_the_url(engine: AsyncEngine) -> None:
    async with MockGammaServer(markets=synthetic_markets(150)) as srv:
        async with GammaClient(srv.url, max_retries=1, **{**FAST, "timeout_s": 1.0}) as client:
            pages: list[int] = []
            srv.answer_normally(1)  # the first page; the next is fetched while it is stored
            srv.fail_500(5)

            def fail_after_first(r: RefreshResult) -> None:
                pages.append(r.pages)

            with pytest.raises(
                GammaError, match=r"/markets/keyset\?limit=100&after_cursor=\w+ failed after 2 attempts: last HTTP 500"
            ):
                await refresh_markets(engine, client, ALL, progress=fail_after_first)
    assert pages == [1]
    assert await _counts(engine) == (100, 200)


async def test_resolve_market_by_slug_condition_id_and_prefix(engine: AsyncEngine) -> None:
    async with MockGammaServer(markets=FIXTURE) as srv, GammaClient(srv.url, **FAST) as client:
        await refresh_markets(engine, client, ALL)
    items = load_markets_file(FIXTURE)
    btc = next(i for i in items if i["slug"] == "demo-btc-above-150k-2026")
    by_slug = await resolve_market(engine, "demo-btc-above-150k-2026")
    by_cid = await resolve_market(engine, btc["conditionId"])
    by_upper_cid = await resolve_market(engine, "  " + btc["conditionId"].upper().replace("0X", "0x") + " ")
    assert by_slug == by_cid == by_upper_cid
    assert by_slug.condition_id == btc["conditionId"]
    assert by_slug.token("yes").token_id == json.loads(btc["clobTokenIds"])[0]
    assert (await resolve_market(engine, "demo-city-mayor-2026-bru")).slug == "demo-city-mayor-2026-bruno"
    assert (await resolve_market(engine, btc["conditionId"][:12])).slug == "demo-btc-above-150k-2026"

    with pytest.raises(MarketLookupError, match=r"ambiguous: matches demo-cup-2026-aurora, demo-cup-2026-borealis"):
        await resolve_market(engine, "demo-cup-2026")
    with pytest.raises(MarketLookupError, match=r"unknown market 'no-such-market'.*refresh-markets"):
        await resolve_market(engine, "no-such-market")
    with pytest.raises(MarketLookupError, match="empty market reference"):
        await resolve_market(engine, "  ")
    with pytest.raises(MarketLookupError, match="unknown market"):
        await resolve_market(engine, "demo%")  # LIKE wildcards are literal


async def test_load_markets_filters(engine: AsyncEngine) -> None:
    async with MockGammaServer(markets=FIXTURE) as srv, GammaClient(srv.url, **FAST) as client:
        await refresh_markets(engine, client, ALL)
    assert await load_markets(engine, "no such text") == []
    cup = await load_markets(engine, "DEMO CUP")  # question text, case-insensitive
    assert len(cup) == 4
    assert {m.condition_id for m in await load_markets(engine, "cup-2026-")} == {m.condition_id for m in cup}
    group = cup[0].neg_risk_market_id
    assert group is not None
    same_group = await load_markets(engine, neg_risk_market_id=group)
    assert {m.condition_id for m in same_group} == {m.condition_id for m in cup}
    assert len(await load_markets(engine, group)) == 4  # the text filter also matches a group id
    assert len(await load_markets(engine, active=True, closed=False)) == 9
    assert len(await load_markets(engine, closed=True)) == 1
    assert len(await load_markets(engine, limit=2)) == 2
    mayor = await load_markets(engine, "mayor")
    assert len(mayor) == 4 and all(m.neg_risk_augmented for m in mayor)
    token = mayor[0].tokens[1].token_id
    owner = await market_for_token(engine, token)
    assert owner is not None and owner.condition_id == mayor[0].condition_id
    assert await market_for_token(engine, "1") is None


async def test_a_number_its_column_cannot_hold_costs_only_its_market(engine: AsyncEngine) -> None:
    items = synthetic_markets(4)
    items[2] = {**items[2], "orderMinSize": "1" + "0" * 20}  # a valid size, but over NUMERIC(20, 6)
    items[3] = {**items[3], "feeSchedule": {"rate": "0.0400001"}}  # a valid rate, but 7 decimals
    markets, stats = parse_markets(items)
    assert stats.bad_total == 0  # the domain has nothing against them: the columns do
    result = await store_markets(engine, markets)
    assert (result.inserted, result.bad, result.bad_reasons) == (2, 2, {"number_does_not_fit": 2})
    assert await _counts(engine) == (2, 4)


async def test_a_market_the_database_refuses_costs_only_itself(engine: AsyncEngine) -> None:
    markets = parse_markets(synthetic_markets(4))[0]
    # a value only the column type refuses when the row is written (it wants aware datetimes):
    # the page fails as a whole, and is stored again market by market
    markets[1] = dataclasses.replace(markets[1], end_date=datetime(2026, 12, 31))
    result = await store_markets(engine, markets)
    assert (result.inserted, result.bad, result.bad_reasons) == (3, 1, {"db_rejected": 1})
    assert await _counts(engine) == (3, 6)
    assert await market_for_token(engine, markets[1].info.tokens[0].token_id) is None


async def test_the_database_refusing_every_market_of_a_page_is_an_error(engine: AsyncEngine) -> None:
    markets = [dataclasses.replace(m, end_date=datetime(2026, 12, 31)) for m in parse_markets(synthetic_markets(2))[0]]
    with pytest.raises(PolybotError, match="the database refused every market of a page"):
        await store_markets(engine, markets)
    assert await _counts(engine) == (0, 0)


@pytest.mark.parametrize(
    ("overrides", "column"),
    [
        ({"slug": "s" * 256}, "slug"),
        ({"conditionId": "0x" + "ab" * 40}, "condition_id"),
        ({"clobTokenIds": json.dumps(["1" * 101, "2"])}, "token_id"),
        ({"outcomes": json.dumps(["x" * 256, "No"])}, "outcome"),
        ({"negRiskMarketID": "0x" + "ab" * 50}, "neg_risk_market_id"),
        ({"events": [{"id": "9" * 81}]}, "event_id"),
    ],
)
async def test_a_text_longer_than_its_column_costs_only_its_market(
    engine: AsyncEngine, overrides: dict[str, object], column: str, caplog: pytest.LogCaptureFixture
) -> None:
    items = synthetic_markets(2)
    items[0] = {**items[0], **overrides}
    markets, stats = parse_markets(items)
    assert stats.bad_total == 0 and len(markets) == 2  # the domain has no length rule
    with caplog.at_level("WARNING", logger="core.markets"):
        result = await store_markets(engine, markets)
    assert (result.inserted, result.bad, result.bad_reasons) == (1, 1, {"field_too_long": 1})
    assert any(f"{column} longer than" in r.getMessage() for r in caplog.records)
    assert await _counts(engine) == (1, 2)


async def test_nul_characters_never_reach_the_database(engine: AsyncEngine) -> None:
    items = synthetic_markets(2)
    items[0] = {**items[0], "question": "Will\x00 it?", "description": "a\x00b"}
    markets, stats = parse_markets(items)
    assert stats.bad_total == 0
    result = await store_markets(engine, markets)
    assert (result.inserted, result.bad, result.warnings) == (2, 0, {"nul_characters_stripped": 1})
    stored = await resolve_market(engine, items[0]["slug"])
    assert stored.question == "Will it?"
    async with session_factory(engine)() as session:
        row = await session.get(Market, items[0]["conditionId"])
        assert row is not None and row.raw is not None and row.raw["description"] == "ab"
    again = await store_markets(engine, markets)  # stripped the same way: nothing changed
    assert (again.unchanged, again.updated) == (2, 0)
