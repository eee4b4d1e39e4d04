"""The market-data bus's figures in one process (issue 20): what a feed worker published, what a
trader or recorder received, the gaps it saw, and the JetStream stream and consumer state.

A process that takes part in the bus owns one :class:`BusStats`, counts into it from its event
loop and binds it to its metrics (``Metrics.bind(market_bus=stats)``); :func:`read_bus_stats`
turns it into the ``polybot_bus_*`` and ``polybot_recorder_*`` families at scrape time (on that
same loop, so nothing here takes a lock). Metric names and help texts are in
:mod:`core.metrics.catalog`.

``core.bus`` sits below ``core.metrics`` in the import layers: its components take a BusStats
through a Protocol of the methods they call (:mod:`core.bus.meter`), and
the composition in ``core.app`` passes the BusStats it bound.

Who counts what: a feed worker :meth:`~BusStats.on_published` (kind, bytes, frame receive -> publish
lag), :meth:`~BusStats.on_publish_error`, :meth:`~BusStats.set_shard` and ``snapshots_served``; a
trader on the bus :meth:`~BusStats.on_received` (with the lag from the worker's ``recv_ns``),
:meth:`~BusStats.on_gap` and ``resnapshots``; the recorder the rest (outcomes, redeliveries, the
consumer's backlog and the stream's size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.metrics.catalog import BUS_BUCKETS
from core.metrics.families import Families
from core.metrics.hist import FastHistogram
from core.metrics.instance import identity_label
from core.metrics.labels import BoundedLabels, label_value

RECORDER_OUTCOMES = ("stored", "duplicate", "invalid")


def _hist() -> FastHistogram:
    return FastHistogram(BUS_BUCKETS)


@dataclass
class BusStats:
    """Counters and gauges of one process's side of the bus. Call from the event loop's thread."""

    published: dict[str, int] = field(default_factory=dict)  # kind -> events acknowledged
    published_bytes: int = 0
    publish_errors: int = 0
    worker_lag: FastHistogram = field(default_factory=_hist)
    shards: dict[str, bool] = field(default_factory=dict)  # shard ("I/N") -> holds the lease
    snapshots_served: int = 0
    received: dict[str, int] = field(default_factory=dict)  # kind -> events received
    receive_lag: FastHistogram = field(default_factory=_hist)
    gaps: int = 0
    resnapshots: int = 0
    streams: dict[str, tuple[int, int]] = field(default_factory=dict)  # stream -> (bytes, messages)
    consumers: dict[str, tuple[int, int]] = field(default_factory=dict)  # consumer -> (pending, ack pending)
    recorder: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RECORDER_OUTCOMES, 0))
    redelivered: int = 0
    _kinds: BoundedLabels = field(default_factory=lambda: BoundedLabels(32), repr=False)

    # ---- feed worker ---------------------------------------------------------------------------

    def on_published(self, kind: str, nbytes: int, lag_s: float | None = None) -> None:
        """One event acknowledged by JetStream; ``lag_s``: from the frame's receive time until the ack."""
        key = self._kinds(label_value(kind))
        self.published[key] = self.published.get(key, 0) + 1
        self.published_bytes += nbytes
        if lag_s is not None:
            self.worker_lag.observe(max(0.0, lag_s))

    def on_publish_error(self) -> None:
        self.publish_errors += 1

    def set_shard(self, shard: str, active: bool) -> None:
        self.shards[identity_label(shard)] = active  # "I/N" keeps its slash

    # ---- consumers (trader, recorder) ----------------------------------------------------------

    def on_received(self, kind: str, lag_s: float | None = None) -> None:
        """One event received; ``lag_s``: from the frame's receive time at the worker until now."""
        key = self._kinds(label_value(kind))
        self.received[key] = self.received.get(key, 0) + 1
        if lag_s is not None:
            self.receive_lag.observe(max(0.0, lag_s))

    def on_gap(self, n: int = 1) -> None:
        self.gaps += n

    # ---- JetStream state (read periodically by the process that owns the stream / consumer) -----

    def set_stream(self, stream: str, nbytes: int, messages: int) -> None:
        self.streams[label_value(stream, 64)] = (nbytes, messages)

    def set_consumer(self, consumer: str, pending: int, ack_pending: int) -> None:
        self.consumers[label_value(consumer, 64)] = (pending, ack_pending)

    # ---- recorder ------------------------------------------------------------------------------

    def on_recorded(self, outcome: str, n: int = 1) -> None:
        if outcome not in self.recorder:
            raise ValueError(f"unknown recorder outcome {outcome!r} (known: {', '.join(RECORDER_OUTCOMES)})")
        self.recorder[outcome] += n

    def on_redelivered(self, n: int = 1) -> None:
        self.redelivered += n


def read_bus_stats(f: Families, s: BusStats) -> None:
    for kind, n in sorted(s.published.items()):
        f.add("polybot_bus_published_total", (kind,), n)
    f.add("polybot_bus_published_bytes_total", (), s.published_bytes)
    f.add("polybot_bus_publish_errors_total", (), s.publish_errors)
    f.hist("polybot_bus_worker_lag_seconds", (), s.worker_lag)
    for shard, active in sorted(s.shards.items()):
        f.add("polybot_bus_shard_active", (shard,), 1 if active else 0)
    f.add("polybot_bus_snapshots_served_total", (), s.snapshots_served)
    for kind, n in sorted(s.received.items()):
        f.add("polybot_bus_received_total", (kind,), n)
    f.hist("polybot_bus_receive_lag_seconds", (), s.receive_lag)
    f.add("polybot_bus_sequence_gaps_total", (), s.gaps)
    f.add("polybot_bus_resnapshots_total", (), s.resnapshots)
    for stream, (nbytes, messages) in sorted(s.streams.items()):
        f.add("polybot_bus_stream_bytes", (stream,), nbytes)
        f.add("polybot_bus_stream_messages", (stream,), messages)
    for consumer, (pending, ack_pending) in sorted(s.consumers.items()):
        f.add("polybot_bus_consumer_pending", (consumer,), pending)
        f.add("polybot_bus_consumer_ack_pending", (consumer,), ack_pending)
    for outcome, n in s.recorder.items():
        f.add("polybot_recorder_events_total", (outcome,), n)
    f.add("polybot_recorder_redelivered_total", (), s.redelivered)
