"""Prometheus metrics for every component, collected when scraped.

One :class:`Metrics` object owns one ``CollectorRegistry``. Live components are attached with
:meth:`Metrics.bind` (any may be missing) and read when Prometheus scrapes (:mod:`core.metrics.readers`):
processor counters, faults and book statuses, websocket connection stats, writer stats, risk
state, engine positions, exposure and PnL. What exists only as a moment is captured as it happens
by taps (:mod:`core.metrics.taps`): a pipeline sink, the writer's commit hook, the event bus, and
the execution store's audit records (every relayer call). :meth:`Metrics.record_command` counts
control commands (called by ``Control.audit_command``), :meth:`Metrics.register_runner` adds a
strategy runner's stats.

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
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, cast
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from core.metrics import readers
from core.metrics.bus_stats import BusStats, read_bus_stats
from core.metrics.families import Families
from core.metrics.instance import identity_label, instance_identity
from core.metrics.labels import BoundedLabels, label_value
from core.metrics.sources import (
    BusSource,
    EngineSource,
    FeedSource,
    OpportunityCounters,
    PipelineSource,
    ProcessorSource,
    RiskSource,
    StatsOwner,
    WriterSource,
)
from core.metrics.taps import AuditTap, BusTap, FeedTap, RelayerTap, WriterTap

log = logging.getLogger(__name__)

COMPONENTS = ("processor", "feed", "pipeline", "writer", "strategies", "engine", "risk", "bus", "market_bus")
S = TypeVar("S")


@dataclass
class _Bound:
    processor: ProcessorSource | None = None
    feed: FeedSource | None = None
    writer: WriterSource | None = None
    pipeline: PipelineSource | None = None
    engine: EngineSource | None = None
    risk: RiskSource | None = None
    bus: BusSource | None = None
    market_bus: BusStats | None = None
    opportunities: Mapping[str, OpportunityCounters] = field(default_factory=dict)
    runners: Callable[[], Iterable[object]] | None = None


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
        self._feed_tap = FeedTap()
        self._writer_tap = WriterTap()
        self._relayer_tap = RelayerTap()
        self._bus_tap = BusTap()
        self._feed_tap_on: PipelineSource | None = None  # the pipeline the feed tap is attached to
        self._bus_unsubscribe: Callable[[], None] | None = None
        self._seen: set[str] = set()  # components ever bound: their zero-valued series are exported
        self._runner_stats: dict[int, tuple[str, object]] = {}
        self._commands: dict[tuple[str, str, str], int] = {}
        self._front_ends = BoundedLabels(8, ("telegram", "cli"))
        self._command_names = BoundedLabels(64)
        self._results = BoundedLabels(16, ("ok", "error", "refused", "denied", "unauthorised"))
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._last: list[Metric] | None = None
        self._timeouts = 0
        self._instance: tuple[str, str] | None = None  # (role, identity): polybot_instance_info
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
        processor: ProcessorSource | None = None,
        feed: FeedSource | None = None,
        writer: WriterSource | None = None,
        pipeline: PipelineSource | None = None,
        engine: EngineSource | None = None,
        risk: RiskSource | None = None,
        bus: BusSource | None = None,
        market_bus: BusStats | None = None,
        opportunities: Mapping[str, OpportunityCounters] | None = None,
        runners: Iterable[object] | Callable[[], Iterable[object]] | None = None,
    ) -> None:
        """Attach live components; a component given as None is left as it was (see :meth:`unbind`).

        ``opportunities``: strategy name -> what its opportunities became, read when scraped.
        ``market_bus``: the process's market-data bus figures (feed worker, bus trader, recorder).
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
            self._bind_writer(writer)
        if pipeline is not None and pipeline is not b.pipeline:
            self._bind_pipeline(pipeline, own_processor=processor is None)
        if engine is not None and engine is not b.engine:
            self._bind_engine(engine, own_risk=risk is None)
        if risk is not None:
            b.risk = risk
        if bus is not None and bus is not b.bus:
            if self._bus_unsubscribe is not None:
                self._bus_unsubscribe()
            b.bus = bus
            self._bus_unsubscribe = bus.subscribe(None, self._bus_tap)
            self._seen.add("bus")
        if market_bus is not None:
            b.market_bus = market_bus
        if opportunities is not None:
            b.opportunities = dict(opportunities)
        if runners is not None:
            if callable(runners):
                b.runners = runners
            else:
                fixed = list(runners)
                b.runners = lambda: fixed

    def _bind_writer(self, writer: WriterSource) -> None:
        if self._b.writer is not None:
            self._b.writer.unwatch(self._writer_tap)
        self._b.writer = writer
        self._writer_tap.key = writer.receive_ts_key
        writer.watch(self._writer_tap)
        self._seen.add("writer")

    def _bind_pipeline(self, pipeline: PipelineSource, *, own_processor: bool) -> None:
        self._detach_pipeline()
        self._b.pipeline = pipeline
        pipeline.add_sink(self._feed_tap)
        self._feed_tap_on = pipeline
        self._seen.add("pipeline")
        if own_processor:  # the pipeline's own processor, unless one was given
            self._b.processor = pipeline.processor
            self._seen.add("processor")

    def _bind_engine(self, engine: EngineSource, *, own_risk: bool) -> None:
        self._b.engine = engine
        self._seen.add("engine")
        if own_risk:  # the engine's own gate, unless one was given
            self._b.risk = engine.risk

    def audit_store(self, store: S) -> S:
        """``store``, with every audit record (every relayer call) also counted here: build the
        engine with it (an engine bound without it reports no relayer calls). Everything else
        passes through to ``store`` untouched."""
        return cast(S, AuditTap(store, self._relayer_tap))

    def unbind(self) -> None:
        """Detach every component (counters captured so far are kept)."""
        self._detach_pipeline()
        if self._b.writer is not None:
            self._b.writer.unwatch(self._writer_tap)
        if self._bus_unsubscribe is not None:
            self._bus_unsubscribe()
            self._bus_unsubscribe = None
        self._b = _Bound()

    def _detach_pipeline(self) -> None:
        old = self._feed_tap_on
        if old is not None and self._feed_tap in old.sinks:
            old.sinks.remove(self._feed_tap)
        self._feed_tap_on = None

    def register_runner(self, runner: object, strategy: str | None = None) -> None:
        """Count a strategy runner's evaluations and opportunities (its ``stats`` object is kept,
        so its counts survive the runner being replaced)."""
        stats = runner.stats if isinstance(runner, StatsOwner) else runner
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

    def set_instance(self, role: str, identity: str) -> None:
        """Who this process is, exported as ``polybot_instance_info{role, identity} 1``
        (see :func:`core.metrics.instance.instance_identity`)."""
        self._instance = (label_value(role, 32), identity_label(identity))

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
            fams = Families()
            fams.add("polybot_metrics_collect_timeouts_total", (), self._timeouts)
            return list(fams)

    def _snapshot(self) -> list[Metric]:
        fams = Families()
        now = time.time_ns()
        for name, part in self._parts(fams, now):
            try:
                part()
            except Exception as exc:
                self._collect_failed(name, exc)
        with self._lock:
            commands = dict(self._commands)
            timeouts = self._timeouts
            errors = dict(self._collect_errors)
        for key, n in sorted(commands.items()):
            fams.add("polybot_commands_total", key, n)
        fams.add("polybot_metrics_collect_timeouts_total", (), timeouts)
        if self._instance is not None:
            fams.add("polybot_instance_info", self._instance, 1)
        for component, n in sorted(errors.items()):
            fams.add("polybot_metrics_collect_errors_total", (component,), n)
        result = list(fams)
        self._last = result
        return result

    def _parts(self, f: Families, now: int) -> list[tuple[str, Callable[[], None]]]:
        """One reading per component, in :data:`COMPONENTS` order; a tap's series are exported
        once its component was ever bound (zero-valued until something happens)."""
        b, seen = self._b, self._seen
        parts: list[tuple[str, Callable[[], None]]] = []
        if b.processor is not None:
            p = b.processor
            parts.append(("processor", lambda: readers.read_processor(f, p, now, self.top_assets)))
        if b.feed is not None:
            feed = b.feed
            parts.append(("feed", lambda: readers.read_feed(f, feed, now)))
        if "pipeline" in seen:
            parts.append(("pipeline", lambda: readers.read_feed_tap(f, self._feed_tap)))
        if b.pipeline is not None:
            pipeline = b.pipeline
            parts.append(("pipeline", lambda: readers.read_pipeline(f, pipeline.stats)))
        if "writer" in seen:
            parts.append(("writer", lambda: readers.read_writer_tap(f, self._writer_tap)))
        if b.writer is not None:
            writer = b.writer
            parts.append(("writer", lambda: readers.read_writer(f, writer)))
        parts.append(("strategies", lambda: self._read_strategies(f)))
        if "engine" in seen:
            parts.append(("engine", lambda: readers.read_relayer_tap(f, self._relayer_tap)))
        if b.engine is not None:
            engine = b.engine
            parts.append(("engine", lambda: readers.read_engine(f, engine)))
        if b.risk is not None:
            risk = b.risk
            parts.append(("risk", lambda: readers.read_risk(f, risk)))
        if b.market_bus is not None:
            market_bus = b.market_bus
            parts.append(("market_bus", lambda: read_bus_stats(f, market_bus)))
        if "bus" in seen:
            parts.append(("bus", lambda: readers.read_bus_tap(f, self._bus_tap)))
            if b.bus is not None:
                bus = b.bus
                parts.append(("bus", lambda: readers.read_bus(f, bus)))
        return parts

    def _read_strategies(self, f: Families) -> None:
        provider = self._b.runners
        if provider is not None:
            for runner in list(provider()):
                self.register_runner(runner)
        readers.read_strategies(f, list(self._runner_stats.values()), self._b.opportunities)

    def _collect_failed(self, component: str, exc: Exception) -> None:
        with self._lock:
            self._collect_errors[component] = self._collect_errors.get(component, 0) + 1
        now = time.monotonic()
        if now - self._error_logged.get(component, -1e9) >= 60:
            self._error_logged[component] = now
            log.warning("metrics: could not read %s: %s: %s", component, type(exc).__name__, exc, exc_info=True)


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
        return list(Families())

    def collect(self) -> list[Metric]:
        return self._metrics._collect()


class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it (``aclose()`` from async code)."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread, host: str) -> None:
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


async def serve_metrics(
    host: str, port: int, metrics: Metrics | None = None, *, role: str | None = None, instance: str = ""
) -> MetricsServer:
    """Serve ``metrics`` (default :data:`METRICS`) on ``host:port`` from the running loop's process;
    scrapes are answered with snapshots built on this loop. ``port`` 0 picks a free port.
    With ``role``, the process says who it is (``instance``, or ``ROLE@HOSTNAME:PORT``)."""
    m = metrics or METRICS
    server = m.serve(host, port)
    if role is not None:
        m.set_instance(role, instance_identity(instance, role, server.port))
    return server
