"""A feed worker's side of the bus: the feed's events as numbered messages, published in order.

:class:`MdPublisher` is an ingest-pipeline sink (``pipeline.add_sink(publisher.on_events)``): it
turns each domain event of :mod:`core.feed.events` into the messages of :mod:`core.bus.messages`,
numbers them per asset, and queues them; :meth:`MdPublisher.run` sends the queue in order on the
NATS connection (the stream stores what matches its subjects). Nothing is published unless the
publisher is active, i.e. its worker holds the shard's lease (:meth:`begin_epoch` .. :meth:`end`).

The books themselves are the feed processor's (same integrity rules as a single process); the
publisher only reads them to answer a snapshot request (:meth:`snapshot`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypedDict

from core.bus import messages as m
from core.bus.meter import NoBusMeter, WorkerMeter
from core.bus.subjects import md_subject
from core.feed.book import Book
from core.feed.events import (
    BestBidAsk,
    BookSnapshot,
    BookStatusChanged,
    FeedEvent,
    MarketResolved,
    PriceChange,
    TickSizeChanged,
    TradePrint,
)
from core.types import BookStatus

log = logging.getLogger(__name__)

UNKNOWN_CONDITION = "_"
"""The condition token of an asset whose market nobody named yet (a raw ``feed.assets`` entry)."""


class Head(TypedDict):
    """The fields every message starts with."""

    condition: str
    asset: str
    epoch: int
    seq: int
    ts_ms: int
    recv_ns: int
    pub_ns: int


@dataclass
class PublisherStats:
    messages: int = 0  # numbered and queued
    sent: int = 0  # handed to the connection
    send_errors: int = 0
    by_kind: dict[str, int] | None = None


class MdPublisher:
    def __init__(
        self,
        prefix: str,
        books: Mapping[str, Book],
        conditions: Mapping[str, str] | None = None,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        meter: WorkerMeter | None = None,
    ) -> None:
        self.prefix = prefix
        self._books = books
        self._condition: dict[str, str] = dict(conditions or {})
        self._clock_ns = clock_ns
        self.epoch = 0
        self.active = False
        self._seq: dict[str, int] = {}
        self._changed: dict[str, int] = {}  # asset -> last seq, since the last heartbeat
        self.meter: WorkerMeter = meter or NoBusMeter()
        self._outbox: deque[tuple[str, bytes, str, int]] = deque()  # subject, payload, kind, recv_ns
        self._wake = asyncio.Event()
        self.stats = PublisherStats(by_kind={})
        self._error_logged = -1e9

    # ---- the term of a lease ----------------------------------------------------------------
    def begin_epoch(self, epoch: int, assets: Iterable[str]) -> None:
        """The worker holds the lease from now on, as ``epoch``: numbering starts again at 1 and
        every asset's first message says its book waits for a snapshot, so a reader that knew the
        previous epoch drops what it had and follows this one from its start."""
        self.epoch = epoch
        self.active = True
        self._seq.clear()
        self._changed.clear()
        now = self._clock_ns()
        for asset in assets:
            book = self._books.get(asset)
            old = BookStatus.AWAITING_SNAPSHOT.value if book is None else book.status.value
            self._queue(
                m.Status(
                    **self._head(asset, 0, now), old=old, new=BookStatus.AWAITING_SNAPSHOT.value, reason="takeover"
                )
            )

    def end(self) -> None:
        """The lease is gone: nothing more is published (what is queued is dropped)."""
        self.active = False
        self._outbox.clear()

    # ---- the sink ---------------------------------------------------------------------------
    def on_events(self, events: list[FeedEvent]) -> None:
        if not self.active:
            return
        for ev in events:
            self._event(ev)
        if self._outbox:
            self._wake.set()

    def _event(self, ev: FeedEvent) -> None:
        if isinstance(ev, PriceChange):
            self._price_change(ev)
        elif isinstance(ev, BookSnapshot):
            self._learn(ev.asset_id, ev.market)
            book = self._books.get(ev.asset_id)
            status = BookStatus.AWAITING_SNAPSHOT if book is None else book.status
            self._queue(_snapshot(self._head(ev.asset_id, ev.ts_ms, ev.recv_ns), ev, status))
        elif isinstance(ev, TradePrint):
            self._learn(ev.asset_id, ev.market)
            head = self._head(ev.asset_id, ev.ts_ms, ev.recv_ns)
            self._queue(
                m.Trade(
                    **head,
                    side=ev.side.value,
                    price_units=ev.price_units,
                    size_units=ev.size_units,
                    fee_rate_bps=ev.fee_rate_bps,
                    transaction_hash=ev.transaction_hash,
                )
            )
        elif isinstance(ev, BestBidAsk):
            self._learn(ev.asset_id, ev.market)
            head = self._head(ev.asset_id, ev.ts_ms, ev.recv_ns)
            self._queue(m.BestPrices(**head, best_bid_units=ev.best_bid_units, best_ask_units=ev.best_ask_units))
        elif isinstance(ev, TickSizeChanged):
            self._learn(ev.asset_id, ev.market)
            head = self._head(ev.asset_id, ev.ts_ms, ev.recv_ns)
            old = None if ev.old_tick is None else str(ev.old_tick)
            self._queue(m.TickSize(**head, old_tick=old, new_tick=str(ev.new_tick)))
        elif isinstance(ev, BookStatusChanged):
            head = self._head(ev.asset_id, 0, ev.recv_ns)
            self._queue(m.Status(**head, old=ev.old.value, new=ev.new.value, reason=ev.reason))
        elif isinstance(ev, MarketResolved):
            self._resolved(ev)
        # NewMarket (venue-wide news) and Pong (socket liveness) are not market data of an asset

    def _price_change(self, ev: PriceChange) -> None:
        by_asset: dict[str, list[m.DeltaLevel]] = {}
        for e in ev.entries:
            by_asset.setdefault(e.asset_id, []).append(
                m.DeltaLevel(e.side.value, e.price, e.size, e.best_bid, e.best_ask)
            )
        for asset, levels in by_asset.items():
            self._learn(asset, ev.market)
            self._queue(m.Delta(**self._head(asset, ev.ts_ms, ev.recv_ns), levels=tuple(levels)))

    def _resolved(self, ev: MarketResolved) -> None:
        for asset in ev.asset_ids:
            if asset not in self._books:
                continue  # not followed here
            self._learn(asset, ev.market)
            self._queue(
                m.Resolved(
                    **self._head(asset, ev.ts_ms, ev.recv_ns),
                    asset_ids=tuple(ev.asset_ids),
                    winning_asset_id=ev.winning_asset_id,
                    winning_outcome=ev.winning_outcome,
                )
            )

    # ---- numbering --------------------------------------------------------------------------
    def _learn(self, asset: str, market: str) -> None:
        if market and self._condition.get(asset, UNKNOWN_CONDITION) == UNKNOWN_CONDITION:
            self._condition[asset] = market

    def condition_of(self, asset: str) -> str:
        return self._condition.get(asset) or UNKNOWN_CONDITION

    def _head(self, asset: str, ts_ms: int, recv_ns: int) -> Head:
        seq = self._seq.get(asset, 0) + 1
        self._seq[asset] = self._changed[asset] = seq
        return {
            "condition": self.condition_of(asset),
            "asset": asset,
            "epoch": self.epoch,
            "seq": seq,
            "ts_ms": ts_ms,
            "recv_ns": recv_ns,
            "pub_ns": self._clock_ns(),
        }

    def _queue(self, msg: m.MdMessage) -> None:
        kind = m.KINDS[type(msg)]
        self._outbox.append((md_subject(self.prefix, msg.condition, msg.asset, kind), m.encode(msg), kind, msg.recv_ns))
        self.stats.messages += 1
        by_kind = self.stats.by_kind
        if by_kind is not None:
            by_kind[kind] = by_kind.get(kind, 0) + 1

    def last_seq(self, asset: str) -> int:
        return self._seq.get(asset, 0)

    def take_changed(self) -> dict[str, int]:
        """The last seq of each asset numbered since the previous call (for the heartbeat)."""
        changed, self._changed = self._changed, {}
        return changed

    # ---- answers ----------------------------------------------------------------------------
    def snapshot(self, asset: str) -> m.Snapshot | None:
        """The asset's book as it stands after the last message published for it (None: not
        followed here). Its ``seq`` is that last message's: a reader applies what follows."""
        book = self._books.get(asset)
        if book is None or not self.active:
            return None
        now = self._clock_ns()
        return m.Snapshot(
            condition=self.condition_of(asset),
            asset=asset,
            epoch=self.epoch,
            seq=self._seq.get(asset, 0),
            ts_ms=book.last_ts_ms,
            recv_ns=book.last_update_ns,
            pub_ns=now,
            bids=tuple(book.bids_units()),
            asks=tuple(book.asks_units()),
            tick_size=str(book.tick_size),
            status=book.status.value,
            source="request",
        )

    def settled(self, asset: str) -> bool:
        """Whether the asset's book is between matches (no burst open): a snapshot cut now is not
        a half-applied match (whose book may even be crossed for a moment)."""
        book = self._books.get(asset)
        return book is None or not book.burst_open

    async def settled_snapshot(self, asset: str, *, within_s: float = 2.0, step_s: float = 0.01) -> m.Snapshot | None:
        """:meth:`snapshot` once the book is :meth:`settled` (a match's frames come together, so
        this waits a burst's quiet time at most), or as it is after ``within_s``."""
        for _ in range(max(1, int(within_s / step_s))):
            if self.settled(asset):
                break
            await asyncio.sleep(step_s)
        return self.snapshot(asset)

    # ---- sending ----------------------------------------------------------------------------
    async def run(self, publish: Callable[[str, bytes], object], stop: asyncio.Event) -> None:
        """Send what is queued, in order, until ``stop`` is set (``publish`` is awaited when it
        returns an awaitable, as ``nats.aio.client.Client.publish`` does)."""
        while not stop.is_set():
            await self.flush(publish)
            self._wake.clear()
            if self._outbox:
                continue
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()

    async def flush(self, publish: Callable[[str, bytes], object]) -> None:
        outbox = self._outbox
        meter = self.meter
        while outbox:
            subject, payload, kind, recv_ns = outbox.popleft()
            try:
                result = publish(subject, payload)
                if asyncio.iscoroutine(result):
                    await result
                self.stats.sent += 1
                meter.on_published(kind, len(payload), (self._clock_ns() - recv_ns) / 1e9 if recv_ns else None)
            except Exception as exc:  # a lost message is a gap the readers see by its seq
                self.stats.send_errors += 1
                meter.on_publish_error()
                now = time.monotonic()
                if now - self._error_logged >= 5.0:
                    self._error_logged = now
                    log.warning("bus publish failed (%d so far), e.g. on %s: %s", self.stats.send_errors, subject, exc)


def _snapshot(head: Head, ev: BookSnapshot, status: BookStatus) -> m.Snapshot:
    return m.Snapshot(
        **head,
        bids=ev.bids,
        asks=ev.asks,
        tick_size=str(ev.tick_size),
        status=status.value,
        hash=ev.hash,
        source=ev.source,
    )
