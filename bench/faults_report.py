"""Summary table of the fault-injection suite (tests/faults/).

Each scenario in tests/faults/ records what happened (outcome, POST /order requests at the CLOB
double, orders that exist at the venue vs expected, feed rows received vs stored, alerts, counters)
and each test process writes them to ``var/faults-results/<worker>.json`` (one part per pytest-xdist
worker, tagged with the run's id). This script merges the parts of the latest run and prints them
as a table; ``--run`` runs the suite first.

    uv run python bench/faults_report.py [--run] [--markdown] [--counters]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "var" / "faults-results"


def load_results(directory: Path) -> list[dict[str, Any]]:
    """The results of the latest run: every part that carries the newest part's run id."""
    parts = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if not parts:
        raise FileNotFoundError(f"no results in {directory}: run the suite first (--run)")
    loaded = [json.loads(p.read_text()) for p in parts]
    latest = loaded[-1]["run"]
    return [row for part in loaded if part["run"] == latest for row in part["results"]]


def _ratio(got: Any, want: Any) -> str:
    if got is None and want is None:
        return "-"
    return f"{'-' if got is None else got}/{'-' if want is None else want}"


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in sorted(results, key=lambda r: r["test"]):
        scenario = r["scenario"] + (f" [{r['backend']}]" if r.get("backend") else "")
        out.append(
            [
                scenario,
                r["outcome"],
                "-" if r.get("posts") is None else str(r["posts"]),
                _ratio(r.get("orders_placed"), r.get("orders_expected")),
                _ratio(r.get("rows_stored"), r.get("rows_expected")),
                r.get("alerts") or "-",
            ]
        )
    return out


def disagreements(r: dict[str, Any]) -> list[str]:
    """Counts a scenario recorded that disagree with what it expected: a row marked "ok" with
    these would mean a test recorded a number without asserting it."""
    out = []
    for got, want in (("rows_stored", "rows_expected"), ("orders_placed", "orders_expected")):
        if r.get(got) is not None and r.get(want) is not None and r[got] != r[want]:
            out.append(f"{got} {r[got]} != {want} {r[want]}")
    return out


HEADER = ["scenario", "outcome", "POST /order", "orders placed/expected", "rows stored/expected", "alerts"]


def render_text(table: list[list[str]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(HEADER)]
    widths[0] = min(widths[0], 78)
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in table:
        cells = [row[0][: widths[0]], *row[1:]]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines)


def render_markdown(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in table:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="run tests/faults first (about 2 minutes)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--counters", action="store_true", help="also print each scenario's counters")
    parser.add_argument("--dir", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    args = parser.parse_args(argv)

    if args.run:
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider"], cwd=REPO_ROOT
        )
        if code not in (0, 1):
            sys.stderr.write(f"faults_report: pytest exited {code}\n")
            return 1
    try:
        results = load_results(args.dir)
    except FileNotFoundError as exc:
        sys.stderr.write(f"faults_report: {exc}\n")
        return 1
    except (ValueError, KeyError, TypeError) as exc:
        sys.stderr.write(f"faults_report: {args.dir} holds something that is not a results part ({exc})\n")
        return 1
    table = rows(results)
    sys.stdout.write((render_markdown(table) if args.markdown else render_text(table)) + "\n")
    bugs = [r for r in results if r["outcome"].startswith("known bug")]
    bad = [r for r in results if r["outcome"] not in ("ok", "skipped") and not r["outcome"].startswith("known bug")]
    unchecked = [r for r in results if r["outcome"] == "ok" and disagreements(r)]
    bad += unchecked
    ok = sum(1 for r in results if r["outcome"] == "ok") - len(unchecked)
    sys.stdout.write(f"\n{len(results)} scenarios: {ok} ok, {len(bugs)} known bug(s), {len(bad)} failing\n")
    for r in bugs:
        sys.stdout.write(f"- {r['scenario']}: {r['bug']}\n")
    for r in bad:
        why = "; ".join(disagreements(r)) if r in unchecked else r["outcome"]
        sys.stdout.write(f"- FAILING: {r['scenario']} ({r['test']}): {why}\n")
    if args.counters:
        sys.stdout.write("\ncounters\n")
        for r in sorted(results, key=lambda r: r["test"]):
            sys.stdout.write(f"- {r['scenario']}: {json.dumps(r.get('counters') or {}, sort_keys=True)}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
