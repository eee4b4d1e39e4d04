"""Taps: where metrics captures values as they happen (the rest is read when scraped).

- :class:`FeedTap`, a pipeline sink: events by wire type, book status changes, and
  receive-to-apply latency (one cheap histogram observation per frame);
- :class:`WriterTap`, told of each committed batch (it watches the writer): batch size and
  receive-to-commit latency;
- :class:`AuditTap`, around the engine's execution store: every exec_audit record, which is
  every relayer call with its latency, outcome and error class (:class:`RelayerTap` counts them);
- :class:`BusTap`, an event bus subscriber: orders by status, fills, alerts, arm/disarm changes.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left as _bisect_left
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from core.events import Alert, AlertCleared, AlertKind, FillEvent, OrderEvent, Severity, StateChanged
from core.execution.types import ErrorClass, OrderStatus, Outcome
from core.feed.events import (
    BestBidAsk,
    BookSnapshot,
    BookStatusChanged,
    MarketResolved,
    NewMarket,
    Pong,
    PriceChange,
    TickSizeChanged,
    TradePrint,
)
from core.metrics.catalog import APPLY_BUCKETS, BATCH_BUCKETS, COMMIT_BUCKETS, RELAYER_BUCKETS
from core.metrics.hist import FastHistogram
from core.metrics.labels import BoundedLabels, label_value
from core.store.writer import CommittedParts
from core.types import BookStatus

log = logging.getLogger(__name__)

# A receive time further than this from the wall clock is a recorded one (a replay), not a
# measurement: no latency sample, counted in polybot_latency_samples_skipped_total instead.
MAX_LIVE_LATENCY_NS = 3600 * 1_000_000_000
_PRICE_CHANGE = PriceChange
_time_ns = time.time_ns

WIRE_EVENT_TYPES: dict[object, str] = {
    PriceChange: "price_change",
    BookSnapshot: "book",
    "rest_book": "rest_book",  # a book re-seeded from GET /book, not a websocket frame
    TradePrint: "last_trade_price",
    TickSizeChanged: "tick_size_change",
    BestBidAsk: "best_bid_ask",
    NewMarket: "new_market",
    MarketResolved: "market_resolved",
    Pong: "pong",
}
RELAYER_ACTIONS = frozenset({"place", "cancel", "cancel_all", "lookup", "reconcile"})
ORDER_STATUSES = (*(s.value for s in OrderStatus), "refused")


class FeedTap:
    """A pipeline sink: events by wire type, status transitions, receive-to-apply latency.

    Called once per delivered frame, so the common path (one ``price_change``) is a handful of
    bytecodes: slot attributes, no method calls; the histogram is updated inline."""

    __slots__ = ("apply", "bounds", "by_type", "counts", "price_changes", "skipped", "status_changes")

    def __init__(self) -> None:
        self.by_type: dict[object, int] = dict.fromkeys(WIRE_EVENT_TYPES, 0)
        self.price_changes = 0  # by_type[PriceChange] lives here (the hot counter)
        self.status_changes: dict[str, int] = {s.value: 0 for s in BookStatus}
        self.apply = FastHistogram(APPLY_BUCKETS)
        self.bounds = self.apply.bounds
        self.counts = self.apply.counts
        self.skipped = 0

    def __call__(self, events: Sequence[object]) -> None:
        recv = 0
        for ev in events:
            kind: object = type(ev)
            if kind is _PRICE_CHANGE:
                self.price_changes += 1
                if not recv:
                    recv = ev.recv_ns  # type: ignore[attr-defined]  # type(ev) is PriceChange: no isinstance on the hot path
                continue
            if isinstance(ev, BookStatusChanged):
                new = ev.new.value
                self.status_changes[new] = self.status_changes.get(new, 0) + 1
                continue
            if not recv:
                recv = ev.recv_ns  # type: ignore[attr-defined]  # every feed event carries its receive time
            if isinstance(ev, BookSnapshot) and ev.source != "ws":
                kind = "rest_book"
            self.by_type[kind] = self.by_type.get(kind, 0) + 1
        if recv:
            lat = _time_ns() - recv
            if 0 <= lat <= MAX_LIVE_LATENCY_NS:
                seconds = lat * 1e-9
                self.counts[_bisect_left(self.bounds, seconds)] += 1
                self.apply.sum += seconds
            else:
                self.skipped += 1

    def event_counts(self) -> dict[object, int]:
        return {**self.by_type, PriceChange: self.price_changes}


class WriterTap:
    """Called by the writer after each commit: batch size and receive-to-commit latency."""

    def __init__(self) -> None:
        self.key = "receive_ts"
        self.batch = FastHistogram(BATCH_BUCKETS)
        self.commit = FastHistogram(COMMIT_BUCKETS)
        self.skipped = 0

    def __call__(self, parts: CommittedParts, now_ns: int) -> None:
        rows_total = 0
        key = self.key
        commit = self.commit
        limit = MAX_LIVE_LATENCY_NS
        for _, rows in parts:
            rows_total += len(rows)
            if not rows or key not in rows[0]:
                continue
            for row in rows:
                ts = row[key]
                if type(ts) is int:
                    lat = now_ns - ts
                    if 0 <= lat <= limit:
                        commit.observe(lat / 1e9)
                    else:
                        self.skipped += 1
        self.batch.observe(rows_total)


class AuditRecordLike(Protocol):
    """The exec_audit record fields the relayer metrics read."""

    @property
    def action(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def error_class(self) -> str | None: ...
    @property
    def latency_ms(self) -> float | None: ...


class RelayerTap:
    """exec_audit records -> relayer calls by action/outcome, errors by class, latency."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {("place", o.value): 0 for o in Outcome}
        self.errors: dict[tuple[str, str], int] = {
            ("place", e.value): 0 for e in ErrorClass if e is not ErrorClass.NONE
        }
        self.latency: dict[str, FastHistogram] = {"place": FastHistogram(RELAYER_BUCKETS)}
        self._outcomes = BoundedLabels(16, (o.value for o in Outcome))
        self._classes = BoundedLabels(16, (e.value for e in ErrorClass))

    def __call__(self, rec: AuditRecordLike) -> None:
        action = rec.action
        if action not in RELAYER_ACTIONS:
            return  # refusals, arm/disarm: not relayer calls
        outcome = self._outcomes(label_value(rec.outcome or "unknown"))
        self.requests[(action, outcome)] = self.requests.get((action, outcome), 0) + 1
        error_class = rec.error_class
        if error_class and error_class != ErrorClass.NONE.value:
            key = (action, self._classes(label_value(error_class)))
            self.errors[key] = self.errors.get(key, 0) + 1
        latency_ms = rec.latency_ms
        if latency_ms is not None:
            hist = self.latency.get(action)
            if hist is None:
                hist = self.latency[action] = FastHistogram(RELAYER_BUCKETS)
            hist.observe(max(0.0, float(latency_ms)) / 1000.0)


class AuditTap:
    """Wraps an execution store: every audit record goes to the store and to metrics.

    Everything else is delegated untouched (``__getattr__``), so the tap stands in for the
    store it wraps, whatever that store's class. See :meth:`core.metrics.collect.Metrics.audit_store`.
    """

    def __init__(self, inner: object, observer: Callable[[AuditRecordLike], None]) -> None:
        self._inner = inner
        self._observer = observer

    @property
    def inner(self) -> object:
        return self._inner

    def __getattr__(self, name: str) -> Any:  # stands in for any method of the wrapped store
        return getattr(self._inner, name)

    def _observe(self, rec: AuditRecordLike) -> None:
        try:
            self._observer(rec)
        except Exception:  # metrics must never break the engine
            log.exception("relayer metrics failed on an audit record")

    async def add_audit(self, rec: AuditRecordLike) -> None:
        self._observe(rec)
        await self._inner.add_audit(rec)  # type: ignore[attr-defined]  # the wrapped store's own method

    async def record_attempt(self, audit: AuditRecordLike, client_order_id: str, **changes: object) -> None:
        self._observe(audit)
        await self._inner.record_attempt(audit, client_order_id, **changes)  # type: ignore[attr-defined]  # as above


class BusTap:
    """EventBus subscriber: orders by status, fills, alerts, arm/disarm changes."""

    def __init__(self) -> None:
        self.orders: dict[str, int] = dict.fromkeys(ORDER_STATUSES, 0)
        self.fills: dict[str, int] = {"buy": 0, "sell": 0}
        self.notional: dict[str, float] = {"buy": 0.0, "sell": 0.0}
        self.fees = 0.0
        self.alerts: dict[tuple[str, str], int] = {
            (k.value, s.value): 0 for k in AlertKind for s in (Severity.WARNING, Severity.CRITICAL)
        }
        self.active: dict[tuple[str, str], str] = {}
        self.state_changes: dict[str, int] = {"armed": 0, "disarmed": 0}
        self._statuses = BoundedLabels(24, ORDER_STATUSES)
        self._kinds = BoundedLabels(32, (k.value for k in AlertKind))

    def __call__(self, ev: object) -> None:
        if isinstance(ev, OrderEvent):
            status = self._statuses(label_value(ev.status))
            self.orders[status] = self.orders.get(status, 0) + 1
        elif isinstance(ev, FillEvent):
            fill = ev.fill
            side = "buy" if str(fill.side).upper() == "BUY" else "sell"
            self.fills[side] += 1
            self.notional[side] += float(fill.price * fill.size)
            self.fees += float(fill.fee)
        elif isinstance(ev, Alert):
            alert_kind = self._kinds(label_value(ev.kind))
            key = (alert_kind, label_value(ev.severity))
            self.alerts[key] = self.alerts.get(key, 0) + 1
            if len(self.active) < 10_000 or (ev.kind, ev.key) in self.active:
                self.active[(ev.kind, ev.key)] = alert_kind
        elif isinstance(ev, AlertCleared):
            self.active.pop((ev.kind, ev.key), None)
        elif isinstance(ev, StateChanged):
            self.state_changes["armed" if ev.armed else "disarmed"] += 1
