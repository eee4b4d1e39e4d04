"""The market double's own books, and which part of a frame each subscriber gets.

The server applies every frame it streams to its copy of each token's book, so a client that
(re)connects gets the current book as a ``book`` snapshot, as from the venue. The three
``price_change`` formats are read (``price_changes[]`` since 2025-09, ``changes[]`` before, one
level per event before that), like the client accepts them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

log = logging.getLogger(__name__)

Event = dict[str, Any]  # one decoded event of a frame (values of any JSON type)
LevelMap = dict[Decimal, tuple[str, str]]  # price -> (price text, size text), texts as the source wrote them

_decode = msgspec.json.decode
_encode = msgspec.json.encode
_BOOK_KINDS = ("book", "tick_size_change", "last_trade_price")


def parse_frame(text: str | bytes) -> list[Event] | None:
    """The events of a frame (one object or an array of them); None when it is not such JSON."""
    try:
        data = _decode(text)
    except msgspec.DecodeError:
        return None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list) and all(isinstance(e, dict) for e in data):
        return data
    return None


def encode(value: object) -> str:
    return _encode(value).decode()


def event_assets(event: Event) -> set[str] | None:
    """Assets an event concerns; ``None`` = broadcast to every subscriber."""
    kind = event.get("event_type")
    if kind in ("new_market", "market_resolved"):
        return None
    changes = event.get("price_changes")
    if isinstance(changes, list):
        return {a for c in changes if isinstance(c, dict) and isinstance(a := c.get("asset_id"), str)}
    asset = event.get("asset_id")
    return {asset} if isinstance(asset, str) else None


Routed = list[tuple[set[str] | None, Event]]  # each event of a frame with the assets it concerns


def routed(events: list[Event]) -> Routed:
    return [(event_assets(e), e) for e in events]


def subscriber_part(frame: Routed, assets: set[str]) -> list[Event] | None:
    """The events of a frame a client subscribed to ``assets`` gets: None = the whole frame as
    is, else the events (``price_changes`` trimmed to its assets), possibly none."""
    out: list[Event] = []
    whole = True
    for concerned, event in frame:
        if concerned is None or concerned <= assets:
            out.append(event)
        elif concerned & assets:
            whole = False
            kept = [c for c in event["price_changes"] if isinstance(c, dict) and c.get("asset_id") in assets]
            out.append({**event, "price_changes": kept})
        else:
            whole = False
    return None if whole else out


def levels_of(raw: Iterable[object]) -> LevelMap:
    """Levels given as ``{"price","size"}`` dicts or ``(price, size)`` pairs; size 0 = no level."""
    out: LevelMap = {}
    for level in raw:
        if isinstance(level, dict):
            price, size = str(level["price"]), str(level["size"])
        elif isinstance(level, list | tuple):
            price, size = (str(x) for x in level)
        else:
            raise TypeError(f"a level is a {{price, size}} object or a pair, got {level!r}")
        if Decimal(size) != 0:
            out[Decimal(price)] = (price, size)
    return out


def _asset(event: Event) -> str:
    asset = event["asset_id"]
    if not isinstance(asset, str) or not asset:
        raise TypeError(f"asset_id must be a non-empty string, got {asset!r}")
    return asset


@dataclass(slots=True)
class ServerBook:
    """The server's copy of one token's book."""

    asset_id: str
    market: str = ""
    tick_size: str = "0.01"
    timestamp: str = "0"
    last_trade_price: str = ""
    bids: LevelMap = field(default_factory=dict)
    asks: LevelMap = field(default_factory=dict)

    def set_level(self, side: str, price: str, size: str) -> None:
        try:
            key = Decimal(price)
            removed = Decimal(size) == 0
        except (InvalidOperation, TypeError, ValueError):
            return  # the stream is the venue's business; a bad level is the client's test case
        levels = self.bids if side.upper() == "BUY" else self.asks
        if removed:
            levels.pop(key, None)
        else:
            levels[key] = (price, size)

    def frame(self) -> Event:
        """A ``book`` event: bids ascending, asks descending (best level last), as the venue."""
        bids = [{"price": p, "size": s} for _, (p, s) in sorted(self.bids.items())]
        asks = [{"price": p, "size": s} for _, (p, s) in sorted(self.asks.items(), reverse=True)]
        digest = hashlib.sha1(_encode([self.asset_id, self.timestamp, bids, asks])).hexdigest()
        return {
            "event_type": "book",
            "market": self.market,
            "asset_id": self.asset_id,
            "timestamp": self.timestamp,
            "hash": digest,
            "bids": bids,
            "asks": asks,
            "tick_size": self.tick_size,
            "last_trade_price": self.last_trade_price,  # 2026 snapshots carry both ("" before any trade)
        }


class MarketBooks:
    """Every token's :class:`ServerBook`, in the order the assets appeared."""

    def __init__(self) -> None:
        self.books: dict[str, ServerBook] = {}
        self.order: list[str] = []
        self.bad_events = 0  # source events the server could not apply

    def book(self, asset_id: str, market: object = None) -> ServerBook:
        book = self.books.get(asset_id)
        if book is None:
            book = self.books[asset_id] = ServerBook(asset_id)
            self.order.append(asset_id)
        if isinstance(market, str) and market and not book.market:
            book.market = market
        return book

    def register(self, events: list[Event] | None) -> None:
        """Know every asset ``events`` name, without applying them."""
        for event in events or ():
            for asset in event_assets(event) or ():
                if asset:
                    self.book(asset, event.get("market"))

    def apply(self, text: str, events: list[Event] | None) -> None:
        """Update the books from one frame's events. An event the server cannot read is counted
        and logged; the frame is still forwarded (fault recordings exist)."""
        for event in events or ():
            try:
                self._apply_event(event)
            except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
                self.bad_events += 1
                log.warning(
                    "mock-ws: cannot apply %s event to its books (%r): %.120s", event.get("event_type"), exc, text
                )

    def _apply_event(self, event: Event) -> None:
        kind = event.get("event_type")
        if kind == "price_change":
            self._apply_changes(event)
            return
        if kind not in _BOOK_KINDS:
            return
        book = self.book(_asset(event), event.get("market"))
        if kind == "book":
            bids = levels_of(event.get("bids", event.get("buys")) or ())
            asks = levels_of(event.get("asks", event.get("sells")) or ())  # both parsed before the book changes
            book.bids, book.asks = bids, asks
            book.tick_size = str(event.get("tick_size") or book.tick_size)
            book.last_trade_price = str(event.get("last_trade_price") or book.last_trade_price)
        elif kind == "tick_size_change":
            book.tick_size = str(event.get("new_tick_size") or book.tick_size)
        else:
            book.last_trade_price = str(event.get("price") or book.last_trade_price)
        _stamp(book, event)

    def _apply_changes(self, event: Event) -> None:
        changes = event.get("price_changes")
        if not isinstance(changes, list):  # older formats: one asset at top level
            legacy = event.get("changes")
            levels = legacy if isinstance(legacy, list) else [event]  # oldest: one level per event
            changes = [{**c, "asset_id": event.get("asset_id")} for c in levels]
        for change in changes:
            book = self.book(_asset(change), event.get("market"))
            book.set_level(str(change.get("side", "")), str(change["price"]), str(change["size"]))
            _stamp(book, event)


def _stamp(book: ServerBook, event: Event) -> None:
    ts = event.get("timestamp")
    if ts is not None:
        book.timestamp = str(ts)
