"""Venue sync, without sockets: parsing the Data API's ``/positions``, paging and rate-limit
handling on an httpx mock transport, the comparison's one-tick tolerance, one alert per mismatch
and one clear, and ``/positions`` showing the venue's figure beside ours."""

from __future__ import annotations

import json
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from bot.views import render_positions
from core.app.venue_sync import KIND, SIZE_TICK, VenueSync, compare
from core.control.types import PositionRow, PositionsAtVenue, VenuePositionDiff
from core.control.venue_view import with_venue
from core.events import Alert, AlertCleared, EventBus, Recorder
from core.execution.positions import PositionBook
from core.markets.data_api import DataApiClient, DataApiError, VenuePosition, parse_positions
from core.registry import MarketRegistry
from core.types import Fill, MarketInfo, Side, TokenInfo

YES, NO, ELSEWHERE = "111", "222", "999"
MARKET = MarketInfo("0xc1", "Will it?", "will-it", (TokenInfo(YES, "Yes"), TokenInfo(NO, "No")))
ADDRESS = "0x00000000000000000000000000000000000000aa"


def item(asset: str, size: object, **extra: object) -> dict[str, object]:
    return {"asset": asset, "conditionId": "0xc9", "size": size, "outcome": "Yes", "slug": "elsewhere", **extra}


# ------------------------------------------------------------------ parsing


def test_a_real_shaped_answer_parses_exactly_and_unknown_fields_are_skipped() -> None:
    body = json.dumps(
        [
            item(YES, 12.345678, proxyWallet=ADDRESS, avgPrice=0.41, curPrice="0.5", redeemable=True, newField=[1]),
            item(NO, "3", outcomeIndex=1, negativeRisk=True, endDate="2026-12-31"),
        ]
    ).encode()
    first, second = parse_positions(body)
    assert first.size == D("12.345678") and first.avgPrice == D("0.41") and first.curPrice == D("0.5")
    assert first.redeemable and first.token_id == YES
    assert second.size == D(3) and second.outcomeIndex == 1 and second.negativeRisk


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"<html>busy</html>", "not JSON"),
        (b'{"positions": []}', "not a list of positions"),
        (json.dumps([{"asset": YES}]).encode(), "not a list of positions"),  # no size
        (json.dumps([item(YES, "abc")]).encode(), "not a list of positions"),
        (json.dumps([item(YES, -1)]).encode(), "bad position"),
        (json.dumps([item("", 1)]).encode(), "bad position"),
    ],
)
def test_a_malformed_answer_is_refused_with_a_reason(body: bytes, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_positions(body)


# ------------------------------------------------------------------ the client on a mock transport


class Venue:
    """``/positions`` answers from a list, paged; optional canned failures first."""

    def __init__(self, items: list[dict[str, object]], failures: list[httpx.Response] | None = None) -> None:
        self.items = items
        self.failures = failures or []
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.queries.append(dict(request.url.params))
        if self.failures:
            return self.failures.pop(0)
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        return httpx.Response(200, json=self.items[offset : offset + limit])


def client_on(venue: Venue, sleeps: list[float], **kw: object) -> DataApiClient:
    async def sleep(s: float) -> None:
        sleeps.append(s)

    knobs: dict[str, Any] = dict(kw)
    return DataApiClient("http://data.test", transport=httpx.MockTransport(venue), sleep=sleep, **knobs)


async def test_pages_are_read_until_a_short_one() -> None:
    venue = Venue([item(str(i), i + 1) for i in range(5)])
    client = client_on(venue, [], page_size=2)
    got = await client.positions(ADDRESS)
    await client.aclose()
    assert [p.asset for p in got] == ["0", "1", "2", "3", "4"]
    assert [q["offset"] for q in venue.queries] == ["0", "2", "4"]
    assert venue.queries[0] == {"user": ADDRESS, "sizeThreshold": "0", "limit": "2", "offset": "0"}


async def test_a_429_waits_what_retry_after_says() -> None:
    venue = Venue([item(YES, 1)], [httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")])
    sleeps: list[float] = []
    client = client_on(venue, sleeps, backoff_s=0.1)
    assert [p.asset for p in await client.positions(ADDRESS)] == [YES]
    await client.aclose()
    assert sleeps == [7.0] and client.stats.retries == 1 and client.stats.failures["429"] == 1


async def test_a_malformed_answer_is_a_counted_error_naming_the_url() -> None:
    venue = Venue([], [httpx.Response(200, content=b"[{")])
    client = client_on(venue, [])
    with pytest.raises(DataApiError, match=r"/positions\?user=.*malformed answer: not JSON"):
        await client.positions(ADDRESS)
    await client.aclose()
    assert client.stats.malformed == 1


async def test_a_4xx_is_final_and_5xx_gives_up_after_the_retries() -> None:
    client = client_on(Venue([], [httpx.Response(400, text="bad user")]), [])
    with pytest.raises(DataApiError, match="HTTP 400 bad user"):
        await client.positions("nope")
    sleeps: list[float] = []
    client = client_on(Venue([], [httpx.Response(500)] * 3), sleeps, max_retries=2)
    with pytest.raises(DataApiError, match="after 3 attempts: last HTTP 500"):
        await client.positions(ADDRESS)
    assert len(sleeps) == 2


# ------------------------------------------------------------------ comparison


def test_one_tick_of_size_is_tolerated_more_is_a_mismatch() -> None:
    assert SIZE_TICK == D("0.01")
    ours = {YES: D("10"), NO: D("5")}
    assert compare(ours, {YES: D("10.01"), NO: D("4.99")}) == {}
    assert compare(ours, {YES: D("10.011"), NO: D("5")}) == {YES: (D("10"), D("10.011"))}
    assert compare({}, {ELSEWHERE: D("3")}) == {ELSEWHERE: (D(0), D("3"))}  # unknown to us: ours 0
    assert compare({YES: D("2")}, {}) == {YES: (D("2"), D(0))}


# ------------------------------------------------------------------ alerts


class Source:
    def __init__(self) -> None:
        self.items: list[VenuePosition] = []
        self.error: Exception | None = None

    async def positions(self, user: str) -> list[VenuePosition]:
        if self.error is not None:
            raise self.error
        return list(self.items)

    def hold(self, **sizes: str) -> None:
        self.items = [parse_positions(json.dumps([item(t, s)]).encode())[0] for t, s in sizes.items()]


def sync_world() -> tuple[VenueSync, Source, PositionBook, Recorder]:
    bus = EventBus()
    book = PositionBook(clock=lambda: 0.0)
    source = Source()
    sync = VenueSync(source, ADDRESS, book, MarketRegistry([MARKET]), bus, clock=lambda: 100.0)
    return sync, source, book, Recorder(bus)


def buy(book: PositionBook, token: str, size: str) -> None:
    book.apply_fill(Fill("c-1", None, token, Side.BUY, D("0.5"), D(size)))


async def test_a_mismatch_alerts_once_and_clears_once() -> None:
    sync, source, book, rec = sync_world()
    buy(book, YES, "10")
    source.hold(**{YES: "10", ELSEWHERE: "4"})
    report = await sync.run()
    assert report.ok and report.venue_positions == 2
    assert report.differences == (VenuePositionDiff(ELSEWHERE, "elsewhere", "Yes", D(0), D(4)),)
    (alert,) = rec.of(Alert)
    assert alert.kind == KIND and alert.key == "elsewhere Yes" and alert.severity == "warning"
    assert "Polybot holds 0 shares, the venue 4" in alert.message

    source.hold(**{YES: "10", ELSEWHERE: "6"})  # still a mismatch (other figures): not repeated
    await sync.run()
    assert len(rec.of(Alert)) == 1 and rec.of(AlertCleared) == []

    source.hold(**{YES: "10"})
    await sync.run()
    (cleared,) = rec.of(AlertCleared)
    assert (cleared.kind, cleared.key) == (KIND, "elsewhere Yes") and cleared.duration_s == 0.0
    await sync.run()
    assert len(rec.of(Alert)) == 1 and len(rec.of(AlertCleared)) == 1
    assert sync.counters.runs == 4 and sync.counters.alerts == 1 and sync.counters.cleared == 1


async def test_a_known_token_is_named_from_the_registry_and_a_failed_read_changes_nothing() -> None:
    sync, source, book, rec = sync_world()
    buy(book, NO, "3")
    await sync.run()
    (alert,) = rec.of(Alert)
    assert alert.key == "will-it No" and "Polybot holds 3 shares, the venue 0" in alert.message
    source.error = RuntimeError("boom")
    failed = await sync.run()
    assert not failed.ok and failed.error == "boom" and [d.token_id for d in failed.differences] == [NO]
    assert len(rec.of(Alert)) == 1 and rec.of(AlertCleared) == [] and sync.counters.errors == 1
    assert rec.of(PositionsAtVenue)[-1] is failed  # the control facade hears every run


# ------------------------------------------------------------------ /positions


def row(token: str, size: str) -> PositionRow:
    return PositionRow("will-it", "Yes", token, D(size), D("0.5"), None, D(0), D(0))


def test_positions_show_the_venue_beside_ours_and_venue_only_tokens() -> None:
    rows = [row(YES, "10"), row(NO, "2")]
    synced = PositionsAtVenue(
        1.0,
        ADDRESS,
        True,
        2,
        (
            VenuePositionDiff(YES, "will-it", "Yes", D(10), D(25)),
            VenuePositionDiff(ELSEWHERE, "else", "No", D(0), D(4)),
        ),
    )
    out = with_venue(rows, synced)
    assert [(r.token_id, r.size, r.venue) for r in out] == [
        (YES, D(10), D(25)),
        (NO, D(2), None),
        (ELSEWHERE, D(0), D(4)),
    ]
    assert with_venue(rows, None) == rows
    text = render_positions(out)
    assert "10 (venue 25)" in text and "0 (venue 4)" in text and "the venue holds X shares" in text
    assert "venue" not in render_positions(rows)
