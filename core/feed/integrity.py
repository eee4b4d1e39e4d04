"""The per-asset book set and its integrity rules (statuses, faults, bursts, staleness).

Rules (Polymarket's real feed):

- A book is ``awaiting_snapshot`` until a ``book`` event (or a ``GET /book`` response) seeds it.
- A delta before any snapshot (in the current epoch) is not applied: the book becomes
  ``inconsistent`` (fault ``delta_before_snapshot``); later deltas are counted (``no_snapshot``).
- One match arrives as several frames with the same timestamp, and the ``best_bid``/``best_ask``
  on every entry describe the book after the whole match. So the local top of book is compared
  with them only once the burst is complete: when the next timestamp arrives for that asset, or
  when the burst has been quiet for ``burst_quiet_ms`` (:meth:`BookSet.flush_bursts`). Then a
  crossed book (fault ``crossed``) or a top that differs (fault ``mismatch``) makes the book
  ``inconsistent`` and calls ``on_inconsistent(asset_id)`` so the service can re-seed it.
- ``tick_size_change`` starts a new epoch: levels dropped, ``awaiting_snapshot``.
- No update for ``staleness_ms`` turns an ``ok`` book ``stale``; the next update (or snapshot)
  makes it ``ok`` again. A snapshot always makes a book ``ok`` (unless it is itself crossed).

The rules themselves are :class:`core.feed.book.Book`'s; this module applies a ``price_change``
(:meth:`BookSet.apply_changes`, the feed's hot loop) and reports what the rules find. It is
compiled with book.py when a compiler is present (:mod:`core.feed.kernel`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, Protocol

import msgspec

from core.feed.book import Book
from core.feed.counters import (
    FAULT_CROSSED,
    FAULT_DELTA_BEFORE_SNAPSHOT,
    FAULT_KINDS,
    NO_SNAPSHOT,
    Counters,
    short_id,
)
from core.feed.events import BookStatusChanged, FeedEvent
from core.feed.numbers import BadNumber, parse_size_units, price_decimal
from core.feed.wire import PriceChangeEntry
from core.types import BookStatus, Side

log = logging.getLogger("core.feed.integrity")

OK: Final = BookStatus.OK
STALE: Final = BookStatus.STALE
INCONSISTENT: Final = BookStatus.INCONSISTENT
AWAITING: Final = BookStatus.AWAITING_SNAPSHOT

DEFAULT_TICK: Final = Decimal("0.01")
_BUY: Final = Side.BUY

EntryFields = tuple[str, str, str, Side, str | None, str | None]
"""A :class:`PriceChangeEntry`'s fields in declaration order (asset_id, price, size, side, best_bid, best_ask)."""
_fields: Final = msgspec.structs.astuple


class EntryChecks(Protocol):
    """The strict path for an entry whose book and price the fast lookups did not settle (the
    processor's): it classifies and counts what it rejects."""

    def check_entry(self, entry: PriceChangeEntry, recv_ns: int, out: list[FeedEvent]) -> tuple[Book, int] | None:
        """(book, price units) when the entry may be applied; None when it was rejected."""
        ...


def _fmt(units: int | None) -> str:
    return "-" if units is None else str(price_decimal(units))


class BookSet:
    """Books by asset id plus the state the integrity rules need."""

    def __init__(
        self,
        *,
        errors: Counters,
        staleness_ms: int = 60_000,
        burst_quiet_ms: int = 50,
        tick_sizes: Mapping[str, Decimal] | None = None,
        on_inconsistent: Callable[[str], None] | None = None,
    ) -> None:
        self.books: dict[str, Book] = {}
        # the books whose burst opened since a flush last saw them, each once (Book.queued), in
        # the order they were queued: appending costs no hashing and no probe into a table that
        # 10,000 books make cold; a flush drops what it no longer needs (closed, dropped, forgotten)
        self.queue: list[Book] = []
        self.errors = errors
        self.faults = Counters(log, "book integrity fault")
        self.staleness_ns = staleness_ms * 1_000_000
        self.quiet_ns = burst_quiet_ms * 1_000_000
        self.tick_sizes: dict[str, Decimal] = dict(tick_sizes or {})
        self.on_inconsistent = on_inconsistent
        self.hook_failures = 0

    # ------------------------------------------------------------------ books

    def create(self, asset_id: str) -> Book:
        tick = self.tick_sizes.get(asset_id)
        book = Book(asset_id, tick if tick is not None else DEFAULT_TICK, tick_confirmed=tick is not None)
        self._unlist(self.books.get(asset_id))
        self.books[asset_id] = book
        book.listed = True
        return book

    def forget(self, asset_id: str) -> None:
        """The asset is no longer followed: its book and any open burst go (no stale alert later)."""
        self._unlist(self.books.pop(asset_id, None))  # a flush drops an unlisted book unchecked

    @property
    def pending(self) -> dict[str, Book]:
        """The books with an unchecked same-timestamp burst, by asset id (a new dict: for tests
        and tools, not the hot path)."""
        return {b.asset_id: b for b in self.queue if b.queued and b.listed and b.burst_open}

    @staticmethod
    def _unlist(book: Book | None) -> None:
        """A book leaves the set: no entry may reach it through another book's ``follower``."""
        if book is not None:
            book.listed = False
            book.follower = None

    # ------------------------------------------------------------------ status

    def set_status(self, book: Book, new: BookStatus, reason: str, recv_ns: int, out: list[FeedEvent]) -> None:
        old = book.raw_status
        if old is new:
            return
        book.set_status(new)
        out.append(BookStatusChanged(book.asset_id, old, new, reason, recv_ns))
        if new is INCONSISTENT and self.on_inconsistent is not None:
            try:
                self.on_inconsistent(book.asset_id)
            except Exception:  # the hook is the service's; a failure there must not stop the feed
                self.hook_failures += 1
                log.exception("on_inconsistent hook failed for %s", short_id(book.asset_id))

    def fault(self, book: Book, kind: str, detail: str, recv_ns: int, out: list[FeedEvent]) -> None:
        book.faults[kind] = book.faults.get(kind, 0) + 1
        self.faults.record(kind, f"{short_id(book.asset_id)}: {detail}")
        self.set_status(book, INCONSISTENT, kind, recv_ns, out)

    # ------------------------------------------------------------------ transitions

    def seed(
        self,
        book: Book,
        bids: Iterable[tuple[int, int]],
        asks: Iterable[tuple[int, int]],
        recv_ns: int,
        out: list[FeedEvent],
        reason: str = "snapshot",
    ) -> None:
        book.seed_units(bids, asks, recv_ns)  # drops an open burst unchecked
        if book.is_crossed():
            self.fault(
                book,
                FAULT_CROSSED,
                f"{reason} crossed: bid {_fmt(book.best_bid_units())} >= ask {_fmt(book.best_ask_units())}",
                recv_ns,
                out,
            )
        else:
            self.set_status(book, OK, reason, recv_ns, out)

    def admit_delta(self, book: Book, recv_ns: int, out: list[FeedEvent]) -> bool:
        """Called for a delta on a book whose stored status is not ``ok``: may it be applied?"""
        if not book.seeded:
            if book.raw_status is INCONSISTENT:
                self.errors.record(NO_SNAPSHOT, f"{short_id(book.asset_id)}: delta skipped, book has no snapshot")
            else:
                self.fault(book, FAULT_DELTA_BEFORE_SNAPSHOT, "delta before any snapshot (not applied)", recv_ns, out)
            return False
        if book.raw_status is STALE:
            self.set_status(book, OK, "update", recv_ns, out)
        return True

    def apply_changes(
        self,
        entries: list[PriceChangeEntry],
        ts_ms: int,
        recv_ns: int,
        out: list[FeedEvent],
        checks: EntryChecks,
    ) -> list[PriceChangeEntry]:
        """Apply a ``price_change``'s entries in order: the feed's hot loop. Returns the entries
        applied (``entries`` itself when none was rejected)."""
        books = self.books
        accepted: list[PriceChangeEntry] | None = None
        previous: Book | None = None  # the book of the entry before
        for i, entry in enumerate(entries):
            # every field at once: compiled, one call instead of six generic attribute reads
            fields: EntryFields = _fields(entry)
            asset_id, price_text, size_text, side, best_bid, best_ask = fields
            # the book that followed the previous entry's last time, if it is this one: with
            # 10,000 books a dict lookup costs cache misses (its slot, its key) this one does not
            book = None if previous is None else previous.follower
            if book is None or not book.listed or book.asset_id != asset_id:
                book = books.get(asset_id)
                if previous is not None and book is not None:
                    previous.follower = book
            previous = book
            # Any: compiled, a narrowed int would be unboxed, then boxed anew for the book (see Book.apply_units)
            price: Any = None if book is None else book.price_units(price_text)
            if book is None or price is None:
                checked = checks.check_entry(entry, recv_ns, out)
                if checked is None:
                    if accepted is None:
                        accepted = entries[:i]
                    continue
                book, price = checked
            try:
                size = parse_size_units(size_text)
            except BadNumber as exc:
                self.errors.record(exc.kind, f"{short_id(book.asset_id)}: {exc}")
                if accepted is None:
                    accepted = entries[:i]
                continue
            if book.starts_burst(ts_ms):
                if book.burst_open:  # then the book is queued already: its next burst starts now
                    self.complete_burst(book, recv_ns, out)
                elif not book.queued:
                    book.queued = True
                    self.queue.append(book)
            book.apply_change(ts_ms, side is _BUY, best_bid, best_ask, price, size, recv_ns)
            if accepted is not None:
                accepted.append(entry)
        return entries if accepted is None else accepted

    def complete_burst(self, book: Book, recv_ns: int, out: list[FeedEvent]) -> None:
        """The burst of ``book`` is over: check it against the best prices the feed carried."""
        found = book.close_burst()
        if found is None:
            return
        kind, detail = found
        if kind in FAULT_KINDS:
            self.fault(book, kind, detail, recv_ns, out)
        else:
            self.errors.record(kind, f"{short_id(book.asset_id)}: {detail}")

    def flush_bursts(self, now_ns: int) -> list[FeedEvent]:
        """Check every burst that has been quiet for ``burst_quiet_ms``, in the order they were
        queued (see :attr:`queue`)."""
        out: list[FeedEvent] = []
        queue = self.queue
        if not queue:
            return out
        latest = now_ns - self.quiet_ns  # quiet: last updated at or before this
        # the queue holds the books that received data since about the last flush: one pass over
        # it, each book read once (its first cache line), the ones still open kept in order
        kept: list[Book] = []
        for book in queue:
            if book.burst_open and book.listed:
                if book.last_update_ns > latest:
                    kept.append(book)
                    continue
                book.queued = False
                self.complete_burst(book, now_ns, out)
            else:  # closed already, dropped by a snapshot or a reset, or its asset forgotten
                book.queued = False
        self.queue = kept
        return out

    def flush_all(self, now_ns: int) -> list[FeedEvent]:
        """Check every open burst now (end of a replay)."""
        out: list[FeedEvent] = []
        queue = self.queue
        self.queue = []
        for book in queue:
            book.queued = False
            if book.burst_open and book.listed:
                self.complete_burst(book, now_ns, out)
        return out

    def check_staleness(self, now_ns: int) -> list[FeedEvent]:
        out: list[FeedEvent] = []
        limit = self.staleness_ns
        for book in self.books.values():
            if book.raw_status is OK and now_ns - book.last_update_ns > limit:
                age_ms = (now_ns - book.last_update_ns) // 1_000_000
                self.set_status(book, STALE, f"no update for {age_ms} ms", now_ns, out)
        return out

    def reset(self, book: Book, reason: str, recv_ns: int, out: list[FeedEvent]) -> None:
        """Drop the book's levels, start a new epoch and wait for a snapshot."""
        book.clear()  # drops an open burst unchecked
        book.epoch += 1
        self.set_status(book, AWAITING, reason, recv_ns, out)
