"""``polybot dutch-run-replay`` reports its groups as the engine counts them (sent, completed,
one-legged by cause, unwound; expected vs realised edge), in the summary line and in --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_dutch_runner import cup_script, run_cli


def test_replay_reports_group_figures(tmp_path: Path, db_with_markets: str, capsys: pytest.CaptureFixture[str]) -> None:
    rec = cup_script().write(tmp_path / "cup.jsonl")
    base = ["dutch-run-replay", str(rec), "demo-cup-2026-borealis", "--db-url", db_with_markets]
    code, out = run_cli(capsys, *base, "--json")
    assert code == 0, out
    groups = json.loads(out)["summary"]["groups"]
    # four opportunities, each filled in full against the book of its frame: edge as expected
    assert (groups["sent"], groups["completed"], groups["one_legged"], groups["failed"]) == (4, 4, 0, 0)
    assert groups["one_legged_by_cause"] == {"venue_rejected": 0, "book_moved": 0, "latency_budget_exceeded": 0}
    assert groups["unwound"] == 0 and groups["sets_sent"] == "260"
    assert groups["expected_edge"] == "18.8" and groups["realised_edge"] == "18.8"
    code, out = run_cli(capsys, *base)
    summary = out.splitlines()[-1]
    assert summary.startswith("summary: ")
    assert (
        "groups sent 4, completed 4, one-legged 0 (venue rejected 0, book moved 0, latency budget exceeded 0)"
        in summary
    )
    assert "expected edge 18.8 pUSD, realised edge 18.8 pUSD" in summary
