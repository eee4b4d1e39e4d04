"""One scrape's metric families, created from the catalog so that each appears even without samples."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from core.metrics.catalog import CATALOG, MetricSpec
from core.metrics.hist import FastHistogram

_Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


class Families:
    def __init__(self) -> None:
        self._samples: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        self._hists: dict[str, HistogramMetricFamily] = {}
        self._all: dict[str, _Family] = {}
        for spec in CATALOG:
            family = _new_family(spec)
            self._all[spec.name] = family
            if isinstance(family, HistogramMetricFamily):
                self._hists[spec.name] = family
            else:
                self._samples[spec.name] = family

    def add(self, name: str, labels: Sequence[str], value: float) -> None:
        self._samples[name].add_metric(list(labels), float(value))

    def hist(self, name: str, labels: Sequence[str], h: FastHistogram) -> None:
        self._hists[name].add_metric(list(labels), h.cumulative(), h.sum)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._all.values())


def _new_family(spec: MetricSpec) -> _Family:
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    if spec.kind == "gauge":
        return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    return HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
