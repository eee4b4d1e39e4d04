"""Alert policy: which conditions the trader hears about, once, and when they are over.

- ``feed_dead``: a market socket declared dead (critical); cleared when it is back, with the outage
  counted from its last frame (the silence began then, not when the heartbeat gave up).
- ``book_inconsistent``: a book that failed an integrity check is not traded until re-seeded.
- ``market_quiet``: books without an update for ``quiet_after_s`` on a live socket, one alert for
  all of them (not one per token), renewed when the set changes, cleared when they trade again.
- ``order_rejected`` / ``order_failed``: an order the venue refused or that failed for good, named by
  its market's slug and outcome (a token id means nothing to a trader).

The venue's reachability has its own policy in :mod:`core.app.venue_watch`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Protocol

from core.events import Alert, AlertCleared, EventBus, OrderEvent, Severity
from core.feed.connection import ConnectionEvent, ConnectionState
from core.feed.events import BookStatusChanged
from core.types import BookStatus

Label = Callable[[str], str]


class FeedDeadAlerts:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._down_since: dict[str, int] = {}  # connection -> ns of its last frame before it died

    def on_connection_event(self, event: ConnectionEvent, last_heard_ns: int | None) -> None:
        """``last_heard_ns``: the connection's last frame (or heartbeat answer) before this event."""
        key = f"ws#{event.conn_id}"
        if event.state is ConnectionState.DEAD:
            self._down_since.setdefault(key, last_heard_ns or event.at_ns)
            reason = event.reason or "no frames"
            self._bus.publish(
                Alert(
                    kind="feed_dead",
                    severity=Severity.CRITICAL,
                    key=key,
                    message=f"market feed connection {key} is dead ({reason}); reconnecting",
                )
            )
        elif event.state in (ConnectionState.RECONNECTED, ConnectionState.CONNECTED):
            since = self._down_since.pop(key, None)
            lasted = None if since is None else max(0.0, (event.at_ns - since) / 1e9)
            self._bus.publish(
                AlertCleared(kind="feed_dead", key=key, message="connection re-established", duration_s=lasted)
            )


class BookAlerts:
    def __init__(self, bus: EventBus, label: Label) -> None:
        self._bus = bus
        self._label = label

    def on_status(self, ev: BookStatusChanged) -> None:
        if ev.new is BookStatus.INCONSISTENT:
            self._bus.publish(
                Alert(
                    kind="book_inconsistent",
                    severity=Severity.WARNING,
                    key=ev.asset_id,
                    message=f"book {self._label(ev.asset_id)} inconsistent ({ev.reason}); not trading it until re-seeded",
                )
            )
        elif ev.new is BookStatus.OK and ev.old is BookStatus.INCONSISTENT:
            self._bus.publish(AlertCleared(kind="book_inconsistent", key=ev.asset_id, message="book re-seeded"))


class UpdatedBook(Protocol):
    @property
    def last_update_ns(self) -> int: ...

    @property
    def raw_status(self) -> BookStatus: ...


_CLOSED = BookStatus.CLOSED  # a resolved market's book is over: never "quiet"


class QuietBooks:
    def __init__(self, bus: EventBus, label: Label, *, quiet_after_s: float) -> None:
        self._bus = bus
        self._label = label
        self._quiet_ns = int(quiet_after_s * 1e9)
        self._quiet: set[str] = set()

    def check(self, books: Mapping[str, UpdatedBook], now_ns: int) -> None:
        quiet = sorted(
            token_id
            for token_id, book in books.items()
            if (last := book.last_update_ns) and now_ns - last > self._quiet_ns and book.raw_status is not _CLOSED
        )
        if quiet and set(quiet) != self._quiet:
            names = ", ".join(self._label(t) for t in quiet[:5]) + (" …" if len(quiet) > 5 else "")
            self._bus.publish(
                Alert(
                    kind="market_quiet",
                    severity=Severity.INFO,
                    key="books",
                    message=(
                        f"{len(quiet)} book(s) without an update for {int(self._quiet_ns / 1e9)}s "
                        f"on a live socket: {names}"
                    ),
                )
            )
        elif not quiet and self._quiet:
            self._bus.publish(AlertCleared(kind="market_quiet", key="books", message="markets trading again"))
        self._quiet = set(quiet)


class OrderAlerts:
    """A refused or failed order, named as the trader placed it: market and outcome, side, size, price."""

    def __init__(self, bus: EventBus, label: Label | None = None) -> None:
        self._bus = bus
        self._label = label

    def on_order_event(self, ev: OrderEvent) -> None:
        status = str(ev.status)
        if status not in ("rejected", "failed"):
            return
        self._bus.publish(
            Alert(
                kind="order_rejected" if status == "rejected" else "order_failed",
                severity=Severity.WARNING,
                key=ev.client_order_id,
                message=f"{self._what(ev)} {status}: {ev.detail or ev.reason_code or 'no reason given'}",
            )
        )

    def _what(self, ev: OrderEvent) -> str:
        if self._label is None or not ev.token_id:
            return f"order {ev.client_order_id}"
        order = " ".join(
            part
            for part in (
                ev.side,
                f"{_plain(ev.size)}" if ev.size is not None else "",
                f"@ {_plain(ev.price)}" if ev.price is not None else "",
            )
            if part
        )
        return f"{self._label(ev.token_id)} {order} (order {ev.client_order_id})".replace("  ", " ")


def _plain(amount: Decimal) -> str:
    return f"{amount.normalize():f}"
