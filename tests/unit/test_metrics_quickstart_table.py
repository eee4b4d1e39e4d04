"""docs/metrics-quickstart.md's metric tables say what core/metrics/catalog.py declares: one row per
metric, with the same type, labels and help text (the catalog is the one source; a new or changed
metric without its row fails here)."""

from __future__ import annotations

import re

from core.metrics.catalog import BY_NAME
from tests.conftest import REPO_ROOT

ROW = re.compile(r"^\| `(polybot_\w+)` \| (\w+) \| ([^|]+) \| (.+) \|$", re.MULTILINE)


def _rows() -> list[tuple[str, str, str, str]]:
    text = (REPO_ROOT / "docs" / "metrics-quickstart.md").read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), m.group(3).strip(), m.group(4).strip()) for m in ROW.finditer(text)]


def test_every_catalog_metric_has_one_row_saying_what_the_catalog_says() -> None:
    rows = _rows()
    names = [name for name, *_ in rows]
    assert sorted(n for n in set(names) if names.count(n) > 1) == [], "metrics with more than one row"
    assert sorted(set(BY_NAME) - set(names)) == [], "metrics in the catalog without a row in the docs"
    assert sorted(set(names) - set(BY_NAME)) == [], "rows for metrics the catalog does not declare"
    wrong = [
        f"{name}: doc says ({kind}; {labels}; {help_text!r}), catalog ({spec.kind}; {want_labels}; {spec.help!r})"
        for name, kind, labels, help_text in rows
        for spec in [BY_NAME[name]]
        for want_labels in [", ".join(spec.labels) or "-"]
        if (kind, labels, help_text) != (spec.kind, want_labels, spec.help)
    ]
    assert wrong == [], "\n".join(wrong)
