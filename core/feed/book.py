"""L2 order book of one asset (token).

Exact integers inside: prices and sizes in 10^-6 units. Each side is a sorted price list with its
best price last (bids ascending, asks descending: most changes are there, so they move nothing;
a binary search finds the rest, books being tens of levels deep) and a parallel unsigned 64-bit
``array`` of sizes (a list once one is beyond 64 bits): with 10,000 books an update releases no cold boxed
size, and a book is a few hundred bytes a side. The best prices are also kept in the book object,
so checking a burst reads no level list. The public API (:class:`core.types.BookView`) speaks
``Decimal``; ``*_units`` methods are for the hot path and for storage.

Status: ``awaiting_snapshot`` until a snapshot seeds the book, then ``ok``; the feed's
integrity logic (:mod:`core.feed.integrity`) moves it to ``inconsistent``/``stale``. While a
same-timestamp burst is being applied the book can be crossed for a moment; ``status`` then
reads ``inconsistent`` (without counting a fault) so nothing ever trades on a crossed book.

The book rules live here and only here: how a level change applies (:meth:`Book.apply_change`),
when a burst of same-timestamp changes begins and ends, and how a finished burst is checked
against the best prices the venue carried (:meth:`Book.close_burst`). :mod:`core.feed.integrity`
reports what they find. This module is the feed's hot path; when a compiler is present the build
compiles it (with integrity.py, numbers.py and processor.py) with mypyc, unchanged: see
:mod:`core.feed.kernel`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, MutableSequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from core.feed.counters import FAULT_CROSSED, FAULT_DELTA_BEFORE_SNAPSHOT, FAULT_MISMATCH
from core.feed.numbers import (
    PRICE_OBJECTS,
    UNIT,
    BadNumber,
    decimal_to_units,
    index_ascending,
    index_descending,
    parse_best_units,
    plain_price_units,
    price_decimal,
    price_table,
    shared_price,
    units_to_decimal,
    walk_levels,
)
from core.types import BookStatus, Level, Side

if TYPE_CHECKING:  # compiled, a native 64-bit integer; at run time only an annotation
    from mypy_extensions import i64

_OK: Final = BookStatus.OK
_INCONSISTENT: Final = BookStatus.INCONSISTENT
_AWAITING: Final = BookStatus.AWAITING_SNAPSHOT
_NO_PRICES: Final[dict[str, int]] = {}
_NO_TICK: Final = Decimal(0)
# a burst's carried best price, when not in units: not carried (legacy formats: nothing to
# check on that side), or a text the tick's price table lacks (parsed when the burst is checked)
_NOT_CARRIED: Final = -1
_UNUSUAL: Final = -2
# both carried best prices in one int: (bid + 2) << _SHIFT | (ask + 2) (prices are < 2**20)
_SHIFT: Final = 21
_LOW: Final = (1 << _SHIFT) - 1
_NOTHING_CARRIED: Final = (_NOT_CARRIED + 2) << _SHIFT | (_NOT_CARRIED + 2)
_ODD: Final = _UNUSUAL + 2  # a packed _UNUSUAL
# sizes up to here go in an unsigned 64-bit array (its stores skip the argument parser the signed
# types use): compiled, a compare with this bound stays native. 'L' where it is 64 bits: its
# stores read the digits directly, where 'Q' goes through _PyLong_AsByteArray from 2**30 up
_MAX_PACKED: Final = 2**62 - 1
_SIZE_CODE: Final = "L" if array("L").itemsize == 8 else "Q"
_NO_BEST: Final = 0  # a side's best price when it is empty (prices are > 0)

Sizes = MutableSequence[int]
"""A side's sizes, parallel to its ascending prices: an array, or a list once one does not fit."""

BurstFault = tuple[str, str]
"""(kind, detail) of a finished burst that failed its check: kind is a fault (``crossed``,
``mismatch``) or, for a carried best price that is not a number, the rejection reason."""


def _fmt(units: int | None) -> str:
    return "-" if units is None else str(price_decimal(units))


def _levels(levels: Iterable[tuple[int, int]], descending: bool) -> tuple[list[int], Sizes]:
    """(prices in order, their sizes) without zero sizes, a repeated price keeping its last
    (non-zero) size; the prices are the shared price objects (see apply_units)."""
    shared = PRICE_OBJECTS
    by_price: dict[int, int] = {}
    for price, size in levels:
        if size:
            key: Any = shared.get(price, price)
            by_price[key] = size
    prices = sorted(by_price, reverse=descending)
    return prices, _sizes([by_price[p] for p in prices])


def _sizes(values: list[int]) -> Sizes:
    """Sizes packed in an array, or kept in a list when one is beyond 64 bits."""
    if values and max(values) > _MAX_PACKED:
        return values
    return array(_SIZE_CODE, values)


class Book:
    """One asset's L2 book. Implements :class:`core.types.BookView`."""

    def __init__(self, asset_id: str, tick_size: Decimal = Decimal("0.01"), *, tick_confirmed: bool = True) -> None:
        # Compiled, attributes are laid out in the order first assigned (flags as adjacent bytes):
        # what one entry touches fills the object's first 128 bytes, and two spare words give it
        # a 256-byte pymalloc block, which (after the 16-byte GC header) starts on a 64-byte line:
        # two cache lines per book and entry (with 10,000 books a book is rarely still cached
        # when its next entry comes); the rest after. Checked by tests/unit/test_book_ops.py.
        self._grid = 0  # the grid prices are validated against while the book is ok, else 0
        # the open same-timestamp burst: its timestamp and the best prices its latest entry
        # carried, both in one int (_SHIFT), as units or _NOT_CARRIED / _UNUSUAL (then the text
        # is kept): a burst keeps no strings (memory, cache misses)
        self._pend_ts = 0
        self._want = _NOTHING_CARRIED
        self.last_update_ns = 0
        # the best price of each side (_NO_BEST when empty), kept by every change to the levels
        self._best_bid = _NO_BEST
        self._best_ask = _NO_BEST
        self._bid_px: list[int] = []  # ascending: best bid is the last element
        self._ask_px: list[int] = []  # descending: best ask is the last element
        self._bid_sz: Sizes = array(_SIZE_CODE)  # parallel to the prices
        self._ask_sz: Sizes = array(_SIZE_CODE)
        # kept by core.feed.integrity.BookSet: the book whose entry followed this one's last (a
        # market's tokens come together: likely again), is this the set's book for its asset, is
        # it in BookSet.queue (a burst opened since a flush last saw the book)
        self.asset_id = asset_id
        self.follower: Book | None = None
        self._burst = False
        self.seeded = False
        self.listed = False
        self.queued = False
        # (the fields above end at byte 124)
        self._status = _AWAITING
        self._tick_u = 0  # the grid prices are validated against (see grid_units)
        self._spare = (0, 0)  # the two spare words (see above)
        self._odd_bid: str | None = None
        self._odd_ask: str | None = None
        self._table: dict[str, int] = _NO_PRICES
        self.market = ""
        self.epoch = 0
        self.last_ts_ms = 0
        self.faults: dict[str, int] = {}
        self._tick = _NO_TICK
        self.tick_confirmed = False
        self.set_tick_size(tick_size, confirmed=tick_confirmed)

    # ------------------------------------------------------------------ BookView

    @property
    def status(self) -> BookStatus:
        status = self._status
        if status is _OK and self.is_crossed():
            return _INCONSISTENT
        return status

    @property
    def raw_status(self) -> BookStatus:
        """The stored status, without the transient crossed-mid-burst override."""
        return self._status

    @property
    def tick_size(self) -> Decimal:
        return self._tick

    @property
    def tick_units(self) -> int:
        return decimal_to_units(self._tick)

    def best_bid(self) -> Decimal | None:
        return price_decimal(self._best_bid) if self._best_bid else None

    def best_ask(self) -> Decimal | None:
        return price_decimal(self._best_ask) if self._best_ask else None

    def best_bid_units(self) -> int | None:
        return self._best_bid if self._best_bid else None

    def best_ask_units(self) -> int | None:
        return self._best_ask if self._best_ask else None

    def bids(self, depth: int | None = None) -> list[Level]:
        return [(price_decimal(p), units_to_decimal(s)) for p, s in self.bids_units(depth)]

    def asks(self, depth: int | None = None) -> list[Level]:
        return [(price_decimal(p), units_to_decimal(s)) for p, s in self.asks_units(depth)]

    def bids_units(self, depth: int | None = None) -> list[tuple[int, int]]:
        return self._best_first(self._bid_px, self._bid_sz, depth)

    def asks_units(self, depth: int | None = None) -> list[tuple[int, int]]:
        return self._best_first(self._ask_px, self._ask_sz, depth)

    @staticmethod
    def _best_first(prices: list[int], sizes: Sizes, depth: int | None) -> list[tuple[int, int]]:
        n = len(prices)
        stop = 0 if depth is None else max(n - depth, 0)
        return [(prices[i], sizes[i]) for i in range(n - 1, stop - 1, -1)]

    def depth(self, n: int | None = None) -> tuple[list[Level], list[Level]]:
        """(bids, asks), each best-first and at most ``n`` levels."""
        return self.bids(n), self.asks(n)

    def level_counts(self) -> tuple[int, int]:
        return len(self._bid_px), len(self._ask_px)

    def size_at(self, side: Side, price: Decimal) -> Decimal:
        units = decimal_to_units(price)
        if side is Side.BUY:
            prices, sizes = self._bid_px, self._bid_sz
            i = index_ascending(prices, units)
        else:
            prices, sizes = self._ask_px, self._ask_sz
            i = index_descending(prices, units)
        return units_to_decimal(sizes[i] if i < len(prices) and prices[i] == units else 0)

    def mid(self) -> Decimal | None:
        if not self._best_bid or not self._best_ask:
            return None
        return units_to_decimal(self._best_bid + self._best_ask) / 2

    def spread(self) -> Decimal | None:
        if not self._best_bid or not self._best_ask:
            return None
        return units_to_decimal(self._best_ask - self._best_bid)

    def is_crossed(self) -> bool:
        bid = self._best_bid
        ask = self._best_ask
        return bool(bid and ask and bid >= ask)

    # ------------------------------------------------------------------ walking the book

    def cost_to_buy(self, size: Decimal) -> tuple[Decimal, Decimal | None, Decimal]:
        """Take ``size`` shares from the asks: (cost, average price, shares filled).

        ``cost`` and ``filled`` are exact; the average is ``cost / filled`` (None when nothing
        fills). ``filled < size`` when the book is too thin.
        """
        return walk_levels(self.asks_units(), size)

    def proceeds_to_sell(self, size: Decimal) -> tuple[Decimal, Decimal | None, Decimal]:
        """Hit the bids with ``size`` shares: (proceeds, average price, shares filled)."""
        return walk_levels(self.bids_units(), size)

    # ------------------------------------------------------------------ mutation (public, Decimal)

    def apply_snapshot(
        self,
        bids: Iterable[tuple[Decimal | str, Decimal | str]],
        asks: Iterable[tuple[Decimal | str, Decimal | str]],
        ts: int,
        tick_size: Decimal | None = None,
    ) -> None:
        """Replace the book. Level order does not matter (the wire sends bids ascending and asks
        descending); zero sizes are ignored. ``ts`` is the receive time in ns.
        Raises ValueError on a negative size or a price off the tick / outside (0, 1).
        """
        if tick_size is not None:
            self.set_tick_size(tick_size, confirmed=True)
        self.seed_units(self._checked(bids), self._checked(asks), ts)
        self.set_status(_INCONSISTENT if self.is_crossed() else _OK)
        if self._status is _INCONSISTENT:
            self.faults[FAULT_CROSSED] = self.faults.get(FAULT_CROSSED, 0) + 1

    def apply_level(self, side: Side, price: Decimal | str, size: Decimal | str, ts: int) -> bool:
        """Set the absolute size of one level (0 removes it). A delta before any snapshot is not
        applied: the book becomes ``inconsistent`` and False is returned.
        """
        p, s = self._check_level(price, size)
        if not self.seeded:
            self.faults[FAULT_DELTA_BEFORE_SNAPSHOT] = self.faults.get(FAULT_DELTA_BEFORE_SNAPSHOT, 0) + 1
            self.set_status(_INCONSISTENT)
            return False
        self.apply_units(side is Side.BUY, p, s)
        self.last_update_ns = ts
        return True

    def _checked(self, levels: Iterable[tuple[Decimal | str, Decimal | str]]) -> list[tuple[int, int]]:
        return [self._check_level(p, s) for p, s in levels]

    def _check_level(self, price: Decimal | str, size: Decimal | str) -> tuple[int, int]:
        p = decimal_to_units(Decimal(price))
        s = decimal_to_units(Decimal(size))
        if not 0 < p < UNIT:
            raise ValueError(f"price {price} outside (0, 1)")
        if p % self._tick_u:
            raise ValueError(f"price {price} is off the tick {self._tick}")
        if s < 0:
            raise ValueError(f"negative size {size}")
        return p, s

    # ------------------------------------------------------------------ mutation (units, hot path)

    def apply_units(self, is_bid: bool, price: Any, size: int) -> None:
        """Absolute size of one level in units (0 removes it); no validation (the caller validated).
        ``price`` is an int, Any because compiled code would otherwise unbox it and box it anew:
        the hot path passes the shared objects of :data:`core.feed.numbers.PRICE_OBJECTS`."""
        units: int = price  # compared unboxed; the object itself goes into the list
        # the best price is last: its index, or the end for a better one, is known without a search
        if is_bid:
            prices, sizes = self._bid_px, self._bid_sz
            best = self._best_bid
            better = units > best
        else:
            prices, sizes = self._ask_px, self._ask_sz
            best = self._best_ask
            better = units < best or best == _NO_BEST
        if units == best:
            i = len(prices) - 1
            found = True
        elif better:
            i = len(prices)
            found = False
        else:  # behind the best, so i < len(prices)
            i = index_ascending(prices, units) if is_bid else index_descending(prices, units)
            found = prices[i] == units
        if found:
            if size:
                if size > _MAX_PACKED:
                    sizes = self._unpacked(is_bid)
                sizes[i] = size
                return  # the same prices: the same best
            prices.pop(i)  # compiled, a native call where del is a generic one
            del sizes[i]
        elif size:
            if size > _MAX_PACKED:
                sizes = self._unpacked(is_bid)
            prices.insert(i, price)
            sizes.insert(i, size)
        else:
            return  # removing a level the book does not have
        if is_bid:
            self._best_bid = prices[-1] if prices else _NO_BEST
        else:
            self._best_ask = prices[-1] if prices else _NO_BEST

    def _unpacked(self, is_bid: bool) -> Sizes:
        """A side's sizes as a list (a size beyond 64 bits is coming): rare, and for good."""
        if is_bid:
            self._bid_sz = list(self._bid_sz)
            return self._bid_sz
        self._ask_sz = list(self._ask_sz)
        return self._ask_sz

    def price_units(self, text: str) -> Any:
        """A price's units (the shared object, see :meth:`apply_units`) when the book is ``ok``
        and the text is a plain spelling (``0.`` and up to six digits) on its grid; None
        otherwise (the caller's strict path decides)."""
        grid: i64 = self._grid
        if not grid:  # the book is not ok
            return None
        units = plain_price_units(text)
        if not units or units % grid:
            return None
        return shared_price(units)

    def grid_price_units(self, text: str) -> int | None:
        """:meth:`price_units` whatever the status."""
        return self._table.get(text)

    @property
    def grid_units(self) -> int:
        """The grid prices are validated against: the tick, or the finest usual tick while the
        tick is only assumed."""
        return self._tick_u

    # ------------------------------------------------------------------ bursts

    def starts_burst(self, ts_ms: int) -> bool:
        """Does a change stamped ``ts_ms`` begin a new burst? (Then any open one is finished:
        call :meth:`close_burst` first.)"""
        return not self._burst or self._pend_ts != ts_ms

    @property
    def burst_open(self) -> bool:
        return self._burst

    def apply_change(
        self, ts_ms: int, is_bid: bool, best_bid: str | None, best_ask: str | None, price: Any, size: int, recv_ns: int
    ) -> None:
        """Apply one validated ``price_change`` entry (its side, carried best prices, price as
        int units, see :meth:`apply_units`, and size) as part of the burst stamped ``ts_ms``."""
        self._burst = True
        self._pend_ts = ts_ms
        # the text of an unusual one is kept apart (_odd_*, set only while its side is _UNUSUAL)
        before = self._want
        bid: i64 = _NOT_CARRIED
        if best_bid is not None:  # (an if, not a conditional expression: compiled, that one is boxed)
            bid = plain_price_units(best_bid)
        if not bid:  # an empty side, an unusual spelling or not a price: decided when checked
            bid = _UNUSUAL
            self._odd_bid = best_bid
        elif before >> _SHIFT == _ODD:
            self._odd_bid = None
        ask: i64 = _NOT_CARRIED
        if best_ask is not None:
            ask = plain_price_units(best_ask)
        if not ask:
            ask = _UNUSUAL
            self._odd_ask = best_ask
        elif before & _LOW == _ODD:
            self._odd_ask = None
        self._want = (bid + 2) << _SHIFT | (ask + 2)
        self.last_update_ns = recv_ns
        self.apply_units(is_bid, price, size)

    def close_burst(self) -> BurstFault | None:
        """The open burst is finished: check the top against the best prices its last entry
        carried (they describe the book after the whole burst; an empty side reads ``""``, "0"
        for bids or "1" for asks). None when it agrees or there is nothing to check."""
        if not self._burst:
            return None
        carried_bid = (self._want >> _SHIFT) - 2
        carried_ask = (self._want & _LOW) - 2
        odd_bid = self._odd_bid if carried_bid == _UNUSUAL else None
        odd_ask = self._odd_ask if carried_ask == _UNUSUAL else None
        self.drop_burst()
        if not self._grid or not self.seeded:  # (_grid is 0 unless the book is ok)
            return None
        if carried_bid == self._best_bid and carried_ask == self._best_ask and 0 < carried_bid < carried_ask:
            return None  # the usual case: both sides carried, both equal to the book's, not crossed
        bid = self.best_bid_units()
        ask = self.best_ask_units()
        if bid is not None and ask is not None and bid >= ask:
            return FAULT_CROSSED, f"crossed after burst: bid {_fmt(bid)} >= ask {_fmt(ask)}"
        want_bid: int | None = bid
        want_ask: int | None = ask
        try:
            if carried_bid >= 0:
                want_bid = carried_bid
            elif carried_bid == _UNUSUAL and odd_bid is not None:
                want_bid = parse_best_units(odd_bid)
            if carried_ask >= 0:
                want_ask = carried_ask
            elif carried_ask == _UNUSUAL and odd_ask is not None:
                want_ask = parse_best_units(odd_ask)
        except BadNumber as exc:
            return exc.kind, f"carried best price: {exc}"
        if want_bid != bid or want_ask != ask:
            detail = f"local top {_fmt(bid)}/{_fmt(ask)} but feed says {_fmt(want_bid)}/{_fmt(want_ask)}"
            return FAULT_MISMATCH, detail
        return None

    def drop_burst(self) -> None:
        """Forget the open burst unchecked (a snapshot or a reset replaces what it changed)."""
        self._burst = False
        if self._want >> _SHIFT == _ODD:  # (otherwise there is no text to forget)
            self._odd_bid = None
        if self._want & _LOW == _ODD:
            self._odd_ask = None

    def seed_units(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]], ts_ns: int) -> None:
        """Replace both sides (any order; zero sizes dropped; a repeated price keeps the last size).
        Leaves ``status`` to the caller."""
        self._bid_px, self._bid_sz = _levels(bids, descending=False)
        self._ask_px, self._ask_sz = _levels(asks, descending=True)
        self._best_bid = self._bid_px[-1] if self._bid_px else _NO_BEST
        self._best_ask = self._ask_px[-1] if self._ask_px else _NO_BEST
        self.seeded = True
        self.last_update_ns = ts_ns
        self.drop_burst()

    def clear(self) -> None:
        """Drop every level and the snapshot; the book waits for a new one."""
        self._bid_px, self._ask_px = [], []
        self._bid_sz, self._ask_sz = array(_SIZE_CODE), array(_SIZE_CODE)
        self._best_bid = self._best_ask = _NO_BEST
        self.seeded = False
        self.drop_burst()

    def set_status(self, status: BookStatus) -> None:
        self._status = status
        self._grid = self._tick_u if status is _OK else 0  # the fast path only sees prices of ok books

    def set_tick_size(self, tick: Decimal | str, *, confirmed: bool = True) -> None:
        tick_dec = Decimal(tick)
        tick_u = decimal_to_units(tick_dec)
        if not 0 < tick_u < UNIT:
            raise ValueError(f"tick size {tick} outside (0, 1)")
        self._tick = price_decimal(tick_u)  # cached: books with one tick share one Decimal
        self.tick_confirmed = confirmed
        # an unconfirmed (assumed) tick validates against the finest grid the venue uses, so
        # a wrong assumption cannot reject valid levels
        self._tick_u = tick_u if confirmed else min(tick_u, 100)
        self._grid = self._tick_u if self._status is _OK else 0
        self._table = price_table(self._tick_u)  # valid price text -> units, for the strict path

    def __repr__(self) -> str:
        nb, na = self.level_counts()
        return (
            f"Book({self.asset_id[:12]}…, {self.status}, bid={self.best_bid()} ask={self.best_ask()}, "
            f"levels={nb}/{na}, tick={self._tick}, epoch={self.epoch})"
        )
