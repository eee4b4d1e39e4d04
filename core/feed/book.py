"""L2 order book of one asset (token).

Internally exact integers: prices and sizes in 10^-6 units, each side a dict price -> size
plus a sorted price list (bisect keeps it ordered; books are tens of levels deep, so the
memmove of an insert is cheaper than any tree). The public API (:class:`core.types.BookView`)
speaks ``Decimal``; ``*_units`` methods are for the hot path and for storage.

Status: ``awaiting_snapshot`` until a snapshot seeds the book, then ``ok``; the feed's
integrity logic (:mod:`core.feed.integrity`) moves it to ``inconsistent``/``stale``. While a
same-timestamp burst is being applied the book can be crossed for a moment; ``status`` then
reads ``inconsistent`` (without counting a fault) so nothing ever trades on a crossed book.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from decimal import Decimal

from core.feed.counters import FAULT_CROSSED, FAULT_DELTA_BEFORE_SNAPSHOT
from core.feed.wire import UNIT, decimal_to_units, price_decimal, price_table, units_to_decimal
from core.types import BookStatus, Level, Side

_OK = BookStatus.OK
_INCONSISTENT = BookStatus.INCONSISTENT
_AWAITING = BookStatus.AWAITING_SNAPSHOT
_NO_PRICES: dict[str, int] = {}


class Book:
    """One asset's L2 book. Implements :class:`core.types.BookView`."""

    __slots__ = (
        "_ask_px",
        "_ask_sz",
        "_bid_px",
        "_bid_sz",
        "_moved",
        "_ok_ask",
        "_ok_bid",
        "_pend",
        "_pend_ts",
        "_prices",
        "_status",
        "_table",
        "_tick",
        "_tick_u",
        "asset_id",
        "epoch",
        "faults",
        "last_ts_ms",
        "last_update_ns",
        "market",
        "seeded",
        "tick_confirmed",
    )

    def __init__(self, asset_id: str, tick_size: Decimal = Decimal("0.01"), *, tick_confirmed: bool = True) -> None:
        self.asset_id = asset_id
        self.market = ""
        self._bid_px: list[int] = []  # ascending: best bid is the last element
        self._ask_px: list[int] = []  # ascending: best ask is the first element
        self._bid_sz: dict[int, int] = {}
        self._ask_sz: dict[int, int] = {}
        self._status = _AWAITING
        self.seeded = False
        self.epoch = 0
        self.last_update_ns = 0
        self.last_ts_ms = 0
        self.faults: dict[str, int] = {}
        # same-timestamp burst bookkeeping (owned by core.feed.integrity)
        self._pend_ts: int | None = None
        self._pend: object | None = None
        # the carried best prices the top last agreed with, and whether the top moved since
        self._moved = True
        self._ok_bid: str | None = None
        self._ok_ask: str | None = None
        self._tick = Decimal(0)
        self._tick_u = 0
        self._table: dict[str, int] = {}
        self._prices: dict[str, int] = _NO_PRICES
        self.tick_confirmed = False
        self.set_tick_size(tick_size, confirmed=tick_confirmed)

    # ------------------------------------------------------------------ BookView

    @property
    def status(self) -> BookStatus:
        status = self._status
        if status is _OK and self._bid_px and self._ask_px and self._bid_px[-1] >= self._ask_px[0]:
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
        return price_decimal(self._bid_px[-1]) if self._bid_px else None

    def best_ask(self) -> Decimal | None:
        return price_decimal(self._ask_px[0]) if self._ask_px else None

    def best_bid_units(self) -> int | None:
        return self._bid_px[-1] if self._bid_px else None

    def best_ask_units(self) -> int | None:
        return self._ask_px[0] if self._ask_px else None

    def bids(self, depth: int | None = None) -> list[Level]:
        sizes = self._bid_sz
        prices = self._bid_px if depth is None else self._bid_px[-depth:] if depth > 0 else []
        return [(price_decimal(p), units_to_decimal(sizes[p])) for p in reversed(prices)]

    def asks(self, depth: int | None = None) -> list[Level]:
        sizes = self._ask_sz
        prices = self._ask_px if depth is None else self._ask_px[:depth]
        return [(price_decimal(p), units_to_decimal(sizes[p])) for p in prices]

    def bids_units(self, depth: int | None = None) -> list[tuple[int, int]]:
        sizes = self._bid_sz
        prices = self._bid_px if depth is None else self._bid_px[-depth:] if depth > 0 else []
        return [(p, sizes[p]) for p in reversed(prices)]

    def asks_units(self, depth: int | None = None) -> list[tuple[int, int]]:
        sizes = self._ask_sz
        prices = self._ask_px if depth is None else self._ask_px[:depth]
        return [(p, sizes[p]) for p in prices]

    def depth(self, n: int | None = None) -> tuple[list[Level], list[Level]]:
        """(bids, asks), each best-first and at most ``n`` levels."""
        return self.bids(n), self.asks(n)

    def level_counts(self) -> tuple[int, int]:
        return len(self._bid_px), len(self._ask_px)

    def size_at(self, side: Side, price: Decimal) -> Decimal:
        sizes = self._bid_sz if side is Side.BUY else self._ask_sz
        return units_to_decimal(sizes.get(decimal_to_units(price), 0))

    def mid(self) -> Decimal | None:
        if not self._bid_px or not self._ask_px:
            return None
        return units_to_decimal(self._bid_px[-1] + self._ask_px[0]) / 2

    def spread(self) -> Decimal | None:
        if not self._bid_px or not self._ask_px:
            return None
        return units_to_decimal(self._ask_px[0] - self._bid_px[-1])

    def is_crossed(self) -> bool:
        return bool(self._bid_px and self._ask_px and self._bid_px[-1] >= self._ask_px[0])

    # ------------------------------------------------------------------ walking the book

    def cost_to_buy(self, size: Decimal) -> tuple[Decimal, Decimal | None, Decimal]:
        """Take ``size`` shares from the asks: (cost, average price, shares filled).

        ``cost`` and ``filled`` are exact; the average is ``cost / filled`` (None when nothing
        fills). ``filled < size`` when the book is too thin.
        """
        return self._walk(self._ask_px, self._ask_sz, size)

    def proceeds_to_sell(self, size: Decimal) -> tuple[Decimal, Decimal | None, Decimal]:
        """Hit the bids with ``size`` shares: (proceeds, average price, shares filled)."""
        return self._walk(list(reversed(self._bid_px)), self._bid_sz, size)

    @staticmethod
    def _walk(prices: list[int], sizes: dict[int, int], size: Decimal) -> tuple[Decimal, Decimal | None, Decimal]:
        want = decimal_to_units(size)
        if want < 0:
            raise ValueError(f"size must not be negative: {size}")
        left = want
        notional = 0  # in 10^-12 (price units x size units)
        for p in prices:
            if left <= 0:
                break
            take = min(left, sizes[p])
            notional += p * take
            left -= take
        filled_u = want - left
        cost = Decimal(notional).scaleb(-12)
        cost = cost.quantize(Decimal(1)) if cost == cost.to_integral_value() else cost.normalize()
        filled = units_to_decimal(filled_u)
        avg = (Decimal(notional) / Decimal(filled_u * UNIT)) if filled_u else None
        return cost, avg, filled

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

    def apply_units(self, is_bid: bool, price: int, size: int) -> None:
        """Absolute size of one level in units; no validation (the processor validated)."""
        if is_bid:
            prices, sizes = self._bid_px, self._bid_sz
        else:
            prices, sizes = self._ask_px, self._ask_sz
        self._moved = True
        if size:
            if price not in sizes:
                insort(prices, price)
            sizes[price] = size
        elif sizes.pop(price, None) is not None:
            del prices[bisect_left(prices, price)]

    def seed_units(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]], ts_ns: int) -> None:
        """Replace both sides (any order; zero sizes dropped; a repeated price keeps the last size).
        Leaves ``status`` to the caller."""
        self._bid_sz = {p: s for p, s in bids if s}
        self._ask_sz = {p: s for p, s in asks if s}
        self._bid_px = sorted(self._bid_sz)
        self._ask_px = sorted(self._ask_sz)
        self.seeded = True
        self.last_update_ns = ts_ns
        self._pend_ts = None
        self._pend = None
        self._moved = True

    def clear(self) -> None:
        """Drop every level and the snapshot; the book waits for a new one."""
        self._bid_px, self._ask_px = [], []
        self._bid_sz, self._ask_sz = {}, {}
        self.seeded = False
        self._pend_ts = None
        self._pend = None
        self._moved = True

    def set_status(self, status: BookStatus) -> None:
        self._status = status
        # the processor's fast path only sees prices of ok books; others take the slow path
        self._prices = self._table if status is _OK else _NO_PRICES

    def set_tick_size(self, tick: Decimal | str, *, confirmed: bool = True) -> None:
        tick_dec = Decimal(tick)
        tick_u = decimal_to_units(tick_dec)
        if not 0 < tick_u < UNIT:
            raise ValueError(f"tick size {tick} outside (0, 1)")
        self._tick = units_to_decimal(tick_u)
        self.tick_confirmed = confirmed
        # an unconfirmed (assumed) tick validates against the finest grid the venue uses, so
        # a wrong assumption cannot reject valid levels
        self._tick_u = tick_u if confirmed else min(tick_u, 100)
        self._table = price_table(self._tick_u)  # valid price text -> units, for the hot path
        self.set_status(self._status)

    def __repr__(self) -> str:
        nb, na = self.level_counts()
        return (
            f"Book({self.asset_id[:12]}…, {self.status}, bid={self.best_bid()} ask={self.best_ask()}, "
            f"levels={nb}/{na}, tick={self._tick}, epoch={self.epoch})"
        )
