"""Where the bus components count (``core.bus`` sits below ``core.metrics``, so it names the methods
it calls; :class:`core.metrics.bus_stats.BusStats` has them all and is what the compositions pass)."""

from __future__ import annotations

from typing import Protocol


class WorkerMeter(Protocol):
    snapshots_served: int

    def on_published(self, kind: str, nbytes: int, lag_s: float | None = None) -> None: ...
    def on_publish_error(self) -> None: ...
    def set_shard(self, shard: str, active: bool) -> None: ...


class ReaderMeter(Protocol):
    resnapshots: int

    def on_received(self, kind: str, lag_s: float | None = None) -> None: ...
    def on_gap(self, n: int = 1) -> None: ...


class RecorderMeter(Protocol):
    """The recorder's (:mod:`core.bus.recorder`): what it received, stored, found already stored."""

    def on_received(self, kind: str, lag_s: float | None = None) -> None: ...
    def on_recorded(self, outcome: str, n: int = 1) -> None: ...
    def on_redelivered(self, n: int = 1) -> None: ...
    def set_consumer(self, consumer: str, pending: int, ack_pending: int) -> None: ...
    def set_stream(self, stream: str, nbytes: int, messages: int) -> None: ...


class NoBusMeter:
    """Counts nothing (a component nobody scrapes)."""

    snapshots_served = 0
    resnapshots = 0

    def on_published(self, kind: str, nbytes: int, lag_s: float | None = None) -> None:
        pass

    def on_publish_error(self) -> None:
        pass

    def set_shard(self, shard: str, active: bool) -> None:
        pass

    def on_received(self, kind: str, lag_s: float | None = None) -> None:
        pass

    def on_gap(self, n: int = 1) -> None:
        pass

    def on_recorded(self, outcome: str, n: int = 1) -> None:
        pass

    def on_redelivered(self, n: int = 1) -> None:
        pass

    def set_consumer(self, consumer: str, pending: int, ack_pending: int) -> None:
        pass

    def set_stream(self, stream: str, nbytes: int, messages: int) -> None:
        pass
