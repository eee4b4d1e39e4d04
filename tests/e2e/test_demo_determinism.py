"""`polybot demo` counts the same on every run: two runs side by side (so each slows the other
down differently) give the same summary, timing and ids aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.procs import console_script, run

RUN_S = 300


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in summary.items() if k not in ("phases", "seconds", "charts")}
    out["phases"] = [
        {k: v for k, v in phase.items() if k != "transcript"} | {"updates": len(phase["transcript"])}
        for phase in summary["phases"]
    ]
    out["charts"] = [Path(c).name for c in summary["charts"]]
    return out


@pytest.mark.slow(seconds=13)  # two demos
def test_two_runs_count_the_same(tmp_path: Path, clean_env: dict[str, str]) -> None:
    import concurrent.futures

    def demo(name: str) -> dict[str, Any]:
        proc = run(
            [console_script("polybot"), "demo", "--duration", "2", "--json", "--var-dir", str(tmp_path / name)],
            cwd=REPO_ROOT,
            env=clean_env,
            text=True,
            timeout_s=RUN_S,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary: dict[str, Any] = json.loads(proc.stdout)
        return summary

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first, second = pool.map(demo, ["one", "two"])
    a, b = _counts(first), _counts(second)
    assert a["frames_ingested"] > 0 and a["orders"] > 0 and a["phases"][0]["opportunities"] > 0
    assert a == b, json.dumps({"first": a, "second": b}, indent=1, default=str)[:4000]
