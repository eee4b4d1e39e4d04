"""Re-seeding an inconsistent book: through the injected fetcher, at most one per asset per
cooldown (a fault inside the cooldown is answered once it ends), never for a book that healed,
and a venue that gives no book is logged, not raised."""

from __future__ import annotations

import logging
from decimal import Decimal

import httpx
import pytest

from core.app.reseed import BookUnavailable, ClobBookFetcher, Reseeder
from core.feed.events import BookStatusChanged
from core.feed.frames import book_frame, change, price_change_frame
from core.feed.processor import FeedProcessor
from core.types import BookStatus

A = "1111"
S = 1_000_000_000
REST_BOOK = (
    b'{"market": "m", "asset_id": "1111", "timestamp": "50", "hash": "h", "tick_size": "0.01",'
    b' "bids": [{"price": "0.40", "size": "7"}], "asks": [{"price": "0.60", "size": "9"}]}'
)


def inconsistent_processor() -> FeedProcessor:
    processor = FeedProcessor(known_assets={A})
    processor.process(book_frame(A, [("0.47", "10")], [("0.52", "15")]), 1 * S)
    # the feed says the best bid is 0.48 where the change puts it at 0.49: a lost update
    processor.process(price_change_frame([change(A, "BUY", "0.49", "5", "0.48", "0.52")], ts_ms=10), 2 * S)
    processor.process(price_change_frame([change(A, "BUY", "0.30", "5", "0.49", "0.52")], ts_ms=11), 3 * S)
    assert processor.books[A].raw_status is BookStatus.INCONSISTENT
    return processor


class Fetcher:
    def __init__(self, answers: list[bytes | BookUnavailable]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def fetch_book(self, token_id: str) -> bytes:
        self.calls.append(token_id)
        answer = self.answers.pop(0)
        if isinstance(answer, BookUnavailable):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def reseeder(processor: FeedProcessor, fetcher: Fetcher, clock: Clock) -> Reseeder:
    return Reseeder(processor, fetcher, lambda t: f"label-{t}", cooldown_s=2.0, clock=clock, sleep=clock.sleep)


async def test_an_inconsistent_book_is_reseeded_from_the_fetched_book() -> None:
    processor, fetcher, clock = inconsistent_processor(), Fetcher([REST_BOOK]), Clock()
    events = await reseeder(processor, fetcher, clock).reseed(A)
    assert fetcher.calls == [A] and clock.slept == []
    assert [(e.old, e.new) for e in events if isinstance(e, BookStatusChanged)] == [
        (BookStatus.INCONSISTENT, BookStatus.OK)
    ]
    assert (processor.books[A].best_bid(), processor.books[A].best_ask()) == (Decimal("0.40"), Decimal("0.60"))


async def test_at_most_one_reseed_per_cooldown_and_a_late_fault_waits_for_its_end() -> None:
    processor, fetcher, clock = inconsistent_processor(), Fetcher([b"{not json", REST_BOOK]), Clock()
    r = reseeder(processor, fetcher, clock)
    assert r.claim(A)
    assert await r.reseed(A) == []  # the first answer does not decode: still inconsistent
    clock.now += 0.5
    assert r.claim(A)
    assert not r.claim(A)  # a re-seed is already waiting: this fault is answered by it
    await r.reseed(A)
    assert clock.slept == [pytest.approx(1.5)]  # the rest of the cooldown, not a second call at once
    assert fetcher.calls == [A, A]
    assert processor.books[A].raw_status is BookStatus.OK
    assert r.claim(A)  # done waiting: a new fault may claim again


async def test_a_book_healed_meanwhile_is_not_fetched() -> None:
    processor, fetcher, clock = inconsistent_processor(), Fetcher([]), Clock()
    processor.process(book_frame(A, [("0.41", "1")], [("0.59", "1")]), 4 * S)  # the feed's own snapshot
    assert await reseeder(processor, fetcher, clock).reseed(A) == []
    assert fetcher.calls == []


async def test_a_venue_without_a_book_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    processor, clock = inconsistent_processor(), Clock()
    fetcher = Fetcher([BookUnavailable("GET /book answered 503")])
    with caplog.at_level(logging.WARNING, logger="core.app.reseed"):
        assert await reseeder(processor, fetcher, clock).reseed(A) == []
    assert "re-seed of label-1111 failed: GET /book answered 503" in caplog.text
    assert processor.books[A].raw_status is BookStatus.INCONSISTENT


async def test_the_clob_fetcher_asks_get_book_and_names_what_went_wrong() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        token = request.url.params["token_id"]
        if token == "ok":
            return httpx.Response(200, content=REST_BOOK)
        if token == "down":
            raise httpx.ConnectError("connection refused")
        return httpx.Response(503)

    fetcher = ClobBookFetcher("http://clob.test/", timeout_s=1, transport=httpx.MockTransport(answer))
    try:
        assert await fetcher.fetch_book("ok") == REST_BOOK
        with pytest.raises(BookUnavailable, match="GET /book answered 503"):
            await fetcher.fetch_book("busy")
        with pytest.raises(BookUnavailable, match="ConnectError: connection refused"):
            await fetcher.fetch_book("down")
    finally:
        await fetcher.aclose()
    assert str(seen[0].url) == "http://clob.test/book?token_id=ok"
