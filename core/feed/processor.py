"""The frame pipeline: raw websocket text -> typed wire structs -> validated -> books -> domain events.

One :class:`FeedProcessor` per feed. ``process(frame, recv_ns)`` decodes the frame once with
msgspec, validates every event and level, applies them to the books and returns domain events
(:mod:`core.feed.events`). Bad input is counted by reason in ``processor.counters``, logged at
a bounded rate and skipped; nothing raises out of ``process``.

Speed: the ``price_change`` path (almost all traffic) never builds a Decimal: prices come from a
precomputed string table, sizes from a strict integer parser, the book is integers. Anything
unusual drops to a slow, strict path that classifies the problem.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import msgspec

from core.feed.book import Book
from core.feed.counters import (
    INTERNAL_ERROR,
    MALFORMED_JSON,
    OFF_TICK,
    OVERSIZED_FRAME,
    UNKNOWN_ASSET,
    UNKNOWN_EVENT,
    WRONG_TYPE,
    Counters,
)
from core.feed.events import (
    BestBidAsk,
    BookSnapshot,
    BookStatusChanged,
    FeedEvent,
    MarketResolved,
    NewMarket,
    Pong,
    PriceChange,
    TickSizeChanged,
    TradePrint,
)
from core.feed.integrity import AWAITING, OK, BookSet
from core.feed.kernel import load as load_kernel
from core.feed.wire import (
    EVENT_TYPES,
    FRAME_DECODER,
    PRICE_UNITS,
    REST_BOOK_DECODER,
    SIZE_CACHE,
    STANDARD_TICKS,
    UNIT,
    BadNumber,
    BestBidAskMsg,
    BookMsg,
    LastTradePriceMsg,
    MarketResolvedMsg,
    NewMarketMsg,
    PriceChangeEntry,
    PriceChangeMsg,
    RestBook,
    TickSizeChangeMsg,
    WireLevel,
    convert_event,
    decimal_to_units,
    parse_best_units,
    parse_new_size,
    parse_price_units,
    parse_size_units,
    parse_tick_units,
    units_to_decimal,
)
from core.types import BookStatus, Side

log = logging.getLogger("core.feed.processor")

_BUY = Side.BUY
_DECODE = FRAME_DECODER.decode
_PONG_TEXTS = frozenset({"PONG", b"PONG"})
# inferred ticks for books whose tick nobody told us (never coarser than the usual 0.01)
_INFER_TICKS = tuple(decimal_to_units(t) for t in STANDARD_TICKS if t <= Decimal("0.01"))


_SIZE_GET = SIZE_CACHE.get  # the cache is cleared in place, never replaced
# carried best_bid/best_ask -> units, an empty side as 0 (bid) or 1 (ask) in units
_CARRIED_BID = {**PRICE_UNITS, "0": 0, "": 0}
_CARRIED_ASK = {**PRICE_UNITS, "1": UNIT, "": UNIT}


def _accepted(entries: list[PriceChangeEntry], rejected: set[int]) -> list[PriceChangeEntry]:
    return [e for e in entries if id(e) not in rejected]


def _short(asset_id: str) -> str:
    return asset_id if len(asset_id) <= 16 else f"{asset_id[:8]}…{asset_id[-6:]}"


def _preview(frame: str | bytes, limit: int = 80) -> str:
    text = frame if isinstance(frame, str) else frame[:limit].decode("utf-8", "replace")
    return repr(text[:limit]) + ("…" if len(frame) > limit else "")


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
        use_kernel: bool | None = None,
    ) -> None:
        """``known_assets``: when given, frames for other assets are rejected (``unknown_asset``)
        and these books exist from the start (``awaiting_snapshot``); when None every asset seen
        gets a book. ``tick_sizes``: ticks known from market data (otherwise taken from snapshots).
        ``use_kernel``: None uses the C accelerator when it is built (:mod:`core.feed.kernel`),
        False never does, True requires it (RuntimeError when it is not available).
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
        self._pending = self._set.pending
        apply_msg, kernel_status = (
            load_kernel() if use_kernel is not False else (None, "pure Python (use_kernel=False)")
        )
        if use_kernel and apply_msg is None:
            raise RuntimeError(f"the feed's C kernel is not available: {kernel_status}")
        self._apply_msg = apply_msg
        self.kernel_status = kernel_status
        self._next_flush_ns = 0  # process() checks quiet bursts at most once per burst_quiet_ms
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
            if asset_id not in self.books:
                self._set.create(asset_id)

    # ------------------------------------------------------------------ the pipeline

    def process(self, frame: str | bytes, recv_ns: int) -> list[FeedEvent]:
        """Decode one websocket frame and apply it. Never raises on bad input."""
        out: list[FeedEvent] = []
        if len(frame) > self.max_frame_bytes:
            self.counters.record(OVERSIZED_FRAME, f"{len(frame)} bytes > {self.max_frame_bytes}")
            return out
        self.frames += 1
        try:
            msg = _DECODE(frame)
        except msgspec.ValidationError as exc:
            self._slow_frame(frame, exc, recv_ns, out)
        except msgspec.DecodeError as exc:
            if frame in _PONG_TEXTS or frame.strip() in _PONG_TEXTS:
                self.pongs += 1
                out.append(Pong(recv_ns))
            else:
                self.counters.record(MALFORMED_JSON, f"{exc}: {_preview(frame)}")
        else:
            try:
                if type(msg) is PriceChangeMsg:
                    # the C kernel applies the common case and says where it stopped (-1: done)
                    apply_msg = self._apply_msg
                    start = 0 if apply_msg is None else apply_msg(msg, self.books, recv_ns, self._pending, out)
                    if start >= 0:
                        self._price_change(msg, recv_ns, out, start)
                elif type(msg) is list:
                    for item in msg:
                        self._dispatch(item, recv_ns, out)
                else:
                    self._dispatch(msg, recv_ns, out)
            except Exception as exc:  # a bug must not take the feed down: count it, log it, go on
                self.counters.record(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}: {_preview(frame)}")
                log.debug("internal error on frame", exc_info=True)
        if recv_ns >= self._next_flush_ns:
            self._next_flush_ns = recv_ns + self._quiet_ns
            if self._set.pending:
                out.extend(self._set.flush_bursts(recv_ns))
        return out

    def _dispatch(self, msg: Any, recv_ns: int, out: list[FeedEvent]) -> None:
        kind = type(msg)
        if kind is PriceChangeMsg:
            self._price_change(msg, recv_ns, out)
        elif kind is BookMsg:
            self._book(msg, recv_ns, out)
        elif kind is LastTradePriceMsg:
            self._trade(msg, recv_ns, out)
        elif kind is TickSizeChangeMsg:
            self._tick_size_change(msg, recv_ns, out)
        elif kind is BestBidAskMsg:
            self._best_bid_ask(msg, recv_ns, out)
        elif kind is NewMarketMsg:
            self._new_market(msg, recv_ns, out)
        elif kind is MarketResolvedMsg:
            self._market_resolved(msg, recv_ns, out)
        else:  # a wire type without a handler would be a bug here, not bad input
            raise TypeError(f"no handler for {kind.__name__}")

    def _slow_frame(self, frame: str | bytes, exc: Exception, recv_ns: int, out: list[FeedEvent]) -> None:
        """The frame is JSON but not all of it fits the schema: find out which events are bad,
        count each by reason and still apply the good ones."""
        try:
            raw = msgspec.json.decode(frame)
        except msgspec.DecodeError:  # pragma: no cover - the typed decoder already parsed it
            self.counters.record(MALFORMED_JSON, f"{exc}: {_preview(frame)}")
            return
        items = raw if isinstance(raw, list) else [raw]
        for item in items:
            if not isinstance(item, dict):
                self.counters.record(WRONG_TYPE, f"event is a {type(item).__name__}, not an object: {_preview(frame)}")
                continue
            event_type = item.get("event_type")
            if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
                self.counters.record(UNKNOWN_EVENT, f"event_type {event_type!r}: {_preview(frame)}")
                continue
            try:
                msg = convert_event(item)
            except msgspec.ValidationError as item_exc:
                self.counters.record(WRONG_TYPE, f"{event_type}: {item_exc}")
                continue
            self._dispatch(msg, recv_ns, out)

    # ------------------------------------------------------------------ price_change (hot path)

    def _price_change(self, msg: PriceChangeMsg, recv_ns: int, out: list[FeedEvent], start: int = 0) -> None:
        """Any of the three ``price_change`` shapes, from entry ``start`` on (the kernel applied the rest)."""
        if msg.price_changes is not None:
            self._price_changes(msg, msg.price_changes, recv_ns, out, start)
        else:
            self._old_price_change(msg, recv_ns, out)

    def _price_changes(
        self,
        msg: PriceChangeMsg,
        entries: list[PriceChangeEntry],
        recv_ns: int,
        out: list[FeedEvent],
        start: int = 0,
    ) -> None:
        # Deliberately inlined (book update, burst check): this loop is most of the feed's CPU
        # when the C kernel is not built, and the reference it is tested against. ``start``: the
        # kernel already applied the entries before it. Book.apply_units and
        # BookSet.complete_burst are the readable versions. Lookups that miss (unknown asset,
        # price not valid on the book's tick) raise KeyError into the slow path, which
        # classifies and counts; try blocks cost nothing on Python 3.11+.
        ts = msg.timestamp
        books = self.books
        size_get = _SIZE_GET
        bookset = self._set
        rejected: set[int] | None = None
        for e in entries[start:] if start else entries:
            try:
                book = books[e.asset_id]
                p = book._prices[e.price]  # empty unless the book is ok
            except KeyError:
                book, p = self._entry_slow(e, recv_ns, out)
                if book is None:
                    rejected = (rejected or set()) | {id(e)}
                    continue
            u = size_get(e.size)
            if u is None:
                try:
                    u = parse_new_size(e.size)
                except BadNumber as exc:
                    self.counters.record(exc.kind, f"{_short(book.asset_id)}: {exc}")
                    rejected = (rejected or set()) | {id(e)}
                    continue
            pend_ts = book._pend_ts
            if pend_ts != ts:
                if pend_ts is None:
                    bookset.pending[e.asset_id] = book
                else:
                    # The previous burst of this asset is complete: check it (fast path of
                    # BookSet.complete_burst). Cheapest first: the top has not moved since it
                    # last agreed with the very same carried prices -> it still agrees.
                    prev = book._pend
                    if book._moved or prev.best_bid != book._ok_bid or prev.best_ask != book._ok_ask:  # type: ignore[union-attr]
                        # an empty side reads 0 / 1 (as the venue spells it)
                        bid = book._bid_px[-1] if book._bid_px else 0
                        ask = book._ask_px[0] if book._ask_px else UNIT
                        try:
                            agrees = (
                                bid < ask
                                and _CARRIED_BID[prev.best_bid] == bid  # type: ignore[union-attr]
                                and _CARRIED_ASK[prev.best_ask] == ask  # type: ignore[union-attr]
                            )
                        except KeyError:  # an unusual spelling, or a format without carried prices
                            agrees = False
                        if agrees:
                            book._ok_bid = prev.best_bid  # type: ignore[union-attr]
                            book._ok_ask = prev.best_ask  # type: ignore[union-attr]
                            book._moved = False
                        else:
                            bookset.complete_burst(book, recv_ns, out)
                            bookset.pending[e.asset_id] = book
                book._pend_ts = ts
            book._pend = e
            book.last_update_ns = recv_ns
            # apply, noting when the top price moves (only a new or removed level can move it)
            if e.side is _BUY:
                prices = book._bid_px
                sizes = book._bid_sz
                if u:
                    if p not in sizes:
                        if not prices or p > prices[-1]:
                            book._moved = True
                        insort(prices, p)
                    sizes[p] = u
                elif sizes.pop(p, None) is not None:
                    if p == prices[-1]:
                        book._moved = True
                    del prices[bisect_left(prices, p)]
            else:
                prices = book._ask_px
                sizes = book._ask_sz
                if u:
                    if p not in sizes:
                        if not prices or p < prices[0]:
                            book._moved = True
                        insort(prices, p)
                    sizes[p] = u
                elif sizes.pop(p, None) is not None:
                    if p == prices[0]:
                        book._moved = True
                    del prices[bisect_left(prices, p)]
        if rejected is None:
            out.append(PriceChange(msg.market, ts, recv_ns, entries))
        elif len(rejected) < len(entries):
            out.append(PriceChange(msg.market, ts, recv_ns, _accepted(entries, rejected)))

    def _entry_slow(
        self, entry: PriceChangeEntry, recv_ns: int, out: list[FeedEvent]
    ) -> tuple[Book, int] | tuple[None, int]:
        """An entry that missed the fast lookups (unknown asset, unusual or bad price, a book that
        is not ok): admit, validate strictly, and decide whether the delta may be applied."""
        book = self.books.get(entry.asset_id) or self._admit(entry.asset_id)
        if book is None:
            return None, 0
        p = book._table.get(entry.price)
        if p is None:
            p = self._bad_price(entry.price, book)
            if p is None:
                return None, 0
        if book._status is not OK and not self._set.admit_delta(book, recv_ns, out):
            return None, 0
        return book, p

    def _old_price_change(self, msg: PriceChangeMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        """Legacy ``changes[]`` (asset at top level) and the oldest one-level shape. They carry no
        best prices, so a completed burst is checked for crossing only."""
        if msg.changes is not None:
            levels = [(c.price, c.size, c.side) for c in msg.changes]
        elif msg.price is not None and msg.size is not None and msg.side is not None:
            levels = [(msg.price, msg.size, msg.side)]
        else:
            self.counters.record(WRONG_TYPE, "price_change without price_changes, changes or a level")
            return
        if not msg.asset_id:
            self.counters.record(WRONG_TYPE, "price_change without asset_id")
            return
        entries = [PriceChangeEntry(msg.asset_id, price, size, side) for price, size, side in levels]
        self._price_changes(msg, entries, recv_ns, out)

    def _admit(self, asset_id: str) -> Book | None:
        if self.known_assets is not None and asset_id not in self.known_assets:
            self.counters.record(UNKNOWN_ASSET, _short(asset_id))
            return None
        return self._set.create(asset_id)

    def _bad_price(self, text: str, book: Book) -> int | None:
        """Slow path for a price not in the table or off the book's tick; counts and returns None
        unless the price is in fact valid (a spelling the table lacks)."""
        try:
            units = parse_price_units(text)
        except BadNumber as exc:
            self.counters.record(exc.kind, f"{_short(book.asset_id)}: {exc}")
            return None
        if units % book._tick_u:
            self.counters.record(OFF_TICK, f"{_short(book.asset_id)}: price {text} off tick {book.tick_size}")
            return None
        return units

    def _size(self, text: str, book: Book) -> int | None:
        """A size missing from the cache: parse strictly (and cache it), or count and reject."""
        try:
            return parse_size_units(text)
        except BadNumber as exc:
            self.counters.record(exc.kind, f"{_short(book.asset_id)}: {exc}")
            return None

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
                self.counters.record(exc.kind, f"{_short(book.asset_id)}: {exc}")
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
            if p is None or p % book._tick_u:
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
            self.counters.record(WRONG_TYPE, f"GET /book for {_short(asset_id)}: {exc}")
            return out
        except msgspec.DecodeError as exc:
            self.counters.record(MALFORMED_JSON, f"GET /book for {_short(asset_id)}: {exc}")
            return out
        if rest.asset_id and rest.asset_id != asset_id:
            self.counters.record(WRONG_TYPE, f"GET /book for {_short(asset_id)} answered {_short(rest.asset_id)}")
            return out
        book = self.books.get(asset_id) or self._admit(asset_id)
        if book is None:
            return out
        self._seed(book, rest.market, rest.bids, rest.asks, rest.tick_size, rest.timestamp, rest.hash, now, "rest", out)
        return out

    # ------------------------------------------------------------------ other events

    def _trade(self, msg: LastTradePriceMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        # a trade print changes no book, so it creates none either
        asset_id = msg.asset_id
        if self.known_assets is not None and asset_id not in self.known_assets:
            self.counters.record(UNKNOWN_ASSET, _short(asset_id))
            return
        try:
            price = parse_price_units(msg.price)
            size = parse_size_units(msg.size)
        except BadNumber as exc:
            self.counters.record(exc.kind, f"{_short(asset_id)}: last_trade_price: {exc}")
            return
        try:
            fee_bps = int(msg.fee_rate_bps or 0)
        except ValueError:
            self.counters.record(WRONG_TYPE, f"{_short(msg.asset_id)}: fee_rate_bps {msg.fee_rate_bps!r}")
            return
        out.append(
            TradePrint(
                msg.asset_id, msg.market, msg.side, price, size, fee_bps, msg.timestamp, recv_ns, msg.transaction_hash
            )
        )

    def _tick_size_change(self, msg: TickSizeChangeMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        book = self.books.get(msg.asset_id) or self._admit(msg.asset_id)
        if book is None:
            return
        try:
            new_u = parse_tick_units(msg.new_tick_size)
            old = units_to_decimal(parse_tick_units(msg.old_tick_size)) if msg.old_tick_size else None
        except BadNumber as exc:
            self.counters.record(exc.kind, f"{_short(msg.asset_id)}: {exc}")
            return
        new = units_to_decimal(new_u)
        book.set_tick_size(new, confirmed=True)
        self._set.tick_sizes[msg.asset_id] = new
        status_events: list[FeedEvent] = []
        self._set.reset(book, "tick_size_change", recv_ns, status_events)
        out.append(TickSizeChanged(msg.asset_id, msg.market, old, new, book.epoch, msg.timestamp, recv_ns))
        out.extend(status_events)

    def _best_bid_ask(self, msg: BestBidAskMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        if self.known_assets is not None and msg.asset_id not in self.known_assets:
            self.counters.record(UNKNOWN_ASSET, _short(msg.asset_id))
            return
        try:
            bid = parse_best_units(msg.best_bid)
            ask = parse_best_units(msg.best_ask)
        except BadNumber as exc:
            self.counters.record(exc.kind, f"{_short(msg.asset_id)}: {exc}")
            return
        out.append(BestBidAsk(msg.asset_id, msg.market, bid, ask, msg.timestamp, recv_ns))

    def _new_market(self, msg: NewMarketMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        tick: Decimal | None = None
        if msg.order_price_min_tick_size:
            try:
                tick = units_to_decimal(parse_tick_units(msg.order_price_min_tick_size))
            except BadNumber as exc:
                self.counters.record(exc.kind, f"new_market {msg.market[:12]}: {exc}")
        asset_ids = tuple(msg.assets_ids or msg.clob_token_ids)
        event_slug = msg.event_message.slug if msg.event_message is not None else ""
        out.append(
            NewMarket(
                msg.market or msg.condition_id,
                msg.question,
                msg.slug,
                asset_ids,
                tuple(msg.outcomes),
                tick,
                msg.active,
                tuple(msg.tags),
                msg.timestamp,
                recv_ns,
                msg.id,
                event_slug,
                msg.group_item_title,
            )
        )

    def _market_resolved(self, msg: MarketResolvedMsg, recv_ns: int, out: list[FeedEvent]) -> None:
        out.append(
            MarketResolved(
                msg.market, tuple(msg.assets_ids), msg.winning_asset_id, msg.winning_outcome, msg.timestamp, recv_ns
            )
        )

    # ------------------------------------------------------------------ time-driven checks

    def flush_bursts(self, now_ns: int) -> list[FeedEvent]:
        """Check bursts quiet for ``burst_quiet_ms`` (call from a timer; ``process`` also does it)."""
        self._next_flush_ns = now_ns + self._quiet_ns
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
