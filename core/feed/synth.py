"""Deterministic synthetic market-channel traffic in Polymarket's current wire format.

Used by the mock exchange feed (``polybot mock-ws``), by ``bench/ingest.py`` and to write the
project's demo recording (:mod:`core.feed.demo_recording`). Everything derives from the seed (and the timestamps passed in), so
the same seed gives byte-identical frames.

Model: assets pair up into binary markets (YES, NO). Only the YES book is simulated; the NO
book is its mirror (a YES bid at p is a NO ask at 1 - p), and every change is sent on both
tokens in one ``price_change`` frame, as the venue does. Every entry carries the token's
``best_bid``/``best_ask`` after the whole event. A trade is a same-timestamp burst: one frame per
level the taker consumes, all carrying the post-trade best prices; a sweeping limit order may
rest its remainder first, so the book looks crossed mid-burst exactly like the real feed.
Neg-risk groups keep the fair values of their YES tokens summing to 1; with
``dislocation_prob`` > 0 one leg's ask is now and then pushed low enough that buying every YES
costs less than 1 for a few frames (a Dutch-book opportunity for demos).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import msgspec

from core.feed.numbers import UNIT, decimal_to_units, units_to_decimal
from core.feed.synth_markets import SynthMarket, pair_markets, random_hex

_encode = msgspec.json.encode


@dataclass(slots=True)
class _MarketState:
    info: SynthMarket
    fair: int  # in ticks
    bids: dict[int, int] = field(default_factory=dict)  # YES book: tick index -> size units
    asks: dict[int, int] = field(default_factory=dict)
    dislocated: int | None = None  # ask index pushed below fair, to be withdrawn later
    revert_in: int = 0


class FrameGenerator:
    """Generates ``book`` and ``price_change`` (plus ``last_trade_price``) frames as JSON text."""

    def __init__(
        self,
        asset_ids: Sequence[str],
        seed: int,
        levels: int = 20,
        tick: Decimal = Decimal("0.01"),
        *,
        markets: Sequence[SynthMarket] | None = None,
        trade_prob: float = 0.12,
        dislocation_prob: float = 0.0,
        trade_prints: bool = True,
    ) -> None:
        if levels < 2:
            raise ValueError("levels must be >= 2")
        self.markets = list(markets) if markets is not None else pair_markets(asset_ids, seed, tick)
        self.levels = levels
        self.trade_prob = trade_prob
        self.dislocation_prob = dislocation_prob
        self.trade_prints = trade_prints  # emit last_trade_price after each trade burst
        self._rng = random.Random(seed)
        self._queue: deque[str] = deque()
        self._states: list[_MarketState] = []
        # index in _states -> state, of the dislocated ones: a step looks at these, not at every
        # market (that scan cost ~1 ms a frame with 10,000 markets)
        self._dislocated: dict[int, _MarketState] = {}
        self._index: dict[int, int] = {}  # id(state) -> its index in _states
        self._by_asset: dict[str, tuple[_MarketState, bool]] = {}
        groups: dict[str, list[SynthMarket]] = {}
        for m in self.markets:
            if m.neg_risk_market_id:
                groups.setdefault(m.neg_risk_market_id, []).append(m)
        fairs: dict[str, int] = {}
        for members in groups.values():
            n_ticks = self._n(members[0])
            weights = [self._rng.uniform(1.0, 3.0) for _ in members]
            total = sum(weights)
            shares = [max(3, round(n_ticks * w / total)) for w in weights]
            shares[-1] = n_ticks - sum(shares[:-1])  # the group's fairs sum to exactly 1
            if min(shares) < 3:
                raise ValueError(f"too many outcomes in one neg-risk group for tick {members[0].tick_size}")
            for m, s in zip(members, shares, strict=True):
                fairs[m.condition_id] = s
        for m in self.markets:
            n_ticks = self._n(m)
            fair = fairs.get(m.condition_id) or self._rng.randint(n_ticks * 15 // 100, n_ticks * 85 // 100)
            state = _MarketState(m, fair)
            for k in range(1, levels + 1):
                if fair - k >= 1:
                    state.bids[fair - k] = self._size()
                if fair + k <= n_ticks - 1:
                    state.asks[fair + k] = self._size()
            self._index[id(state)] = len(self._states)
            self._states.append(state)
            self._by_asset[m.token_ids[0]] = (state, True)
            self._by_asset[m.token_ids[1]] = (state, False)
        self._groups = [[self._state_of(m) for m in members] for members in groups.values() if len(members) > 1]

    # ------------------------------------------------------------------ public

    @property
    def asset_ids(self) -> list[str]:
        return list(self._by_asset)

    def snapshot_frames(self, ts_ms: int = 0, asset_ids: Sequence[str] | None = None) -> list[str]:
        """One ``book`` frame per asset (bids ascending, asks descending, as the venue sends)."""
        return [self.snapshot_frame(a, ts_ms) for a in (asset_ids if asset_ids is not None else self.asset_ids)]

    def snapshot_frame(self, asset_id: str, ts_ms: int = 0) -> str:
        return _encode(self._book_event(asset_id, ts_ms)).decode()

    def snapshot_array_frame(self, ts_ms: int = 0, asset_ids: Sequence[str] | None = None) -> str:
        """All books in one JSON-array frame (what the venue sends after a subscribe)."""
        ids = asset_ids if asset_ids is not None else self.asset_ids
        return _encode([self._book_event(a, ts_ms) for a in ids]).decode()

    def next_frame(self, ts_ms: int) -> str:
        """The next frame. Frames of a trade burst keep the burst's timestamp."""
        while not self._queue:
            self._step(ts_ms)
        return self._queue.popleft()

    def drain(self) -> list[str]:
        """The rest of a burst in progress (so a stream can end on a complete burst)."""
        rest = list(self._queue)
        self._queue.clear()
        return rest

    def frames(self, count: int, start_ts_ms: int, step_ms: int = 1) -> Iterator[str]:
        for i in range(count):
            yield self.next_frame(start_ts_ms + i * step_ms)

    def top(self, asset_id: str) -> tuple[Decimal | None, Decimal | None]:
        """The generator's own best bid/ask for a token (what the next entries will carry)."""
        state, is_yes = self._by_asset[asset_id]
        bb, ba = self._best(state, is_yes)
        tick = state.info.tick_size
        return (None if bb is None else bb * tick, None if ba is None else ba * tick)

    # ------------------------------------------------------------------ model

    def _state_of(self, market: SynthMarket) -> _MarketState:
        return self._by_asset[market.token_ids[0]][0]

    @staticmethod
    def _n(market: SynthMarket) -> int:
        return int(1 / market.tick_size)

    def _size(self) -> int:
        rng = self._rng
        if rng.random() < 0.5:
            return rng.randint(5, 5000) * UNIT
        return rng.randint(500, 500_000) * (UNIT // 100)

    def _step(self, ts_ms: int) -> None:
        rng = self._rng
        for index in sorted(self._dislocated):  # in market order, as a scan of every market would
            state = self._dislocated[index]
            state.revert_in -= 1
            if state.revert_in <= 0:
                self._withdraw_dislocation(state, ts_ms)
                return
        if self._groups and self.dislocation_prob and rng.random() < self.dislocation_prob:
            self._dislocate(rng.choice(self._groups), ts_ms)
            return
        state = rng.choice(self._states)
        if rng.random() < self.trade_prob:
            self._trade(state, ts_ms)
            return
        is_bid = rng.random() < 0.5
        depth = len(state.bids if is_bid else state.asks)
        roll = rng.random()
        # depth-aware mix: thin sides refill, full sides mostly change size
        add_p = 0.6 if depth < self.levels * 4 // 5 else 0.2
        if roll < 0.05:
            self._drift(state, ts_ms)
        elif roll < 0.05 + add_p:
            self._add_level(state, is_bid, ts_ms)
        elif roll < 0.20 + add_p:
            self._remove_level(state, is_bid, ts_ms)
        else:
            self._resize_level(state, is_bid, ts_ms)

    def _drift(self, state: _MarketState, ts_ms: int) -> None:
        """Move the fair value one tick (in a neg-risk group another member moves the other way,
        so the group still sums to 1) and pull quotes that the new fair value would make absurd."""
        step = self._rng.choice((-1, 1))
        n_ticks = self._n(state.info)
        for group in self._groups:
            if any(s is state for s in group):
                other = self._rng.choice([s for s in group if s is not state])
                if 2 <= state.fair + step <= n_ticks - 2 and 2 <= other.fair - step <= n_ticks - 2:
                    state.fair += step
                    other.fair -= step
                    self._requote(state, ts_ms)
                    self._requote(other, ts_ms)
                return
        state.fair = min(max(state.fair + step, 2), n_ticks - 2)
        self._requote(state, ts_ms)

    def _requote(self, state: _MarketState, ts_ms: int) -> None:
        """Asks at or below the fair value and bids at or above it are withdrawn."""
        changes: list[tuple[bool, int, int]] = []
        for is_bid, book in ((True, state.bids), (False, state.asks)):
            doomed = [p for p in book if (p >= state.fair if is_bid else p <= state.fair)]
            for price in sorted(doomed):
                del book[price]
                changes.append((is_bid, price, 0))
            if not book:
                price = state.fair - 1 if is_bid else state.fair + 1
                book[price] = self._size()
                changes.append((is_bid, price, book[price]))
        if changes:
            self._emit(state, changes, ts_ms)

    def _resize_level(self, state: _MarketState, is_bid: bool, ts_ms: int) -> None:
        book = state.bids if is_bid else state.asks
        if not book:
            return self._add_level(state, is_bid, ts_ms)
        ranked = sorted(book, reverse=is_bid)[:5]  # mostly near the top
        price = self._rng.choice(ranked)
        book[price] = self._size()
        self._emit(state, [(is_bid, price, book[price])], ts_ms)
        return None

    def _add_level(self, state: _MarketState, is_bid: bool, ts_ms: int) -> None:
        rng = self._rng
        n_ticks = self._n(state.info)
        best_bid = max(state.bids) if state.bids else 0
        best_ask = min(state.asks) if state.asks else n_ticks
        if is_bid:
            lo, hi = max(1, state.fair - self.levels), min(best_ask - 1, state.fair - 1)
        else:
            lo, hi = max(best_bid + 1, state.fair + 1), min(n_ticks - 1, state.fair + self.levels)
        book = state.bids if is_bid else state.asks
        free = [p for p in range(lo, hi + 1) if p not in book]
        if not free:
            return self._resize_level(state, is_bid, ts_ms) if book else None
        price = rng.choice(free)
        book[price] = self._size()
        changes = [(is_bid, price, book[price])]
        if len(book) > self.levels:  # keep the depth bounded: the farthest level goes
            far = min(book) if is_bid else max(book)
            del book[far]
            changes.append((is_bid, far, 0))
        self._emit(state, changes, ts_ms)
        return None

    def _remove_level(self, state: _MarketState, is_bid: bool, ts_ms: int) -> None:
        book = state.bids if is_bid else state.asks
        if len(book) <= 3:
            return self._add_level(state, is_bid, ts_ms)
        price = self._rng.choice(sorted(book))
        del book[price]
        self._emit(state, [(is_bid, price, 0)], ts_ms)
        return None

    def _trade(self, state: _MarketState, ts_ms: int) -> None:
        """A taker consumes 1-3 levels; the frames share ``ts_ms`` and carry the final top."""
        rng = self._rng
        taker_buys = rng.random() < 0.5
        book = state.asks if taker_buys else state.bids
        if len(book) < 3:
            return self._add_level(state, not taker_buys, ts_ms)
        ranked = sorted(book, reverse=not taker_buys)
        k = rng.randint(1, min(3, len(book) - 2))
        frames: list[list[tuple[bool, int, int]]] = []
        traded = 0
        for i, price in enumerate(ranked[:k]):
            if i == k - 1 and rng.random() < 0.5:  # the last level is only partly taken
                take = max(UNIT, book[price] // 2)
                take = min(take, book[price])
            else:
                take = book[price]
            traded += take
            left = book[price] - take
            if left:
                book[price] = left
            else:
                del book[price]
            frames.append([(not taker_buys, price, left)])
        last_price = ranked[k - 1]
        resting: tuple[bool, int, int] | None = None
        if k > 1 and book.get(last_price) is None and rng.random() < 0.4:
            # a sweeping limit order rests its remainder at the last price it reached; the venue
            # may send that new level first, so the book looks crossed until the burst ends
            other = state.bids if taker_buys else state.asks
            other[last_price] = self._size()
            resting = (taker_buys, last_price, other[last_price])
            frames.insert(0, [resting])
        final = self._best(state, True)
        for changes in frames:
            self._emit(state, changes, ts_ms, final=final)
        if self.trade_prints:
            self._print_trade(state, taker_buys, last_price, traded, ts_ms)
        # a binary market moves toward the trade (neg-risk fair values move as a group, in _drift)
        if not state.info.neg_risk:
            state.fair = (state.fair + last_price + (1 if taker_buys else 0)) // 2
            state.fair = min(max(state.fair, 2), self._n(state.info) - 2)
        return None

    def _print_trade(self, state: _MarketState, taker_buys: bool, last_price: int, traded: int, ts_ms: int) -> None:
        yes_token = state.info.token_ids[0]
        tick = state.info.tick_size
        self._queue.append(
            _encode(
                {
                    "asset_id": yes_token,
                    "event_type": "last_trade_price",
                    "fee_rate_bps": "0",
                    "market": state.info.condition_id,
                    "price": str(last_price * tick),
                    "side": "BUY" if taker_buys else "SELL",
                    "size": str(units_to_decimal(traded)),
                    "timestamp": str(ts_ms),
                    "transaction_hash": "0x" + random_hex(self._rng, 32),
                }
            ).decode()
        )

    def _dislocate(self, group: list[_MarketState], ts_ms: int) -> None:
        """Push one leg's ask low enough that sum(best YES asks) < 1 for a few frames."""
        rng = self._rng
        state = rng.choice([s for s in group if s.dislocated is None] or group)
        if state.dislocated is not None:
            return
        n_ticks = self._n(state.info)
        others = sum(min(s.asks) if s.asks else n_ticks for s in group if s is not state)
        target = n_ticks - others - rng.randint(1, 2)
        if target < 2 or (state.asks and target >= min(state.asks)):
            return
        doomed = [p for p in sorted(state.bids) if p >= target]
        if len(doomed) == len(state.bids):  # would empty the bid side: not this time
            return
        changes: list[tuple[bool, int, int]] = []
        for price in doomed:
            del state.bids[price]
            changes.append((True, price, 0))
        state.asks[target] = rng.randint(10, 200) * UNIT
        changes.append((False, target, state.asks[target]))
        state.dislocated = target
        self._dislocated[self._index[id(state)]] = state
        state.revert_in = rng.randint(5, 15)
        self._emit(state, changes, ts_ms)

    def _withdraw_dislocation(self, state: _MarketState, ts_ms: int) -> None:
        price = state.dislocated
        state.dislocated = None
        self._dislocated.pop(self._index[id(state)], None)
        if price is not None and price in state.asks:
            del state.asks[price]
            self._emit(state, [(False, price, 0)], ts_ms)
        else:
            self._add_level(state, False, ts_ms)

    # ------------------------------------------------------------------ encoding

    @staticmethod
    def _best(state: _MarketState, is_yes: bool) -> tuple[int | None, int | None]:
        bb = max(state.bids) if state.bids else None
        ba = min(state.asks) if state.asks else None
        if is_yes:
            return bb, ba
        n_ticks = int(1 / state.info.tick_size)
        return (None if ba is None else n_ticks - ba), (None if bb is None else n_ticks - bb)

    def _emit(
        self,
        state: _MarketState,
        changes: list[tuple[bool, int, int]],
        ts_ms: int,
        final: tuple[int | None, int | None] | None = None,
    ) -> None:
        """Queue one price_change frame with each YES change and its mirrored NO change."""
        info = state.info
        tick = info.tick_size
        n_ticks = int(1 / tick)
        yes_top = final if final is not None else self._best(state, True)
        no_top = (
            None if yes_top[1] is None else n_ticks - yes_top[1],
            None if yes_top[0] is None else n_ticks - yes_top[0],
        )
        entries = []
        for is_bid, price, size in changes:
            for token, side_is_buy, px, top in (
                (info.token_ids[0], is_bid, price, yes_top),
                (info.token_ids[1], not is_bid, n_ticks - price, no_top),
            ):
                entries.append(
                    {
                        "asset_id": token,
                        "price": _price_text(px, tick),
                        "size": _size_text(size),
                        "side": "BUY" if side_is_buy else "SELL",
                        "hash": random_hex(self._rng, 20),
                        "best_bid": "0" if top[0] is None else _price_text(top[0], tick),
                        "best_ask": "1" if top[1] is None else _price_text(top[1], tick),
                    }
                )
        frame = {
            "market": info.condition_id,
            "price_changes": entries,
            "timestamp": str(ts_ms),
            "event_type": "price_change",
        }
        self._queue.append(_encode(frame).decode())

    def _book_event(self, asset_id: str, ts_ms: int) -> dict[str, object]:
        state, is_yes = self._by_asset[asset_id]
        info = state.info
        tick = info.tick_size
        n_ticks = int(1 / tick)
        if is_yes:
            bids = sorted(state.bids.items())
            asks = sorted(state.asks.items(), reverse=True)
        else:
            bids = sorted((n_ticks - p, s) for p, s in state.asks.items())
            asks = sorted(((n_ticks - p, s) for p, s in state.bids.items()), reverse=True)
        return {
            "market": info.condition_id,
            "asset_id": asset_id,
            "timestamp": str(ts_ms),
            "hash": random_hex(self._rng, 20),
            "bids": [{"price": _price_text(p, tick), "size": _size_text(s)} for p, s in bids],
            "asks": [{"price": _price_text(p, tick), "size": _size_text(s)} for p, s in asks],
            "tick_size": str(tick),
            "event_type": "book",
            "last_trade_price": "",
        }


def _price_text(index: int, tick: Decimal) -> str:
    return str(units_to_decimal(index * decimal_to_units(tick)))


def _size_text(units: int) -> str:
    return str(units_to_decimal(units))


def write_recording(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
