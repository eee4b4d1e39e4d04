"""Current metric values as a human summary (sections like the dashboard rows) or as JSON."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import Metric

from core.metrics.catalog import BY_NAME, CATALOG, SECTIONS
from core.metrics.hist import FastHistogram


def _exposed_name(family: Metric) -> str:
    return family.name + "_total" if family.type == "counter" else family.name


def series(family: Metric) -> list[dict[str, Any]]:
    """One dict per label set: ``{"labels", "value"}``, or for histograms
    ``{"labels", "count", "sum", "buckets": {le: cumulative}}``."""
    if family.type != "histogram":
        return [{"labels": dict(s.labels), "value": _num(s.value)} for s in family.samples]
    grouped: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in family.samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        entry = grouped.setdefault(key, {"labels": labels, "count": 0, "sum": 0.0, "buckets": {}})
        if s.name.endswith("_bucket"):
            entry["buckets"][s.labels["le"]] = _num(s.value)
        elif s.name.endswith("_count"):
            entry["count"] = _num(s.value)
        elif s.name.endswith("_sum"):
            entry["sum"] = _num(s.value)
    return list(grouped.values())


def as_json(families: Iterable[Metric]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fam in families:
        name = _exposed_name(fam)
        if not name.startswith("polybot_"):
            continue
        spec = BY_NAME.get(name)
        out[name] = {
            "type": fam.type,
            "help": fam.documentation,
            "section": spec.section if spec else "",
            "series": series(fam),
        }
    return {"metrics": out}


def render(families: Iterable[Metric]) -> str:
    """A few lines per section; metrics without any series are left out."""
    by_name = {_exposed_name(f): f for f in families}
    lines: list[str] = []
    for section, title in SECTIONS:
        body: list[str] = []
        for spec in CATALOG:
            if spec.section != section:
                continue
            fam = by_name.get(spec.name)
            if fam is None or not fam.samples:
                continue
            body.append(f"  {_short(spec.name):38} {_describe(fam)}")
        if body:
            lines.append(title)
            lines.extend(body)
    if not lines:
        return "no metrics yet: nothing is bound to this process's metrics (try --replay FILE)"
    return "\n".join(lines)


def _short(name: str) -> str:
    return name.removeprefix("polybot_")


def _describe(fam: Metric) -> str:
    rows = series(fam)
    seconds = fam.name.endswith("_seconds")
    if fam.type == "histogram":
        return "; ".join(_hist_text(r, seconds) for r in rows)
    if len(rows) == 1 and not rows[0]["labels"]:
        return _fmt(rows[0]["value"], seconds)
    shown = [r for r in rows if r["value"]]
    if not shown:
        return "0"
    parts = [f"{'/'.join(r['labels'].values())} {_fmt(r['value'], seconds)}" for r in shown]
    return ", ".join(parts)


def _hist_text(row: dict[str, Any], seconds: bool) -> str:
    labels = "/".join(row["labels"].values())
    prefix = f"{labels}: " if labels else ""
    count = int(row["count"])
    if count == 0:
        return f"{prefix}no samples"
    bounds = [float(le) for le in row["buckets"] if le != "+Inf"]
    h = FastHistogram(bounds)
    cumulative = [row["buckets"][le] for le in row["buckets"]]
    prev = 0.0
    for i, c in enumerate(cumulative):
        h.counts[i] = int(c - prev)
        prev = c
    mean = row["sum"] / count
    p50, p99 = h.quantile(0.5), h.quantile(0.99)
    return (
        f"{prefix}{count} samples, mean {_fmt(mean, seconds)}, p50 <= {_fmt(p50, seconds)}, p99 <= {_fmt(p99, seconds)}"
    )


def _num(value: float) -> float | int | str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return int(value) if float(value).is_integer() else value


def _fmt(value: Any, seconds: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if seconds:
        if value == 0:
            return "0s"
        if abs(value) < 0.001:
            return f"{value * 1e6:.0f}µs"
        if abs(value) < 1:
            return f"{value * 1e3:.1f}ms"
        return f"{value:.2f}s"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"
