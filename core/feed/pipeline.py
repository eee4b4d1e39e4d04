"""Ingestion glue: websocket frames -> FeedProcessor -> domain events -> batched writer rows.

The processor owns decode, validation and the books; this module turns its events into
storage rows (book_snapshots, book_deltas, trades) and hands events on to whoever listens
(strategies, the paper relayer, metrics). Reconnects put the affected books back to
``awaiting_snapshot`` so nothing trades on a book that may have missed updates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from core.feed.connection import ConnectionEvent, ConnectionState
from core.feed.events import BookSnapshot, FeedEvent, PriceChange, TradePrint
from core.feed.numbers import PRICE_UNITS, price_decimal, units_to_decimal
from core.feed.processor import FeedProcessor
from core.feed.stalls import LoopStalls
from core.types import Side

log = logging.getLogger(__name__)

EventSink = Callable[[list[FeedEvent]], None]

LIVE_BURST_QUIET_MS = 250
"""How long a same-timestamp burst must be quiet before its carried best prices are checked, for a
live feed. A live pipeline (``live=True``) also holds the judgement while the event loop is stalled
or catching up (:mod:`core.feed.stalls`), so a burst whose next frame waits unread in its socket is
never judged half-applied (a false ``mismatch``). Replays use the processor's default."""


@dataclass
class PipelineStats:
    frames: int = 0
    events: int = 0
    snapshots: int = 0
    deltas: int = 0
    trades: int = 0
    rows_refused: int = 0  # writer queue full: counted and reported, never silent
    sink_errors: int = 0
    reconnect_resets: int = 0


class RowSink(Protocol):
    """What the pipeline writes to (``core.store.writer.BatchedWriter`` satisfies it)."""

    def put(self, table: str, row: dict[str, Any]) -> bool: ...


class IngestPipeline:
    def __init__(
        self,
        processor: FeedProcessor,
        writer: RowSink | None = None,
        *,
        sinks: list[EventSink] | None = None,
        persist_deltas: bool = True,
        live: bool = False,
    ) -> None:
        """``live``: frames come from sockets read by this event loop; quiet bursts are then judged
        only while the loop keeps up (:class:`core.feed.stalls.LoopStalls`, started with the first
        frame, stopped by :meth:`close`). Leave it off for replays (their clock is the recording's)."""
        self.processor = processor
        self.writer = writer
        self.sinks: list[EventSink] = list(sinks or [])
        self.persist_deltas = persist_deltas
        self.stats = PipelineStats()
        self._refused_logged = 0.0
        self.stalls: LoopStalls | None = None
        if live:
            self.stalls = LoopStalls(hold_ms=LIVE_BURST_QUIET_MS)
            processor.stall_guard = self.stalls

    def add_sink(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    # ---- inputs -------------------------------------------------------------------------
    def on_frame(self, text: str, recv_ns: int) -> list[FeedEvent]:
        self.stats.frames += 1
        if self.stalls is not None and not self.stalls.running:
            self.stalls.start()
        events = self.processor.process(text, recv_ns)
        self._deliver(events)
        return events

    def on_connection_event(self, event: ConnectionEvent) -> None:
        """A dead or re-established socket may have missed updates: its books wait for snapshots."""
        if event.state in (ConnectionState.DEAD, ConnectionState.RECONNECTED):
            changed = self.processor.mark_awaiting_snapshot(event.asset_ids)
            self.stats.reconnect_resets += 1
            self._deliver(list(changed))

    def close(self) -> None:
        """Stop the stall watch of a live pipeline (frames after this start it again)."""
        if self.stalls is not None:
            self.stalls.stop()

    def tick(self, now_ns: int | None = None) -> list[FeedEvent]:
        """Periodic: close quiet bursts and mark stale books (called by the service's timer)."""
        now = time.time_ns() if now_ns is None else now_ns
        events: list[FeedEvent] = list(self.processor.flush_bursts(now))
        events += self.processor.check_staleness(now)
        self._deliver(events)
        return events

    # ---- outputs ------------------------------------------------------------------------
    def _deliver(self, events: list[FeedEvent]) -> None:
        if not events:
            return
        self.stats.events += len(events)
        if self.writer is not None:
            self._persist(events)
        for sink in self.sinks:
            try:
                sink(events)
            except Exception:
                self.stats.sink_errors += 1
                log.exception("feed event sink %s failed", getattr(sink, "__qualname__", sink))

    def _put(self, table: str, row: dict[str, Any]) -> None:
        assert self.writer is not None
        if not self.writer.put(table, row):
            self.stats.rows_refused += 1
            now = time.monotonic()
            if now - self._refused_logged > 5:
                self._refused_logged = now
                log.error("writer queue full: %d %s rows refused so far", self.stats.rows_refused, table)

    def _persist(self, events: list[FeedEvent]) -> None:
        for ev in events:
            if isinstance(ev, PriceChange):
                if self.persist_deltas:
                    self._persist_deltas(ev)
            elif isinstance(ev, BookSnapshot):
                self._persist_snapshot(ev)
            elif isinstance(ev, TradePrint):
                self._persist_trade(ev)

    def _persist_deltas(self, ev: PriceChange) -> None:
        for e in ev.entries:
            self.stats.deltas += 1
            row = {
                "asset_id": e.asset_id,
                "market": ev.market,
                "side": _SIDE_TEXT[e.side],
                "price": _price(e.price),
                "size": stored_decimal(e.size),
                "best_bid": _price(e.best_bid),
                "best_ask": _price(e.best_ask),
                "hash": None,  # the feed does not decode the entries' hashes
                "exchange_ts": ev.ts_ms,
                "receive_ts": ev.recv_ns,
            }
            self._put("book_deltas", row)

    def _persist_snapshot(self, ev: BookSnapshot) -> None:
        self.stats.snapshots += 1
        row = {
            "asset_id": ev.asset_id,
            "market": ev.market,
            "bids": [[str(price_decimal(p)), str(units_to_decimal(s))] for p, s in ev.bids],
            "asks": [[str(price_decimal(p)), str(units_to_decimal(s))] for p, s in ev.asks],
            "tick_size": ev.tick_size,
            "hash": ev.hash or None,
            "exchange_ts": ev.ts_ms,
            "receive_ts": ev.recv_ns,
        }
        self._put("book_snapshots", row)

    def _persist_trade(self, ev: TradePrint) -> None:
        self.stats.trades += 1
        row = {
            "asset_id": ev.asset_id,
            "market": ev.market,
            "price": ev.price,
            "size": ev.size,
            "side": str(ev.side.value),
            "fee_rate_bps": ev.fee_rate_bps,
            "transaction_hash": ev.transaction_hash or None,
            "exchange_ts": ev.ts_ms,
            "receive_ts": ev.recv_ns,
        }
        self._put("trades", row)


_SIDE_TEXT: dict[Side, str] = {side: str(side.value) for side in Side}
_PRICES: dict[str | None, Decimal | None] = {None: None, "": None}
"""Wire price texts seen so far -> their Decimal (shared: a Decimal is immutable). Only texts of the
price table are kept (at most its ~50,000 spellings), so the memo is bounded."""


def _price(text: str | None) -> Decimal | None:
    """A wire price (or best price) as stored: a few hundred distinct texts carry nearly every row."""
    try:
        return _PRICES[text]
    except KeyError:
        value = stored_decimal(text)
        if text in PRICE_UNITS:
            _PRICES[text] = value
        return value


def stored_decimal(text: str | None) -> Decimal | None:
    """A wire decimal string as the feed tables store it (None when absent or not a number); the
    bus recorder stores the same columns through it (core.bus.rows)."""
    if text is None or text == "":
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None
