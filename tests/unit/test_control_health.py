"""The one health definition (core/control/health.py): the rules both transports are judged by."""

from __future__ import annotations

from core.control.health import (
    EVENT_ALERT_KINDS,
    HealthInputs,
    OpenAlert,
    StoredBook,
    StoredFeed,
    assess,
    is_standing,
)
from core.control.types import FeedConnection
from core.types import BookStatus


def conn(name: str, state: str) -> FeedConnection:
    return FeedConnection(name=name, state=state, assets=3, seconds_since_frame=0.5, reconnects=0)


def test_nothing_wrong_is_healthy() -> None:
    report = assess(HealthInputs(connections=[conn("ws#0", "connected"), conn("ws#1", "reconnected")]))
    assert report.ok and report.reasons == []


def test_live_reasons_in_order_worst_books_first() -> None:
    inputs = HealthInputs(
        connections=[conn("ws#0", "connected"), conn("ws#1", "backoff")],
        book_states={BookStatus.OK: 7, BookStatus.STALE: 2, BookStatus.INCONSISTENT: 1},
        alerts=[OpenAlert("feed_dead", "ws#1", "critical", "market feed connection ws#1 is dead")],
        extras=["writer queue was full 3 time(s)"],
    )
    report = assess(inputs)
    assert not report.ok
    assert report.reasons == [
        "feed connection ws#1 is backoff",
        "1 book(s) inconsistent",
        "2 book(s) stale",
        "open alert feed_dead: market feed connection ws#1 is dead",
        "writer queue was full 3 time(s)",
    ]


def test_notices_and_one_off_events_are_not_standing_conditions() -> None:
    alerts = [
        OpenAlert("service", "start", "info", "Polybot started"),
        OpenAlert("order_failed", "c1", "warning", "order c1 failed"),
        OpenAlert("kill_switch", "risk", "critical", "killed"),
        OpenAlert("book_inconsistent", "a1", "warning", "book a1 disagrees"),
    ]
    report = assess(HealthInputs(alerts=alerts))
    assert report.reasons == ["open alert book_inconsistent: book a1 disagrees"]
    assert all(not is_standing(kind, "critical") for kind in EVENT_ALERT_KINDS)
    assert not is_standing("feed_dead", "info") and is_standing("feed_dead", "warning")


def test_a_database_without_our_schema_says_only_that() -> None:
    stale = [StoredBook(age_s=None, crossed=True)]
    empty = assess(HealthInputs(stored=StoredFeed(schema_empty=True, schema_at_head=False, books=stale)))
    assert empty.reasons == ["database has no schema (run polybot migrate --apply)"]
    behind = assess(HealthInputs(stored=StoredFeed(schema_empty=False, schema_at_head=False, books=stale)))
    assert behind.reasons == ["database schema is not at head (run polybot migrate --apply)"]


def test_stored_books_stale_by_age_and_crossed() -> None:
    books = [
        StoredBook(age_s=0.5, crossed=False),
        StoredBook(age_s=2.5, crossed=True),
        StoredBook(age_s=None, crossed=False),  # never updated: stale whatever the limit
        StoredBook(age_s=2.0, crossed=False),  # exactly at the limit: fresh
    ]
    stored = StoredFeed(schema_empty=False, schema_at_head=True, books=books, staleness_ms=2000)
    alert = OpenAlert("market_quiet", "books", "warning", "4 book(s) without an update")
    report = assess(HealthInputs(stored=stored, alerts=[alert]))
    assert report.reasons == [
        "2 of 4 asset(s) not updated within 2000 ms",
        "1 stored book(s) crossed",
        "open alert market_quiet: 4 book(s) without an update",
    ]
    nothing = assess(HealthInputs(stored=StoredFeed(schema_empty=False, schema_at_head=True)))
    assert nothing.reasons == ["no asset tracked yet (nothing ingested)"]
