"""``polybot recorder`` as a process: the database, NATS, the batched writer, ``/metrics``, and the
recorder of :mod:`core.bus.recorder` running until told to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.bus.connect import connect, ensure_stream
from core.bus.recorder import Recorder, RecorderCounts, RecorderOptions
from core.metrics.bus_stats import BusStats
from core.metrics.collect import METRICS, Metrics, MetricsServer, serve_metrics
from core.settings import Settings
from core.store.db import create_engine
from core.store.migrate import ensure_schema
from core.store.writer import BatchedWriter


async def run_recorder(
    settings: Settings,
    options: RecorderOptions,
    stop: asyncio.Event,
    *,
    name: str,
    metrics: Metrics | None = None,
    metrics_port: int | None = None,
    migrate: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> RecorderCounts:
    """The whole recorder process: database (schema at head, or migrated with ``migrate``), NATS
    (the stream created when absent), the batched writer, ``/metrics`` when ``[metrics] enabled``
    or ``metrics_port`` is given (role ``recorder``), then :meth:`Recorder.run` until ``stop``.
    ``on_ready`` is told a one-line summary once messages can flow."""
    metrics = metrics if metrics is not None else METRICS
    url = settings.db.url
    engine = create_engine(url)
    try:
        await ensure_schema(engine, url, migrate=migrate)
        nc = await connect(settings.bus, name)
        try:
            js = nc.jetstream()
            await ensure_stream(js, settings.bus)
            stats = BusStats()
            async with BatchedWriter(engine) as writer:
                recorder = Recorder(js, writer, options, stats=stats)
                metrics.bind(writer=writer, market_bus=stats)
                server = await _serve_metrics(settings, metrics, metrics_port)
                try:
                    if on_ready is not None:
                        where = f", metrics {server.url}" if server is not None else ""
                        on_ready(f"recorder {name}: stream {options.stream}, durable {options.durable}{where}")
                    await recorder.run(stop)
                finally:
                    metrics.unbind()
                    if server is not None:
                        await server.aclose()
            return recorder.counts
        finally:
            await nc.drain()
    finally:
        await engine.dispose()


async def _serve_metrics(settings: Settings, metrics: Metrics, port: int | None) -> MetricsServer | None:
    m = settings.metrics
    if port is None and not m.enabled:
        return None
    return await serve_metrics(m.host, m.port if port is None else port, metrics, role="recorder", instance=m.instance)
