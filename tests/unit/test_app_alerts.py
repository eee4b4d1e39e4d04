"""Alert policy: a dead feed socket (outage counted from its last frame), an inconsistent book, quiet
markets (one alert for all), refused or failed orders — each said once, and cleared when over."""

from __future__ import annotations

from dataclasses import dataclass

from core.app.alerts import BookAlerts, FeedDeadAlerts, OrderAlerts, QuietBooks
from core.events import Alert, AlertCleared, EventBus, OrderEvent, Recorder, Severity
from core.execution.types import OrderStatus
from core.feed.connection import ConnectionEvent, ConnectionState
from core.feed.events import BookStatusChanged
from core.types import BookStatus

S = 1_000_000_000


def said(rec: Recorder) -> list[tuple[str, str, str]]:
    out = []
    for e in rec.events:
        if isinstance(e, Alert):
            out.append(("alert", e.kind, e.message))
        elif isinstance(e, AlertCleared):
            out.append(("cleared", e.kind, e.message))
    return out


def conn(state: ConnectionState, at_s: float, reason: str = "") -> ConnectionEvent:
    return ConnectionEvent(conn_id=3, state=state, asset_ids=("a",), reason=reason, at_ns=int(at_s * S))


def test_a_dead_socket_is_one_critical_alert_and_its_outage_counts_from_the_last_frame() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    alerts = FeedDeadAlerts(bus)
    alerts.on_connection_event(conn(ConnectionState.DEAD, 40, "no pong"), last_heard_ns=10 * S)
    # still dead at the next attempt: the outage keeps its first start
    alerts.on_connection_event(conn(ConnectionState.DEAD, 45), last_heard_ns=44 * S)
    alerts.on_connection_event(conn(ConnectionState.RECONNECTED, 70), last_heard_ns=None)
    dead = [e for e in rec.events if isinstance(e, Alert)]
    assert [(a.kind, a.key, a.severity) for a in dead] == [("feed_dead", "ws#3", Severity.CRITICAL)] * 2
    assert dead[0].message == "market feed connection ws#3 is dead (no pong); reconnecting"
    assert dead[1].message.endswith("dead (no frames); reconnecting")
    cleared = rec.of(AlertCleared)
    assert [(c.kind, c.key, c.duration_s) for c in cleared] == [("feed_dead", "ws#3", 60.0)]


def test_a_socket_never_heard_from_counts_from_when_it_was_declared_dead() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    alerts = FeedDeadAlerts(bus)
    alerts.on_connection_event(conn(ConnectionState.DEAD, 40), last_heard_ns=None)
    alerts.on_connection_event(conn(ConnectionState.CONNECTED, 41.5), last_heard_ns=None)
    assert [c.duration_s for c in rec.of(AlertCleared)] == [1.5]


def test_a_connect_without_a_measured_outage_clears_without_a_duration() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    FeedDeadAlerts(bus).on_connection_event(conn(ConnectionState.CONNECTED, 1), last_heard_ns=None)
    # nothing measured here: a front end that alerted measures from its own alert, others ignore it
    assert [(c.kind, c.duration_s) for c in rec.of(AlertCleared)] == [("feed_dead", None)]
    assert rec.of(Alert) == []


def test_an_inconsistent_book_is_named_and_its_reseed_clears_it() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    alerts = BookAlerts(bus, {"t1": "cup-2026 Yes"}.__getitem__)
    alerts.on_status(BookStatusChanged("t1", BookStatus.OK, BookStatus.INCONSISTENT, "mismatch", 1))
    alerts.on_status(BookStatusChanged("t1", BookStatus.INCONSISTENT, BookStatus.OK, "rest", 2))
    alerts.on_status(BookStatusChanged("t1", BookStatus.AWAITING_SNAPSHOT, BookStatus.OK, "snapshot", 3))
    assert said(rec) == [
        ("alert", "book_inconsistent", "book cup-2026 Yes inconsistent (mismatch); not trading it until re-seeded"),
        ("cleared", "book_inconsistent", "book re-seeded"),
    ]


@dataclass
class Book:
    last_update_ns: int
    raw_status: BookStatus = BookStatus.OK


def test_quiet_books_are_one_alert_renewed_when_the_set_changes_and_cleared_when_they_trade() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    quiet = QuietBooks(bus, lambda t: f"<{t}>", quiet_after_s=8)
    books = {"b": Book(100 * S), "a": Book(100 * S), "never": Book(0)}
    quiet.check(books, 105 * S)  # 5 s: not quiet yet
    quiet.check(books, 109 * S)
    quiet.check(books, 110 * S)  # the same two: not said again
    books["a"].last_update_ns = 109 * S
    quiet.check(books, 111 * S)  # one of them traded: the set changed
    books["b"].last_update_ns = 110 * S
    quiet.check(books, 112 * S)
    books["over"] = Book(100 * S, BookStatus.CLOSED)  # a resolved market's book: over, not quiet
    quiet.check(books, 113 * S)
    assert said(rec) == [
        ("alert", "market_quiet", "2 book(s) without an update for 8s on a live socket: <a>, <b>"),
        ("alert", "market_quiet", "1 book(s) without an update for 8s on a live socket: <b>"),
        ("cleared", "market_quiet", "markets trading again"),
    ]


def test_more_than_five_quiet_books_are_named_five_and_an_ellipsis() -> None:
    bus = EventBus()
    rec = Recorder(bus)
    QuietBooks(bus, str, quiet_after_s=1).check({f"t{i}": Book(1) for i in range(7)}, 3 * S)
    assert said(rec) == [
        ("alert", "market_quiet", "7 book(s) without an update for 1s on a live socket: t0, t1, t2, t3, t4 …")
    ]


def test_refused_and_failed_orders_are_alerts_others_are_not() -> None:
    bus = EventBus()
    rec = Recorder(bus, Alert)
    alerts = OrderAlerts(bus)
    alerts.on_order_event(OrderEvent("c1", OrderStatus.REJECTED, detail="not enough balance"))
    alerts.on_order_event(OrderEvent("c2", OrderStatus.FAILED, reason_code="network"))
    alerts.on_order_event(OrderEvent("c3", OrderStatus.FAILED))
    alerts.on_order_event(OrderEvent("c4", OrderStatus.LIVE))
    alerts.on_order_event(OrderEvent("c5", "refused", reason_code="not_armed"))
    assert [(a.kind, a.key, a.message) for a in rec.of(Alert)] == [
        ("order_rejected", "c1", "order c1 rejected: not enough balance"),
        ("order_failed", "c2", "order c2 failed: network"),
        ("order_failed", "c3", "order c3 failed: no reason given"),
    ]
