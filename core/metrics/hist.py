"""A histogram cheap enough for the feed's hot path, exported as a Prometheus histogram.

prometheus_client's Histogram takes a lock and walks its buckets in Python on every observation;
the feed observes once per frame, so here an observation is one ``bisect`` (in C) and two
additions. Only the event loop's thread observes; the collector reads the counts on that same
thread (see :mod:`core.metrics.collect`), so no lock is needed. Counts are kept per bucket and made
cumulative at export, so ``+Inf`` always equals ``_count``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client.utils import floatToGoString

# the exposition's own float format ("0.005", "1e+06"); the library leaves the function unannotated
_go_float: Callable[[float], str] = floatToGoString


class FastHistogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds: tuple[float, ...] = tuple(sorted(float(b) for b in bounds))
        if not self.bounds:
            raise ValueError("a histogram needs at least one bucket bound")
        self.counts: list[int] = [0] * (len(self.bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bucket i holds bounds[i-1] < v <= bounds[i]: Prometheus' "le" is inclusive
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_many(self, values: Iterable[float]) -> None:
        counts = self.counts
        bounds = self.bounds
        total = 0.0
        for v in values:
            counts[bisect_left(bounds, v)] += 1
            total += v
        self.sum += total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs ending with ``+Inf``, as HistogramMetricFamily wants."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((_go_float(bound), float(running)))
        running += self.counts[-1]
        out.append(("+Inf", float(running)))
        return out

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q`` (None when empty; inf past the last)."""
        total = self.count
        if total == 0:
            return None
        rank = q * total
        running = 0
        for i, n in enumerate(self.counts):
            running += n
            if running >= rank and n:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")
