"""Prometheus metrics for every component, collected when scraped.

One :class:`Metrics` object owns one ``CollectorRegistry``. Live components are attached with
:meth:`Metrics.bind` (any may be missing) and read when Prometheus scrapes: processor counters,
faults and book statuses, websocket connection stats, writer stats, risk state, engine
positions, exposure and PnL. What exists only as a moment is captured as it happens:

- a sink on the :class:`~core.feed.pipeline.IngestPipeline` counts events by wire type and
  observes receive-to-apply latency (one cheap histogram observation per frame);
- the writer reports each committed batch (:mod:`core.metrics.hooks`): batch size and
  receive-to-commit latency;
- an :class:`~core.events.EventBus` subscription counts orders by status, fills, alerts and
  arm/disarm changes;
- a thin wrapper around the engine's execution store sees every exec_audit record, which is
  every relayer call with its latency, outcome and error class;
- :meth:`Metrics.record_command` counts control commands (called by ``Control.audit_command``),
  :meth:`Metrics.register_runner` adds a strategy runner's stats.

Thread safety: prometheus_client's HTTP server answers scrapes on its own thread, but the
components belong to the event loop. A scrape therefore asks the loop (``call_soon_threadsafe``)
to build the snapshot and waits for it; if the loop does not answer within
``collect_timeout_s`` the previous snapshot is served and ``polybot_metrics_collect_timeouts_total``
counts it. Collection never raises: a component that fails to report is logged (rate-limited)
and counted in ``polybot_metrics_collect_errors_total`` while the rest of the scrape goes on.

The module-level :data:`METRICS` is the instance the service and the CLI share.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import threading
import time
from bisect import bisect_left as _bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from core.events import Alert, AlertCleared, AlertKind, FillEvent, OrderEvent, Severity, StateChanged
from core.execution.types import ErrorClass, OrderStatus, Outcome
from core.feed.counters import ERROR_REASONS, FAULT_KINDS
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
from core.metrics.catalog import (
    APPLY_BUCKETS,
    BATCH_BUCKETS,
    CATALOG,
    COMMIT_BUCKETS,
    RELAYER_BUCKETS,
    MetricSpec,
)
from core.metrics.hist import FastHistogram
from core.metrics.hooks import CommittedParts, unwatch_writer, watch_writer
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
CONNECTION_STATES = ("connecting", "connected", "dead", "closed")
COMPONENTS = ("processor", "feed", "pipeline", "writer", "strategies", "engine", "risk", "bus")
RELAYER_ACTIONS = frozenset({"place", "cancel", "cancel_all", "lookup", "reconcile"})
ORDER_STATUSES = (*(s.value for s in OrderStatus), "refused")
RISK_LIMITS = (
    "max_order_notional",
    "max_market_notional",
    "max_event_notional",
    "max_total_exposure",
    "daily_loss_limit",
)
_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.:-]+")


def label_value(text: object, max_len: int = 48) -> str:
    """A short, safe label value: anything odd becomes ``_``, empty becomes ``unknown``."""
    value = _LABEL_CHARS.sub("_", str(text).strip())[:max_len].strip("_")
    return value or "unknown"


class BoundedLabels:
    """Keeps a label's cardinality bounded: after ``limit`` distinct values, new ones read ``other``."""

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self.limit = limit
        self._seen: set[str] = set(known)
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= self.limit:
                return "other"
            self._seen.add(value)
        return value


class _Families:
    """One scrape's families, pre-created from the catalog so each appears even without samples."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}
        for spec in CATALOG:
            self.by_name[spec.name] = _new_family(spec)

    def add(self, name: str, labels: Sequence[str], value: float) -> None:
        self.by_name[name].add_metric(list(labels), float(value))  # type: ignore[attr-defined]

    def hist(self, name: str, labels: Sequence[str], h: FastHistogram) -> None:
        self.by_name[name].add_metric(list(labels), h.cumulative(), h.sum)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Metric]:
        return iter(self.by_name.values())


def _new_family(spec: MetricSpec) -> Metric:
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    if spec.kind == "gauge":
        return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    return HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)


# ---------------------------------------------------------------------------------------------
# taps: where values are captured as they happen


class _FeedTap:
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

    def __call__(self, events: Sequence[Any]) -> None:
        recv = 0
        for ev in events:
            kind: object = type(ev)
            if kind is _PRICE_CHANGE:
                self.price_changes += 1
                if not recv:
                    recv = ev.recv_ns
                continue
            if kind is BookStatusChanged:
                new = ev.new.value
                self.status_changes[new] = self.status_changes.get(new, 0) + 1
                continue
            if not recv:
                recv = ev.recv_ns
            if kind is BookSnapshot and ev.source != "ws":
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


class _WriterTap:
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


class _RelayerTap:
    """exec_audit records -> relayer calls by action/outcome, errors by class, latency."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {("place", o.value): 0 for o in Outcome}
        self.errors: dict[tuple[str, str], int] = {
            ("place", e.value): 0 for e in ErrorClass if e is not ErrorClass.NONE
        }
        self.latency: dict[str, FastHistogram] = {"place": FastHistogram(RELAYER_BUCKETS)}
        self._outcomes = BoundedLabels(16, (o.value for o in Outcome))
        self._classes = BoundedLabels(16, (e.value for e in ErrorClass))

    def __call__(self, rec: Any) -> None:
        action = getattr(rec, "action", "")
        if action not in RELAYER_ACTIONS:
            return  # refusals, arm/disarm: not relayer calls
        outcome = self._outcomes(label_value(getattr(rec, "outcome", "") or "unknown"))
        self.requests[(action, outcome)] = self.requests.get((action, outcome), 0) + 1
        error_class = getattr(rec, "error_class", None)
        if error_class and error_class != ErrorClass.NONE.value:
            key = (action, self._classes(label_value(error_class)))
            self.errors[key] = self.errors.get(key, 0) + 1
        latency_ms = getattr(rec, "latency_ms", None)
        if latency_ms is not None:
            hist = self.latency.get(action)
            if hist is None:
                hist = self.latency[action] = FastHistogram(RELAYER_BUCKETS)
            hist.observe(max(0.0, float(latency_ms)) / 1000.0)


class AuditTap:
    """Wraps an execution store: every audit record goes to the store and to metrics.

    Installed as ``engine.store`` by :meth:`Metrics.bind` (and removed by :meth:`Metrics.unbind`);
    everything else is delegated untouched.
    """

    def __init__(self, inner: Any, observer: Callable[[Any], None]) -> None:
        self._inner = inner
        self._observer = observer

    @property
    def inner(self) -> Any:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _observe(self, rec: Any) -> None:
        try:
            self._observer(rec)
        except Exception:  # metrics must never break the engine
            log.exception("relayer metrics failed on an audit record")

    async def add_audit(self, rec: Any) -> None:
        self._observe(rec)
        await self._inner.add_audit(rec)

    async def record_attempt(self, audit: Any, client_order_id: str, **changes: Any) -> None:
        self._observe(audit)
        await self._inner.record_attempt(audit, client_order_id, **changes)


class _BusTap:
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
        kind = type(ev)
        if kind is OrderEvent:
            status = self._statuses(label_value(ev.status))  # type: ignore[attr-defined]
            self.orders[status] = self.orders.get(status, 0) + 1
        elif kind is FillEvent:
            fill = ev.fill  # type: ignore[attr-defined]
            side = "buy" if str(fill.side).upper() == "BUY" else "sell"
            self.fills[side] += 1
            self.notional[side] += float(fill.price * fill.size)
            self.fees += float(fill.fee)
        elif kind is Alert:
            alert_kind = self._kinds(label_value(ev.kind))  # type: ignore[attr-defined]
            key = (alert_kind, label_value(ev.severity))  # type: ignore[attr-defined]
            self.alerts[key] = self.alerts.get(key, 0) + 1
            if len(self.active) < 10_000 or (ev.kind, ev.key) in self.active:  # type: ignore[attr-defined]
                self.active[(ev.kind, ev.key)] = alert_kind  # type: ignore[attr-defined]
        elif kind is AlertCleared:
            self.active.pop((ev.kind, ev.key), None)  # type: ignore[attr-defined]
        elif kind is StateChanged:
            self.state_changes["armed" if ev.armed else "disarmed"] += 1  # type: ignore[attr-defined]


@dataclass
class _Bound:
    processor: Any = None
    feed: Any = None
    writer: Any = None
    pipeline: Any = None
    engine: Any = None
    risk: Any = None
    bus: Any = None
    opportunities: Mapping[str, Any] | None = None
    runners: Callable[[], Iterable[Any]] | None = None


# ---------------------------------------------------------------------------------------------
# the metrics object


class Metrics:
    """The registry, the taps and the scrape-time collector. See the module docstring."""

    def __init__(self, *, top_assets: int = 0, process_metrics: bool = True, collect_timeout_s: float = 5.0) -> None:
        """``top_assets``: export ``polybot_book_age_seconds{asset}`` for the N stalest books (0 = off)."""
        if top_assets < 0:
            raise ValueError("top_assets must be >= 0")
        self.top_assets = top_assets
        self.collect_timeout_s = collect_timeout_s
        self.registry = CollectorRegistry(auto_describe=False)
        self._b = _Bound()
        self._feed_tap = _FeedTap()
        self._writer_tap = _WriterTap()
        self._relayer_tap = _RelayerTap()
        self._bus_tap = _BusTap()
        self._feed_tap_on: Any = None  # the pipeline the feed tap is attached to
        self._bus_unsubscribe: Callable[[], None] | None = None
        self._seen: set[str] = set()  # components ever bound: their zero-valued series are exported
        self._runner_stats: dict[int, tuple[str, Any]] = {}
        self._commands: dict[tuple[str, str, str], int] = {}
        self._front_ends = BoundedLabels(8, ("telegram", "cli"))
        self._command_names = BoundedLabels(64)
        self._results = BoundedLabels(16, ("ok", "error", "refused", "denied", "unauthorised"))
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._last: list[Metric] | None = None
        self._timeouts = 0
        self._collect_errors: dict[str, int] = dict.fromkeys(COMPONENTS, 0)
        self._error_logged: dict[str, float] = {}
        self.registry.register(_Collector(self))
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    # ---- binding -----------------------------------------------------------------------------

    def bind(
        self,
        *,
        processor: Any = None,
        feed: Any = None,
        writer: Any = None,
        pipeline: Any = None,
        engine: Any = None,
        risk: Any = None,
        bus: Any = None,
        opportunities: Mapping[str, Any] | None = None,
        runners: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        """Attach live components; a component given as None is left as it was (see :meth:`unbind`).

        ``opportunities``: strategy name -> an object with ``opportunities`` (seen),
        ``groups_submitted`` (taken) and ``missed`` (mapping reason -> count), read when scraped.
        ``runners``: strategy runners (or a callable returning them) whose ``stats`` are read;
        new runners are picked up at each scrape (see :meth:`register_runner`).
        Call from the event loop that owns the components: scrapes are answered on it.
        """
        self._capture_loop()
        b = self._b
        if processor is not None:
            b.processor = processor
            self._seen.add("processor")
        if feed is not None:
            b.feed = feed
        if writer is not None and writer is not b.writer:
            if b.writer is not None:
                unwatch_writer(b.writer, self._writer_tap)
            b.writer = writer
            self._writer_tap.key = getattr(writer, "receive_ts_key", "receive_ts")
            watch_writer(writer, self._writer_tap)
            self._seen.add("writer")
        if pipeline is not None and pipeline is not b.pipeline:
            self._detach_pipeline()
            b.pipeline = pipeline
            pipeline.add_sink(self._feed_tap)
            self._feed_tap_on = pipeline
            self._seen.add("pipeline")
            if processor is None:  # the pipeline's own processor, unless one was given
                b.processor = pipeline.processor
                self._seen.add("processor")
        if engine is not None and engine is not b.engine:
            self._detach_engine()
            b.engine = engine
            store = engine.store
            if not isinstance(store, AuditTap):
                engine.store = AuditTap(store, self._relayer_tap)
            self._seen.add("engine")
            if risk is None:  # the engine's own gate, unless one was given
                b.risk = getattr(engine, "risk", b.risk)
        if risk is not None:
            b.risk = risk
        if bus is not None and bus is not b.bus:
            if self._bus_unsubscribe is not None:
                self._bus_unsubscribe()
            b.bus = bus
            self._bus_unsubscribe = bus.subscribe(None, self._bus_tap)
            self._seen.add("bus")
        if opportunities is not None:
            b.opportunities = dict(opportunities)
        if runners is not None:
            if callable(runners):
                b.runners = runners
            else:
                fixed = list(runners)
                b.runners = lambda: fixed

    def unbind(self) -> None:
        """Detach every component (counters captured so far are kept)."""
        self._detach_pipeline()
        self._detach_engine()
        if self._b.writer is not None:
            unwatch_writer(self._b.writer, self._writer_tap)
        if self._bus_unsubscribe is not None:
            self._bus_unsubscribe()
            self._bus_unsubscribe = None
        self._b = _Bound()

    def _detach_pipeline(self) -> None:
        old = self._feed_tap_on
        if old is not None:
            with contextlib.suppress(ValueError, AttributeError):
                old.sinks.remove(self._feed_tap)
        self._feed_tap_on = None

    def _detach_engine(self) -> None:
        engine = self._b.engine
        if engine is not None and isinstance(engine.store, AuditTap):
            engine.store = engine.store.inner

    def register_runner(self, runner: Any, strategy: str | None = None) -> None:
        """Count a strategy runner's evaluations and opportunities (its ``stats`` object is kept,
        so its counts survive the runner being replaced)."""
        stats = getattr(runner, "stats", runner)
        key = id(stats)
        if key in self._runner_stats:
            return
        self._runner_stats[key] = (label_value(strategy or _strategy_of(stats)), stats)

    def _capture_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._loop = loop
        self._loop_thread = threading.get_ident()

    # ---- pushed values -----------------------------------------------------------------------

    def record_command(self, front_end: str, command: str, result: str) -> None:
        """One control command (Telegram or CLI) and how it ended; safe from any thread."""
        name = str(command).strip().lstrip("/").split("@", 1)[0].split(maxsplit=1)
        key = (
            self._front_ends(label_value(front_end, 16).lower()),
            self._command_names(label_value(name[0] if name else "", 32).lower()),
            self._results(label_value(result, 16).lower()),
        )
        with self._lock:
            self._commands[key] = self._commands.get(key, 0) + 1

    # ---- output ------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text exposition of everything in the registry."""
        return generate_latest(self.registry)

    def families(self) -> list[Metric]:
        return list(self.registry.collect())

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
        """Serve ``/metrics`` with prometheus_client's HTTP server (a daemon thread).
        ``port`` 0 picks a free port (see ``.port``). Raises OSError when it cannot listen."""
        self._capture_loop()
        httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(httpd, thread, host)

    # ---- collection --------------------------------------------------------------------------

    def _collect(self) -> list[Metric]:
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running() or threading.get_ident() == self._loop_thread:
            return self._snapshot()
        fut: concurrent.futures.Future[list[Metric]] = concurrent.futures.Future()

        def on_loop() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(self._snapshot())
            except BaseException as exc:  # pragma: no cover - _snapshot catches per component
                fut.set_exception(exc)

        try:
            loop.call_soon_threadsafe(on_loop)
        except RuntimeError:  # the loop closed in between
            return self._snapshot()
        try:
            return fut.result(timeout=self.collect_timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            with self._lock:
                self._timeouts += 1
            log.warning(
                "metrics scrape: event loop busy for %.1fs, serving the previous snapshot", self.collect_timeout_s
            )
            if self._last is not None:
                return self._last
            fams = _Families()
            fams.add("polybot_metrics_collect_timeouts_total", (), self._timeouts)
            return list(fams)

    def _snapshot(self) -> list[Metric]:
        fams = _Families()
        now = time.time_ns()
        for name, part in (
            ("processor", self._collect_processor),
            ("feed", self._collect_feed),
            ("pipeline", self._collect_pipeline),
            ("writer", self._collect_writer),
            ("strategies", self._collect_strategies),
            ("engine", self._collect_engine),
            ("risk", self._collect_risk),
            ("bus", self._collect_bus),
        ):
            try:
                part(fams, now)
            except Exception as exc:
                self._collect_failed(name, exc)
        with self._lock:
            commands = dict(self._commands)
            timeouts = self._timeouts
            errors = dict(self._collect_errors)
        for key, n in sorted(commands.items()):
            fams.add("polybot_commands_total", key, n)
        fams.add("polybot_metrics_collect_timeouts_total", (), timeouts)
        for component, n in sorted(errors.items()):
            fams.add("polybot_metrics_collect_errors_total", (component,), n)
        result = list(fams)
        self._last = result
        return result

    def _collect_failed(self, component: str, exc: Exception) -> None:
        with self._lock:
            self._collect_errors[component] = self._collect_errors.get(component, 0) + 1
        now = time.monotonic()
        if now - self._error_logged.get(component, -1e9) >= 60:
            self._error_logged[component] = now
            log.warning("metrics: could not read %s: %s: %s", component, type(exc).__name__, exc, exc_info=True)

    def _collect_processor(self, f: _Families, now: int) -> None:
        p = self._b.processor
        if p is None:
            return
        f.add("polybot_ws_frames_total", (), p.frames)
        errors = p.counters.as_dict()
        for reason in dict.fromkeys((*ERROR_REASONS, *errors)):
            f.add("polybot_feed_input_errors_total", (label_value(reason),), errors.get(reason, 0))
        faults = p.faults.as_dict()
        for kind in dict.fromkeys((*FAULT_KINDS, *faults)):
            f.add("polybot_book_integrity_faults_total", (label_value(kind),), faults.get(kind, 0))
        for status, n in p.status_counts().items():
            f.add("polybot_books", (status.value,), n)
        f.add("polybot_feed_hook_failures_total", (), p.hook_failures)
        ages: list[tuple[int, str]] = []
        for book in list(p.books.values()):
            if book.seeded and book.last_update_ns and book.raw_status in (BookStatus.OK, BookStatus.STALE):
                ages.append((now - book.last_update_ns, book.asset_id))
        if ages:
            f.add("polybot_book_staleness_max_seconds", (), max(0, max(ages)[0]) / 1e9)
            if self.top_assets:
                for age, asset in sorted(ages, reverse=True)[: self.top_assets]:
                    f.add("polybot_book_age_seconds", (asset,), max(0, age) / 1e9)

    def _collect_pipeline(self, f: _Families, now: int) -> None:
        tap = self._feed_tap
        if "pipeline" in self._seen:
            for kind, n in tap.event_counts().items():
                f.add("polybot_ws_events_total", (WIRE_EVENT_TYPES.get(kind, "other"),), n)
            for status, n in tap.status_changes.items():
                f.add("polybot_book_status_changes_total", (status,), n)
            f.hist("polybot_feed_receive_to_apply_seconds", (), tap.apply)
            f.add("polybot_latency_samples_skipped_total", ("apply",), tap.skipped)
        pl = self._b.pipeline
        if pl is None:
            return
        st = pl.stats
        f.add("polybot_pipeline_sink_errors_total", (), st.sink_errors)
        f.add("polybot_pipeline_reconnect_resets_total", (), st.reconnect_resets)
        f.add("polybot_pipeline_rows_refused_total", (), st.rows_refused)

    def _collect_feed(self, f: _Families, now: int) -> None:
        feed = self._b.feed
        if feed is None:
            return
        st = feed.stats()
        for c in st.connections:
            conn = str(c.conn_id)
            state = str(getattr(c.state, "value", c.state))
            for name in dict.fromkeys((*CONNECTION_STATES, state)):
                f.add("polybot_ws_connection_state", (conn, name), 1.0 if name == state else 0.0)
            f.add("polybot_ws_connection_assets", (conn,), c.asset_count)
            f.add("polybot_ws_reconnects_total", (conn,), c.reconnects)
            f.add("polybot_ws_disconnects_total", (conn,), c.dead_count)
            f.add("polybot_ws_connection_frames_total", (conn,), c.frames)
            f.add("polybot_ws_received_bytes_total", (conn,), c.bytes)
            f.add("polybot_ws_pongs_total", (conn,), c.pongs)
            if c.last_frame_ns is not None:
                f.add("polybot_ws_last_frame_age_seconds", (conn,), max(0, now - c.last_frame_ns) / 1e9)
        for reason in dict.fromkeys(("oversized", "oversized_disconnect", "binary_not_utf8", *st.dropped)):
            f.add("polybot_ws_dropped_frames_total", (label_value(reason),), st.dropped.get(reason, 0))
        f.add("polybot_ws_callback_errors_total", (), st.callback_errors)

    def _collect_writer(self, f: _Families, now: int) -> None:
        tap = self._writer_tap
        if "writer" in self._seen:
            f.hist("polybot_writer_batch_rows", (), tap.batch)
            f.hist("polybot_writer_receive_to_commit_seconds", (), tap.commit)
            f.add("polybot_latency_samples_skipped_total", ("commit",), tap.skipped)
        w = self._b.writer
        if w is None:
            return
        st = w.stats
        f.add("polybot_writer_queue_depth", (), w.queued)
        f.add("polybot_writer_queue_capacity", (), w.max_queue)
        f.add("polybot_writer_pending_rows", (), st.pending)
        f.add("polybot_writer_rows_enqueued_total", (), st.enqueued)
        f.add("polybot_writer_rows_written_total", (), st.written)
        f.add("polybot_writer_rows_rejected_total", (), st.rejected)
        f.add("polybot_writer_queue_full_total", (), st.queue_full_count)
        f.add("polybot_writer_batches_total", (), st.batches)
        f.add("polybot_writer_errors_total", (), st.errors)
        f.add("polybot_writer_retries_total", (), st.retries)
        f.add("polybot_writer_last_batch_rows", (), st.last_batch)
        f.add("polybot_writer_last_commit_duration_seconds", (), st.last_commit_latency_s)

    def _collect_strategies(self, f: _Families, now: int) -> None:
        provider = self._b.runners
        if provider is not None:
            for runner in list(provider()):
                self.register_runner(runner)
        runners: dict[str, int] = {}
        evaluations: dict[str, int] = {}
        seen: dict[str, int] = {}
        actions = {"quote": 0, "keep": 0, "pull": 0, "idle": 0}
        quoters = False
        for strategy, stats in list(self._runner_stats.values()):
            runners[strategy] = runners.get(strategy, 0) + 1
            if hasattr(stats, "evaluations"):
                evaluations[strategy] = evaluations.get(strategy, 0) + stats.evaluations
                seen[strategy] = seen.get(strategy, 0) + getattr(stats, "opportunities", 0)
            elif hasattr(stats, "decisions"):
                quoters = True
                evaluations[strategy] = evaluations.get(strategy, 0) + stats.decisions
                seen[strategy] = seen.get(strategy, 0) + stats.quotes
                actions["quote"] += stats.quotes
                actions["keep"] += stats.keeps
                actions["pull"] += stats.pulls
                actions["idle"] += stats.idle
        for strategy, counters in (self._b.opportunities or {}).items():
            strategy = label_value(strategy)
            if strategy not in seen and hasattr(counters, "opportunities"):
                seen[strategy] = counters.opportunities
            f.add("polybot_strategy_opportunities_taken_total", (strategy,), getattr(counters, "groups_submitted", 0))
            missed = dict(getattr(counters, "missed", {}) or {})
            for reason, n in sorted(missed.items()):
                f.add("polybot_strategy_opportunities_missed_total", (strategy, label_value(reason)), n)
        for strategy, n in sorted(runners.items()):
            f.add("polybot_strategy_runners", (strategy,), n)
        for strategy, n in sorted(evaluations.items()):
            f.add("polybot_strategy_evaluations_total", (strategy,), n)
        for strategy, n in sorted(seen.items()):
            f.add("polybot_strategy_opportunities_total", (strategy,), n)
        if quoters:
            for action, n in actions.items():
                f.add("polybot_quoter_decisions_total", (action,), n)

    def _collect_engine(self, f: _Families, now: int) -> None:
        if "engine" in self._seen:
            tap = self._relayer_tap
            for (action, outcome), n in sorted(tap.requests.items()):
                f.add("polybot_relayer_requests_total", (action, outcome), n)
            for (action, error_class), n in sorted(tap.errors.items()):
                f.add("polybot_relayer_errors_total", (action, error_class), n)
            for action, h in sorted(tap.latency.items()):
                f.hist("polybot_relayer_request_duration_seconds", (action,), h)
        e = self._b.engine
        if e is None:
            return
        f.add("polybot_open_orders", (), len(e.open_orders()))
        f.add("polybot_positions_open", (), len(e.positions.open_positions()))
        f.add("polybot_realised_pnl_pusd", (), float(e.positions.realised_total()))
        f.add("polybot_realised_pnl_today_pusd", (), float(e.positions.daily_realised()))
        f.add("polybot_unrealised_pnl_pusd", (), float(e.unrealised_pnl()))
        f.add("polybot_exposure_pusd", (), float(e.exposure().total_exposure()))
        mode = label_value(getattr(e, "mode", "") or "unknown")
        for name in dict.fromkeys(("paper", "dry_run", "live", mode)):
            f.add("polybot_trading_mode", (name,), 1.0 if name == mode else 0.0)

    def _collect_risk(self, f: _Families, now: int) -> None:
        r = self._b.risk
        if r is None:
            return
        f.add("polybot_armed", (), 1.0 if r.armed else 0.0)
        for code, n in sorted(getattr(r, "refusals", {}).items(), key=lambda kv: str(kv[0])):
            f.add("polybot_risk_refusals_total", (label_value(getattr(code, "value", code)),), n)
        limits = getattr(r, "limits", None)
        for name in RISK_LIMITS:
            value = getattr(limits, name, None)
            if value is not None:
                f.add("polybot_risk_limit_pusd", (name,), float(value))
        breaker = getattr(r, "breaker", None)
        if breaker is not None:
            f.add("polybot_risk_breaker_recent_errors", (), breaker.recent())

    def _collect_bus(self, f: _Families, now: int) -> None:
        if "bus" not in self._seen:
            return
        tap = self._bus_tap
        for status, n in tap.orders.items():
            f.add("polybot_orders_total", (status,), n)
        for side in ("buy", "sell"):
            f.add("polybot_fills_total", (side,), tap.fills[side])
            f.add("polybot_fill_notional_pusd_total", (side,), tap.notional[side])
        f.add("polybot_fill_fees_pusd_total", (), tap.fees)
        for (kind, severity), n in sorted(tap.alerts.items()):
            f.add("polybot_alerts_total", (kind, severity), n)
        active: dict[str, int] = {k.value: 0 for k in AlertKind}
        for kind in list(tap.active.values()):
            active[kind] = active.get(kind, 0) + 1
        for kind, n in sorted(active.items()):
            f.add("polybot_alerts_active", (kind,), n)
        for state, n in tap.state_changes.items():
            f.add("polybot_risk_state_changes_total", (state,), n)
        bus = self._b.bus
        if bus is not None:
            f.add("polybot_events_published_total", (), bus.published)
            f.add("polybot_event_handler_errors_total", (), bus.handler_errors)


def _strategy_of(stats: object) -> str:
    name = type(stats).__name__
    if name == "DutchStats":
        return "dutch"
    if name == "QuoterStats":
        return "spread"
    return name.removesuffix("Stats").lower() or "unknown"


class _Collector:
    """The registry's view of a :class:`Metrics` object."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return list(_Families())

    def collect(self) -> list[Metric]:
        return self._metrics._collect()


class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it (``aclose()`` from async code)."""

    def __init__(self, httpd: Any, thread: threading.Thread, host: str) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = host
        self.port: int = httpd.server_port
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"MetricsServer({self.url}{', closed' if self._closed else ''})"


METRICS = Metrics()


def record_command(front_end: str, command: str, result: str) -> None:
    """Count one control command on the shared :data:`METRICS` (called by ``Control.audit_command``)."""
    METRICS.record_command(front_end, command, result)


async def serve_metrics(host: str, port: int, metrics: Metrics | None = None) -> MetricsServer:
    """Serve ``metrics`` (default :data:`METRICS`) on ``host:port`` from the running loop's process;
    scrapes are answered with snapshots built on this loop. ``port`` 0 picks a free port."""
    return (metrics or METRICS).serve(host, port)
