"""Prometheus metrics: :mod:`~core.metrics.catalog` names every family (one source for the
exporter, the dashboard and the docs), :mod:`~core.metrics.collect` gathers them from the live
components when scraped and serves them, :mod:`~core.metrics.dashboard` builds the Grafana
dashboard, :mod:`~core.metrics.summary` prints a scrape for a person.

Kept empty on purpose: importing the catalog must not start importing every component."""
