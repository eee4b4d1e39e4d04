"""``polybot demo``'s summary block prints every phase's Dutch figures (its group line, then complete
sets and locked edge), from the phases' own ``lines()``; the demo itself is replaced by a fixed
summary so this runs in milliseconds (tests/e2e/test_cli_demo.py runs the real one)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import polybot.demo
from core.control.types import GroupReport
from polybot.cli.main import main
from polybot.demo import DemoSummary, PhaseResult


def _summary() -> DemoSummary:
    paper = PhaseResult(
        "paper",
        frames=40,
        opportunities=5,
        groups=GroupReport(
            sent=4,
            completed=3,
            one_legged=1,
            one_legged_by_cause={"book_moved": 1},
            unwound=1,
            expected_edge=Decimal("0.42"),
            realised_edge=Decimal("0.31"),
        ),
        complete_sets=Decimal(30),
        locked_edge=Decimal("0.35"),
        realised_pnl=Decimal("-0.04"),
        merged_sets=Decimal(10),
        returned_pusd=Decimal(10),
    )
    live = PhaseResult("live", frames=3, merged_sets=Decimal("2.5"), returned_pusd=Decimal("2.5"))
    return DemoSummary(
        phases=[paper, live],
        frames_ingested=43,
        opportunities=5,
        orders=9,
        orders_by_mode={"paper": 8, "live": 1},
        fills=8,
        alerts=1,
        commands_audited=12,
        live_orders_at_venue=1,
        seconds=1.5,
        chain_transactions=1,
        chain_confirmed=1,
    )


def test_the_summary_prints_each_phases_group_and_complete_set_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _summary()

    async def fake_run_demo(**kw: Any) -> DemoSummary:
        return summary

    monkeypatch.setattr(polybot.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--quiet", "--var-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    block = out[out.index("===== summary =====") :]
    expected = [line for phase in summary.phases for line in phase.lines()]
    assert len(expected) == 6 and all(line in block for line in expected)
    assert [line for line in block if line in expected] == expected  # phase by phase, in order
    assert (
        "paper: groups sent 4, completed 3, one-legged 1 (book moved 1), unwound 1, hedged 0, "
        "still one-legged 0, failed 0, pending 0; expected edge 0.42 pUSD, realised edge 0.31 pUSD"
    ) in block
    assert any(line.startswith("paper: complete sets 30, locked edge 0.35 pUSD; ") for line in block)
    assert "paper: merged 10 sets, 10 pUSD returned" in block and "live: merged 2.5 sets, 2.5 pUSD returned" in block
    assert "merge transactions sent to the chain double: 1 (confirmed 1)" in block
