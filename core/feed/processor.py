"""The frame pipeline: raw websocket text -> typed wire structs -> validated -> books -> domain events.

One :class:`FeedProcessor` per feed. ``process(frame, recv_ns)`` decodes the frame with msgspec
(a lone ``price_change`` in one pass, see :class:`core.feed.wire.PriceChangeFrame`), validates
every event and level, applies them to the books and returns domain events
(:mod:`core.feed.events`). Bad input is counted by reason in ``processor.counters``, logged at
a bounded rate and skipped; nothing raises out of ``process``.

Speed: the ``price_change`` path (almost all traffic) never builds a Decimal: prices come from a
precomputed string table, sizes from a strict integer parser, the book is integers. Anything
unusual drops to a slow, strict path that classifies the problem.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, assert_never

import msgspec

from core.feed.book import Book
from core.feed.counters import (
    INTERNAL_ERROR,
    MALFORMED_JSON,
    OFF_TICK,
    OVERSIZED_FRAME,
    UNKNOWN_ASSET,
    WRONG_TYPE,
    Counters,
    LateFrames,
    short_id,
)
from core.feed.events import BookSnapshot, BookStatusChanged, FeedEvent, Pong, PriceChange, TickSizeChanged
from core.feed.integrity import AWAITING, OK, BookSet
from core.feed.kernel import status as kernel_status
from core.feed.numbers import (
    PRICE_UNITS,
    STANDARD_TICKS,
    BadNumber,
    decimal_to_units,
    parse_price_units,
    parse_size_units,
    parse_tick_units,
    units_to_decimal,
)
from core.feed.translate import (
    best_bid_ask,
    legacy_entries,
    market_resolved,
    new_market,
    new_market_tick,
    preview,
    schema_events,
    trade_print,
)
from core.feed.wire import (
    FRAME_DECODER,
    PRICE_CHANGE_DECODER,
    REST_BOOK_DECODER,
    BestBidAskMsg,
    BookMsg,
    LastTradePriceMsg,
    MarketResolvedMsg,
    NewMarketMsg,
    PriceChangeEntry,
    PriceChangeFields,
    PriceChangeFrame,
    PriceChangeMsg,
    RestBook,
    TickSizeChangeMsg,
    WireEvent,
    WireLevel,
)
from core.types import BookStatus

if TYPE_CHECKING:
    from core.feed.stalls import StallGuard

log = logging.getLogger("core.feed.processor")

_DECODE: Final = FRAME_DECODER.decode
_DECODE_PRICE_CHANGE: Final = PRICE_CHANGE_DECODER.decode
_PONG_TEXTS: Final = frozenset({"PONG", b"PONG"})
_PRICE_CHANGE: Final = PriceChange  # compiled, a Final name is a static, a plain import a dict lookup per use
_FIELDS: Final = msgspec.structs.astuple
# inferred ticks for books whose tick nobody told us (never coarser than the usual 0.01)
_INFER_TICKS: Final = tuple(decimal_to_units(t) for t in STANDARD_TICKS if t <= Decimal("0.01"))


class FeedProcessor:
    """Decode, validate and apply market-channel frames; see the module docstring."""

    def __init__(
        self,
        known_assets: set[str] | None = None,
        max_frame_bytes: int = 1_000_000,
        staleness_ms: int = 60_000,
        burst_quiet_ms: int = 50,
        *,
        tick_sizes: Mapping[str, Decimal] | None = None,
        on_inconsistent: Callable[[str], None] | None = None,
    ) -> None:
        """``known_assets``: when given, frames for other assets are rejected (``unknown_asset``)
        and these books exist from the start (``awaiting_snapshot``); when None every asset seen
        gets a book. ``tick_sizes``: ticks known from market data (otherwise taken from snapshots).
        """
        self.counters = Counters(log, "feed input rejected")
        self._set = BookSet(
            errors=self.counters,
            staleness_ms=staleness_ms,
            burst_quiet_ms=burst_quiet_ms,
            tick_sizes=tick_sizes,
            on_inconsistent=on_inconsistent,
        )
        self.books: dict[str, Book] = self._set.books
        self.faults: Counters = self._set.faults
        self.max_frame_bytes = max_frame_bytes
        self.known_assets: set[str] | None = None
        self.frames = 0
        self.pongs = 0
        self._quiet_ns = self._set.quiet_ns
        self.kernel_status = kernel_status()  # compiled or pure Python, and why (core.feed.kernel)
        self._next_flush_ns = 0  # process() checks quiet bursts at most once per burst_quiet_ms
        self.stall_guard: StallGuard | None = None  # live feeds: see core.feed.stalls
        self.late_frames = LateFrames()  # frames for assets just unsubscribed: not rejected input
        if known_assets is not None:
            self.known_assets = set()
            self.track(known_assets)

    # ------------------------------------------------------------------ configuration

    @property
    def on_inconsistent(self) -> Callable[[str], None] | None:
        return self._set.on_inconsistent

    @on_inconsistent.setter
    def on_inconsistent(self, hook: Callable[[str], None] | None) -> None:
        self._set.on_inconsistent = hook

    def track(self, asset_ids: Iterable[str], tick_sizes: Mapping[str, Decimal] | None = None) -> None:
        """Add assets (when a ``known_assets`` filter is in use, widen it) and known ticks."""
        for asset_id, tick in (tick_sizes or {}).items():
            self._set.tick_sizes[asset_id] = tick
            book = self.books.get(asset_id)
            if book is not None and not book.tick_confirmed:
                book.set_tick_size(tick, confirmed=True)
        for asset_id in asset_ids:
            if self.known_assets is not None:
                self.known_assets.add(asset_id)
                self.late_frames.subscribed(asset_id)
            if asset_id not in self.books:
                self._set.create(asset_id)

    def untrack(self, asset_ids: Iterable[str]) -> None:
        """Stop following assets: their books are dropped; with a ``known_assets`` filter, frames still
        on their way count in ``late_frames`` (for 30 s), later ones are refused (``unknown_asset``)."""
        for asset_id in asset_ids:
            if self.known_assets is not None:
                self.known_assets.discard(asset_id)
                self.late_frames.unsubscribed(asset_id)
            self._set.forget(asset_id)

    # ------------------------------------------------------------------ the pipeline

    def process(self, frame: str | bytes, recv_ns: int) -> list[FeedEvent]:
        """Decode one websocket frame and apply it. Never raises on bad input."""
        out: list[FeedEvent] = []
        if len(frame) > self.max_frame_bytes:
            self.counters.record(OVERSIZED_FRAME, f"{len(frame)} bytes > {self.max_frame_bytes}")
            return out
        self.frames += 1
        change: PriceChangeFrame | None = None
        msg: list[WireEvent] | WireEvent | None = None
        try:
            change = _DECODE_PRICE_CHANGE(frame)  # one pass for most frames (see PriceChangeFrame)
        except msgspec.DecodeError:
            msg = self._decode(frame, recv_ns, out)
        try:
            if change is not None:
                self._price_change(change, recv_ns, out)
            elif isinstance(msg, list):
                for item in msg:
                    self._dispatch(item, recv_ns, out)
            elif msg is not None:
                self._dispatch(msg, recv_ns, out)
        except Exception as exc:  # a bug must not take the feed down: count it, log it, go on
            self.counters.record(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}: {preview(frame)}")
            log.debug("internal error on frame", exc_info=True)
        if recv_ns >= self._next_flush_ns:
            self._next_flush_ns = recv_ns + self._quiet_ns
            if self._set.queue:
                out.extend(self.flush_bursts(recv_ns))
        return out

    def _decode(self, frame: str | bytes, recv_ns: int, out: list[FeedEvent]) -> list[WireEvent] | WireEvent | None:
        """Any frame but a lone valid ``price_change``: the typed event(s), or None once a frame
        that does not fit the schema (its good events applied), a pong or bad JSON is handled."""
        try:
            decoded: list[WireEvent] | WireEvent = _DECODE(frame)
            return decoded
        except msgspec.ValidationError as exc:
            self._slow_frame(frame, exc, recv_ns, out)
        except msgspec.DecodeError as exc:
            if frame in _PONG_TEXTS or frame.strip() in _PONG_TEXTS:
                self.pongs += 1
                out.append(Pong(recv_ns))
            else:
                self.counters.record(MALFORMED_JSON, f"{exc}: {preview(frame)}")
        return None

    def _dispatch(self, msg: WireEvent, recv_ns: int, out: list[FeedEvent]) -> None:
        if isinstance(msg, PriceChangeMsg):
            self._price_change(msg, recv_ns, out)
        elif isinstance(msg, BookMsg):
            self._book(msg, recv_ns, out)
        elif isinstance(msg, LastTradePriceMsg):
            self._trade(msg, recv_ns, out)
        elif isinstance(msg, TickSizeChangeMsg):
            self._tick_size_change(msg, recv_ns, out)
        elif isinstance(msg, BestBidAskMsg):
            self._best_bid_ask(msg, recv_ns, out)
        elif isinstance(msg, NewMarketMsg):
            self._new_market(msg, recv_ns, out)
        elif isinstance(msg, MarketResolvedMsg):
            self._market_resolved(msg, recv_ns, out)
        else:  # a wire type without a handler would be a bug here, not bad input
            assert_never(msg)

    def _slow_frame(self, frame: str | bytes, exc: Exception, recv_ns: int, out: list[FeedEvent]) -> None:
        """The frame is JSON but not all of it fits the schema: the good events still apply."""
        for msg in schema_events(frame, exc, self.counters):
            self._dispatch(msg, recv_ns, out)

    # ------------------------------------------------------------------ price_change (hot path)

    def _price_change(self, msg: PriceChangeFields, recv_ns: int, out: list[FeedEvent]) -> None:
        """Any of the three ``price_change`` shapes."""
        # market, timestamp, price_changes first (see PriceChangeFields): one call, where three
        # generic attribute reads cost more compiled; the timestamp object goes to the event as it is
        fields = _FIELDS(msg)
        entries: list[PriceChangeEntry] | None = fields[2]
        if entries is None:
            entries = legacy_entries(msg, self.counters)
            if entries is None:
                return
        timestamp: Any = fields[1]
        accepted = self._set.apply_changes(entries, timestamp, recv_ns, out, self)
        if accepted or accepted is entries:
            out.append(_PRICE_CHANGE(fields[0], timestamp, recv_ns, accepted))

    def check_entry(self, entry: PriceChangeEntry, recv_ns: int, out: list[FeedEvent]) -> tuple[Book, int] | None:
        """An entry that missed the fast lookups (unknown asset, unusual or bad price, a book that
        is not ok): admit, validate strictly, and decide whether the delta may be applied."""
        book = self.books.get(entry.asset_id) or self._admit(entry.asset_id)
        if book is None:
            return None
        p = book.grid_price_units(entry.price)
        if p is None:
            p = self._bad_price(entry.price, book)
            if p is None:
                return None
        if book.raw_status is not OK and not self._set.admit_delta(book, recv_ns, out):
            return None
        return book, p

    def _size(self, text: str, book: Book) -> int | None:
        """A size: parse strictly (and cache it), or count and reject."""
        try:
            return parse_size_units(text)
        except BadNumber as exc:
            self.counters.record(exc.kind, f"{short_id(book.asset_id)}: {exc}")
            return None

    def _admit(self, asset_id: str) -> Book | None:
        return self._set.create(asset_id) if self._known(asset_id) else None

    def _bad_price(self, text: str, book: Book) -> int | None:
        """Slow path for a price not in the table or off the book's tick; counts and returns None
        unless the price is in fact valid (a spelling the table lacks)."""
        try:
            units = parse_price_units(text)
        except BadNumber as exc:
            self.counters.record(exc.kind, f"{short_id(book.asset_id)}: {exc}")
            return None
        if units % book.grid_units:
            self.counters.record(OFF_TICK, f"{short_id(book.asset_id)}: price {text} off tick {book.tick_size}")
            return None
        return units

    # ------------------------------------------------------------------ snapshots

    def _book(self, msg: BookMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        book = self.books.get(msg.asset_id) or self._admit(msg.asset_id)
        if book is None:
            return
        bids = msg.bids or msg.buys or []
        asks = msg.asks or msg.sells or []
        self._seed(book, msg.market, bids, asks, msg.tick_size, msg.timestamp, msg.hash, recv_ns, "ws", out)

    def _seed(
        self,
        book: Book,
        market: str,
        bids: list[WireLevel],
        asks: list[WireLevel],
        tick_text: str,
        ts_ms: int,
        book_hash: str,
        recv_ns: int,
        source: str,
        out: list[FeedEvent],
    ) -> None:
        if tick_text:
            try:
                tick_u = parse_tick_units(tick_text)
            except BadNumber as exc:
                self.counters.record(exc.kind, f"{short_id(book.asset_id)}: {exc}")
            else:
                if tick_u != decimal_to_units(book.tick_size) or not book.tick_confirmed:
                    if book.tick_confirmed and book.seeded:  # a tick change we were not told about
                        book.epoch += 1
                    book.set_tick_size(units_to_decimal(tick_u), confirmed=True)
        bid_units = self._levels(bids, book)
        ask_units = self._levels(asks, book)
        if not book.tick_confirmed:
            self._infer_tick(book, bid_units, ask_units)
        if market:
            book.market = market
        book.last_ts_ms = ts_ms
        self._set.seed(book, bid_units, ask_units, recv_ns, out, reason="snapshot" if source == "ws" else "rest_book")
        out.append(
            BookSnapshot(
                book.asset_id,
                book.market,
                ts_ms,
                recv_ns,
                tuple(book.bids_units()),
                tuple(book.asks_units()),
                book.tick_size,
                book_hash,
                source,
            )
        )

    def _levels(self, levels: list[WireLevel], book: Book) -> list[tuple[int, int]]:
        result: list[tuple[int, int]] = []
        for level in levels:
            p = PRICE_UNITS.get(level.price)
            if p is None or p % book.grid_units:
                p = self._bad_price(level.price, book)
                if p is None:
                    continue
            u = self._size(level.size, book)
            if u is None:
                continue
            result.append((p, u))
        return result

    @staticmethod
    def _infer_tick(book: Book, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Nobody told us this book's tick: report the coarsest usual tick its prices fit."""
        current = decimal_to_units(book.tick_size)
        prices = [p for p, _ in bids] + [p for p, _ in asks]
        if all(p % current == 0 for p in prices):
            return
        for tick_u in _INFER_TICKS:
            if tick_u < current and all(p % tick_u == 0 for p in prices):
                book.set_tick_size(units_to_decimal(tick_u), confirmed=False)
                return

    def apply_rest_book(
        self, asset_id: str, book_json: str | bytes | Mapping[str, Any], recv_ns: int | None = None
    ) -> list[FeedEvent]:
        """Re-seed a book from a ``GET /book?token_id=`` response (text, bytes or parsed JSON)."""
        now = time.time_ns() if recv_ns is None else recv_ns
        out: list[FeedEvent] = []
        try:
            if isinstance(book_json, (str, bytes)):
                rest = REST_BOOK_DECODER.decode(book_json)
            else:
                rest = msgspec.convert(book_json, RestBook, strict=False)
        except msgspec.ValidationError as exc:
            self.counters.record(WRONG_TYPE, f"GET /book for {short_id(asset_id)}: {exc}")
            return out
        except msgspec.DecodeError as exc:
            self.counters.record(MALFORMED_JSON, f"GET /book for {short_id(asset_id)}: {exc}")
            return out
        if rest.asset_id and rest.asset_id != asset_id:
            self.counters.record(WRONG_TYPE, f"GET /book for {short_id(asset_id)} answered {short_id(rest.asset_id)}")
            return out
        book = self.books.get(asset_id) or self._admit(asset_id)
        if book is None:
            return out
        self._seed(book, rest.market, rest.bids, rest.asks, rest.tick_size, rest.timestamp, rest.hash, now, "rest", out)
        return out

    # ------------------------------------------------------------------ other events

    def _known(self, asset_id: str) -> bool:
        """An event for an asset the feed does not follow is counted (as late, or rejected) and dropped."""
        if self.known_assets is not None and asset_id not in self.known_assets:
            if not self.late_frames.seen(asset_id):
                self.counters.record(UNKNOWN_ASSET, short_id(asset_id))
            return False
        return True

    def _trade(self, msg: LastTradePriceMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        # a trade print changes no book, so it creates none either
        if self._known(msg.asset_id):
            try:
                out.append(trade_print(msg, recv_ns))
            except BadNumber as exc:
                self.counters.record(exc.kind, f"{short_id(msg.asset_id)}: last_trade_price: {exc}")

    def _tick_size_change(self, msg: TickSizeChangeMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        book = self.books.get(msg.asset_id) or self._admit(msg.asset_id)
        if book is None:
            return
        try:
            new_u = parse_tick_units(msg.new_tick_size)
            old = units_to_decimal(parse_tick_units(msg.old_tick_size)) if msg.old_tick_size else None
        except BadNumber as exc:
            self.counters.record(exc.kind, f"{short_id(msg.asset_id)}: {exc}")
            return
        new = units_to_decimal(new_u)
        book.set_tick_size(new, confirmed=True)
        self._set.tick_sizes[msg.asset_id] = new
        status_events: list[FeedEvent] = []
        self._set.reset(book, "tick_size_change", recv_ns, status_events)
        out.append(TickSizeChanged(msg.asset_id, msg.market, old, new, book.epoch, msg.timestamp, recv_ns))
        out.extend(status_events)

    def _best_bid_ask(self, msg: BestBidAskMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        if self._known(msg.asset_id):
            try:
                out.append(best_bid_ask(msg, recv_ns))
            except BadNumber as exc:
                self.counters.record(exc.kind, f"{short_id(msg.asset_id)}: {exc}")

    def _new_market(self, msg: NewMarketMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        try:
            tick = new_market_tick(msg)
        except BadNumber as exc:  # the market is news all the same
            self.counters.record(exc.kind, f"new_market {msg.market[:12]}: {exc}")
            tick = None
        out.append(new_market(msg, tick, recv_ns))

    def _market_resolved(self, msg: MarketResolvedMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        out.append(market_resolved(msg, recv_ns))

    # ------------------------------------------------------------------ time-driven checks

    def flush_bursts(self, now_ns: int) -> list[FeedEvent]:
        """Check bursts quiet for ``burst_quiet_ms`` (call from a timer; ``process`` also does it),
        unless the :attr:`stall_guard` holds quiet judgements (a burst's next frame may be unread)."""
        self._next_flush_ns = now_ns + self._quiet_ns
        guard = self.stall_guard
        if guard is not None and (resume := guard.resume_ns(now_ns)) > now_ns:
            self._next_flush_ns = resume
            return []
        return self._set.flush_bursts(now_ns)

    def finish(self, now_ns: int) -> list[FeedEvent]:
        """Check every open burst now (end of a replay or shutdown)."""
        return self._set.flush_all(now_ns)

    def check_staleness(self, now_ns: int) -> list[BookStatusChanged]:
        """``ok`` books without an update for ``staleness_ms`` become ``stale``."""
        return [e for e in self._set.check_staleness(now_ns) if isinstance(e, BookStatusChanged)]

    def mark_awaiting_snapshot(self, asset_ids: Iterable[str], now_ns: int | None = None) -> list[BookStatusChanged]:
        """After a reconnect: frames may have been missed, so these books wait for a snapshot."""
        now = time.time_ns() if now_ns is None else now_ns
        out: list[FeedEvent] = []
        for asset_id in asset_ids:
            book = self.books.get(asset_id)
            if book is None:
                if self.known_assets is not None and asset_id not in self.known_assets:
                    continue
                book = self._set.create(asset_id)
            if book.raw_status is not AWAITING or book.seeded:
                self._set.reset(book, "reconnect", now, out)
        return [e for e in out if isinstance(e, BookStatusChanged)]

    # ------------------------------------------------------------------ read side

    def status_counts(self) -> dict[BookStatus, int]:
        counts = dict.fromkeys(BookStatus, 0)
        for book in self.books.values():
            counts[book.status] += 1
        return counts

    @property
    def hook_failures(self) -> int:
        return self._set.hook_failures
